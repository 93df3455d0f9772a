//! `metrics.jsonl`: what each epoch of training records, per task, and where its time went.

use serde::{Deserialize, Serialize};

/// Where an epoch's wall time went, to tell the framework's share (the steps, the validation's
/// forward passes) from convlab's own (waiting for batches, saving).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochTiming {
    /// Training steps: batch to tensors, forward, loss, backward, optimiser.
    pub steps_s: f64,
    /// Waiting for the prefetch thread's next batch (zero when it keeps ahead).
    pub data_wait_s: f64,
    /// The validation pass, metrics included.
    pub validation_s: f64,
    /// Writing the metrics log and the checkpoints.
    pub saving_s: f64,
}

/// One line of a classification run's `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationEpoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub lr: f64,
    pub seconds: f64,
    /// Where the epoch's time went (absent in logs written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<EpochTiming>,
}

/// One line of a segmentation run's `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentationEpoch {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_pixel_accuracy: f64,
    pub val_loss: f64,
    pub val_map: f64,
    pub val_miou: f64,
    pub val_pixel_accuracy: f64,
    pub lr: f64,
    pub seconds: f64,
    /// Where the epoch's time went (absent in logs written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<EpochTiming>,
}

/// What the training loop, the benchmarks and TensorBoard read of any task's epoch record.
pub trait EpochRecord {
    /// The epoch (from 1).
    fn epoch(&self) -> usize;
    /// The epoch's wall time.
    fn seconds(&self) -> f64;
    fn timing(&self) -> Option<EpochTiming>;
    /// The epoch's scalars by TensorBoard tag.
    fn scalars(&self) -> Vec<(&'static str, f64)>;
}

impl EpochRecord for ClassificationEpoch {
    fn epoch(&self) -> usize {
        self.epoch
    }

    fn seconds(&self) -> f64 {
        self.seconds
    }

    fn timing(&self) -> Option<EpochTiming> {
        self.timing
    }

    fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("train/loss", self.train_loss),
            ("train/accuracy", self.train_accuracy),
            ("val/loss", self.val_loss),
            ("val/accuracy", self.val_accuracy),
            ("lr", self.lr),
        ]
    }
}

impl EpochRecord for SegmentationEpoch {
    fn epoch(&self) -> usize {
        self.epoch
    }

    fn seconds(&self) -> f64 {
        self.seconds
    }

    fn timing(&self) -> Option<EpochTiming> {
        self.timing
    }

    fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("train/loss", self.train_loss),
            ("train/pixel_accuracy", self.train_pixel_accuracy),
            ("val/loss", self.val_loss),
            ("val/mAP", self.val_map),
            ("val/mIoU", self.val_miou),
            ("val/pixel_accuracy", self.val_pixel_accuracy),
            ("lr", self.lr),
        ]
    }
}
