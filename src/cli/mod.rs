//! The `convlab` command line: argument types and dispatch to the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::Error;
use crate::data::fashion_mnist::Checksums;
use crate::device::{Compute, DeviceKind, EngineKind};
use crate::models::{ClassifierKind, SegmenterKind};
use crate::train::options::TrainArgs;
use crate::train::search::SearchArgs;
use crate::train::{classify, segment};
use crate::{predict, report};

#[derive(Parser, Debug)]
#[command(
    name = "convlab",
    version,
    about = "Train, evaluate and explain convolutional networks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub task: Task,
}

#[derive(Subcommand, Debug)]
pub enum Task {
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
    /// Write an HTML report (index.html + images) of finished runs of either task.
    Report(ReportArgs),
    /// Time one network (training steps, inference, an epoch, or time to 90% accuracy); prints
    /// one JSON line. `bench/compare.py` runs it beside PyTorch.
    Bench(crate::bench::BenchArgs),
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run folders made by `fashion train` or `facade train` (and evaluated).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Folder for index.html and its images.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// Also segment the photos in this folder with each segmentation run.
    #[arg(long)]
    pub photos: Option<PathBuf>,
    /// Where to run the segmentation of --photos.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// The engine for --photos: cpu (the default on the CPU) or burn.
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
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

#[derive(Args, Debug)]
pub struct FacadeTrain {
    /// The network to train.
    #[arg(long, value_enum, default_value = "fcn")]
    pub model: SegmenterKind,
    #[command(flatten)]
    pub train: TrainArgs,
}

#[derive(Args, Debug)]
pub struct FacadeSearch {
    #[arg(long, value_enum, default_value = "fcn")]
    pub model: SegmenterKind,
    #[command(flatten)]
    pub search: SearchArgs,
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
pub struct PredictArgs {
    /// The run folder made by `facade train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Photos to segment.
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
    /// Folder for NAME_mask.png, NAME_color.png, NAME_overlay.png (and NAME_probs.npy).
    #[arg(long, default_value = "predictions")]
    pub out: PathBuf,
    /// Also write the softmax probabilities as NAME_probs.npy (float32, [5, 256, 256]).
    #[arg(long)]
    pub save_probs: bool,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// The engine: cpu (the default on the CPU) or burn.
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
}

#[derive(Subcommand, Debug)]
pub enum FashionCommand {
    /// Train a classifier; writes the run folder (config, metrics, checkpoints, figures).
    Train(FashionTrain),
    /// Evaluate a run's best checkpoint on validation and test; rewrites metrics.json and figures.
    Eval(FashionEval),
    /// Random hyper-parameter search: short runs scored on validation, a leaderboard.
    Search(FashionSearch),
}

#[derive(Args, Debug)]
pub struct FashionTrain {
    /// The network to train.
    #[arg(long, value_enum, default_value = "base")]
    pub model: ClassifierKind,
    #[command(flatten)]
    pub train: TrainArgs,
    #[command(flatten)]
    pub checks: ChecksumArgs,
}

#[derive(Args, Debug)]
pub struct ChecksumArgs {
    /// Accept IDX files other than the official Fashion-MNIST ones (e.g. MNIST, your own data
    /// in the same format): skips the SHA-256 check.
    #[arg(long)]
    pub skip_checksums: bool,
}

impl ChecksumArgs {
    fn policy(&self) -> Checksums {
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
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// The engine: cpu (the default on the CPU) or burn. Either evaluates a run of either.
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
}

fn compute(engine: Option<EngineKind>, device: DeviceKind) -> Result<Compute, Error> {
    Ok(Compute::new(engine, device)?)
}

fn finished_training(args: &TrainArgs) {
    if let Some(line) = crate::process::peak_rss_line() {
        println!("\n{line}");
    }
    println!("run folder: {}", args.out.display());
}

pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.task {
        Task::Fashion { command } => match command {
            FashionCommand::Train(args) => {
                classify::train_command(args.model, &args.train, args.checks.policy())?;
                finished_training(&args.train);
            }
            FashionCommand::Search(args) => {
                classify::search_command(args.model, &args.search, args.checks.policy())?;
            }
            FashionCommand::Eval(args) => {
                let r = &args.run;
                classify::eval_command(
                    &r.run,
                    r.data.as_deref(),
                    &compute(r.engine, r.device)?,
                    args.checks.policy(),
                )?;
            }
        },
        Task::Facade { command } => match command {
            FacadeCommand::Train(args) => {
                segment::train_command(args.model, &args.train)?;
                finished_training(&args.train);
            }
            FacadeCommand::Eval(r) => {
                segment::eval_command(&r.run, r.data.as_deref(), &compute(r.engine, r.device)?)?;
            }
            FacadeCommand::Search(args) => {
                segment::search_command(args.model, &args.search)?;
            }
            FacadeCommand::Predict(args) => {
                predict::predict_command(
                    &args.run,
                    &args.photos,
                    &args.out,
                    args.save_probs,
                    &compute(args.engine, args.device)?,
                )?;
            }
        },
        Task::Bench(args) => {
            crate::bench::bench_command(&args)?;
        }
        Task::Report(args) => {
            let compute = compute(args.engine, args.device)?;
            report::report_command(&args.runs, &args.out, args.photos.as_deref(), &compute)?;
        }
    }
    Ok(())
}
