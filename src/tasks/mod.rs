//! The commands every task has (train, eval, search, and the evaluation that ends training),
//! written once over the [`Task`] trait; [`classification`] and [`segmentation`] supply only
//! what differs: their data, loss, metrics and figures.

pub mod classification;
mod error;
pub mod segmentation;

pub use classification::{Classification, ClassificationSource};
pub use error::TaskError;
pub use segmentation::Segmentation;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::data::sets::DataOrigin;
use crate::data::split::Fractions;
use crate::engine::{Compute, DeviceKind, Model, Tta};
use crate::figures::FigureError;
use crate::progress::count_bar;
use crate::run::RunDir;
use crate::run::checkpoint;
use crate::run::config::{HyperParams, Recipe, RunConfig};
use crate::run::json::{read_json, read_log, write_json};
use crate::run::records::EpochRecord;
use crate::train::search::{self, Leaderboard, SearchOptions};
use crate::train::{TrainError, TrainRequest, open_for_training};

/// What a task supplies to the shared commands.
pub trait Task {
    /// The validation score that picks the best checkpoint and ranks a search.
    const SCORE_NAME: &'static str;
    /// The networks the task trains.
    type Model: Copy;
    type Config: RunConfig;
    /// The data set as loaded from disk.
    type Sets: Clone;
    /// The data set split for a run.
    type Data;
    /// A split to evaluate on (validation or test).
    type Split;
    /// One line of `metrics.jsonl`.
    type Record: EpochRecord + Serialize + DeserializeOwned + Clone;
    /// A model's predictions on a split, with what the figures need.
    type Evaluation;
    /// `metrics.json`.
    type Metrics: Serialize;

    /// The task's name in `config.json` and on the command line.
    fn name(&self) -> &'static str;
    /// The command-line options that read the data as this task does beyond `--data`
    /// (e.g. ` --size 64`), for the command a search prints.
    fn data_options(&self) -> String {
        String::new()
    }
    fn model_name(model: Self::Model) -> &'static str;
    fn recipe(model: Self::Model) -> Recipe;
    /// A new run's configuration: `model` built for the data in `sets` (channels, size,
    /// classes), its normalisation and the shares to split off; or why the data does not fit.
    fn fresh_config(
        &self,
        model: Self::Model,
        params: HyperParams,
        device: DeviceKind,
        sets: &Self::Sets,
    ) -> Result<Self::Config, TaskError>;
    /// The data set from `dir`, or from the data roots when `None`; read as the run of
    /// `config` was trained on it when given (evaluating or resuming).
    fn load(
        &self,
        dir: Option<&Path>,
        config: Option<&Self::Config>,
    ) -> Result<Self::Sets, TaskError>;
    /// Splits the sets as `config` says, refusing data that is not the run's.
    fn prepare(sets: Self::Sets, config: &Self::Config) -> Result<Self::Data, TaskError>;
    /// What the run trains on, for the header `train` prints.
    fn summary(data: &Self::Data, config: &Self::Config) -> DataSummary;
    /// Trains from scratch, or from the last checkpoint when `resume` is set, stopping after
    /// epoch `stop_after` when given (as an interrupted run would).
    fn train(
        config: &Self::Config,
        data: &Self::Data,
        run: &RunDir,
        compute: &Compute,
        resume: bool,
        stop_after: Option<usize>,
    ) -> Result<Vec<Self::Record>, TrainError>;
    /// The best validation score of a history and its epoch.
    fn best_score(history: &[Self::Record]) -> (f64, usize);
    fn validation(data: &Self::Data) -> &Self::Split;
    fn test(data: &Self::Data) -> &Self::Split;
    fn evaluate(
        model: &Model,
        split: &Self::Split,
        config: &Self::Config,
        tta: Tta,
    ) -> Self::Evaluation;
    fn metrics(
        config: &Self::Config,
        checkpoint: String,
        epoch: usize,
        tta: Tta,
        val: &Self::Evaluation,
        test: &Self::Evaluation,
    ) -> Self::Metrics;
    /// The run's figures, from its history, its metrics and the test predictions.
    fn draw_figures(
        run: &RunDir,
        history: &[Self::Record],
        metrics: &Self::Metrics,
        model: &Model,
        config: &Self::Config,
        data: &Self::Data,
        test: &Self::Evaluation,
    ) -> Result<(), FigureError>;
}

/// One split of a run's data: its size and where it came from.
#[derive(Clone, Debug)]
pub struct SplitSummary {
    pub name: &'static str,
    pub count: usize,
    /// How it was made (empty for the training part as given).
    pub how: String,
}

/// The three splits of a run: `counts` of train (after `--limit`), validation and test, each
/// said to be the data set's own or split off (`stratified` per class, or not) with the seed.
pub fn split_summaries(
    counts: [usize; 3],
    params: &HyperParams,
    fractions: Fractions,
    stratified: bool,
) -> Vec<SplitSummary> {
    let how = |share: f64| {
        if share > 0.0 {
            let strata = if stratified { ", stratified" } else { "" };
            format!(
                "{:.0}% of train split off{strata}, seed {}",
                100.0 * share,
                params.seed()
            )
        } else {
            "the data set's own".into()
        }
    };
    vec![
        SplitSummary {
            name: "train",
            count: counts[0],
            how: match params.limit() {
                Some(limit) => format!("first {limit} (--limit)"),
                None => String::new(),
            },
        },
        SplitSummary {
            name: "validation",
            count: counts[1],
            how: how(fractions.val),
        },
        SplitSummary {
            name: "test",
            count: counts[2],
            how: how(fractions.test),
        },
    ]
}

/// What a run trains on.
#[derive(Clone, Debug)]
pub struct DataSummary {
    pub origin: DataOrigin,
    pub splits: Vec<SplitSummary>,
    pub classes: Vec<String>,
    /// Channels, height, width of the network's input.
    pub input: [usize; 3],
}

/// Everything a `train` command checked and loaded, before the first epoch.
pub struct TrainingPlan<T: Task> {
    pub run: RunDir,
    pub config: T::Config,
    pub data: T::Data,
    request: TrainRequest,
}

/// `convlab TASK train`, first half: validates the options, loads and checks the data, builds
/// the network for it and opens the run folder.
pub fn plan_training<T: Task>(
    task: &T,
    model: T::Model,
    request: &TrainRequest,
) -> Result<TrainingPlan<T>, TaskError> {
    // The options are checked before the data is read: a typo costs no loading.
    if !request.resume {
        request.options.check(&T::recipe(model))?;
    }
    let saved = match request.resume {
        true => Some(read_json::<T::Config>(
            &RunDir::existing(&request.out)?.config(),
        )?),
        false => None,
    };
    // Read from where the user said (so errors name the folder as given); kept absolute.
    let data_dir = request
        .data
        .clone()
        .or_else(|| saved.as_ref()?.data_dir().map(Path::to_path_buf));
    let sets = task.load(data_dir.as_deref(), saved.as_ref())?;
    let data_dir = data_dir.as_deref().map(absolute);
    let (run, config) = open_for_training(request, T::model_name(model), &T::recipe(model), |p| {
        Ok::<_, TaskError>(
            task.fresh_config(model, p, request.compute.device, &sets)?
                .with_data_dir(data_dir.clone()),
        )
    })?;
    let data = T::prepare(sets, &config)?;
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
    pub run: PathBuf,
    pub resumed: bool,
}

impl<T: Task> TrainingPlan<T> {
    /// What the run trains on, with what, and where it writes.
    pub fn header(&self) -> TrainingHeader {
        TrainingHeader {
            data: T::summary(&self.data, &self.config),
            model: self.config.model_name().to_string(),
            params: self.config.architecture().num_params(),
            epochs: self.config.params().epochs(),
            compute: self.request.compute,
            threads: crate::engine::threads(),
            run: self.run.root.clone(),
            resumed: self.request.resume,
        }
    }

    /// `convlab TASK train`, second half: trains, evaluates and draws the figures.
    pub fn train(self) -> Result<T::Metrics, TaskError> {
        let compute = &self.request.compute;
        T::train(
            &self.config,
            &self.data,
            &self.run,
            compute,
            self.request.resume,
            None,
        )?;
        evaluate_run::<T>(&self.config, &self.data, &self.run, compute, Tta::None)
    }
}

/// `convlab TASK train`: validates everything, then trains, evaluates and draws the figures.
pub fn train_command<T: Task>(
    task: &T,
    model: T::Model,
    request: &TrainRequest,
) -> Result<T::Metrics, TaskError> {
    plan_training(task, model, request)?.train()
}

/// `convlab TASK search`: short runs with random hyper-parameters, scored on validation.
pub fn search_command<T: Task>(
    task: &T,
    model: T::Model,
    options: SearchOptions,
) -> Result<Leaderboard, TaskError> {
    let plan = options.check()?;
    let sets = task.load(plan.options().data.as_deref(), None)?;
    let name = T::model_name(model);
    let recipe = T::recipe(model);
    let data = plan
        .options()
        .data
        .as_deref()
        .map(|dir| format!(" --data {}", shell_word(&dir.display().to_string())))
        .unwrap_or_default();
    let train = format!("convlab {} train{data}{}", task.name(), task.data_options());
    search::run(&plan, &train, name, recipe.epochs, T::SCORE_NAME, |trial| {
        let (run, config) = open_for_training(trial, name, &recipe, |params| {
            task.fresh_config(model, params, trial.compute.device, &sets)
        })?;
        let data = T::prepare(sets.clone(), &config)?;
        run.start(&config)?;
        let history = T::train(&config, &data, &run, &trial.compute, false, None)?;
        Ok::<_, TaskError>(T::best_score(&history))
    })
}

/// `convlab TASK eval --run DIR [--tta flip]`.
pub fn eval_command<T: Task>(
    task: &T,
    run_dir: &Path,
    data: Option<&Path>,
    compute: &Compute,
    tta: Tta,
) -> Result<T::Metrics, TaskError> {
    let run = RunDir::existing(run_dir)?;
    let config: T::Config = read_json(&run.config())?;
    let sets = task.load(data.or(config.data_dir()), Some(&config))?;
    let data = T::prepare(sets, &config)?;
    evaluate_run::<T>(&config, &data, &run, compute, tta)
}

/// `text` as one shell word: as it is when it holds only safe characters, else single-quoted.
fn shell_word(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// `dir` as an absolute path (as given when it cannot be resolved: loading it will say why).
fn absolute(dir: &Path) -> PathBuf {
    dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf())
}

/// Loads the run's best checkpoint, evaluates it on validation and test, writes `metrics.json`
/// and the figures. With test-time augmentation the metrics go to their own file (see
/// [`RunDir::metrics_with`]) and the figures stay those of the plain evaluation.
pub fn evaluate_run<T: Task>(
    config: &T::Config,
    data: &T::Data,
    run: &RunDir,
    compute: &Compute,
    tta: Tta,
) -> Result<T::Metrics, TaskError> {
    let (model, header, path) =
        checkpoint::load_final(run, config.model_name(), config.architecture(), compute)?;
    let bar = count_bar(2, "evaluating");
    let val = T::evaluate(&model, T::validation(data), config, tta);
    bar.inc(1);
    let test = T::evaluate(&model, T::test(data), config, tta);
    bar.finish_and_clear();
    let checkpoint = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into();
    let metrics = T::metrics(config, checkpoint, header.epoch, tta, &val, &test);
    write_json(&run.metrics_with(tta), &metrics)?;
    if !tta.is_none() {
        return Ok(metrics);
    }
    let history: Vec<T::Record> = read_log(&run.metrics_log())?;
    T::draw_figures(run, &history, &metrics, &model, config, data, &test)?;
    Ok(metrics)
}
