//! The training loop shared by every task: seeded epochs, a prefetching batch thread, the
//! optimiser and schedule, divergence detection, validation, the metrics log and atomic
//! checkpoints (last every epoch, best by the task's validation score), and resume.
//!
//! Across the ranks of a data-parallel run ([`World`]) every rank runs this loop on the same
//! global batches; rank 0 opens the run (fresh or resumed) and sends its starting state to the
//! others, and is the only one to validate, write and print. What ends training is decided
//! together: Ctrl-C on any rank, a non-finite loss (the whole batch's), early stopping (rank
//! 0's verdict) and the last epoch are met by every rank at the same step.

use std::sync::mpsc::sync_channel;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::launch::{Clock, Launch, epochs_within};
use super::{TrainError, interrupt, whitening};
use crate::distributed::World;
use crate::engine::{Compute, LossSpec, Model, StepBatch, Trainer};
use crate::progress::{self, Bar, epoch_bar};
use crate::run::RunDir;
use crate::run::checkpoint::PartialEpoch;
use crate::run::checkpoint::{self, Checkpoint, CheckpointHeader};
use crate::run::config::{HyperParams, RunConfig, TaskSettings};
use crate::run::json::{read_log, write_json, write_log};
use crate::run::records::{Epoch, EpochTiming, Scores};
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
    /// The task's scores of the training steps in an epoch record.
    type Train: Scores + Serialize + DeserializeOwned + Clone;
    /// The task's validation scores in an epoch record.
    type Val: Scores + Serialize + DeserializeOwned + Clone;

    /// The training examples (indices into the task's training set), before shuffling.
    fn train_indices(&self) -> &[usize];
    /// Assembles (and augments) a batch of epoch `epoch` (1 for the first); runs on the
    /// prefetch thread.
    fn batch(&self, indices: &[usize], epoch: usize, rng: &mut ChaCha8Rng) -> StepBatch;
    /// The training loss.
    fn loss(&self) -> &LossSpec;
    /// Evaluates `model` on the validation split.
    fn validate(&self, model: &Model) -> Self::Validation;
    /// The score that picks the best checkpoint (higher is better; NaN never wins).
    fn score(&self, val: &Self::Val) -> f64;
    /// The training steps' scores as the epoch record keeps them.
    fn train_scores(&self, train: TrainStats) -> Self::Train;
    /// The validation loss and scores as the epoch record keeps them.
    fn val_scores(&self, validation: &Self::Validation) -> (f64, Self::Val);
}

/// An epoch record of `T`.
pub type Record<T> = Epoch<<T as TrainingTask>::Train, <T as TrainingTask>::Val>;

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

/// Trains as `launch` says: from scratch, or from the last checkpoint when it resumes, up to
/// the configuration's epochs (or its `stop_after`, as an interrupted run would, with the
/// schedule still planned for all epochs). Each epoch's randomness (order, augmentation,
/// dropout) derives from the seed, the epoch and the step alone, so a resumed run repeats an
/// uninterrupted one. Ctrl-C stops after the current step with a checkpoint of it (resumable
/// mid-epoch). Under `--budget` the epochs are chosen once the first is done
/// ([`super::epochs_within`], on the launch's clock) and written to `config.json`; the first
/// epoch is the schedule's warm-up whatever the total, so choosing after it changes nothing
/// already done. On a world of several ranks, every rank calls it (see the module's
/// comment); only rank 0's records are returned.
pub fn fit<T: TrainingTask, S: TaskSettings>(
    task: &T,
    config: &RunConfig<S>,
    run: &RunDir,
    launch: &Launch,
) -> Result<Vec<Record<T>>, TrainError> {
    let (compute, world) = (&launch.compute, &launch.world);
    let mut config = config.clone();
    let mut state = TrainingState::open(&config, run, compute, world, launch.resume)?;
    if config.params.whiten() {
        hold_whitening(task, &config, &mut state.trainer, state.header.step)?;
    }
    let mut events = match world.leads() {
        true => Some(tensorboard::EventLog::start(run, &state.history)?),
        false => None,
    };
    let steps_per_epoch = task
        .train_indices()
        .len()
        .div_ceil(config.params.batch_size());
    let last_epoch = |params: &HyperParams| {
        let epochs = params.epochs();
        launch.stop_after.unwrap_or(epochs).min(epochs)
    };
    // When the budget's epochs are still to choose, the clock at the next epoch's start.
    let mut budget_from = (config.params.budget())
        .filter(|b| !b.chosen)
        .map(|_| launch.clock.seconds());
    interrupt::listen();

    let mut epoch = state.header.epoch;
    while epoch < last_epoch(&config.params) {
        epoch += 1;
        let started = Instant::now();
        let params = &config.params;
        let steps = train_epoch(
            task,
            params,
            run,
            world,
            &mut state,
            epoch,
            steps_per_epoch,
            started,
        )?;
        let stop = match events.as_mut() {
            Some(events) => state.close_epoch(task, params, run, events, epoch, steps, started)?,
            None => {
                state.header.epoch = epoch;
                false
            }
        };
        if let Some(from) = budget_from.take() {
            config.params = choose_epochs(&config.params, from, &launch.clock, world);
            if world.leads() {
                write_json(&run.config(), &config)?;
            }
        }
        if world.leader_says(stop) {
            break;
        }
    }
    Ok(state.history)
}

/// The most values of the training images `--whiten` reads (64 MiB): larger images are fewer.
const MOST_WHITENING_VALUES: usize = 16 << 20;

/// `--whiten`: holds the first convolution's leading filters, whitening the patches of the
/// training images for a run that starts (up to [`whitening::MOST_IMAGES`] of the first
/// training examples, as epoch 1's batches present them: augmented, normalised), and the values
/// a resumed run's checkpoint has (the same, computed when it started). Every rank of a
/// data-parallel run computes the same filters from the same images.
fn hold_whitening<T: TrainingTask, S: TaskSettings>(
    task: &T,
    config: &RunConfig<S>,
    trainer: &mut Trainer,
    steps_taken: usize,
) -> Result<(), TrainError> {
    let conv = whitening::FirstConv::of(&config.architecture)?;
    if steps_taken > 0 {
        let mut weights = trainer.first_conv_weights().expect("a first convolution");
        weights.truncate(conv.whitening_filters() * conv.patch_len());
        trainer.hold_first_filters(weights);
        return Ok(());
    }
    let indices = task.train_indices();
    let mut rng = ChaCha8Rng::seed_from_u64(config.params.seed());
    let one = task.batch(&indices[..1], 1, &mut rng).images.len();
    let count = (MOST_WHITENING_VALUES / one.max(1))
        .clamp(1, whitening::MOST_IMAGES)
        .min(indices.len());
    let batch = task.batch(&indices[..count], 1, &mut rng);
    trainer.hold_first_filters(whitening::whitening_filters(
        &batch.images,
        batch.shape,
        conv,
    ));
    Ok(())
}

/// The parameters with the epochs a budget fits, measured on `clock` since `from` (the first
/// epoch's start) and chosen by rank 0 for every rank.
fn choose_epochs(params: &HyperParams, from: f64, clock: &Clock, world: &World) -> HyperParams {
    let budget = params.budget().expect("a budget to choose for");
    let now = clock.seconds();
    let chosen = epochs_within(budget.minutes, now, now - from, budget.most_epochs);
    let mut bytes = (chosen as u64).to_le_bytes().to_vec();
    world.broadcast(&mut bytes);
    let chosen = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    if world.leads() {
        progress::notice(&format!(
            "--budget {} min: {chosen} epochs fit ({:.0} s so far, the first epoch {:.0} s)",
            budget.minutes,
            now,
            now - from
        ));
    }
    params.with_chosen_epochs(chosen)
}

/// What training carries from epoch to epoch: the trainer, the checkpoint's header (epoch,
/// step, best score) and the records so far.
struct TrainingState<T, V> {
    trainer: Trainer,
    header: CheckpointHeader,
    history: Vec<Epoch<T, V>>,
}

impl<T: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> TrainingState<T, V> {
    /// A fresh trainer, or the run's last checkpoint and its log up to it for `resume`.
    fn open<S: TaskSettings>(
        config: &RunConfig<S>,
        run: &RunDir,
        compute: &Compute,
        world: &World,
        resume: bool,
    ) -> Result<Self, TrainError> {
        let trainer = Trainer::new(
            &config.architecture,
            &config.params.optimizer(),
            &config.params.init(),
            compute,
        )?;
        let mut state = match world.leads() {
            true => Self::open_run(config, run, compute, resume, trainer)?,
            false => TrainingState {
                trainer,
                header: fresh_header(config, compute),
                history: Vec::new(),
            },
        };
        if world.is_distributed() {
            state.share_start(world, config.model_name())?;
        }
        Ok(state)
    }

    /// Rank 0's starting state (its weights, optimiser and where training stands, fresh or
    /// resumed) on every rank, so all start from the same one however they were launched.
    fn share_start(&mut self, world: &World, model: &str) -> Result<(), TrainError> {
        let mut bytes = match world.leads() {
            true => checkpoint::encode(&self.header, &self.trainer)?,
            false => Vec::new(),
        };
        world.broadcast(&mut bytes);
        if !world.leads() {
            let from = std::path::Path::new("rank 0's starting state");
            let start: Checkpoint = checkpoint::decode(&bytes, from)?;
            start.restore(&mut self.trainer, from, model)?;
            self.header = start.header;
        }
        Ok(())
    }

    /// A fresh trainer, or the run's last checkpoint and its log up to it for `resume`.
    fn open_run<S: TaskSettings>(
        config: &RunConfig<S>,
        run: &RunDir,
        compute: &Compute,
        resume: bool,
        mut trainer: Trainer,
    ) -> Result<Self, TrainError> {
        let params = &config.params;
        // Parameters and Adam's two moments, in f32, plus the header.
        run.check_space(12 * trainer.num_params() as u64 + 64 * 1024)?;
        let fresh = fresh_header(config, compute);
        let found = resume && run.last_checkpoint().is_file();
        if resume && !found {
            progress::notice(&format!(
                "no checkpoint in {} yet: training from the start",
                run.checkpoints().display()
            ));
        }
        if !found {
            return Ok(TrainingState {
                trainer,
                header: fresh,
                history: Vec::new(),
            });
        }
        let path = run.last_checkpoint();
        let ckpt = checkpoint::load(&path)?;
        ckpt.restore(&mut trainer, &path, config.model_name())?;
        let header = ckpt.header;
        let mut history: Vec<Epoch<T, V>> = read_log(&run.metrics_log())?;
        history.retain(|r| r.epoch <= header.epoch);
        if header.epoch >= params.epochs() {
            progress::notice(&format!(
                "the run already trained {} epochs; raise --epochs to train more",
                header.epoch
            ));
        }
        Ok(TrainingState {
            trainer,
            header,
            history,
        })
    }

    /// Rank 0's end of an epoch: validation, the epoch's record (printed, logged, in
    /// TensorBoard), the checkpoints; whether early stopping ends training here.
    #[allow(clippy::too_many_arguments)]
    fn close_epoch<K>(
        &mut self,
        task: &K,
        params: &HyperParams,
        run: &RunDir,
        events: &mut tensorboard::EventLog,
        epoch: usize,
        steps: EpochSteps,
        started: Instant,
    ) -> Result<bool, TrainError>
    where
        K: TrainingTask<Train = T, Val = V>,
        T: Clone,
        V: Clone + Scores,
        T: Scores,
    {
        let validating = Instant::now();
        let validation = task.validate(&self.trainer.model());
        let mut timing = steps.timing;
        timing.validation_s = validating.elapsed().as_secs_f64();
        let (val_loss, val) = task.val_scores(&validation);
        let record = |timing| Epoch {
            epoch,
            train_loss: steps.loss(),
            train: task.train_scores(TrainStats {
                loss: steps.loss(),
                accuracy: steps.accuracy(),
            }),
            val_loss,
            val: val.clone(),
            lr: steps.lr,
            seconds: steps.done.seconds + started.elapsed().as_secs_f64(),
            timing: Some(timing),
        };
        let first = record(timing);
        progress::notice(&format!(
            "epoch {epoch}/{}: {}",
            params.epochs(),
            first.describe()
        ));
        self.history.push(first);
        let improved = self.end_epoch(epoch, task.score(&val));
        let saving = Instant::now();
        self.save(run, improved)?;
        timing.saving_s = saving.elapsed().as_secs_f64();
        *self.history.last_mut().expect("just pushed") = record(timing);
        write_log(&run.metrics_log(), &self.history)?;
        events.append(self.history.last().expect("just pushed"))?;
        let stop = params
            .patience()
            .is_some_and(|patience| epoch - self.header.best_epoch >= patience);
        if stop {
            progress::notice(&format!(
                "early stop after epoch {epoch}: no better validation score for {} epochs (best: epoch {})",
                params.patience().unwrap_or_default(),
                self.header.best_epoch
            ));
        }
        Ok(stop)
    }

    /// Marks `epoch` done with validation `score`; whether it is the best so far.
    fn end_epoch(&mut self, epoch: usize, score: f64) -> bool {
        self.header.epoch = epoch;
        let improved = score > self.header.best_score;
        if improved {
            self.header.best_score = score;
            self.header.best_epoch = epoch;
        }
        improved
    }

    /// The log first: a crash before the checkpoint leaves one epoch too many in the log, which
    /// a resume trims. Then the last checkpoint, and the best when it `improved`.
    fn save(&self, run: &RunDir, improved: bool) -> Result<(), TrainError> {
        write_log(&run.metrics_log(), &self.history)?;
        checkpoint::save(&run.last_checkpoint(), &self.header, &self.trainer)?;
        if improved {
            checkpoint::save(&run.best_checkpoint(), &self.header, &self.trainer)?;
        }
        Ok(())
    }
}

/// Where a fresh run stands: nothing trained yet.
fn fresh_header<S: TaskSettings>(config: &RunConfig<S>, compute: &Compute) -> CheckpointHeader {
    CheckpointHeader {
        model: config.model_name().into(),
        epoch: 0,
        step: 0,
        best_score: f64::NEG_INFINITY,
        best_epoch: 0,
        engine: compute.engine,
        partial: None,
    }
}

/// An epoch's training steps as they ended: their sums (from the checkpoint's partial epoch on
/// a resume), the last learning rate and where the time went.
struct EpochSteps {
    done: PartialEpoch,
    lr: f64,
    timing: EpochTiming,
}

impl EpochSteps {
    fn loss(&self) -> f64 {
        self.done.loss_sum / self.done.examples.max(1) as f64
    }

    fn accuracy(&self) -> f64 {
        self.done.hits as f64 / self.done.count.max(1) as f64
    }
}

/// Epoch `epoch`'s training steps (those a partial epoch left), with the next batch assembled
/// on a second thread while the current one trains. Ctrl-C saves a checkpoint of the steps
/// taken and stops.
#[allow(clippy::too_many_arguments)]
fn train_epoch<T: TrainingTask>(
    task: &T,
    params: &HyperParams,
    run: &RunDir,
    world: &World,
    state: &mut TrainingState<T::Train, T::Val>,
    epoch: usize,
    steps_per_epoch: usize,
    started: Instant,
) -> Result<EpochSteps, TrainError> {
    let total_steps = steps_per_epoch * params.epochs();
    let seed = epoch_seed(params.seed(), epoch);
    let mut order = task.train_indices().to_vec();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let done = state.header.partial.take().unwrap_or_default();
    let bar = match world.leads() {
        true => epoch_bar(steps_per_epoch, epoch, params.epochs()),
        false => Bar::hidden(),
    };
    let communicated = world.communication_seconds();
    bar.inc(done.steps as u64);
    let mut steps = EpochSteps {
        done,
        lr: params.lr(),
        timing: EpochTiming::default(),
    };
    let TrainingState {
        trainer, header, ..
    } = state;
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel(2);
        scope.spawn(move || {
            for (i, chunk) in order
                .chunks(params.batch_size())
                .enumerate()
                .skip(done.steps)
            {
                let mut rng = ChaCha8Rng::seed_from_u64(step_seed(seed, i, AUGMENT_STREAM));
                if tx.send(task.batch(chunk, epoch, &mut rng)).is_err() {
                    break;
                }
            }
        });
        loop {
            let waiting = Instant::now();
            let Ok(batch) = rx.recv() else { break };
            steps.timing.data_wait_s += waiting.elapsed().as_secs_f64();
            if world.any(interrupt::requested()) {
                bar.abandon();
                steps.done.seconds += started.elapsed().as_secs_f64();
                let mut stopped = header.clone();
                stopped.partial = Some(steps.done);
                if world.leads() {
                    checkpoint::save(&run.last_checkpoint(), &stopped, trainer)?;
                }
                return Err(TrainError::Interrupted {
                    epoch,
                    step: steps.done.steps,
                    steps: steps_per_epoch,
                    checkpoint: run.last_checkpoint(),
                });
            }
            let stepping = Instant::now();
            steps.lr =
                params
                    .schedule()
                    .rate(params.lr(), header.step, total_steps, steps_per_epoch);
            let examples = batch.shape[0];
            let dropout_seed = step_seed(seed, steps.done.steps, DROPOUT_STREAM);
            let stepped = match world.is_distributed() {
                true => trainer.step_shared(world, batch, task.loss(), steps.lr, dropout_seed),
                false => trainer.step(batch, task.loss(), steps.lr, dropout_seed),
            };
            let stats = stepped.map_err(|loss| {
                bar.abandon();
                TrainError::Diverged {
                    epoch,
                    step: header.step + 1,
                    loss,
                    checkpoint: run.last_checkpoint(),
                }
            })?;
            steps.timing.steps_s += stepping.elapsed().as_secs_f64();
            header.step += 1;
            let done = &mut steps.done;
            done.steps += 1;
            done.loss_sum += stats.loss as f64 * examples as f64;
            done.examples += examples;
            done.hits += stats.hits;
            done.count += stats.count;
            bar.inc(1);
            bar.set_message(|| {
                format!(
                    "loss {:.4} acc {:.2}%",
                    steps.loss(),
                    100.0 * steps.accuracy()
                )
            });
        }
        Ok::<(), TrainError>(())
    })?;
    steps.timing.communication_s = world.communication_seconds() - communicated;
    bar.finish_and_clear();
    Ok(steps)
}
