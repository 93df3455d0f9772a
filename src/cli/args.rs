//! Every command-line argument: the clap structures, and their conversion into the library's
//! own (unchecked) option types, which each area checks before any work starts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::bench::{BenchOptions, Measure};
use crate::data::augment::FlipOrder;
use crate::data::fashion_mnist::Checksums;
use crate::distributed::{Launch, World};
use crate::engine::{Compute, DeviceKind, EngineError, EngineKind, Precision, Tta};
use crate::export::ExportFormat;
use crate::models::{ClassifierKind, SegmenterKind};
use crate::run::config::{ClassWeighting, DEFAULT_SEED, TrainOptions};
use crate::run::schedule::Schedule;
use crate::tasks::{SearchMode, TaskError};
use crate::train::{Clock, TrainRequest};

use super::Error;
use crate::train::search::{SearchOptions, SlurmOptions};

#[derive(Parser, Debug)]
#[command(
    name = "convlab",
    version,
    about = "Train, evaluate and explain convolutional networks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub task: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fashion-MNIST image classification.
    Fashion {
        #[command(subcommand)]
        command: FashionCommand,
    },
    /// Mini Facade semantic segmentation (others, facade, pillar, window, balcony).
    Facade {
        #[command(subcommand)]
        command: FacadeCommand,
    },
    /// Classification of your own images: a folder of class folders (DIR/<class>/*.png, or
    /// DIR/train/<class>/... with optional val/ and test/).
    Classify {
        #[command(subcommand)]
        command: ClassifyCommand,
    },
    /// Segmentation of your own photos: DIR/classes.json, DIR/train/images/*.jpg and
    /// DIR/train/masks/*.png (optional val/ and test/ alike).
    Segment {
        #[command(subcommand)]
        command: SegmentCommand,
    },
    /// Write an HTML report (index.html + images) of finished runs of either task.
    Report(ReportArgs),
    /// Write a run's best checkpoint as ONNX or as safetensors in PyTorch's layout.
    Export(ExportArgs),
    /// Time one network (training steps, inference, an epoch, or time to 90% accuracy); prints
    /// one JSON line. `bench/compare.py` runs it beside PyTorch.
    Bench(BenchArgs),
    /// One trial of a planned search (`TASK search --plan-only`), or its leaderboard: for
    /// running the trials anywhere that sees the search folder, e.g. as a Slurm job array.
    Search {
        #[command(subcommand)]
        command: SearchCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum SearchCommand {
    /// Run the K-th trial of rung R of the plan in DIR (K from 0, as Slurm's array indices
    /// count; in rung 0 trial K + 1, in later rungs the K-th survivor); a trial run again
    /// resumes, one that finished the rung is left as it is.
    Trial {
        /// The search folder (holding plan.json).
        dir: PathBuf,
        /// The trial, counted from 0 (e.g. $SLURM_ARRAY_TASK_ID).
        #[arg(long)]
        index: usize,
        /// The rung (with --halving; 0 is the first).
        #[arg(long, default_value_t = 0)]
        rung: usize,
    },
    /// Write DIR/leaderboard.csv from the trials that have finished (safe while others run).
    Collect {
        /// The search folder (holding plan.json).
        dir: PathBuf,
        /// Close rung R first: its best go on to rung R + 1 (DIR/survivors-{R+1}.json).
        #[arg(long, value_name = "R")]
        close_rung: Option<usize>,
    },
}

#[derive(Subcommand, Debug)]
pub enum FashionCommand {
    /// Train a classifier; writes the run folder (config, metrics, checkpoints, figures).
    Train(FashionTrain),
    /// Evaluate a run's best checkpoint on validation and test; rewrites metrics.json and figures.
    Eval(FashionEval),
    /// Random hyper-parameter search: short runs scored on validation, a leaderboard.
    Search(FashionSearch),
    /// Classify any images (PNG or JPEG, any size) with a trained run; writes predictions.csv.
    Predict(ClassifyPredictArgs),
}

#[derive(Subcommand, Debug)]
pub enum ClassifyCommand {
    /// Train a classifier on --data DIR; writes the run folder (config, metrics, checkpoints,
    /// figures).
    Train(ClassifyTrain),
    /// Evaluate a run's best checkpoint on validation and test (the run remembers its data).
    Eval(RunArgs),
    /// Random hyper-parameter search on --data DIR: short runs scored on validation.
    Search(ClassifySearch),
    /// Classify any images with a trained run; writes predictions.csv.
    Predict(ClassifyPredictArgs),
}

#[derive(Subcommand, Debug)]
pub enum SegmentCommand {
    /// Train a segmenter on --data DIR; writes the run folder.
    Train(SegmentTrain),
    /// Evaluate a run's best checkpoint on validation and test (the run remembers its data).
    Eval(RunArgs),
    /// Segment any photos with a trained run.
    Predict(PredictArgs),
    /// Random hyper-parameter search on --data DIR: short runs scored by validation mAP.
    Search(SegmentSearch),
}

#[derive(Subcommand, Debug)]
pub enum FacadeCommand {
    /// Train a segmenter; writes the run folder (config, metrics, checkpoints, figures).
    Train(FacadeTrain),
    /// Evaluate a run's best checkpoint on validation and test (AP, mAP, IoU, pixel accuracy).
    Eval(RunArgs),
    /// Segment any photos (JPEG or PNG, any size) with a trained run.
    Predict(PredictArgs),
    /// Random hyper-parameter search: short runs scored by validation mAP, a leaderboard.
    Search(FacadeSearch),
}

/// Where and with which engine to compute.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct ComputeArgs {
    /// Where to compute.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// The engine: cpu (convlab's own, the default on the CPU) or burn (the reference, and the
    /// only one on a GPU). Either reads a run of either.
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
    /// The products' precision: fp32, or bf16 operands with fp32 sums in the convolutions and
    /// linear layers (PyTorch's autocast; convlab's CPU engine only). Checkpoints stay fp32.
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: Precision,
}

impl ComputeArgs {
    /// The engine, device and precision, or why they cannot be used.
    pub fn compute(&self) -> Result<Compute, EngineError> {
        Compute::new(self.engine, self.device, self.precision)
    }
}

#[derive(Args, Debug)]
pub struct FashionTrain {
    /// The network to train (default: base; with --resume, the run's).
    #[arg(long, value_enum)]
    pub model: Option<ClassifierKind>,
    #[command(flatten)]
    pub train: TrainArgs,
    #[command(flatten)]
    pub checks: ChecksumArgs,
}

#[derive(Args, Debug)]
pub struct FacadeTrain {
    /// The network to train (default: fcn; with --resume, the run's).
    #[arg(long, value_enum)]
    pub model: Option<SegmenterKind>,
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Args, Debug)]
pub struct ClassifyTrain {
    /// The network to train, built for your images' channels, size and classes (default: base;
    /// with --resume, the run's).
    #[arg(long, value_enum)]
    pub model: Option<ClassifierKind>,
    /// Resize every image to N x N (default: the images' own size, when they all share one).
    #[arg(long, value_name = "N")]
    pub size: Option<usize>,
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Args, Debug)]
pub struct SegmentTrain {
    /// The network to train (default: fcn; with --resume, the run's).
    #[arg(long, value_enum)]
    pub model: Option<SegmenterKind>,
    /// Resize every photo and mask to N x N (a multiple of 8 for fcn, of 32 for unet).
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub size: usize,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// Options shared by every `train` command (the model is chosen by each task's command).
#[derive(Args, Clone, Debug, Default)]
pub struct TrainArgs {
    /// Number of epochs (default depends on the model).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per optimiser step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate.
    // Negative numbers reach convlab's own check (`--lr: must be a positive number, got -1`)
    // instead of clap's "unexpected argument '-1'".
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// L2 weight decay added to the gradient (PyTorch's Adam `weight_decay`).
    #[arg(long, allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule.
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// Seed for the split, initial weights, shuffling, augmentation and dropout.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train on the first N training images only (a quick run).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Stop when the validation score has not improved for N epochs (the best checkpoint is
    /// kept and evaluated, as Keras' and Lightning's early stopping).
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// Random erasing of training images with probability P (Zhong et al.: area 2-40% of the
    /// image, aspect 0.3-3.3, random pixel values), after the recipe's crop and flip;
    /// classifiers only.
    #[arg(long, value_name = "P", allow_negative_numbers = true)]
    pub random_erasing: Option<f64>,
    /// Fit the schedule to MINUTES of wall time: after the first epoch, train as many epochs
    /// as fit (at most --epochs when given), kept in config.json.
    #[arg(long, value_name = "MINUTES", allow_negative_numbers = true)]
    pub budget: Option<f64>,
    /// Label smoothing A of the training loss (PyTorch's `CrossEntropyLoss(label_smoothing=A)`;
    /// 0 turns the recipe's off); classifiers only.
    #[arg(long, value_name = "A", allow_negative_numbers = true)]
    pub label_smoothing: Option<f32>,
    /// Keep an exponential moving average of the weights with this decay (0.999: about the last
    /// 1000 steps) and validate, checkpoint, evaluate and export it as the model; the live
    /// weights train on and are checkpointed beside it. 0 turns the recipe's off.
    #[arg(long, value_name = "DECAY", allow_negative_numbers = true)]
    pub ema: Option<f32>,
    /// How a segmenter's loss weighs its classes (default: the model's recipe); segmenters
    /// only.
    #[arg(long, value_enum, value_name = "WEIGHTING")]
    pub class_weighting: Option<ClassWeighting>,
    /// Which training images an epoch flips, for models whose recipe flips them (default:
    /// random).
    #[arg(long, value_enum, value_name = "ORDER")]
    pub flips: Option<FlipOrder>,
    /// Train on random N x N crops of the augmented photos (validation and test see whole
    /// photos); N a multiple of the model's (32 for unet, 8 for fcn) and at most the photos'
    /// side; segmenters only.
    #[arg(long, value_name = "N")]
    pub crop: Option<usize>,
    /// Start each convolution's first filters as the identity (filter d passes input channel
    /// d through its centre tap: PyTorch's `nn.init.dirac_(w[:w.size(1)])`, as the fast
    /// CIFAR-10 recipes do); the rest keep PyTorch's default initialisation.
    #[arg(long)]
    pub identity_init: bool,
    /// Freeze the first convolution's leading filters as a patch-whitening layer: the
    /// eigenvectors of the training images' patch second moment scaled to unit variance, each
    /// also negated (the fast CIFAR-10 recipes' first layer); its other filters train.
    #[arg(long)]
    pub whiten: bool,
    /// Continue the run in --out from its last checkpoint (its config.json is reused; only
    /// --epochs may be raised).
    #[arg(long)]
    pub resume: bool,
    /// The run folder.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// Folder holding the data set (default: $CONVLAB_DATA/<set>, then ./data/<set>).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub compute: ComputeArgs,
    /// Train one run on the ranks a launcher started (`mpirun -np N convlab ... --distributed
    /// mpi`): each computes its share of every batch, on the CPU engine.
    #[arg(long, value_enum)]
    pub distributed: Option<Launch>,
}

impl TrainArgs {
    /// The ranks `--distributed` connects (a single process without it).
    pub fn world(&self) -> Result<World, Error> {
        Ok(World::start(self.distributed).map_err(TaskError::from)?)
    }

    /// The request, for the ranks of `world` (connected first, so that an error here is
    /// printed once, by rank 0).
    pub fn request(&self, world: World) -> Result<TrainRequest, Error> {
        Ok(TrainRequest {
            options: TrainOptions {
                epochs: self.epochs,
                batch_size: self.batch_size,
                lr: self.lr,
                weight_decay: self.weight_decay,
                schedule: self.schedule,
                seed: self.seed,
                limit: self.limit,
                patience: self.patience,
                random_erasing: self.random_erasing,
                budget: self.budget,
                label_smoothing: self.label_smoothing,
                ema: self.ema,
                class_weighting: self.class_weighting,
                flips: self.flips,
                crop: self.crop,
                identity_init: self.identity_init,
                whiten: self.whiten,
            },
            resume: self.resume,
            out: self.out.clone(),
            data: self.data.clone(),
            compute: self.compute.compute()?,
            world,
            clock: Clock::wall(),
        })
    }
}

#[derive(Args, Debug)]
pub struct FashionSearch {
    #[arg(long, value_enum, default_value = "base")]
    pub model: ClassifierKind,
    #[command(flatten)]
    pub search: SearchArgs,
    #[command(flatten)]
    pub checks: ChecksumArgs,
}

#[derive(Args, Debug)]
pub struct FacadeSearch {
    #[arg(long, value_enum, default_value = "fcn")]
    pub model: SegmenterKind,
    #[command(flatten)]
    pub search: SearchArgs,
}

#[derive(Args, Debug)]
pub struct ClassifySearch {
    #[arg(long, value_enum, default_value = "base")]
    pub model: ClassifierKind,
    /// Resize every image to N x N (default: the images' own size).
    #[arg(long, value_name = "N")]
    pub size: Option<usize>,
    #[command(flatten)]
    pub search: SearchArgs,
}

#[derive(Args, Debug)]
pub struct SegmentSearch {
    #[arg(long, value_enum, default_value = "fcn")]
    pub model: SegmenterKind,
    /// Resize every photo and mask to N x N.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub size: usize,
    #[command(flatten)]
    pub search: SearchArgs,
}

#[derive(Args, Clone, Debug)]
pub struct SearchArgs {
    /// Number of trials.
    #[arg(long, default_value_t = 8)]
    pub trials: usize,
    /// Epochs per trial.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Folder for the trials' runs and the leaderboard.
    #[arg(long, default_value = "runs/search")]
    pub out: PathBuf,
    /// Learning-rate range (log-uniform).
    #[arg(long, num_args = 2, value_names = ["MIN", "MAX"], default_values_t = [1e-4, 1e-2],
          allow_negative_numbers = true)]
    pub lr_range: Vec<f64>,
    /// Weight-decay range (log-uniform).
    #[arg(long, num_args = 2, value_names = ["MIN", "MAX"], default_values_t = [1e-6, 1e-3],
          allow_negative_numbers = true)]
    pub weight_decay_range: Vec<f64>,
    /// Batch sizes to draw from.
    #[arg(long, value_delimiter = ',', default_values_t = [32, 64, 128])]
    pub batch_sizes: Vec<usize>,
    /// Seed for the draws (each trial trains with this seed too, so they differ only by their
    /// hyper-parameters).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Train each trial on the first N training images only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Folder holding the data set.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Successive halving: every trial trains --min-epochs, then the best 1/ETA of each rung
    /// continue for ETA times as many epochs, up to --epochs.
    #[arg(long, value_name = "ETA")]
    pub halving: Option<usize>,
    /// With --halving, the epochs of the first rung.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_epochs: usize,
    /// Write the plan (OUT/plan.json) and stop: run its trials with `convlab search trial`.
    #[arg(long, conflicts_with = "slurm")]
    pub plan_only: bool,
    /// Submit the trials as Slurm job arrays (one per rung) and a collect job after each, then
    /// return. OUT, the data and this binary must be on storage every node sees.
    #[arg(long)]
    pub slurm: bool,
    /// With --slurm: at most M trials at once.
    #[arg(long, value_name = "M", requires = "slurm")]
    pub max_parallel: Option<usize>,
    /// With --slurm: the partition.
    #[arg(long, value_name = "P", requires = "slurm")]
    pub partition: Option<String>,
    /// With --slurm: a rung-0 trial's time limit (Slurm's format, e.g. 30 or 2:00:00); later
    /// rungs get it scaled by the epochs they add.
    #[arg(long, value_name = "T", requires = "slurm")]
    pub time: Option<String>,
    /// With --slurm: CPUs per trial, the threads it computes with.
    #[arg(long, value_name = "C", default_value_t = 1)]
    pub cpus_per_task: usize,
    /// With --slurm: another sbatch option for every job (e.g. --sbatch-arg=--mem=4G).
    #[arg(
        long,
        value_name = "ARG",
        requires = "slurm",
        allow_hyphen_values = true
    )]
    pub sbatch_arg: Vec<String>,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

impl SearchArgs {
    /// Where the trials run.
    pub fn mode(&self) -> SearchMode {
        if self.plan_only {
            SearchMode::PlanOnly
        } else if self.slurm {
            SearchMode::Slurm(SlurmOptions {
                max_parallel: self.max_parallel,
                partition: self.partition.clone(),
                time: self.time.clone(),
                cpus_per_task: self.cpus_per_task,
                sbatch_args: self.sbatch_arg.clone(),
            })
        } else {
            SearchMode::Here
        }
    }

    pub fn options(&self) -> Result<SearchOptions, EngineError> {
        Ok(SearchOptions {
            trials: self.trials,
            epochs: self.epochs,
            out: self.out.clone(),
            lr_range: self.lr_range.clone(),
            weight_decay_range: self.weight_decay_range.clone(),
            batch_sizes: self.batch_sizes.clone(),
            seed: self.seed,
            limit: self.limit,
            data: self.data.clone(),
            compute: self.compute.compute()?,
            halving: self.halving,
            min_epochs: self.min_epochs,
        })
    }
}

#[derive(Args, Debug)]
pub struct ChecksumArgs {
    /// Accept IDX files other than the official Fashion-MNIST ones (e.g. MNIST, your own data
    /// in the same format): skips the SHA-256 check.
    #[arg(long)]
    pub skip_checksums: bool,
}

impl ChecksumArgs {
    pub fn policy(&self) -> Checksums {
        if self.skip_checksums {
            Checksums::Skip
        } else {
            Checksums::Verify
        }
    }
}

#[derive(Args, Debug)]
pub struct FashionEval {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub checks: ChecksumArgs,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The run folder made by `train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Folder holding the data set.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Test-time augmentation: `flip` averages the outputs for each image and its mirror
    /// image, `flip-shift` also each moved by one pixel (ten views); the metrics go to
    /// metrics_tta_<VIEWS>.json, leaving metrics.json as it is.
    #[arg(long, value_name = "VIEWS", default_value = "none")]
    pub tta: Tta,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Args, Debug)]
pub struct ClassifyPredictArgs {
    /// The run folder made by `train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Images to classify (PNG or JPEG, any size and colour type).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Folder for predictions.csv.
    #[arg(long, default_value = "predictions")]
    pub out: PathBuf,
    /// How many of the most probable classes to print and write per image.
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub top: usize,
    /// Test-time augmentation: `flip` averages the outputs for each image and its mirror image,
    /// `flip-shift` also each moved by one pixel (ten views).
    #[arg(long, value_name = "VIEWS", default_value = "none")]
    pub tta: Tta,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The run folder made by `facade train` or `segment train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Photos to segment.
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
    /// Folder for NAME_mask.png, NAME_color.png, NAME_overlay.png (and NAME_probs.npy).
    #[arg(long, default_value = "predictions")]
    pub out: PathBuf,
    /// Also write the softmax probabilities as NAME_probs.npy (float32, [classes, side, side]).
    #[arg(long)]
    pub save_probs: bool,
    /// Test-time augmentation: `flip` averages the outputs for each image and its mirror image,
    /// `flip-shift` also each moved by one pixel (ten views).
    #[arg(long, value_name = "VIEWS", default_value = "none")]
    pub tta: Tta,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run folders made by any `train` command (and evaluated).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Folder for index.html and its images.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// Also segment the photos in this folder with each segmentation run.
    #[arg(long)]
    pub photos: Option<PathBuf>,
    /// Where and how to segment --photos.
    #[command(flatten)]
    pub compute: ComputeArgs,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The run folder made by `train` (its best checkpoint is exported).
    #[arg(long)]
    pub run: PathBuf,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The file to write (default: model.onnx or model.safetensors in the run folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The network: base, wide, own, res, wres (Fashion-MNIST) or fcn, unet (Mini Facade); not
    /// needed for `--measure peak`.
    #[arg(long)]
    pub network: Option<String>,
    #[arg(long, value_enum, default_value = "steps")]
    pub measure: Measure,
    /// Timed steps (after the warm-up).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Images per step (default: 64 for Fashion-MNIST networks, 8 for Mini Facade ones).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// time-to-90: the validation accuracy to reach.
    #[arg(long, default_value_t = 0.90)]
    pub target: f64,
    /// time-to-90: optimiser steps between validations (211 = a quarter epoch at batch 64).
    #[arg(long, default_value_t = 211)]
    pub eval_every: usize,
    /// time-to-90: give up after this many epochs.
    #[arg(long, default_value_t = 10)]
    pub max_epochs: usize,
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

impl BenchArgs {
    pub fn options(&self) -> Result<BenchOptions, EngineError> {
        Ok(BenchOptions {
            network: self.network.clone(),
            measure: self.measure,
            steps: self.steps,
            warmup: self.warmup,
            batch_size: self.batch_size,
            target: self.target,
            eval_every: self.eval_every,
            max_epochs: self.max_epochs,
            data: self.data.clone(),
            compute: self.compute.compute()?,
        })
    }
}
