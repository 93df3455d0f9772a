//! The training loop shared by every task: seeded epochs, a prefetching batch thread, the
//! optimiser and schedule, divergence detection, validation, the metrics log and atomic
//! checkpoints (last every epoch, best by the task's validation score), and resume.

use std::sync::mpsc::sync_channel;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{TrainError, interrupt};
use crate::engine::{Compute, LossSpec, Model, StepBatch, Trainer};
use crate::progress::epoch_bar;
use crate::run::RunDir;
use crate::run::checkpoint::{self, CheckpointHeader};
use crate::run::config::RunConfig;
use crate::run::json::{read_log, write_log};
use crate::run::records::{EpochRecord, EpochTiming};
use crate::run::tensorboard;

/// The running means of an epoch's training steps.
#[derive(Clone, Copy, Debug, Default)]
pub struct TrainStats {
    pub loss: f64,
    pub accuracy: f64,
}

/// The task-specific part of training.
pub trait TrainingTask: Sync {
    type Validation;
    type Record: EpochRecord + Serialize + DeserializeOwned + Clone;

    /// The training examples (indices into the task's training set), before shuffling.
    fn train_indices(&self) -> &[usize];
    /// Assembles (and augments) a batch; runs on the prefetch thread.
    fn batch(&self, indices: &[usize], rng: &mut ChaCha8Rng) -> StepBatch;
    /// The training loss.
    fn loss(&self) -> &LossSpec;
    /// Evaluates `model` on the validation split.
    fn validate(&self, model: &Model) -> Self::Validation;
    /// The score that picks the best checkpoint (higher is better).
    fn score(&self, validation: &Self::Validation) -> f64;
    fn record(
        &self,
        epoch: usize,
        train: TrainStats,
        validation: &Self::Validation,
        lr: f64,
        seconds: f64,
        timing: EpochTiming,
    ) -> Self::Record;
    /// One line summarising an epoch.
    fn describe(&self, record: &Self::Record) -> String;
}

fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Each batch's augmentation and each step's dropout have their own seed, so a run resumed in
/// the middle of an epoch draws what the uninterrupted run drew.
fn step_seed(epoch_seed: u64, step_in_epoch: usize, stream: u64) -> u64 {
    epoch_seed
        .wrapping_add(stream)
        .wrapping_add((step_in_epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))
}

const AUGMENT_STREAM: u64 = 1;
const DROPOUT_STREAM: u64 = 2;

/// Trains from scratch, or from the last checkpoint when `resume` is set, up to the
/// configuration's epochs (or `stop_after`, as an interrupted run would, with the schedule still
/// planned for all epochs). Each epoch's randomness (order, augmentation, dropout) derives from the seed,
/// the epoch and the step alone, so a resumed run repeats an uninterrupted one. Ctrl-C stops
/// after the current step with a checkpoint of it (resumable mid-epoch).
pub fn fit<T: TrainingTask>(
    task: &T,
    config: &impl RunConfig,
    run: &RunDir,
    compute: &Compute,
    resume: bool,
    stop_after: Option<usize>,
) -> Result<Vec<T::Record>, TrainError> {
    let params = config.params();
    let mut trainer = Trainer::new(
        config.architecture(),
        &params.optimizer(),
        params.seed(),
        compute,
    )?;
    // Parameters and Adam's two moments, in f32, plus the header.
    run.check_space(12 * trainer.num_params() as u64 + 64 * 1024)?;
    let mut header = CheckpointHeader {
        model: config.model_name().into(),
        epoch: 0,
        step: 0,
        best_score: f64::NEG_INFINITY,
        best_epoch: 0,
        engine: compute.engine,
        partial: None,
    };
    let mut history: Vec<T::Record> = Vec::new();
    let resume = resume && {
        let found = run.last_checkpoint().is_file();
        if !found {
            eprintln!(
                "no checkpoint in {} yet: training from the start",
                run.checkpoints().display()
            );
        }
        found
    };
    if resume {
        let path = run.last_checkpoint();
        let ckpt = checkpoint::load(&path)?;
        ckpt.restore(&mut trainer, &path, config.model_name())?;
        header = ckpt.header;
        history = read_log(&run.metrics_log())?;
        history.retain(|r| r.epoch() <= header.epoch);
        if header.epoch >= params.epochs() {
            eprintln!(
                "the run already trained {} epochs; raise --epochs to train more",
                header.epoch
            );
        }
    }
    let mut events = tensorboard::EventLog::start(run, &history)?;
    let steps_per_epoch = task.train_indices().len().div_ceil(params.batch_size());
    let total_steps = steps_per_epoch * params.epochs();
    let last_epoch = stop_after.unwrap_or(params.epochs()).min(params.epochs());
    interrupt::listen();

    for epoch in header.epoch + 1..=last_epoch {
        let started = Instant::now();
        let seed = epoch_seed(params.seed(), epoch);
        let mut order = task.train_indices().to_vec();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let done = header.partial.take().unwrap_or_default();
        let bar = epoch_bar(steps_per_epoch, epoch, params.epochs());
        bar.inc(done.steps as u64);
        let mut lr = params.lr();
        let mut progress = done;
        let mut timing = EpochTiming::default();
        std::thread::scope(|scope| {
            // The next batch is assembled (and augmented) while the current one trains.
            let (tx, rx) = sync_channel(2);
            scope.spawn(move || {
                for (i, chunk) in order
                    .chunks(params.batch_size())
                    .enumerate()
                    .skip(done.steps)
                {
                    let mut rng = ChaCha8Rng::seed_from_u64(step_seed(seed, i, AUGMENT_STREAM));
                    if tx.send(task.batch(chunk, &mut rng)).is_err() {
                        break;
                    }
                }
            });
            loop {
                let waiting = Instant::now();
                let Ok(batch) = rx.recv() else { break };
                timing.data_wait_s += waiting.elapsed().as_secs_f64();
                if interrupt::requested() {
                    bar.abandon();
                    progress.seconds += started.elapsed().as_secs_f64();
                    let mut stopped = header.clone();
                    stopped.partial = Some(progress);
                    checkpoint::save(&run.last_checkpoint(), &stopped, &trainer)?;
                    return Err(TrainError::Interrupted {
                        epoch,
                        step: progress.steps,
                        steps: steps_per_epoch,
                        checkpoint: run.last_checkpoint(),
                    });
                }
                let stepping = Instant::now();
                lr = params
                    .schedule()
                    .rate(params.lr(), header.step, total_steps, steps_per_epoch);
                let examples = batch.shape[0];
                let dropout_seed = step_seed(seed, progress.steps, DROPOUT_STREAM);
                let stats = trainer
                    .step(batch, task.loss(), lr, dropout_seed)
                    .map_err(|loss| {
                        bar.abandon();
                        TrainError::Diverged {
                            epoch,
                            step: header.step + 1,
                            loss,
                            checkpoint: run.last_checkpoint(),
                        }
                    })?;
                timing.steps_s += stepping.elapsed().as_secs_f64();
                header.step += 1;
                progress.steps += 1;
                progress.loss_sum += stats.loss as f64 * examples as f64;
                progress.examples += examples;
                progress.hits += stats.hits;
                progress.count += stats.count;
                bar.inc(1);
                bar.set_message(format!(
                    "loss {:.4} acc {:.2}%",
                    progress.loss_sum / progress.examples as f64,
                    100.0 * progress.hits as f64 / progress.count.max(1) as f64
                ));
            }
            Ok::<(), TrainError>(())
        })?;
        bar.finish_and_clear();
        let validating = Instant::now();
        let validation = task.validate(&trainer.model());
        timing.validation_s = validating.elapsed().as_secs_f64();
        let train = TrainStats {
            loss: progress.loss_sum / progress.examples.max(1) as f64,
            accuracy: progress.hits as f64 / progress.count.max(1) as f64,
        };
        let record = |timing| {
            let seconds = progress.seconds + started.elapsed().as_secs_f64();
            task.record(epoch, train, &validation, lr, seconds, timing)
        };
        history.push(record(timing));
        eprintln!(
            "epoch {epoch}/{}: {}",
            params.epochs(),
            task.describe(history.last().expect("just pushed"))
        );
        header.epoch = epoch;
        let score = task.score(&validation);
        let improved = score > header.best_score;
        if improved {
            header.best_score = score;
            header.best_epoch = epoch;
        }
        let saving = Instant::now();
        // The log first: a crash before the checkpoint leaves one epoch too many in the log,
        // which a resume trims; then the log again, with the saving time in it.
        write_log(&run.metrics_log(), &history)?;
        checkpoint::save(&run.last_checkpoint(), &header, &trainer)?;
        if improved {
            checkpoint::save(&run.best_checkpoint(), &header, &trainer)?;
        }
        timing.saving_s = saving.elapsed().as_secs_f64();
        *history.last_mut().expect("just pushed") = record(timing);
        write_log(&run.metrics_log(), &history)?;
        events.append(history.last().expect("just pushed"))?;
        if let Some(patience) = params.patience()
            && epoch - header.best_epoch >= patience
        {
            eprintln!(
                "early stop after epoch {epoch}: no better validation score for {patience} epochs (best: epoch {})",
                header.best_epoch
            );
            break;
        }
    }
    Ok(history)
}
