//! Classification metrics of one split, as `metrics.json` holds them.

use serde::{Deserialize, Serialize};

use super::Confusion;

/// The evaluation of one split, as written to `metrics.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    pub accuracy: f64,
    pub loss: f64,
    pub per_class_accuracy: Vec<f64>,
    pub confusion: Vec<Vec<u64>>,
}

impl ClassificationReport {
    pub fn new(confusion: &Confusion, loss: f64) -> Self {
        ClassificationReport {
            accuracy: confusion.accuracy(),
            loss,
            per_class_accuracy: confusion.per_class_accuracy(),
            confusion: confusion.counts.clone(),
        }
    }

    /// The class with the lowest accuracy (the first on ties); classes absent from the split
    /// (NaN) are left out.
    pub fn hardest_class(&self) -> Option<usize> {
        let accuracy = &self.per_class_accuracy;
        (0..accuracy.len())
            .filter(|&c| !accuracy[c].is_nan())
            .min_by(|&a, &b| accuracy[a].total_cmp(&accuracy[b]))
    }
}
