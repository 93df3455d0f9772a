//! The `convlab` command line: argument types and dispatch to the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::Error;
use crate::data::fashion_mnist::Checksums;
use crate::device::DeviceKind;
use crate::models::ClassifierKind;
use crate::train::classify;
use crate::train::options::TrainArgs;

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
}

#[derive(Subcommand, Debug)]
pub enum FashionCommand {
    /// Train a classifier; writes the run folder (config, metrics, checkpoints, figures).
    Train(FashionTrain),
    /// Evaluate a run's best checkpoint on validation and test; rewrites metrics.json and figures.
    Eval(EvalArgs),
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
pub struct EvalArgs {
    /// The run folder made by `train`.
    #[arg(long)]
    pub run: PathBuf,
    /// Folder holding the data set.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    #[command(flatten)]
    pub checks: ChecksumArgs,
}

pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.task {
        Task::Fashion { command } => match command {
            FashionCommand::Train(args) => {
                classify::train_command(args.model, &args.train, args.checks.policy())?;
                println!("\nrun folder: {}", args.train.out.display());
            }
            FashionCommand::Eval(args) => {
                classify::eval_command(
                    &args.run,
                    args.data.as_deref(),
                    args.device,
                    args.checks.policy(),
                )?;
            }
        },
    }
    Ok(())
}
