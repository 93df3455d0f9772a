//! Random hyper-parameter search shared by every task: learning rate and weight decay drawn
//! log-uniformly, batch size from a list; each trial a short run scored on the validation split;
//! a leaderboard (`leaderboard.csv`, best first) and the command that re-runs the best trial.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{TrainError, TrainRequest};
use crate::engine::Compute;
use crate::fsutil::write_atomic;
use crate::run::RunError;
use crate::run::config::TrainOptions;

/// A search as asked for: unchecked (see [`SearchOptions::check`]).
#[derive(Clone, Debug)]
pub struct SearchOptions {
    pub trials: usize,
    /// Epochs per trial.
    pub epochs: usize,
    /// Folder for the trials' runs and the leaderboard.
    pub out: PathBuf,
    /// Learning-rate range (log-uniform): `[min, max]`.
    pub lr_range: Vec<f64>,
    /// Weight-decay range (log-uniform): `[min, max]`.
    pub weight_decay_range: Vec<f64>,
    /// Batch sizes to draw from.
    pub batch_sizes: Vec<usize>,
    /// Seed for the draws (each trial trains with this seed too, so they differ only by their
    /// hyper-parameters).
    pub seed: u64,
    /// Train each trial on the first N training images only.
    pub limit: Option<usize>,
    pub data: Option<PathBuf>,
    pub compute: Compute,
}

/// A checked search: only [`SearchOptions::check`] makes one.
#[derive(Clone, Debug)]
pub struct SearchPlan {
    options: SearchOptions,
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

impl SearchOptions {
    /// Checks every value, before any trial starts.
    pub fn check(self) -> Result<SearchPlan, TrainError> {
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
        Ok(SearchPlan { options: self })
    }
}

impl SearchPlan {
    pub fn options(&self) -> &SearchOptions {
        &self.options
    }

    /// The trials, drawn from `seed`.
    pub fn draw(&self) -> Vec<Trial> {
        let o = &self.options;
        let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
        let log_uniform =
            |rng: &mut ChaCha8Rng, r: &[f64]| (rng.random_range(r[0].ln()..=r[1].ln())).exp();
        (1..=o.trials)
            .map(|index| Trial {
                index,
                lr: log_uniform(&mut rng, &o.lr_range),
                weight_decay: log_uniform(&mut rng, &o.weight_decay_range),
                batch_size: o.batch_sizes[rng.random_range(0..o.batch_sizes.len())],
            })
            .collect()
    }

    /// The training request of one trial.
    pub fn trial_request(&self, trial: &Trial) -> TrainRequest {
        let o = &self.options;
        TrainRequest {
            options: TrainOptions {
                epochs: Some(o.epochs),
                batch_size: Some(trial.batch_size),
                lr: Some(trial.lr),
                weight_decay: Some(trial.weight_decay),
                seed: Some(o.seed),
                limit: o.limit,
                schedule: None,
                patience: None,
            },
            resume: false,
            out: o.out.join(format!("trial-{:02}", trial.index)),
            data: o.data.clone(),
            compute: o.compute,
        }
    }
}

/// The finished search: every trial, best first, and the command that trains the best longer.
#[derive(Clone, Debug)]
pub struct Leaderboard {
    pub score_name: &'static str,
    pub board: Vec<TrialResult>,
    pub rerun: Option<String>,
}

/// Runs every trial with `train` (which returns the best validation score and its epoch),
/// writing the leaderboard after each; returns it with the command (`train_command`, e.g.
/// `convlab classify train --data DIR`, then the trial's values and `rerun_epochs`) that trains
/// the best trial longer.
pub fn run<E: From<TrainError>>(
    plan: &SearchPlan,
    train_command: &str,
    model: &str,
    rerun_epochs: usize,
    score_name: &'static str,
    mut train: impl FnMut(&TrainRequest) -> Result<(f64, usize), E>,
) -> Result<Leaderboard, E> {
    let trials = plan.options.trials;
    let mut results = Vec::new();
    for trial in plan.draw() {
        eprintln!(
            "trial {}/{trials}: lr {:.3e}, weight decay {:.3e}, batch size {}",
            trial.index, trial.lr, trial.weight_decay, trial.batch_size
        );
        let started = Instant::now();
        let request = plan.trial_request(&trial);
        let (score, best_epoch) = train(&request)?;
        results.push(TrialResult {
            trial,
            score,
            best_epoch,
            seconds: started.elapsed().as_secs_f64(),
            run: request.out,
        });
        write_leaderboard(&plan.options.out, score_name, &results).map_err(TrainError::from)?;
    }
    let board = sorted(&results);
    let rerun = board.first().map(|best| {
        let t = &best.trial;
        format!(
            "{train_command} --model {model} --lr {:.3e} --weight-decay {:.3e} --batch-size {} --epochs {rerun_epochs} --out runs/{model}-best",
            t.lr, t.weight_decay, t.batch_size
        )
    });
    Ok(Leaderboard {
        score_name,
        board,
        rerun,
    })
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
    out: &Path,
    score_name: &str,
    results: &[TrialResult],
) -> Result<(), RunError> {
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
    std::fs::create_dir_all(out).map_err(|e| RunError::not_writable(out, e))?;
    let path = out.join("leaderboard.csv");
    write_atomic(&path, csv.as_bytes()).map_err(|e| RunError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SearchOptions {
        SearchOptions {
            trials: 8,
            epochs: 2,
            out: PathBuf::from("runs/search"),
            lr_range: vec![1e-4, 1e-2],
            weight_decay_range: vec![1e-6, 1e-3],
            batch_sizes: vec![32, 64, 128],
            seed: 42,
            limit: None,
            data: None,
            compute: Compute::cpu_engine(),
        }
    }

    #[test]
    fn draws_are_seeded_and_inside_the_ranges() {
        let plan = SearchOptions {
            trials: 50,
            batch_sizes: vec![8, 16],
            ..options()
        }
        .check()
        .unwrap();
        let trials = plan.draw();
        assert_eq!(trials, plan.draw());
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
        let reversed = SearchOptions {
            lr_range: vec![1e-2, 1e-4],
            ..options()
        };
        assert!(
            reversed
                .check()
                .unwrap_err()
                .to_string()
                .starts_with("--lr-range")
        );
        let none = SearchOptions {
            trials: 0,
            ..options()
        };
        assert!(none.check().is_err());
    }
}
