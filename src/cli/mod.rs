//! The `convlab` command line: its arguments ([`args`]), the dispatch to the library, what is
//! printed for the terminal ([`print`]) and the exit status of each error ([`Error`]). The only
//! module that knows clap.

pub mod args;
mod error;
pub mod print;
mod values;

pub use args::Cli;
pub use error::Error;

use args::{Command, FacadeCommand, FashionCommand};

use crate::tasks::{self, Classification, Segmentation};
use crate::{bench, export, predict, report};

fn finished_training(out: &std::path::Path) {
    if let Some(line) = crate::process::peak_rss_line() {
        println!("\n{line}");
    }
    println!("run folder: {}", out.display());
}

pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.task {
        Command::Fashion { command } => match command {
            FashionCommand::Train(args) => {
                let task = Classification {
                    checksums: args.checks.policy(),
                };
                let metrics = tasks::train_command(&task, args.model, &args.train.request()?)?;
                print::classification_tables(&metrics);
                finished_training(&args.train.out);
            }
            FashionCommand::Search(args) => {
                let task = Classification {
                    checksums: args.checks.policy(),
                };
                let board = tasks::search_command(&task, args.model, args.search.options()?)?;
                print::leaderboard(&board);
            }
            FashionCommand::Eval(args) => {
                let task = Classification {
                    checksums: args.checks.policy(),
                };
                let r = &args.run;
                let metrics =
                    tasks::eval_command(&task, &r.run, r.data.as_deref(), &r.compute.compute()?)?;
                print::classification_tables(&metrics);
            }
        },
        Command::Facade { command } => match command {
            FacadeCommand::Train(args) => {
                let metrics =
                    tasks::train_command(&Segmentation, args.model, &args.train.request()?)?;
                print::segmentation_tables(&metrics);
                finished_training(&args.train.out);
            }
            FacadeCommand::Eval(r) => {
                let metrics = tasks::eval_command(
                    &Segmentation,
                    &r.run,
                    r.data.as_deref(),
                    &r.compute.compute()?,
                )?;
                print::segmentation_tables(&metrics);
            }
            FacadeCommand::Search(args) => {
                let board =
                    tasks::search_command(&Segmentation, args.model, args.search.options()?)?;
                print::leaderboard(&board);
            }
            FacadeCommand::Predict(args) => {
                let predictions = predict::predict_command(
                    &args.run,
                    &args.photos,
                    &args.out,
                    args.save_probs,
                    &args.compute.compute()?,
                )?;
                predictions.iter().for_each(print::prediction);
            }
        },
        Command::Export(args) => {
            let written = export::export_command(&args.run, args.format, args.out.as_deref())?;
            println!("{}", written.display());
        }
        Command::Bench(args) => {
            let result = bench::bench_command(&args.options()?)?;
            println!("{}", serde_json::to_string(&result).expect("serialises"));
        }
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
