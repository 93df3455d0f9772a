//! Metrics computed from predictions: accuracy, per-class accuracy and confusion matrices.

pub mod classification;
