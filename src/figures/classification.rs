//! The five classification figures of a run: curves, per-class accuracy, filters, examples,
//! confusion matrix.

use std::path::Path;

use plotters::prelude::*;

use super::charts::{self, BLUE_, ORANGE_, Series};
use super::grids::{self, Cell, Picture, Row};
use super::{FigureError, draw_png};
use crate::data::LabelledImages;
use crate::train::classify::{EpochRecord, FashionMetrics};

const EXAMPLES_PER_GROUP: usize = 4;

pub fn draw_all(
    dir: &Path,
    history: &[EpochRecord],
    metrics: &FashionMetrics,
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
    examples(
        &dir.join("examples.png"),
        &metrics.class_names,
        test,
        test_predictions,
    )?;
    grids::confusion(
        &dir.join("confusion.png"),
        &format!("Test confusion matrix ({} images)", test.len()),
        &metrics.class_names,
        &metrics.test.confusion,
    )
}

/// Train and validation accuracy (left) and loss (right) per epoch.
pub fn curves(path: &Path, history: &[EpochRecord]) -> Result<(), FigureError> {
    let pick = |f: fn(&EpochRecord) -> f64| {
        history
            .iter()
            .map(|r| (r.epoch as f64, f(r)))
            .collect::<Vec<_>>()
    };
    draw_png(path, (1200, 460), |root| {
        let (left, right) = root.split_horizontally(600);
        charts::line_chart(
            &left,
            "Accuracy",
            "accuracy (%)",
            &[
                Series {
                    label: "train",
                    points: pick(|r| 100.0 * r.train_accuracy),
                    color: BLUE_,
                },
                Series {
                    label: "validation",
                    points: pick(|r| 100.0 * r.val_accuracy),
                    color: ORANGE_,
                },
            ],
        )?;
        charts::line_chart(
            &right,
            "Loss (cross-entropy)",
            "loss",
            &[
                Series {
                    label: "train",
                    points: pick(|r| r.train_loss),
                    color: BLUE_,
                },
                Series {
                    label: "validation",
                    points: pick(|r| r.val_loss),
                    color: ORANGE_,
                },
            ],
        )
    })
}

pub fn per_class(path: &Path, metrics: &FashionMetrics) -> Result<(), FigureError> {
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

/// For each class: test images correctly classified as it, and false positives (images of other
/// classes predicted as it), each captioned with its true class.
pub fn examples(
    path: &Path,
    names: &[String],
    test: &LabelledImages,
    predictions: &[u8],
) -> Result<(), FigureError> {
    let green = RGBColor(40, 160, 40);
    let red = RGBColor(210, 40, 40);
    let cell = |i: usize, border: RGBColor| Cell {
        picture: Picture::from_grey(test.width, test.height, test.image(i)),
        caption: names[test.labels[i] as usize].clone(),
        border,
    };
    let rows: Vec<Row> = (0..names.len())
        .map(|c| {
            let predicted_c = || (0..test.len()).filter(move |&i| predictions[i] as usize == c);
            let correct = predicted_c()
                .filter(|&i| test.labels[i] as usize == c)
                .take(EXAMPLES_PER_GROUP)
                .map(|i| cell(i, green))
                .collect();
            let false_positives = predicted_c()
                .filter(|&i| test.labels[i] as usize != c)
                .take(EXAMPLES_PER_GROUP)
                .map(|i| cell(i, red))
                .collect();
            Row {
                title: names[c].clone(),
                groups: vec![correct, false_positives],
            }
        })
        .collect();
    grids::picture_rows(
        path,
        "Test examples per predicted class (caption: true class)",
        &["Correct", "Incorrect (false positive)"],
        &rows,
        2,
    )
}
