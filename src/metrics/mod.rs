//! Metrics computed from predictions: accuracy, per-class accuracy and confusion matrices
//! (classification); average precision, IoU and pixel accuracy (segmentation).

pub mod classification;
pub mod segmentation;
