//! Random hyper-parameter search shared by every task: learning rate and weight decay drawn
//! log-uniformly, batch size from a list; each trial a short run scored on the validation split;
//! a leaderboard (`leaderboard.csv`, best first) and the command that re-runs the best trial.

use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::TrainError;
use super::options::{DEFAULT_SEED, TrainArgs};
use crate::Error;
use crate::device::{DeviceKind, EngineKind};
use crate::fsutil::write_atomic;

#[derive(clap::Args, Clone, Debug)]
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
    #[arg(long, num_args = 2, value_names = ["MIN", "MAX"], default_values_t = [1e-4, 1e-2])]
    pub lr_range: Vec<f64>,
    /// Weight-decay range (log-uniform).
    #[arg(long, num_args = 2, value_names = ["MIN", "MAX"], default_values_t = [1e-6, 1e-3])]
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
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// The engine: cpu (the default on the CPU) or burn.
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
}

/// One drawn set of hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Trial {
    pub index: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
}

/// A finished trial: its best validation score and when it was reached.
#[derive(Clone, Debug)]
pub struct TrialResult {
    pub trial: Trial,
    pub score: f64,
    pub best_epoch: usize,
    pub seconds: f64,
    pub run: PathBuf,
}

impl SearchArgs {
    pub fn validate(&self) -> Result<(), TrainError> {
        let range = |flag: &str, r: &[f64]| {
            if r.len() == 2 && r[0] > 0.0 && r[0] <= r[1] && r[1].is_finite() {
                Ok(())
            } else {
                Err(TrainError::invalid(
                    flag,
                    format!("needs 0 < MIN <= MAX, got {r:?}"),
                ))
            }
        };
        range("--lr-range", &self.lr_range)?;
        range("--weight-decay-range", &self.weight_decay_range)?;
        if self.trials == 0 {
            return Err(TrainError::invalid("--trials", "must be at least 1"));
        }
        if self.epochs == 0 {
            return Err(TrainError::invalid("--epochs", "must be at least 1"));
        }
        if self.batch_sizes.is_empty() || self.batch_sizes.contains(&0) {
            return Err(TrainError::invalid(
                "--batch-sizes",
                "must be positive sizes",
            ));
        }
        Ok(())
    }

    /// The trials, drawn from `seed`.
    pub fn draw(&self) -> Vec<Trial> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let log_uniform =
            |rng: &mut ChaCha8Rng, r: &[f64]| (rng.random_range(r[0].ln()..=r[1].ln())).exp();
        (1..=self.trials)
            .map(|index| Trial {
                index,
                lr: log_uniform(&mut rng, &self.lr_range),
                weight_decay: log_uniform(&mut rng, &self.weight_decay_range),
                batch_size: self.batch_sizes[rng.random_range(0..self.batch_sizes.len())],
            })
            .collect()
    }

    /// The training options of one trial.
    pub fn trial_args(&self, trial: &Trial) -> TrainArgs {
        TrainArgs {
            epochs: Some(self.epochs),
            batch_size: Some(trial.batch_size),
            lr: Some(trial.lr),
            weight_decay: Some(trial.weight_decay),
            seed: Some(self.seed),
            limit: self.limit,
            out: self.out.join(format!("trial-{:02}", trial.index)),
            data: self.data.clone(),
            device: self.device,
            engine: self.engine,
            ..Default::default()
        }
    }
}

/// Runs every trial with `train` (which returns the best validation score and its epoch), then
/// writes and prints the leaderboard and the `convlab TASK train` command (with `rerun_epochs`)
/// that trains the best trial longer.
pub fn run(
    args: &SearchArgs,
    task: &str,
    model: &str,
    rerun_epochs: usize,
    score_name: &str,
    mut train: impl FnMut(&TrainArgs) -> Result<(f64, usize), Error>,
) -> Result<Vec<TrialResult>, Error> {
    args.validate()?;
    let mut results = Vec::new();
    for trial in args.draw() {
        eprintln!(
            "trial {}/{}: lr {:.3e}, weight decay {:.3e}, batch size {}",
            trial.index, args.trials, trial.lr, trial.weight_decay, trial.batch_size
        );
        let started = Instant::now();
        let trial_args = args.trial_args(&trial);
        let (score, best_epoch) = train(&trial_args)?;
        results.push(TrialResult {
            trial,
            score,
            best_epoch,
            seconds: started.elapsed().as_secs_f64(),
            run: trial_args.out,
        });
        write_leaderboard(args, score_name, &results)?;
    }
    let board = sorted(&results);
    println!(
        "\n{:>5} {:>10} {:>12} {:>6} {:>10} {:>6} {:>8}",
        "trial", "lr", "weight_decay", "batch", score_name, "epoch", "seconds"
    );
    for r in &board {
        println!(
            "{:>5} {:>10.3e} {:>12.3e} {:>6} {:>10.4} {:>6} {:>8.1}",
            r.trial.index,
            r.trial.lr,
            r.trial.weight_decay,
            r.trial.batch_size,
            r.score,
            r.best_epoch,
            r.seconds
        );
    }
    if let Some(best) = board.first() {
        let t = &best.trial;
        println!(
            "\nbest: trial {} ({}); to train it longer:\n  convlab {task} train --model {model} --lr {:.3e} --weight-decay {:.3e} --batch-size {} --epochs {rerun_epochs} --out runs/{model}-best",
            t.index,
            best.run.display(),
            t.lr,
            t.weight_decay,
            t.batch_size
        );
    }
    Ok(board)
}

/// The highest `(score, epoch)`; NaN scores never win.
pub fn best_of(scores: impl Iterator<Item = (f64, usize)>) -> (f64, usize) {
    scores
        .filter(|(s, _)| !s.is_nan())
        .fold((f64::NEG_INFINITY, 0), |best, next| {
            if next.0 > best.0 { next } else { best }
        })
}

fn sorted(results: &[TrialResult]) -> Vec<TrialResult> {
    let mut board = results.to_vec();
    board.sort_by(|a, b| b.score.total_cmp(&a.score));
    board
}

fn write_leaderboard(
    args: &SearchArgs,
    score_name: &str,
    results: &[TrialResult],
) -> Result<(), TrainError> {
    let mut csv =
        format!("rank,trial,lr,weight_decay,batch_size,{score_name},best_epoch,seconds,run\n");
    for (rank, r) in sorted(results).iter().enumerate() {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{:.1},{}\n",
            rank + 1,
            r.trial.index,
            r.trial.lr,
            r.trial.weight_decay,
            r.trial.batch_size,
            r.score,
            r.best_epoch,
            r.seconds,
            r.run.display()
        ));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| TrainError::NotWritable {
        path: args.out.clone(),
        reason: e.to_string(),
    })?;
    let path = args.out.join("leaderboard.csv");
    write_atomic(&path, csv.as_bytes()).map_err(|e| TrainError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        search: SearchArgs,
    }

    #[test]
    fn draws_are_seeded_and_inside_the_ranges() {
        let args = Wrapper::parse_from([
            "x",
            "--trials",
            "50",
            "--lr-range",
            "1e-4",
            "1e-2",
            "--batch-sizes",
            "8,16",
        ])
        .search;
        let trials = args.draw();
        assert_eq!(trials, args.draw());
        assert!(
            trials
                .iter()
                .all(|t| (1e-4..=1e-2).contains(&t.lr) && (1e-6..=1e-3).contains(&t.weight_decay))
        );
        assert!(trials.iter().all(|t| [8, 16].contains(&t.batch_size)));
        // Log-uniform: about half the draws fall below the geometric middle (1e-3).
        let low = trials.iter().filter(|t| t.lr < 1e-3).count();
        assert!((15..=35).contains(&low), "{low}");
    }

    #[test]
    fn bad_ranges_are_refused() {
        let args = Wrapper::parse_from(["x", "--lr-range", "1e-2", "1e-4"]).search;
        assert!(
            args.validate()
                .unwrap_err()
                .to_string()
                .starts_with("--lr-range")
        );
        let args = Wrapper::parse_from(["x", "--trials", "0"]).search;
        assert!(args.validate().is_err());
    }
}
