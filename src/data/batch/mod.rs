//! Batches for a training step or an evaluation: decoded images (augmented when training)
//! turned into normalised `f32` values, which either engine takes as they are.

mod classification;
mod segmentation;

pub use classification::{ClassificationBatch, ClassificationBatcher};
pub use segmentation::{SegmentationBatch, SegmentationBatcher};
