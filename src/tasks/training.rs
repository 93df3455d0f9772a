//! Any task's side of the training loop: what `train::fit` asks of a task (batches, loss,
//! validation, the scores of an epoch record), answered once from what the task supplies.

use rand_chacha::ChaCha8Rng;

use super::{ConfigOf, DataOf, Task};
use crate::engine::{LossSpec, Model, StepBatch, Tta};
use crate::train::{TrainStats, TrainingTask};

/// A run of task `T` being trained: its configuration, its data, the loss and the batcher.
pub struct Training<'a, T: Task> {
    pub config: &'a ConfigOf<T>,
    pub data: &'a DataOf<T>,
    pub loss: LossSpec,
    pub batcher: T::Batcher,
}

impl<T: Task> TrainingTask for Training<'_, T> {
    type Validation = T::Report;
    type Train = T::Train;
    type Val = T::Val;

    fn train_indices(&self) -> &[usize] {
        &self.data.train_indices
    }

    fn batch(&self, indices: &[usize], epoch: usize, rng: &mut ChaCha8Rng) -> StepBatch {
        T::batch(&self.batcher, &self.data.sets.train, indices, epoch, rng)
    }

    fn loss(&self) -> &LossSpec {
        &self.loss
    }

    fn validate(&self, model: &Model) -> T::Report {
        T::evaluate(model, &self.data.val, self.config, Tta::None).report
    }

    fn score(&self, val: &T::Val) -> f64 {
        T::score(val)
    }

    fn train_scores(&self, train: TrainStats) -> T::Train {
        T::train_scores(train)
    }

    fn val_scores(&self, report: &T::Report) -> (f64, T::Val) {
        T::val_scores(report)
    }
}
