//! What evaluation writes into a run folder: `metrics.json` (one envelope, each task's report
//! inside) and the examples a classification run shows (`figures/examples.json`).

use serde::{Deserialize, Serialize};

use crate::engine::{Precision, Tta};
use crate::metrics::classification::ClassificationReport;
use crate::metrics::segmentation::SegmentationReport;
use crate::models::{ClassifierKind, SegmenterKind};

/// `metrics.json`, whatever the task: the final evaluation of the best checkpoint, with the
/// task's report `R` of each split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics<M, R> {
    pub model: M,
    pub checkpoint: String,
    pub epoch: usize,
    /// The test-time augmentation of this evaluation (absent for none, as in runs written
    /// before it existed).
    #[serde(default, skip_serializing_if = "Tta::is_none")]
    pub tta: Tta,
    /// The precision of this evaluation when it is not the one the run trained at (`eval
    /// --precision`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
    pub class_names: Vec<String>,
    pub val: R,
    pub test: R,
}

/// `metrics.json` of a classification run.
pub type ClassificationMetrics = RunMetrics<ClassifierKind, ClassificationReport>;

/// `metrics.json` of a segmentation run.
pub type SegmentationMetrics = RunMetrics<SegmenterKind, SegmentationReport>;

/// The test images shown for one predicted class: some it got right and some false positives
/// (images of other classes predicted as it). Saved as `figures/examples.json` beside the
/// per-class strips, so a report can caption them without re-running the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassExamples {
    pub class: String,
    /// Test-set indices.
    pub correct: Vec<usize>,
    pub false_positives: Vec<usize>,
    /// The true class of each false positive.
    pub false_positive_truths: Vec<String>,
}

impl ClassExamples {
    /// File names of the two strips, inside `figures/examples/`.
    pub fn strip_names(class_index: usize) -> [String; 2] {
        [
            format!("{class_index}_correct.png"),
            format!("{class_index}_false_positive.png"),
        ]
    }
}
