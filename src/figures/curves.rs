//! The training curves of any task: two charts side by side of per-epoch series from
//! `metrics.jsonl`, one of them the train and validation loss.

use std::path::Path;

use super::charts::{self, BLUE_, ORANGE_, Series};
use super::{FigureError, draw_png};
use crate::run::records::Epoch;

/// One chart of the figure: its title, the y axis and the lines.
pub struct Panel<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    pub series: Vec<Series<'a>>,
}

/// `(epoch, value)` of each record.
pub fn per_epoch<T, V>(
    history: &[Epoch<T, V>],
    value: impl Fn(&Epoch<T, V>) -> f64,
) -> Vec<(f64, f64)> {
    history.iter().map(|r| (r.epoch as f64, value(r))).collect()
}

/// The train and validation loss of `history`, titled `title`.
pub fn loss<'a, T, V>(history: &[Epoch<T, V>], title: &'a str) -> Panel<'a> {
    Panel {
        title,
        y_label: "loss",
        series: vec![
            Series {
                label: "train",
                points: per_epoch(history, |r| r.train_loss),
                color: BLUE_,
            },
            Series {
                label: "validation",
                points: per_epoch(history, |r| r.val_loss),
                color: ORANGE_,
            },
        ],
    }
}

/// `left` and `right` side by side in one 1200x460 PNG at `path`.
pub fn draw(path: &Path, [left, right]: [Panel; 2]) -> Result<(), FigureError> {
    draw_png(path, (1200, 460), |root| {
        let (left_area, right_area) = root.split_horizontally(600);
        charts::line_chart(&left_area, left.title, left.y_label, &left.series)?;
        charts::line_chart(&right_area, right.title, right.y_label, &right.series)
    })
}
