//! The `convlab` command line: its arguments ([`args`]), the dispatch to the library, what is
//! printed for the terminal ([`print`], and [`terminal`] for the library's notices and progress
//! bars) and the exit status of each error ([`Error`]). The only module that knows clap or
//! writes to the terminal.

pub mod args;
mod error;
pub mod print;
mod terminal;
mod values;

pub use args::Cli;
pub use error::Error;

use args::{
    ClassifyCommand, ClassifyPredictArgs, Command, FacadeCommand, FashionCommand, PredictArgs,
    RunArgs, SearchCommand, SegmentCommand, TrainArgs,
};

use crate::distributed::World;
use crate::run::{RunDir, RunError};
use crate::tasks::{self, Classification, MetricsOf, ModelOf, Segmentation, Task, TaskError};
use crate::{bench, export, predict, report};

/// `train`: the header, the epochs, the result tables, then where everything went. On the
/// ranks of a data-parallel run only rank 0 prints, and every rank ends with rank 0's status
/// once rank 0 has said why (mpirun ends the job as soon as one rank exits with an error);
/// one rank's own failure during training ends every rank at once (the others would wait
/// for it forever).
fn train<T: Task>(
    task: &T,
    model: Option<ModelOf<T>>,
    args: &TrainArgs,
    tables: fn(&MetricsOf<T>),
) -> Result<(), Error> {
    let world = args.world()?;
    let outcome = train_on_ranks(task, model, args, tables, &world);
    if !world.is_distributed() {
        return outcome;
    }
    let mut status = match &outcome {
        Ok(()) => 0i32,
        Err(e) => e.exit_code(),
    }
    .to_le_bytes()
    .to_vec();
    if let (true, Err(e)) = (world.leads(), &outcome) {
        eprintln!("error: {e}");
    }
    world.broadcast(&mut status);
    match i32::from_le_bytes(status[..4].try_into().expect("4 bytes")) {
        0 => Ok(()),
        code => Err(Error::Printed(code)),
    }
}

fn train_on_ranks<T: Task>(
    task: &T,
    model: Option<ModelOf<T>>,
    args: &TrainArgs,
    tables: fn(&MetricsOf<T>),
    world: &World,
) -> Result<(), Error> {
    let request = args.request(world.clone())?;
    let plan = tasks::plan_training(task, model, &request)?;
    if world.leads() {
        print::training_header(&plan.header());
    }
    let Some(metrics) = plan.train().map_err(|e| alone_or_together(world, e))? else {
        return Ok(());
    };
    tables(&metrics);
    if let Some(line) = crate::process::peak_rss_line() {
        println!("\n{line}");
    }
    print::training_footer(&args.out);
    Ok(())
}

/// An error of training, on every rank or on this one alone: a rank's own failure (I/O, say)
/// ends every rank's process here, since the others would wait for it in their next sum.
fn alone_or_together(world: &World, e: TaskError) -> TaskError {
    match e {
        TaskError::Train(e) if world.size() > 1 && !e.is_shared_by_every_rank() => {
            eprintln!("error: rank {}: {e}", world.rank());
            world.abort(Error::Task(e.into()).exit_code())
        }
        e => e,
    }
}

fn eval<T: Task>(task: &T, r: &RunArgs, tables: fn(&MetricsOf<T>)) -> Result<(), Error> {
    let compute = r.compute.compute()?;
    let metrics = tasks::eval_command(task, &r.run, r.data.as_deref(), &compute, r.tta)?;
    let written = RunDir::new(&r.run).metrics_with(metrics.tta, metrics.precision);
    print::evaluation_views(metrics.tta, metrics.precision, &written);
    tables(&metrics);
    Ok(())
}

fn search<T: Task>(task: &T, model: ModelOf<T>, args: &args::SearchArgs) -> Result<(), Error> {
    match tasks::search_command(task, model, args.options()?, args.mode())? {
        tasks::SearchOutcome::Planned { plan, trials } => print::planned(&plan, trials),
        tasks::SearchOutcome::Submitted(jobs) => print::submitted(&jobs, &args.out),
        tasks::SearchOutcome::Finished(board) => print::leaderboard(&board),
    }
    Ok(())
}

fn segment_photos(args: &PredictArgs) -> Result<(), Error> {
    let predictions = predict::segmentation::predict(
        &args.run,
        &args.photos,
        &args.out,
        args.save_probs,
        args.tta,
        &args.compute.compute()?,
    )?;
    predictions.iter().for_each(print::prediction);
    Ok(())
}

fn classify_images(args: &ClassifyPredictArgs) -> Result<(), Error> {
    let written = predict::classification::predict(
        &args.run,
        &args.images,
        &args.out,
        args.top,
        args.tta,
        &args.compute.compute()?,
    )?;
    print::class_predictions(&written);
    Ok(())
}

/// `--size` as the folder tasks take it: a side of at least one pixel.
fn checked_size(size: usize) -> Result<usize, Error> {
    if size == 0 {
        return Err(
            TaskError::from(RunError::invalid("--size", "must be at least 1, got 0")).into(),
        );
    }
    Ok(size)
}

pub fn run(cli: Cli) -> Result<(), Error> {
    crate::progress::install(Box::new(terminal::Terminal));
    let classification_tables: fn(&_) = print::classification_tables;
    let segmentation_tables: fn(&_) = print::segmentation_tables;
    match cli.task {
        Command::Fashion { command } => match command {
            FashionCommand::Train(args) => {
                let task = Classification::fashion_mnist(args.checks.policy());
                train(&task, args.model, &args.train, classification_tables)?;
            }
            FashionCommand::Search(args) => {
                let task = Classification::fashion_mnist(args.checks.policy());
                search(&task, args.model, &args.search)?;
            }
            FashionCommand::Eval(args) => {
                let task = Classification::fashion_mnist(args.checks.policy());
                eval(&task, &args.run, classification_tables)?;
            }
            FashionCommand::Predict(args) => classify_images(&args)?,
        },
        Command::Facade { command } => match command {
            FacadeCommand::Train(args) => {
                train(
                    &Segmentation::mini_facade(),
                    args.model,
                    &args.train,
                    segmentation_tables,
                )?;
            }
            FacadeCommand::Eval(r) => eval(&Segmentation::mini_facade(), &r, segmentation_tables)?,
            FacadeCommand::Search(args) => {
                search(&Segmentation::mini_facade(), args.model, &args.search)?;
            }
            FacadeCommand::Predict(args) => segment_photos(&args)?,
        },
        Command::Classify { command } => match command {
            ClassifyCommand::Train(args) => {
                let task = Classification::folder(args.size.map(checked_size).transpose()?);
                train(&task, args.model, &args.train, classification_tables)?;
            }
            ClassifyCommand::Eval(r) => {
                eval(&Classification::folder(None), &r, classification_tables)?;
            }
            ClassifyCommand::Search(args) => {
                let task = Classification::folder(args.size.map(checked_size).transpose()?);
                search(&task, args.model, &args.search)?;
            }
            ClassifyCommand::Predict(args) => classify_images(&args)?,
        },
        Command::Segment { command } => match command {
            SegmentCommand::Train(args) => {
                let task = Segmentation::folder(Some(checked_size(args.size)?));
                train(&task, args.model, &args.train, segmentation_tables)?;
            }
            SegmentCommand::Eval(r) => eval(&Segmentation::folder(None), &r, segmentation_tables)?,
            SegmentCommand::Search(args) => {
                let task = Segmentation::folder(Some(checked_size(args.size)?));
                search(&task, args.model, &args.search)?;
            }
            SegmentCommand::Predict(args) => segment_photos(&args)?,
        },
        Command::Export(args) => {
            let written = export::export_command(&args.run, args.format, args.out.as_deref())?;
            println!("{}", written.display());
        }
        Command::Bench(args) => {
            let result = bench::bench_command(&args.options()?)?;
            println!("{}", serde_json::to_string(&result).expect("serialises"));
        }
        Command::Search { command } => match command {
            SearchCommand::Trial { dir, index, rung } => {
                match tasks::trial_command(&dir, index, rung)? {
                    Some(result) => print::trial(&result),
                    None => println!(
                        "rung {rung} keeps fewer than {} trials: nothing to train",
                        index + 1
                    ),
                }
            }
            SearchCommand::Collect { dir, close_rung } => {
                print::leaderboard(&tasks::collect_command(&dir, close_rung)?);
            }
        },
        Command::Report(args) => {
            let compute = args.compute.compute()?;
            let written =
                report::report_command(&args.runs, &args.out, args.photos.as_deref(), &compute)?;
            for run in &written.runs {
                println!("{}", print::run_summary(run));
            }
            println!("report: {}", written.page.display());
        }
    }
    Ok(())
}
