//! A segmentation run's section: training curves and epoch log, per-class AP and IoU,
//! predictions on test_dev, and predictions on the user's own photos (`--photos`).

use std::path::{Path, PathBuf};

use super::ReportError;
use super::assets::Assets;
use super::common::{EpochColumns, epoch_log};
use super::html::{self, Cell, Table};
use super::runs::LoadedRun;

use crate::engine::{Compute, Tta};
use crate::run::records::{SegmentationEpoch, SegmentationTrain, SegmentationVal};
use crate::run::results::SegmentationMetrics;

pub(super) fn segmentation(
    run: &LoadedRun,
    assets: &Assets,
    metrics: &SegmentationMetrics,
    history: &[SegmentationEpoch],
    photos: &[PathBuf],
    compute: &Compute,
) -> Result<String, ReportError> {
    let mut out = String::from("<h3>Training</h3>\n");
    out.push_str(&assets.figure(
        run,
        "curves.png",
        "Line charts of training and validation loss (left) and validation mAP (right) per epoch",
        "Loss per epoch (training blue, validation orange) and validation mAP.",
    )?);
    out.push_str(&epoch_log(history));

    out.push_str("<h3>Average precision and IoU per class</h3>\n<div class=\"grid\"><div>\n");
    let mut t = Table::new(
        "Per-class AP (as scikit-learn's average_precision_score over all pixels) and IoU",
        &["class", "val AP", "test AP", "val IoU", "test IoU"],
    );
    for (c, name) in metrics.class_names.iter().enumerate() {
        t.push(vec![
            Cell::text(name),
            Cell::num(metrics.val.ap[c], 3),
            Cell::num(metrics.test.ap[c], 3),
            Cell::num(metrics.val.iou[c], 3),
            Cell::num(metrics.test.iou[c], 3),
        ]);
    }
    t.push(vec![
        Cell::text("mean (mAP, mIoU)"),
        Cell::num(metrics.val.map, 3),
        Cell::num(metrics.test.map, 3),
        Cell::num(metrics.val.miou, 3),
        Cell::num(metrics.test.miou, 3),
    ]);
    let last = t.rows.len() - 1;
    t.rows[last].highlight = true;
    out.push_str(&t.render());
    out.push_str("</div><div>\n");
    out.push_str(&assets.figure(
        run,
        "ap.png",
        "Bar chart of test average precision per class with the mean",
        "Test AP per class; the mean is the mAP.",
    )?);
    let split = run.test_split();
    out.push_str(&format!("</div></div>\n<h3>Predictions on {split}</h3>\n"));
    out.push_str(&assets.figure(
        run,
        "legend.png",
        &format!("Colour legend: {}", metrics.class_names.join(", ")),
        "Colours of the classes.",
    )?);
    out.push_str(&assets.figure(
        run,
        "predictions.png",
        "Rows of test photos, their ground-truth label maps and the predicted label maps",
        &format!("Photo | ground truth | prediction, for {split} images."),
    )?);
    out.push_str(&assets.figure(
        run,
        "confusion.png",
        &format!("Pixel confusion matrix of {split}: true class in rows, predicted in columns"),
        "Test pixel confusion matrix: rows are true classes, columns predictions.",
    )?);
    if !photos.is_empty() {
        out.push_str(&extra_photos(run, assets, photos, compute)?);
    }
    Ok(out)
}

/// Segments the user's photos with the run's model; a table of overlays and colour masks.
fn extra_photos(
    run: &LoadedRun,
    assets: &Assets,
    photos: &[PathBuf],
    compute: &Compute,
) -> Result<String, ReportError> {
    let out_dir = assets.dir().join("photos");
    let predictions = crate::predict::segmentation::predict(
        &run.dir.root,
        photos,
        &out_dir,
        false,
        Tta::None,
        compute,
    )?;
    let files: Vec<_> = predictions.into_iter().map(|p| p.files).collect();
    let mut t = Table::new(
        "Predictions on your photos (rescaled to 256×256)",
        &["photo", "overlay with legend", "colour-coded prediction"],
    );
    for (photo, f) in photos.iter().zip(&files) {
        let name = photo
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = |p: &Path| {
            format!(
                "{}/photos/{}",
                assets.folder,
                p.file_name().unwrap_or_default().to_string_lossy()
            )
        };
        t.push(vec![
            Cell::text(&name),
            Cell::Html(html::image(
                &rel(&f.overlay),
                &format!("Prediction for {name} blended over the photo, with a legend"),
            )),
            Cell::Html(html::image(
                &rel(&f.color),
                &format!("Colour-coded class of each pixel of {name}"),
            )),
        ]);
    }
    Ok(format!("<h3>Your photos</h3>\n{}", t.render()))
}

impl EpochColumns for SegmentationTrain {
    /// The log leaves it out, as training's line does.
    const HEADERS: &'static [&'static str] = &[];

    fn cells(&self) -> Vec<Cell> {
        Vec::new()
    }
}

impl EpochColumns for SegmentationVal {
    const HEADERS: &'static [&'static str] = &["val mAP", "val mIoU", "val pixel acc"];

    fn cells(&self) -> Vec<Cell> {
        vec![
            Cell::num(self.map, 3),
            Cell::num(self.miou, 3),
            Cell::percent(self.pixel_accuracy),
        ]
    }
}
