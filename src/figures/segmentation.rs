//! The segmentation figures of a run: curves, per-class AP, test predictions, confusion matrix,
//! and the colour legend; plus the colour-coded pictures of `predict`.

use std::path::Path;

use plotters::prelude::*;

use super::charts::{self, BLUE_, GREEN_, ORANGE_, Series};
use super::curves::{self, Panel, per_epoch};
use super::grids::{self, Cell, Picture, Row};
use super::{FONT, FigureError, draw_png, text};
use crate::data::ClassSpec;
use crate::data::SegmentedImages;
use crate::data::classes::color_of;
use crate::run::records::SegmentationEpoch;
use crate::run::results::SegmentationMetrics;

const PREDICTION_ROWS: usize = 6;

pub fn draw_all(
    dir: &Path,
    history: &[SegmentationEpoch],
    metrics: &SegmentationMetrics,
    test: &SegmentedImages,
    predictions: &[u8],
    classes: &[ClassSpec],
) -> Result<(), FigureError> {
    curves(&dir.join("curves.png"), history)?;
    ap(&dir.join("ap.png"), metrics)?;
    prediction_grid(&dir.join("predictions.png"), test, predictions, classes)?;
    legend(&dir.join("legend.png"), classes)?;
    grids::confusion(
        &dir.join("confusion.png"),
        &format!(
            "Test confusion matrix ({} pixels)",
            metrics.test.confusion.iter().flatten().sum::<u64>()
        ),
        &metrics.class_names,
        &metrics.test.confusion,
    )
}

/// Train and validation loss (left), validation mAP and mIoU (right) per epoch.
pub fn curves(path: &Path, history: &[SegmentationEpoch]) -> Result<(), FigureError> {
    let scores = Panel {
        title: "Validation mAP and mIoU",
        y_label: "score",
        series: vec![
            Series {
                label: "val mAP",
                points: per_epoch(history, |r| r.val.map),
                color: ORANGE_,
            },
            Series {
                label: "val mIoU",
                points: per_epoch(history, |r| r.val.miou),
                color: GREEN_,
            },
        ],
    };
    curves::draw(
        path,
        [
            curves::loss(history, "Loss (per-pixel cross-entropy)"),
            scores,
        ],
    )
}

pub fn ap(path: &Path, m: &SegmentationMetrics) -> Result<(), FigureError> {
    draw_png(path, (900, 460), |root| {
        charts::grouped_bars(
            root,
            &format!(
                "Average precision per class (test mAP {:.3}, val mAP {:.3})",
                m.test.map, m.val.map
            ),
            "AP",
            &m.class_names,
            &[
                ("validation", m.val.ap.clone(), ORANGE_),
                ("test", m.test.ap.clone(), BLUE_),
            ],
            1.0,
        )
    })
}

/// Class indices to the classes' colours (ignored pixels in the ignore colour).
pub fn colorize(labels: &[u8], classes: &[ClassSpec]) -> Vec<u8> {
    labels.iter().flat_map(|&l| color_of(classes, l)).collect()
}

pub fn prediction_grid(
    path: &Path,
    test: &SegmentedImages,
    predictions: &[u8],
    classes: &[ClassSpec],
) -> Result<(), FigureError> {
    let (side, plane) = (test.side, test.plane());
    let rows: Vec<Row> = (0..test.len().min(PREDICTION_ROWS))
        .map(|i| {
            let cell = |picture: Picture| Cell {
                picture,
                caption: String::new(),
                border: WHITE,
            };
            Row {
                title: test.names[i].clone(),
                groups: vec![
                    vec![cell(Picture::from_chw(3, side, side, test.image(i)))],
                    vec![cell(Picture {
                        width: side,
                        height: side,
                        rgb: colorize(test.label(i), classes),
                    })],
                    vec![cell(Picture {
                        width: side,
                        height: side,
                        rgb: colorize(&predictions[i * plane..(i + 1) * plane], classes),
                    })],
                ],
            }
        })
        .collect();
    grids::picture_rows(
        path,
        "Test predictions",
        &["Photo", "Ground truth", "Prediction"],
        &rows,
        1,
    )
}

/// The classes and their colours.
pub fn legend(path: &Path, classes: &[ClassSpec]) -> Result<(), FigureError> {
    draw_png(path, (200, 30 + 28 * classes.len() as u32), |root| {
        root.draw(&Text::new("Classes", (10, 6), (FONT, 16).into_font()))?;
        draw_legend(root, 10, 30, classes)
    })
}

/// Draws the legend's swatches and names at `(x, y)`.
pub fn draw_legend(
    root: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    x: i32,
    y: i32,
    classes: &[ClassSpec],
) -> Result<(), Box<dyn std::error::Error>> {
    for (i, ClassSpec { name, color }) in classes.iter().enumerate() {
        let top = y + 28 * i as i32;
        let rgb = RGBColor(color[0], color[1], color[2]);
        root.draw(&Rectangle::new(
            [(x, top), (x + 22, top + 20)],
            rgb.filled(),
        ))?;
        root.draw(&Rectangle::new([(x, top), (x + 22, top + 20)], BLACK))?;
        text(root, name.to_string(), (x + 30, top + 2), 15)?;
    }
    Ok(())
}

/// The prediction blended over the photo (half each), with the legend beside it.
pub fn overlay(
    path: &Path,
    photo_rgb: &[u8],
    labels: &[u8],
    side: usize,
    classes: &[ClassSpec],
) -> Result<(), FigureError> {
    let colors = colorize(labels, classes);
    let blended: Vec<u8> = photo_rgb
        .iter()
        .zip(&colors)
        .map(|(&p, &c)| ((p as u16 + c as u16) / 2) as u8)
        .collect();
    let picture = Picture {
        width: side,
        height: side,
        rgb: blended,
    };
    let legend_height = 24 + 28 * classes.len() as u32;
    draw_png(
        path,
        (side as u32 + 150, (side as u32).max(legend_height)),
        |root| {
            grids::blit(root, &picture, 0, 0, 1)?;
            draw_legend(root, side as i32 + 12, 12, classes)
        },
    )
}
