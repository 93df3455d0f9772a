//! The commands every task has (train, eval, search, and the evaluation that ends training),
//! written once over the [`Task`] trait; [`classification`] and [`segmentation`] supply only
//! what differs: their data, loss, metrics and figures.

pub mod classification;
mod data;
mod error;
mod ranks;
mod search;
pub mod segmentation;
mod source;
mod training;

pub use classification::{Classification, ClassificationSource};
pub use data::{DataSummary, RunData, SplitSummary, prepare};
pub use error::TaskError;
pub use search::{
    SearchFile, SearchMode, SearchOutcome, collect_command, search_command, trial_command,
};
pub use segmentation::{Segmentation, SegmentationSource};
pub use source::TaskSource;
pub use training::Training;

use std::path::{Path, PathBuf};

use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::Samples;
use crate::data::sets::Sets;
use crate::data::split::{Fractions, Split};
use crate::engine::{Compute, DeviceKind, LossSpec, Model, StepBatch, Tta};
use crate::figures::FigureError;
use crate::models::ModelKind;
use crate::progress::{self, count_bar};
use crate::run::checkpoint;
use crate::run::config::{HyperParams, Ranks, Recipe, RunConfig, TaskSettings, TrainOptions};
use crate::run::json::{read_json, read_log, write_json};
use crate::run::records::{Epoch, Scores};
use crate::run::results::RunMetrics;
use crate::run::{RunDir, RunError};
use crate::train::search::best_of;
use crate::train::{Launch, TrainError, TrainRequest, TrainStats, fit, open_for_training};

/// What a task supplies to the shared commands; everything else (the run's configuration,
/// epoch records and `metrics.json`, the splits, the commands) is written once for all tasks.
pub trait Task: Sized {
    /// The validation score that picks the best checkpoint and ranks a search.
    const SCORE_NAME: &'static str;
    /// Whether validation and test split off the training part keep each class's share.
    const STRATIFIED: bool;
    /// What the task keeps in `config.json` beyond the shared keys; its networks and classes.
    type Settings: TaskSettings;
    /// The task's images and their labels (one per image, or one per pixel).
    type Samples: Samples + Send + Sync;
    /// The training steps' scores in `metrics.jsonl`.
    type Train: Scores + Serialize + DeserializeOwned + Clone;
    /// The validation scores in `metrics.jsonl`.
    type Val: Scores + Serialize + DeserializeOwned + Clone;
    /// What `metrics.json` says of one split.
    type Report: Serialize + DeserializeOwned + Clone;

    /// The task's name in `config.json` and on the command line.
    fn name(&self) -> &'static str;
    /// The task and the options that read its data, as a search plan keeps them.
    fn source(&self) -> TaskSource;
    /// The command-line options that read the data as this task does beyond `--data`
    /// (e.g. ` --size 64`), for the command a search prints.
    fn data_options(&self) -> String {
        String::new()
    }
    fn recipe(model: ModelOf<Self>) -> Recipe;
    /// Refuses a training option that does not apply to the task (checked with the others,
    /// before any data is read).
    fn refuse_options(_options: &TrainOptions) -> Result<(), RunError> {
        Ok(())
    }
    /// Refuses an option given with `--resume` that the task's part of the saved
    /// configuration contradicts (the hyper-parameters are checked by
    /// [`TrainOptions::resume_with`]).
    fn refuse_on_resume(_options: &TrainOptions, _saved: &ConfigOf<Self>) -> Result<(), RunError> {
        Ok(())
    }
    /// A new run's configuration: `model` built for the data in `sets` (channels, size,
    /// classes), its normalisation and the shares to split off; or why the data does not fit.
    fn fresh_config(
        &self,
        model: ModelOf<Self>,
        params: HyperParams,
        options: &TrainOptions,
        device: DeviceKind,
        sets: &SetsOf<Self>,
    ) -> Result<ConfigOf<Self>, TaskError>;
    /// The data set from `dir`, or from the data roots when `None`; read as the run of
    /// `config` was trained on it when given (evaluating or resuming).
    fn load(
        &self,
        dir: Option<&Path>,
        config: Option<&ConfigOf<Self>>,
    ) -> Result<SetsOf<Self>, TaskError>;
    /// Why `sets` are not the data the run of `config` was made for (its classes, its
    /// images' size), if they are not.
    fn mismatch(sets: &SetsOf<Self>, config: &ConfigOf<Self>) -> Option<String>;
    /// The seeded split of a training part into train, validation and test.
    fn split(train: &Self::Samples, classes: usize, fractions: Fractions, seed: u64) -> Split;
    /// How the training batches are assembled (normalisation, augmentation).
    type Batcher: Sync;
    fn batcher(config: &ConfigOf<Self>) -> Self::Batcher;
    /// The training loss of the run of `config` on `data`.
    fn loss(config: &ConfigOf<Self>, data: &DataOf<Self>) -> LossSpec;
    /// The training examples at `indices`, assembled (and augmented) as a step of epoch
    /// `epoch` (1 for the first) takes them.
    fn batch(
        batcher: &Self::Batcher,
        train: &Self::Samples,
        indices: &[usize],
        epoch: usize,
        rng: &mut ChaCha8Rng,
    ) -> StepBatch;
    /// The validation score that picks the best checkpoint and ranks a search (NaN never wins).
    fn score(val: &Self::Val) -> f64;
    /// The training steps' scores as `metrics.jsonl` keeps them.
    fn train_scores(train: TrainStats) -> Self::Train;
    /// The validation loss and scores of a report, as `metrics.jsonl` keeps them.
    fn val_scores(report: &Self::Report) -> (f64, Self::Val);

    /// Trains as `launch` says: from scratch, or from the last checkpoint when it resumes,
    /// stopping after its `stop_after` epoch when given (as an interrupted run would).
    fn train(
        config: &ConfigOf<Self>,
        data: &DataOf<Self>,
        run: &RunDir,
        launch: &Launch,
    ) -> Result<Vec<RecordOf<Self>>, TrainError> {
        let training = Training::<Self> {
            config,
            data,
            loss: Self::loss(config, data),
            batcher: Self::batcher(config),
        };
        fit(&training, config, run, launch)
    }
    /// The best validation score of a history and its epoch.
    fn best_score(history: &[RecordOf<Self>]) -> (f64, usize) {
        best_of(history.iter().map(|r| (Self::score(&r.val), r.epoch)))
    }
    fn evaluate(
        model: &Model,
        split: &Self::Samples,
        config: &ConfigOf<Self>,
        tta: Tta,
    ) -> Evaluation<Self::Report>;
    /// The run's figures, from its history, its metrics and the test predictions.
    fn draw_figures(
        run: &RunDir,
        history: &[RecordOf<Self>],
        metrics: &MetricsOf<Self>,
        model: &Model,
        config: &ConfigOf<Self>,
        data: &DataOf<Self>,
        test_predictions: &[u8],
    ) -> Result<(), FigureError>;
}

/// The networks a task trains.
pub type ModelOf<T> = <<T as Task>::Settings as TaskSettings>::Model;
/// A task's `config.json`.
pub type ConfigOf<T> = RunConfig<<T as Task>::Settings>;
/// A task's data set as loaded.
pub type SetsOf<T> = Sets<<T as Task>::Samples, <<T as Task>::Settings as TaskSettings>::Class>;
/// A task's data set split for a run.
pub type DataOf<T> = RunData<<T as Task>::Samples, <<T as Task>::Settings as TaskSettings>::Class>;
/// One line of a task's `metrics.jsonl`.
pub type RecordOf<T> = Epoch<<T as Task>::Train, <T as Task>::Val>;
/// A task's `metrics.json`.
pub type MetricsOf<T> = RunMetrics<ModelOf<T>, <T as Task>::Report>;

/// A model's predictions on a split: the task's report of them, and each image's predicted
/// class (classification) or label map (segmentation) for the figures.
pub struct Evaluation<R> {
    pub report: R,
    pub predictions: Vec<u8>,
}

/// Everything a `train` command checked and loaded, before the first epoch.
pub struct TrainingPlan<T: Task> {
    pub run: RunDir,
    pub config: ConfigOf<T>,
    pub data: DataOf<T>,
    request: TrainRequest,
}

/// `convlab TASK train`, first half: validates the options, loads and checks the data, builds
/// the network for it and opens the run folder. Without a `model`, a resumed run trains its
/// own and a new one the task's default.
pub fn plan_training<T: Task>(
    task: &T,
    model: Option<ModelOf<T>>,
    request: &TrainRequest,
) -> Result<TrainingPlan<T>, TaskError> {
    let world = &request.world;
    if !world.is_distributed() {
        return plan_run(task, model, request);
    }
    // On the ranks of a data-parallel run: see `ranks`.
    ranks::agree(world, ranks::check_distributable(request))?;
    ranks::check_command(world, request, model.map_or("", |m| m.name()))?;
    if world.leads() {
        let planned = plan_run(task, model, request);
        let config = planned.as_ref().map(|plan| plan.config.clone());
        let shared = ranks::share_config(world, Some(config.map_err(|e| e.to_string())));
        let plan = planned?;
        shared?;
        ranks::check_data::<T>(world, Ok(&plan.data), plan.config.params.batch_size())?;
        return Ok(plan);
    }
    let config: ConfigOf<T> = ranks::share_config(world, None)?;
    let loaded = task
        .load(request.data.as_deref().or(config.data_dir()), Some(&config))
        .and_then(|sets| prepare::<T>(sets, &config));
    ranks::check_data::<T>(world, loaded.as_ref(), config.params.batch_size())?;
    Ok(TrainingPlan {
        run: RunDir::new(&request.out),
        data: loaded?,
        config,
        request: request.clone(),
    })
}

/// A `train` command's plan in one process (or on rank 0 of several): see [`plan_training`].
fn plan_run<T: Task>(
    task: &T,
    model: Option<ModelOf<T>>,
    request: &TrainRequest,
) -> Result<TrainingPlan<T>, TaskError> {
    let saved = match request.resume {
        true => Some(read_json::<ConfigOf<T>>(
            &RunDir::existing(&request.out)?.config(),
        )?),
        false => None,
    };
    let model = model
        .or(saved.as_ref().map(|config| config.model))
        .unwrap_or(ModelOf::<T>::DEFAULT);
    // The options are checked before the data is read: a typo costs no loading.
    T::refuse_options(&request.options)?;
    if let Some(saved) = &saved {
        T::refuse_on_resume(&request.options, saved)?;
    } else {
        request.options.check(&T::recipe(model))?;
    }
    // Read from where the user said (so errors name the folder as given); kept absolute.
    let data_dir = request
        .data
        .clone()
        .or_else(|| saved.as_ref()?.data_dir().map(Path::to_path_buf));
    let sets = task.load(data_dir.as_deref(), saved.as_ref())?;
    let data_dir = data_dir.as_deref().map(absolute);
    let (run, config) = open_for_training(request, model.name(), &T::recipe(model), |p| {
        let config =
            task.fresh_config(model, p, &request.options, request.compute.device, &sets)?;
        Ok::<_, TaskError>(RunConfig {
            data: data_dir.clone(),
            ..config
        })
    })?;
    let world = &request.world;
    let precision = request.compute.precision;
    if request.resume && config.precision != precision {
        progress::notice(&format!(
            "resuming a run trained in {} in {}: its checkpoints hold fp32 weights, so it goes on at {} (config.json records it)",
            config.precision.name(),
            precision.name(),
            precision.name()
        ));
    }
    let config = RunConfig {
        ranks: world.is_distributed().then(|| Ranks {
            world_size: world.size(),
            threads_per_rank: crate::engine::threads(),
        }),
        precision,
        ..config
    };
    let data = prepare::<T>(sets, &config)?;
    run.start(&config)?;
    Ok(TrainingPlan {
        run,
        config,
        data,
        request: request.clone(),
    })
}

/// What `train` says before its first epoch.
#[derive(Clone, Debug)]
pub struct TrainingHeader {
    pub data: DataSummary,
    pub model: String,
    pub params: usize,
    pub epochs: usize,
    pub compute: Compute,
    pub threads: usize,
    /// The ranks of a data-parallel run.
    pub ranks: Option<Ranks>,
    pub run: PathBuf,
    pub resumed: bool,
}

impl<T: Task> TrainingPlan<T> {
    /// What the run trains on, with what, and where it writes.
    pub fn header(&self) -> TrainingHeader {
        TrainingHeader {
            data: data::summary::<T>(&self.data, &self.config),
            model: self.config.model_name().to_string(),
            params: self.config.architecture.num_params(),
            epochs: self.config.params.epochs(),
            compute: self.request.compute,
            threads: crate::engine::threads(),
            ranks: self.config.ranks,
            run: self.run.root.clone(),
            resumed: self.request.resume,
        }
    }

    /// `convlab TASK train`, second half: trains, evaluates and draws the figures. On the
    /// ranks of a data-parallel run, rank 0 evaluates and the others return `None`.
    pub fn train(self) -> Result<Option<MetricsOf<T>>, TaskError> {
        let request = &self.request;
        let launch = Launch {
            compute: request.compute,
            world: request.world.clone(),
            resume: request.resume,
            stop_after: None,
            clock: request.clock.clone(),
        };
        T::train(&self.config, &self.data, &self.run, &launch)?;
        if !request.world.leads() {
            return Ok(None);
        }
        // A --budget chose the epochs into config.json; nothing evaluated depends on them.
        evaluate_run::<T>(
            &self.config,
            &self.data,
            &self.run,
            &request.compute,
            Tta::None,
        )
        .map(Some)
    }
}

/// `convlab TASK eval --run DIR [--tta flip]`.
pub fn eval_command<T: Task>(
    task: &T,
    run_dir: &Path,
    data: Option<&Path>,
    compute: &Compute,
    tta: Tta,
) -> Result<MetricsOf<T>, TaskError> {
    let run = RunDir::existing(run_dir)?;
    let config: ConfigOf<T> = read_json(&run.config())?;
    let sets = task.load(data.or(config.data_dir()), Some(&config))?;
    let data = prepare::<T>(sets, &config)?;
    evaluate_run::<T>(&config, &data, &run, compute, tta)
}

/// `--flips` given for a model whose recipe does not flip its training images.
fn unflipped(model: &str) -> RunError {
    RunError::invalid(
        "--flips",
        format!("'{model}' trains without flips (its recipe's augmentation); leave it out"),
    )
}

/// `dir` as an absolute path (as given when it cannot be resolved: loading it will say why).
fn absolute(dir: &Path) -> PathBuf {
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

/// Loads the run's best checkpoint, evaluates it on validation and test, writes `metrics.json`
/// and the figures. With test-time augmentation, or at another precision than the run trained
/// at, the metrics go to their own file (see [`RunDir::metrics_with`]) and the figures stay
/// those of the plain evaluation.
pub fn evaluate_run<T: Task>(
    config: &ConfigOf<T>,
    data: &DataOf<T>,
    run: &RunDir,
    compute: &Compute,
    tta: Tta,
) -> Result<MetricsOf<T>, TaskError> {
    let (model, header, path) =
        checkpoint::load_final(run, config.model_name(), &config.architecture, compute)?;
    let other_precision = (compute.precision != config.precision).then_some(compute.precision);
    let bar = count_bar(2, "evaluating");
    let val = T::evaluate(&model, &data.val, config, tta);
    bar.inc(1);
    let test = T::evaluate(&model, &data.test, config, tta);
    bar.finish_and_clear();
    let metrics = RunMetrics {
        model: config.model,
        checkpoint: path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into(),
        epoch: header.epoch,
        tta,
        precision: other_precision,
        class_names: config.class_names(),
        val: val.report,
        test: test.report,
    };
    write_json(&run.metrics_with(tta, other_precision), &metrics)?;
    if !tta.is_none() || other_precision.is_some() {
        return Ok(metrics);
    }
    let history: Vec<RecordOf<T>> = read_log(&run.metrics_log())?;
    T::draw_figures(
        run,
        &history,
        &metrics,
        &model,
        config,
        data,
        &test.predictions,
    )?;
    Ok(metrics)
}
