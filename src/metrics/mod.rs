//! Metrics computed from predictions: confusion matrices with accuracy and per-class accuracy;
//! each task's report of a split (classification; segmentation's average precision exactly as
//! scikit-learn's, IoU and pixel accuracy).

pub mod classification;
mod confusion;
pub mod segmentation;

pub use confusion::Confusion;
