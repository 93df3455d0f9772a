//! A run's configuration (`config.json`): the checked hyper-parameters and, per task, everything
//! needed to rebuild the model and repeat the run. Hyper-parameters arrive unchecked
//! ([`TrainOptions`]: what the user gave) and become a [`HyperParams`] only through
//! [`TrainOptions::check`] (or by reading a saved, checked configuration), so no unchecked set
//! reaches training.

use serde::{Deserialize, Serialize};

use std::path::{Path, PathBuf};

use super::RunError;
use super::json::read_json;
use super::schedule::Schedule;
use crate::data::augment::{CropFlip, FlipOrder, FlipScaleCrop, RandomErasing};
use crate::data::fashion_mnist::CLASS_NAMES as FASHION_CLASS_NAMES;
use crate::data::split::Fractions;
use crate::data::{ClassSpec, IGNORE_LABEL, Normalization, facade};
use crate::engine::{DeviceKind, InitSpec, OptimizerSpec, Precision};
use crate::models::{ClassifierKind, ModelKind, ModelSpec, SegmenterKind};

pub const DEFAULT_SEED: u64 = 42;

/// The share of the training images held out for validation where the data set has no
/// validation split of its own.
pub const VAL_FRACTION: f64 = 0.1;

/// The share held out for testing where the data set has no test split of its own.
pub const TEST_FRACTION: f64 = 0.1;

/// What to split off the training part: validation and test where the data set lacks them
/// (80/10/10 without either, 90/10 without validation).
pub fn split_fractions(has_val: bool, has_test: bool) -> Fractions {
    Fractions {
        val: if has_val { 0.0 } else { VAL_FRACTION },
        test: if has_test { 0.0 } else { TEST_FRACTION },
    }
}

/// Training options as given on the command line; `None` where the user was silent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainOptions {
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub lr: Option<f64>,
    pub weight_decay: Option<f64>,
    pub schedule: Option<Schedule>,
    pub seed: Option<u64>,
    pub limit: Option<usize>,
    /// Stop when the validation score has not improved for this many epochs.
    pub patience: Option<usize>,
    /// Random erasing of training images with this probability (classifiers).
    pub random_erasing: Option<f64>,
    /// The minutes the run may take (`--budget`): its epochs are chosen after the first.
    pub budget: Option<f64>,
    /// Label smoothing (classifiers); 0 turns the recipe's off.
    pub label_smoothing: Option<f32>,
    /// The decay of a moving average of the weights, the model evaluated; 0 turns it off.
    pub ema: Option<f32>,
    /// How a segmenter's loss weighs its classes (the recipe's where `None`).
    pub class_weighting: Option<ClassWeighting>,
    /// Which images an epoch flips, where the recipe flips (random where `None`).
    pub flips: Option<FlipOrder>,
    /// The side of a segmenter's training crops (the whole photo where `None`).
    pub crop: Option<usize>,
    /// Start each convolution's first filters as the identity (`--identity-init`).
    pub identity_init: bool,
    /// Freeze the first convolution's leading filters as patch whitening (`--whiten`).
    pub whiten: bool,
}

/// A model's recommended training recipe, used where the command line is silent.
#[derive(Clone, Debug)]
pub struct Recipe {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    pub augment: Option<CropFlip>,
    pub label_smoothing: Option<f32>,
    /// Decoupled (AdamW) weight decay instead of L2 in the gradient.
    pub decoupled_decay: bool,
    /// The decay of a moving average of the weights, evaluated as the model.
    pub ema: Option<f32>,
}

/// `--budget`: the minutes a run may take, its wall time from the `train` command's start to
/// its last figure; the epochs are chosen once the first epoch is done (see
/// `train::epochs_within`) and written to `config.json`, so resuming and rerunning repeat them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub minutes: f64,
    /// `--epochs` given with `--budget`: the most it may choose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub most_epochs: Option<usize>,
    /// Whether the epochs were chosen (then the parameters' `epochs` are they).
    pub chosen: bool,
}

/// Checked hyper-parameters, as saved in `config.json`. Built only by [`TrainOptions::check`],
/// [`TrainOptions::resume_with`] or from a saved configuration (checked as it is read).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Params", into = "Params")]
pub struct HyperParams(Params);

/// The hyper-parameters as `config.json` keeps them, checked or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Params {
    epochs: usize,
    batch_size: usize,
    lr: f64,
    weight_decay: f64,
    decoupled_decay: bool,
    schedule: Schedule,
    seed: u64,
    limit: Option<usize>,
    augment: Option<CropFlip>,
    label_smoothing: Option<f32>,
    /// Early stopping (runs written before it existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    patience: Option<usize>,
    /// Random erasing of the training images (none in runs written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    erasing: Option<RandomErasing>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    budget: Option<Budget>,
    /// The decay of the moving average of the weights (none in runs written before it
    /// existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ema: Option<f32>,
    /// Which images an epoch flips (random in runs written before it existed).
    #[serde(default, skip_serializing_if = "FlipOrder::is_random")]
    flips: FlipOrder,
    /// Whether the convolutions' first filters started as the identity (not in runs written
    /// before it existed, nor where they did not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    identity_init: bool,
    /// Whether the first convolution's leading filters whitened the training patches and were
    /// frozen (not in runs written before it existed, nor where they were not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    whiten: bool,
}

impl TryFrom<Params> for HyperParams {
    type Error = RunError;

    fn try_from(params: Params) -> Result<Self, RunError> {
        params.checked()
    }
}

impl From<HyperParams> for Params {
    fn from(checked: HyperParams) -> Self {
        checked.0
    }
}

impl TrainOptions {
    /// Fills the gaps from `recipe` and checks every value.
    pub fn check(&self, recipe: &Recipe) -> Result<HyperParams, RunError> {
        Params {
            epochs: self.epochs.unwrap_or(recipe.epochs),
            batch_size: self.batch_size.unwrap_or(recipe.batch_size),
            lr: self.lr.unwrap_or(recipe.lr),
            weight_decay: self.weight_decay.unwrap_or(recipe.weight_decay),
            decoupled_decay: recipe.decoupled_decay,
            schedule: self.schedule.unwrap_or(recipe.schedule),
            seed: self.seed.unwrap_or(DEFAULT_SEED),
            limit: self.limit,
            augment: recipe.augment,
            label_smoothing: off_at_zero(self.label_smoothing.or(recipe.label_smoothing)),
            patience: self.patience,
            erasing: self.random_erasing.map(RandomErasing::zhong),
            budget: self.budget.map(|minutes| Budget {
                minutes,
                most_epochs: self.epochs,
                chosen: false,
            }),
            ema: off_at_zero(self.ema.or(recipe.ema)),
            flips: self.flips.unwrap_or_default(),
            identity_init: self.identity_init,
            whiten: self.whiten,
        }
        .checked()
    }

    /// For `--resume`: the saved parameters, with `--epochs` raised and `--patience` changed if
    /// given (neither changes the steps already taken); any other option given must agree with
    /// the saved one.
    pub fn resume_with(&self, saved: &HyperParams) -> Result<HyperParams, RunError> {
        let differs = |flag: &str, given: String, saved: String| {
            RunError::invalid(
                flag,
                format!(
                    "{given} differs from the run's config.json ({saved}); a resumed run keeps its configuration"
                ),
            )
        };
        macro_rules! same {
            ($field:ident, $flag:literal) => {
                if let Some(v) = self.$field {
                    if v != saved.0.$field {
                        return Err(differs(
                            $flag,
                            format!("{v:?}"),
                            format!("{:?}", saved.0.$field),
                        ));
                    }
                }
            };
        }
        same!(batch_size, "--batch-size");
        same!(lr, "--lr");
        same!(weight_decay, "--weight-decay");
        same!(schedule, "--schedule");
        same!(seed, "--seed");
        // The options with no plain counterpart in the saved file: whether the one given (if
        // any) conflicts, and both as the error shows them.
        let erasing = self.random_erasing.map(RandomErasing::zhong);
        let smoothing = self.label_smoothing.map(|a| off_at_zero(Some(a)));
        let ema = self.ema.map(|d| off_at_zero(Some(d)));
        let saved_budget = saved.0.budget.map(|b| b.minutes);
        let conflicts = [
            (
                "--budget",
                self.budget.is_some() && self.budget != saved_budget,
                format!("{:?}", self.budget),
                format!("{saved_budget:?}"),
            ),
            (
                "--random-erasing",
                erasing.is_some() && erasing != saved.0.erasing,
                format!("{:?}", self.random_erasing),
                format!("{:?}", saved.0.erasing.map(|e| e.prob)),
            ),
            (
                "--label-smoothing",
                smoothing.is_some_and(|a| a != saved.0.label_smoothing),
                format!("{:?}", self.label_smoothing),
                format!("{:?}", saved.0.label_smoothing),
            ),
            (
                "--ema",
                ema.is_some_and(|d| d != saved.0.ema),
                format!("{:?}", self.ema),
                format!("{:?}", saved.0.ema),
            ),
            (
                "--flips",
                self.flips.is_some_and(|f| f != saved.0.flips),
                self.flips.map_or_else(String::new, |f| f.name().into()),
                saved.0.flips.name().into(),
            ),
            (
                "--limit",
                self.limit.is_some() && self.limit != saved.0.limit,
                format!("{:?}", self.limit),
                format!("{:?}", saved.0.limit),
            ),
            (
                "--identity-init",
                self.identity_init && !saved.0.identity_init,
                "given".into(),
                "not given".into(),
            ),
            (
                "--whiten",
                self.whiten && !saved.0.whiten,
                "given".into(),
                "not given".into(),
            ),
        ];
        if let Some((flag, _, given, was)) = conflicts.into_iter().find(|c| c.1) {
            return Err(differs(flag, given, was));
        }
        let mut params = saved.0.clone();
        if let Some(epochs) = self.epochs {
            params.epochs = epochs;
        }
        if self.patience.is_some() {
            params.patience = self.patience;
        }
        params.checked()
    }
}

impl Params {
    fn checked(self) -> Result<HyperParams, RunError> {
        let positive = |flag: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(RunError::invalid(
                    flag,
                    format!("must be a positive number, got {v}"),
                ))
            }
        };
        positive("--lr", self.lr)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(RunError::invalid(
                "--weight-decay",
                format!("must be zero or positive, got {}", self.weight_decay),
            ));
        }
        if self.epochs == 0 {
            return Err(RunError::invalid("--epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(RunError::invalid("--batch-size", "must be at least 1"));
        }
        if self.limit == Some(0) {
            return Err(RunError::invalid("--limit", "must be at least 1"));
        }
        if self.patience == Some(0) {
            return Err(RunError::invalid("--patience", "must be at least 1"));
        }
        if let Some(budget) = self.budget
            && !(budget.minutes.is_finite() && budget.minutes > 0.0)
        {
            return Err(RunError::invalid(
                "--budget",
                format!(
                    "must be a positive number of minutes, got {}",
                    budget.minutes
                ),
            ));
        }
        if let Some(erasing) = self.erasing
            && !(erasing.prob > 0.0 && erasing.prob <= 1.0)
        {
            return Err(RunError::invalid(
                "--random-erasing",
                format!(
                    "must be a probability above 0 and at most 1, got {}",
                    erasing.prob
                ),
            ));
        }
        if let Some(alpha) = self.label_smoothing
            && !(alpha > 0.0 && alpha < 1.0)
        {
            return Err(RunError::invalid(
                "--label-smoothing",
                format!("must be at least 0 (off) and below 1, got {alpha}"),
            ));
        }
        if let Some(decay) = self.ema
            && !(decay > 0.0 && decay < 1.0)
        {
            return Err(RunError::invalid(
                "--ema",
                format!("must be at least 0 (off) and below 1, got {decay}"),
            ));
        }
        Ok(HyperParams(self))
    }
}

/// A value given as 0 (turning the recipe's off) as none.
fn off_at_zero(value: Option<f32>) -> Option<f32> {
    value.filter(|&v| v != 0.0)
}

impl HyperParams {
    pub fn epochs(&self) -> usize {
        self.0.epochs
    }

    pub fn batch_size(&self) -> usize {
        self.0.batch_size
    }

    pub fn lr(&self) -> f64 {
        self.0.lr
    }

    pub fn weight_decay(&self) -> f64 {
        self.0.weight_decay
    }

    /// AdamW's decoupled decay instead of L2 in the gradient.
    pub fn decoupled_decay(&self) -> bool {
        self.0.decoupled_decay
    }

    pub fn schedule(&self) -> Schedule {
        self.0.schedule
    }

    /// Seed for the split, initial weights, shuffling, augmentation and dropout.
    pub fn seed(&self) -> u64 {
        self.0.seed
    }

    /// How the model's weights start.
    pub fn init(&self) -> InitSpec {
        InitSpec {
            seed: self.0.seed,
            identity_convs: self.0.identity_init,
        }
    }

    /// Whether the first convolution's leading filters are frozen as patch whitening
    /// (`train::whitening`).
    pub fn whiten(&self) -> bool {
        self.0.whiten
    }

    /// Train on the first N training images only.
    pub fn limit(&self) -> Option<usize> {
        self.0.limit
    }

    pub fn augment(&self) -> Option<CropFlip> {
        self.0.augment
    }

    pub fn label_smoothing(&self) -> Option<f32> {
        self.0.label_smoothing
    }

    /// Random erasing of the training images.
    pub fn erasing(&self) -> Option<RandomErasing> {
        self.0.erasing
    }

    /// Which images an epoch flips, where the augmentation flips.
    pub fn flips(&self) -> FlipOrder {
        self.0.flips
    }

    /// `--budget`, and whether its epochs were chosen.
    pub fn budget(&self) -> Option<Budget> {
        self.0.budget
    }

    /// The parameters once a budget chose `epochs`.
    pub fn with_chosen_epochs(&self, epochs: usize) -> HyperParams {
        let mut params = self.0.clone();
        params.epochs = epochs.max(1);
        params.budget = params.budget.map(|b| Budget { chosen: true, ..b });
        HyperParams(params)
    }

    /// The decay of the moving average of the weights, when the model is one.
    pub fn ema(&self) -> Option<f32> {
        self.0.ema
    }

    /// Early stopping: the epochs without a better validation score after which training stops.
    pub fn patience(&self) -> Option<usize> {
        self.0.patience
    }

    /// The optimiser these parameters ask for.
    pub fn optimizer(&self) -> OptimizerSpec {
        OptimizerSpec {
            weight_decay: self.0.weight_decay,
            decoupled_decay: self.0.decoupled_decay,
            average: self.0.ema,
        }
    }
}

/// What a task keeps in its runs' `config.json` beyond what every run keeps: its family of
/// networks, how it names a class, and settings of its own (flattened into the file beside
/// the shared keys, so the file reads as one object).
pub trait TaskSettings:
    Clone + std::fmt::Debug + PartialEq + Send + Sync + Serialize + serde::de::DeserializeOwned
{
    type Model: ModelKind;
    /// A class as `config.json` lists it (a name, or a name and a colour).
    type Class: Clone
        + std::fmt::Debug
        + PartialEq
        + Send
        + Sync
        + Serialize
        + serde::de::DeserializeOwned;

    fn class_name(class: &Self::Class) -> &str;
    /// The classes of run folders written before `config.json` listed them (the preset's).
    fn preset_classes() -> Vec<Self::Class>;
}

/// A run's `config.json`: what every task keeps once, and the task's own part `S`. Its keys
/// are those of the files written before it was one type, in the same order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")] // TaskSettings asks for what (de)serialising needs
pub struct RunConfig<S: TaskSettings> {
    /// The task's name as the command line spells it (`fashion`, `classify`, `facade`,
    /// `segment`).
    pub task: String,
    pub model: S::Model,
    pub architecture: ModelSpec,
    pub params: HyperParams,
    #[serde(flatten)]
    pub settings: S,
    /// The classes in index order.
    #[serde(default = "S::preset_classes")]
    pub classes: Vec<S::Class>,
    /// The share of the training images held out for validation (0: the data set's own).
    pub val_fraction: f64,
    /// The share held out for testing (0: the data set's own test split).
    #[serde(default)]
    pub test_fraction: f64,
    pub normalization: Normalization,
    pub device: DeviceKind,
    /// The data set's folder (absolute) when training was given `--data`, so that `eval`
    /// finds the same data without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    /// The ranks of a data-parallel run as last launched (`--distributed`); absent for one
    /// process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranks: Option<Ranks>,
    /// The products' precision as last trained (`--precision`; absent for fp32, as in runs
    /// written before it existed).
    #[serde(default, skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
}

/// How many processes trained a run together, and the threads each computed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranks {
    pub world_size: usize,
    pub threads_per_rank: usize,
}

impl<S: TaskSettings> RunConfig<S> {
    pub fn model_name(&self) -> &'static str {
        self.model.name()
    }

    /// The data set's folder, when training was given one (`--data`).
    pub fn data_dir(&self) -> Option<&Path> {
        self.data.as_deref()
    }

    /// The shares of the training part held out for validation and test.
    pub fn fractions(&self) -> Fractions {
        Fractions {
            val: self.val_fraction,
            test: self.test_fraction,
        }
    }

    /// The class names in index order.
    pub fn class_names(&self) -> Vec<String> {
        self.classes
            .iter()
            .map(|c| S::class_name(c).to_string())
            .collect()
    }

    /// The channels, height and width the network takes.
    pub fn input(&self) -> [usize; 3] {
        self.architecture.input
    }
}

/// A classification run's own settings: none beyond the shared ones (its augmentation and
/// label smoothing sit in `params`, where the first runs wrote them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassificationSettings {}

impl TaskSettings for ClassificationSettings {
    type Model = ClassifierKind;
    type Class = String;

    fn class_name(class: &String) -> &str {
        class
    }

    fn preset_classes() -> Vec<String> {
        FASHION_CLASS_NAMES.iter().map(|s| s.to_string()).collect()
    }
}

/// A segmentation run's own settings: its augmentation and how the loss weighs the classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentationSettings {
    pub augment: Option<FlipScaleCrop>,
    /// Older run folders have no such key: they trained unweighted.
    #[serde(default)]
    pub class_weighting: ClassWeighting,
}

impl TaskSettings for SegmentationSettings {
    type Model = SegmenterKind;
    type Class = ClassSpec;

    fn class_name(class: &ClassSpec) -> &str {
        &class.name
    }

    fn preset_classes() -> Vec<ClassSpec> {
        facade::classes()
    }
}

/// A classification run's `config.json`.
pub type ClassificationConfig = RunConfig<ClassificationSettings>;

/// A segmentation run's `config.json`.
pub type SegmentationConfig = RunConfig<SegmentationSettings>;

impl SegmentationConfig {
    /// The side of the photos the network takes.
    pub fn side(&self) -> usize {
        self.architecture.input[1]
    }
}

/// A run's `config.json` of either task, told apart by its `task` key.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyConfig {
    Classification(ClassificationConfig),
    Segmentation(SegmentationConfig),
}

impl AnyConfig {
    /// Reads `config.json` at `path` as the configuration of the task it names.
    pub fn read(path: &Path) -> Result<Self, RunError> {
        let value: serde_json::Value = read_json(path)?;
        let task = value
            .get("task")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        let typed = |e: serde_json::Error| RunError::bad_file(path, format!("invalid: {e}"));
        match task {
            "fashion" | "classify" => Ok(AnyConfig::Classification(
                serde_json::from_value(value).map_err(typed)?,
            )),
            "facade" | "segment" => Ok(AnyConfig::Segmentation(
                serde_json::from_value(value).map_err(typed)?,
            )),
            other => Err(RunError::bad_file(
                path,
                format!(
                    "unknown task '{other}' (expected \"fashion\", \"classify\", \"facade\" or \"segment\")"
                ),
            )),
        }
    }

    /// The task's name as `config.json` and the command line spell it.
    pub fn task(&self) -> &str {
        match self {
            AnyConfig::Classification(c) => &c.task,
            AnyConfig::Segmentation(c) => &c.task,
        }
    }

    pub fn model_name(&self) -> &str {
        match self {
            AnyConfig::Classification(c) => c.model_name(),
            AnyConfig::Segmentation(c) => c.model_name(),
        }
    }

    pub fn architecture(&self) -> &ModelSpec {
        match self {
            AnyConfig::Classification(c) => &c.architecture,
            AnyConfig::Segmentation(c) => &c.architecture,
        }
    }

    pub fn params(&self) -> &HyperParams {
        match self {
            AnyConfig::Classification(c) => &c.params,
            AnyConfig::Segmentation(c) => &c.params,
        }
    }

    pub fn normalization(&self) -> Normalization {
        match self {
            AnyConfig::Classification(c) => c.normalization,
            AnyConfig::Segmentation(c) => c.normalization,
        }
    }

    /// The classes in index order.
    pub fn class_names(&self) -> Vec<String> {
        match self {
            AnyConfig::Classification(c) => c.class_names(),
            AnyConfig::Segmentation(c) => c.class_names(),
        }
    }

    /// Each class's colour (`#RRGGBB`) for segmenters.
    pub fn class_colors(&self) -> Option<Vec<String>> {
        match self {
            AnyConfig::Classification(_) => None,
            AnyConfig::Segmentation(c) => Some(c.classes.iter().map(ClassSpec::hex).collect()),
        }
    }
}

/// How the per-pixel loss weighs the classes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeighting {
    /// Every pixel counts the same.
    #[default]
    None,
    /// Class c weighs `sqrt(median frequency / frequency of c)` over the training pixels: the
    /// square root of SegNet's median-frequency balancing, which lifts the rare pillar and
    /// balcony without letting their few pixels dominate the gradient.
    SqrtMedianFrequency,
    /// Class c weighs `median frequency / frequency of c`: SegNet's median-frequency
    /// balancing, the rare classes lifted the most.
    MedianFrequency,
}

impl ClassWeighting {
    pub const ALL: [ClassWeighting; 3] = [
        ClassWeighting::None,
        ClassWeighting::SqrtMedianFrequency,
        ClassWeighting::MedianFrequency,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ClassWeighting::None => "none",
            ClassWeighting::SqrtMedianFrequency => "sqrt-median-frequency",
            ClassWeighting::MedianFrequency => "median-frequency",
        }
    }

    /// What each class weighs, for help texts and the report.
    pub fn about(self) -> &'static str {
        match self {
            ClassWeighting::None => "every pixel counts the same",
            ClassWeighting::SqrtMedianFrequency => "sqrt(median frequency / class frequency)",
            ClassWeighting::MedianFrequency => {
                "median frequency / class frequency (SegNet's balancing)"
            }
        }
    }

    /// The weight of each of `classes` classes from the training label maps (ignored pixels
    /// not counted); `None` when unweighted.
    pub fn weights<'a>(
        self,
        classes: usize,
        label_maps: impl Iterator<Item = &'a [u8]>,
    ) -> Option<Vec<f32>> {
        if self == ClassWeighting::None {
            return None;
        }
        let mut counts = vec![0u64; classes];
        for labels in label_maps {
            for &l in labels.iter().filter(|&&l| l != IGNORE_LABEL) {
                counts[l as usize] += 1;
            }
        }
        let mut present: Vec<u64> = counts.iter().copied().filter(|&n| n > 0).collect();
        present.sort_unstable();
        let median = *present.get(present.len() / 2)? as f64;
        Some(
            counts
                .iter()
                .map(|&n| {
                    let ratio = if n == 0 { 0.0 } else { median / n as f64 };
                    match self {
                        ClassWeighting::SqrtMedianFrequency => ratio.sqrt() as f32,
                        _ => ratio as f32,
                    }
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Recipe {
        Recipe {
            epochs: 3,
            batch_size: 64,
            lr: 0.01,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            augment: None,
            label_smoothing: None,
            decoupled_decay: false,
            ema: None,
        }
    }

    #[test]
    fn bad_values_are_refused_naming_the_flag() {
        let cases: [(TrainOptions, &str); 5] = [
            (
                TrainOptions {
                    lr: Some(0.0),
                    ..Default::default()
                },
                "--lr",
            ),
            (
                TrainOptions {
                    lr: Some(f64::NAN),
                    ..Default::default()
                },
                "--lr",
            ),
            (
                TrainOptions {
                    batch_size: Some(0),
                    ..Default::default()
                },
                "--batch-size",
            ),
            (
                TrainOptions {
                    epochs: Some(0),
                    ..Default::default()
                },
                "--epochs",
            ),
            (
                TrainOptions {
                    weight_decay: Some(-1.0),
                    ..Default::default()
                },
                "--weight-decay",
            ),
        ];
        for (args, flag) in cases {
            let err = args.check(&recipe()).unwrap_err();
            assert!(err.to_string().starts_with(flag), "{err}");
            assert!(err.is_bad_input());
        }
    }

    #[test]
    fn resume_keeps_config_and_allows_more_epochs() {
        let saved = TrainOptions::default().check(&recipe()).unwrap();
        let more = TrainOptions {
            epochs: Some(9),
            ..Default::default()
        };
        assert_eq!(more.resume_with(&saved).unwrap().epochs(), 9);
        let other_lr = TrainOptions {
            lr: Some(0.5),
            ..Default::default()
        };
        assert!(
            other_lr
                .resume_with(&saved)
                .unwrap_err()
                .to_string()
                .starts_with("--lr")
        );
    }

    #[test]
    fn a_saved_configuration_is_checked_as_it_is_read() {
        let saved = TrainOptions::default().check(&recipe()).unwrap();
        let text = serde_json::to_string(&saved).unwrap();
        let read: HyperParams = serde_json::from_str(&text).unwrap();
        assert_eq!(read, saved);
        let zero_lr = text.replace("\"lr\":0.01", "\"lr\":0.0");
        assert_ne!(zero_lr, text);
        let err = serde_json::from_str::<HyperParams>(&zero_lr).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--lr: must be a positive number"),
            "{err}"
        );
    }

    /// `--identity-init` is kept in `config.json` (and absent from the files of runs without
    /// it, as from those written before it existed), asked of the engines through `init`, and
    /// a resume that names it for a run that started otherwise is refused.
    #[test]
    fn identity_init_is_recorded_and_kept_on_resume() {
        let plain = TrainOptions::default().check(&recipe()).unwrap();
        let text = serde_json::to_string(&plain).unwrap();
        assert!(!text.contains("identity_init"), "{text}");
        assert!(!plain.init().identity_convs);
        let given = TrainOptions {
            identity_init: true,
            ..Default::default()
        };
        let identity = given.check(&recipe()).unwrap();
        let text = serde_json::to_string(&identity).unwrap();
        assert!(text.contains("\"identity_init\":true"), "{text}");
        let read: HyperParams = serde_json::from_str(&text).unwrap();
        assert_eq!(
            read.init(),
            InitSpec {
                seed: DEFAULT_SEED,
                identity_convs: true
            }
        );
        assert_eq!(given.resume_with(&identity).unwrap(), identity);
        assert!(
            TrainOptions::default()
                .resume_with(&identity)
                .unwrap()
                .init()
                .identity_convs
        );
        let err = given.resume_with(&plain).unwrap_err().to_string();
        assert!(err.starts_with("--identity-init: given differs"), "{err}");
    }

    /// `--whiten` likewise: kept in `config.json` only where given, read back, kept by a
    /// resume, refused when a resume names it for a run that started without it.
    #[test]
    fn whiten_is_recorded_and_kept_on_resume() {
        let plain = TrainOptions::default().check(&recipe()).unwrap();
        assert!(!serde_json::to_string(&plain).unwrap().contains("whiten"));
        assert!(!plain.whiten());
        let given = TrainOptions {
            whiten: true,
            ..Default::default()
        };
        let whitened = given.check(&recipe()).unwrap();
        let text = serde_json::to_string(&whitened).unwrap();
        assert!(text.contains("\"whiten\":true"), "{text}");
        let read: HyperParams = serde_json::from_str(&text).unwrap();
        assert!(read.whiten());
        assert!(
            TrainOptions::default()
                .resume_with(&whitened)
                .unwrap()
                .whiten()
        );
        let err = given.resume_with(&plain).unwrap_err().to_string();
        assert!(err.starts_with("--whiten: given differs"), "{err}");
    }

    #[test]
    fn rare_classes_weigh_more_and_the_median_class_weighs_one() {
        // Pixel counts 400, 100, 25, 100, 0: the median of the present counts is 100.
        let mut labels = vec![0u8; 400];
        labels.extend([1u8; 100]);
        labels.extend([2u8; 25]);
        labels.extend([3u8; 100]);
        // Ignored pixels count for no class.
        labels.extend([IGNORE_LABEL; 1000]);
        let weights = ClassWeighting::SqrtMedianFrequency
            .weights(5, std::iter::once(labels.as_slice()))
            .unwrap();
        assert_eq!(weights, vec![0.5, 1.0, 2.0, 1.0, 0.0]);
        let full = ClassWeighting::MedianFrequency
            .weights(5, std::iter::once(labels.as_slice()))
            .unwrap();
        assert_eq!(full, vec![0.25, 1.0, 4.0, 1.0, 0.0]);
        assert_eq!(
            ClassWeighting::None.weights(5, std::iter::once(labels.as_slice())),
            None
        );
    }
}
