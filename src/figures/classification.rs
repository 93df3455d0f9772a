//! The five classification figures of a run: curves, per-class accuracy, filters, examples,
//! confusion matrix.

use std::path::Path;

use plotters::prelude::*;

use super::charts::{self, BLUE_, ORANGE_, Series};
use super::curves::{self, Panel, per_epoch};
use super::grids::{self, Cell, Picture, Row};
use super::{FigureError, draw_png};
use crate::data::LabelledImages;
use crate::run::records::ClassificationEpoch;
use crate::run::results::{ClassExamples, ClassificationMetrics};

const EXAMPLES_PER_GROUP: usize = 4;

pub fn draw_all(
    dir: &Path,
    history: &[ClassificationEpoch],
    metrics: &ClassificationMetrics,
    first_conv_weights: Option<&[f32]>,
    first_conv: Option<(usize, usize, usize)>,
    test: &LabelledImages,
    test_predictions: &[u8],
) -> Result<(), FigureError> {
    curves(&dir.join("curves.png"), history)?;
    per_class(&dir.join("per_class.png"), metrics)?;
    if let (Some(w), Some((i, o, k))) = (first_conv_weights, first_conv) {
        grids::filters(&dir.join("filters.png"), w, o, i, k)?;
    }
    examples(dir, &metrics.class_names, test, test_predictions)?;
    grids::confusion(
        &dir.join("confusion.png"),
        &format!("Test confusion matrix ({} images)", test.len()),
        &metrics.class_names,
        &metrics.test.confusion,
    )
}

/// Train and validation accuracy (left) and loss (right) per epoch.
pub fn curves(path: &Path, history: &[ClassificationEpoch]) -> Result<(), FigureError> {
    let accuracy = Panel {
        title: "Accuracy",
        y_label: "accuracy (%)",
        series: vec![
            Series {
                label: "train",
                points: per_epoch(history, |r| 100.0 * r.train.accuracy),
                color: BLUE_,
            },
            Series {
                label: "validation",
                points: per_epoch(history, |r| 100.0 * r.val.accuracy),
                color: ORANGE_,
            },
        ],
    };
    curves::draw(
        path,
        [accuracy, curves::loss(history, "Loss (cross-entropy)")],
    )
}

pub fn per_class(path: &Path, metrics: &ClassificationMetrics) -> Result<(), FigureError> {
    let pct = |v: &[f64]| v.iter().map(|x| 100.0 * x).collect::<Vec<_>>();
    draw_png(path, (1100, 480), |root| {
        charts::grouped_bars(
            root,
            &format!(
                "Per-class accuracy (val {:.2}%, test {:.2}%)",
                100.0 * metrics.val.accuracy,
                100.0 * metrics.test.accuracy
            ),
            "accuracy (%)",
            &metrics.class_names,
            &[
                ("validation", pct(&metrics.val.per_class_accuracy), ORANGE_),
                ("test", pct(&metrics.test.per_class_accuracy), BLUE_),
            ],
            100.0,
        )
    })
}

pub fn choose_examples(
    names: &[String],
    test: &LabelledImages,
    predictions: &[u8],
) -> Vec<ClassExamples> {
    (0..names.len())
        .map(|c| {
            let predicted_c = || (0..test.len()).filter(move |&i| predictions[i] as usize == c);
            let correct = predicted_c()
                .filter(|&i| test.labels[i] as usize == c)
                .take(EXAMPLES_PER_GROUP)
                .collect();
            let false_positives: Vec<usize> = predicted_c()
                .filter(|&i| test.labels[i] as usize != c)
                .take(EXAMPLES_PER_GROUP)
                .collect();
            ClassExamples {
                class: names[c].clone(),
                correct,
                false_positive_truths: false_positives
                    .iter()
                    .map(|&i| names[test.labels[i] as usize].clone())
                    .collect(),
                false_positives,
            }
        })
        .collect()
}

const GREEN: RGBColor = RGBColor(40, 160, 40);
const RED: RGBColor = RGBColor(210, 40, 40);

/// For each class: test images correctly classified as it, and false positives, each captioned
/// with its true class: one picture (`examples.png`), and per class two strips in
/// `examples/` with `examples.json` naming what they show.
pub fn examples(
    dir: &Path,
    names: &[String],
    test: &LabelledImages,
    predictions: &[u8],
) -> Result<(), FigureError> {
    let chosen = choose_examples(names, test, predictions);
    let cell = |i: usize, border: RGBColor| Cell {
        picture: Picture::from_chw(test.channels, test.width, test.height, test.image(i)),
        caption: names[test.labels[i] as usize].clone(),
        border,
    };
    let rows: Vec<Row> = chosen
        .iter()
        .map(|ex| Row {
            title: ex.class.clone(),
            groups: vec![
                ex.correct.iter().map(|&i| cell(i, GREEN)).collect(),
                ex.false_positives.iter().map(|&i| cell(i, RED)).collect(),
            ],
        })
        .collect();
    grids::picture_rows(
        &dir.join("examples.png"),
        "Test examples per predicted class (caption: true class)",
        &["Correct", "Incorrect (false positive)"],
        &rows,
        2,
    )?;
    let strips = dir.join("examples");
    std::fs::create_dir_all(&strips).map_err(|e| FigureError::new(&strips, e))?;
    for (c, row) in rows.iter().enumerate() {
        for (cells, name) in row.groups.iter().zip(ClassExamples::strip_names(c)) {
            grids::strip(&strips.join(name), cells, 3)?;
        }
    }
    let json = dir.join("examples.json");
    let bytes = serde_json::to_vec_pretty(&chosen).map_err(|e| FigureError::new(&json, e))?;
    crate::fsutil::write_atomic(&json, &bytes).map_err(|e| FigureError::new(&json, e))
}
