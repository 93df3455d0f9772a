//! Segmentation of any photo with a trained segmenter: rescaled to the run's side, written as a
//! class-index mask, a colour-coded picture, an overlay with legend, and optionally the
//! probabilities (.npy).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::npy_f32;
use crate::data::label_map::encode_label_map_with;
use crate::data::{ClassSpec, DataError, facade};
use crate::engine::{Compute, Tta};
use crate::figures::{FigureError, segmentation};
use crate::fsutil::write_atomic;
use crate::models::ModelKind;
use crate::run::config::SegmentationConfig;
use crate::run::json::read_json;
use crate::run::{RunDir, RunError, checkpoint};
use crate::tasks::TaskError;
use crate::tasks::segmentation::{argmax_classes, probabilities};

/// One photo's prediction: the files written and each class's share of the pixels.
#[derive(Clone, Debug)]
pub struct MaskPrediction {
    pub photo: PathBuf,
    pub files: MaskFiles,
    /// `(class name, share of the pixels)` in class order.
    pub shares: Vec<(String, f64)>,
}

/// The files written for one photo.
#[derive(Clone, Debug)]
pub struct MaskFiles {
    pub mask: PathBuf,
    pub color: PathBuf,
    pub overlay: PathBuf,
    pub probs: Option<PathBuf>,
}

/// `convlab facade|segment predict --run DIR PHOTO... --out DIR [--save-probs] [--tta flip]`.
pub fn predict(
    run_dir: &Path,
    photos: &[PathBuf],
    out: &Path,
    save_probs: bool,
    tta: Tta,
    compute: &Compute,
) -> Result<Vec<MaskPrediction>, TaskError> {
    let run = RunDir::existing(run_dir)?;
    let config: SegmentationConfig = read_json(&run.config())?;
    // Every photo is decoded before any work, so a bad one stops the command early.
    let decoded: Vec<(PathBuf, image::RgbImage)> = photos
        .iter()
        .map(|p| Ok((p.clone(), facade::read_photo(p)?)))
        .collect::<Result<_, DataError>>()?;
    let (model, _, _) =
        checkpoint::load_final(&run, config.model.name(), &config.architecture, compute)?;
    std::fs::create_dir_all(out).map_err(|e| RunError::not_writable(out, e))?;
    let mut written = Vec::new();
    let side = config.side();
    for (path, photo) in decoded {
        let resized =
            image::imageops::resize(&photo, side as u32, side as u32, FilterType::Triangle);
        let chw = facade::hwc_to_chw(&resized);
        let mut values = Vec::with_capacity(chw.len());
        config
            .normalization
            .extend(&mut values, &chw, 3, side * side);
        let probs = probabilities(&model, values, 1, side, tta);
        let labels = argmax_classes(&probs, config.classes.len());
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let files = write_outputs(
            out,
            &stem,
            resized.as_raw(),
            side,
            &labels,
            save_probs.then_some(&probs[..]),
            &config.classes,
        )?;
        written.push(MaskPrediction {
            photo: path,
            files,
            shares: class_shares(&labels, &config.classes),
        });
    }
    Ok(written)
}

fn class_shares(labels: &[u8], classes: &[ClassSpec]) -> Vec<(String, f64)> {
    classes
        .iter()
        .enumerate()
        .map(|(c, class)| {
            let share =
                labels.iter().filter(|&&l| l as usize == c).count() as f64 / labels.len() as f64;
            (class.name.clone(), share)
        })
        .collect()
}

fn write_outputs(
    out: &Path,
    stem: &str,
    photo_rgb: &[u8],
    side: usize,
    labels: &[u8],
    probs: Option<&[f32]>,
    classes: &[ClassSpec],
) -> Result<MaskFiles, TaskError> {
    let colors: Vec<[u8; 3]> = classes.iter().map(|c| c.color).collect();
    let files = MaskFiles {
        mask: out.join(format!("{stem}_mask.png")),
        color: out.join(format!("{stem}_color.png")),
        overlay: out.join(format!("{stem}_overlay.png")),
        probs: probs.map(|_| out.join(format!("{stem}_probs.npy"))),
    };
    let io = |path: &Path, e: std::io::Error| RunError::io(path, e);
    write_atomic(
        &files.mask,
        &encode_label_map_with(side as u32, side as u32, labels, &colors),
    )
    .map_err(|e| io(&files.mask, e))?;
    let color = image::RgbImage::from_raw(
        side as u32,
        side as u32,
        segmentation::colorize(labels, classes),
    )
    .expect("sized buffer");
    let mut png = Vec::new();
    color
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| FigureError::new(&files.color, e))?;
    write_atomic(&files.color, &png).map_err(|e| io(&files.color, e))?;
    segmentation::overlay(&files.overlay, photo_rgb, labels, side, classes)?;
    if let (Some(probs), Some(path)) = (probs, &files.probs) {
        write_atomic(path, &npy_f32(probs, &[classes.len(), side, side]))
            .map_err(|e| io(path, e))?;
    }
    Ok(files)
}
