//! `metrics.jsonl`: what each epoch of training records (the same record for every task, with
//! the task's own scores inside), and where its time went.

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
    /// Of the steps' time, the part spent adding across the ranks of a data-parallel run
    /// (waiting for the slowest rank included); absent in a run of one process.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub communication_s: f64,
}

fn is_zero(seconds: &f64) -> bool {
    *seconds == 0.0
}

/// One line of `metrics.jsonl`, whatever the task: what every epoch records once, and the
/// task's own scores of the training steps (`T`) and of validation (`V`), flattened into the
/// line in the order the files have always had.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Epoch<T, V> {
    /// The epoch (from 1).
    pub epoch: usize,
    pub train_loss: f64,
    #[serde(flatten)]
    pub train: T,
    pub val_loss: f64,
    #[serde(flatten)]
    pub val: V,
    /// The learning rate of the epoch's last step.
    pub lr: f64,
    /// The epoch's wall time.
    pub seconds: f64,
    /// Where the epoch's time went (absent in logs written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<EpochTiming>,
}

/// A task's scores in an epoch record: as TensorBoard scalars and as the epoch's line.
pub trait Scores {
    /// The scores by TensorBoard tag.
    fn scalars(&self) -> Vec<(&'static str, f64)>;
    /// The scores as the epoch's line shows them (each after a space, or nothing).
    fn describe(&self) -> String;
}

/// The training steps' share of correct predictions, in a classification run's log.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationTrain {
    #[serde(rename = "train_accuracy")]
    pub accuracy: f64,
}

/// Validation accuracy, in a classification run's log.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationVal {
    #[serde(rename = "val_accuracy")]
    pub accuracy: f64,
}

/// The training steps' share of correct pixels, in a segmentation run's log.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentationTrain {
    #[serde(rename = "train_pixel_accuracy")]
    pub pixel_accuracy: f64,
}

/// Validation mAP, mIoU and pixel accuracy, in a segmentation run's log.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentationVal {
    #[serde(rename = "val_map")]
    pub map: f64,
    #[serde(rename = "val_miou")]
    pub miou: f64,
    #[serde(rename = "val_pixel_accuracy")]
    pub pixel_accuracy: f64,
}

/// One line of a classification run's `metrics.jsonl`.
pub type ClassificationEpoch = Epoch<ClassificationTrain, ClassificationVal>;

/// One line of a segmentation run's `metrics.jsonl`.
pub type SegmentationEpoch = Epoch<SegmentationTrain, SegmentationVal>;

impl Scores for ClassificationTrain {
    fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![("train/accuracy", self.accuracy)]
    }

    fn describe(&self) -> String {
        format!(" acc {:.2}%", 100.0 * self.accuracy)
    }
}

impl Scores for ClassificationVal {
    fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![("val/accuracy", self.accuracy)]
    }

    fn describe(&self) -> String {
        format!(" acc {:.2}%", 100.0 * self.accuracy)
    }
}

impl Scores for SegmentationTrain {
    fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![("train/pixel_accuracy", self.pixel_accuracy)]
    }

    /// The line leaves it out: validation's pixel accuracy is the one to read.
    fn describe(&self) -> String {
        String::new()
    }
}

impl Scores for SegmentationVal {
    fn scalars(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("val/mAP", self.map),
            ("val/mIoU", self.miou),
            ("val/pixel_accuracy", self.pixel_accuracy),
        ]
    }

    fn describe(&self) -> String {
        format!(
            " mAP {:.4} mIoU {:.4} pixel acc {:.2}%",
            self.map,
            self.miou,
            100.0 * self.pixel_accuracy
        )
    }
}

impl<T: Scores, V: Scores> Epoch<T, V> {
    /// The epoch's scalars by TensorBoard tag, in the order of the line.
    pub fn scalars(&self) -> Vec<(&'static str, f64)> {
        let mut scalars = vec![("train/loss", self.train_loss)];
        scalars.extend(self.train.scalars());
        scalars.push(("val/loss", self.val_loss));
        scalars.extend(self.val.scalars());
        scalars.push(("lr", self.lr));
        scalars
    }

    /// The epoch in one line, as training prints it.
    pub fn describe(&self) -> String {
        format!(
            "train loss {:.4}{} | val loss {:.4}{} | {:.1}s",
            self.train_loss,
            self.train.describe(),
            self.val_loss,
            self.val.describe(),
            self.seconds
        )
    }
}
