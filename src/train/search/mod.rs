//! Random hyper-parameter search shared by every task: learning rate and weight decay drawn
//! log-uniformly, batch size from a list; each trial a short run scored on the validation split;
//! a leaderboard (`leaderboard.csv`, best first) and the command that re-runs the best trial.
//!
//! A search is a plan, trials and a collection, so that its trials can run anywhere that sees
//! the search folder (one after the other here, or as a Slurm job array): the plan is drawn
//! once; a trial trains in `trial-NN/`, an ordinary run folder, and writes its result there
//! atomically ([`trial`]); collecting reads the result files that exist, as often as wanted
//! ([`collect`]). With successive halving the search goes in rungs ([`Rung`]): every trial
//! trains `min_epochs`, then the best 1/ETA of each rung continue (resume) for ETA times as many
//! epochs, up to `epochs`; closing a rung writes the survivors the next one trains.

mod collect;
mod slurm;
mod trial;

pub use collect::{Leaderboard, close_rung, collect, survivors};
pub use slurm::{SlurmOptions, Submitted, SubmittedRung, TimeLimit, submit};
pub use trial::{Rerun, TrialFailure, TrialResult, TrialState, run_trial, trial_dir};

use std::fmt::Display;
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{TrainError, TrainRequest};
use crate::distributed::World;
use crate::engine::Compute;
use crate::progress;
use crate::run::config::TrainOptions;
use crate::train::Clock;

/// A search as asked for: unchecked (see [`SearchOptions::check`]). Saved in the plan, but for
/// `out`: the search folder is wherever the plan is read from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchOptions {
    pub trials: usize,
    /// Epochs per trial.
    pub epochs: usize,
    /// Folder for the trials' runs and the leaderboard.
    #[serde(skip)]
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
    /// Successive halving's ETA: each rung keeps the best 1/ETA (none: one rung of `epochs`).
    #[serde(default)]
    pub halving: Option<usize>,
    /// With halving, the epochs of the first rung.
    #[serde(default = "one")]
    pub min_epochs: usize,
}

fn one() -> usize {
    1
}

/// One rung of a search: the trials it trains (all of them in rung 0, the survivors of the
/// rung before in the others) and the epochs each has trained when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rung {
    pub index: usize,
    pub trials: usize,
    pub epochs: usize,
}

/// A checked search: only [`SearchOptions::check`] makes one.
#[derive(Clone, Debug)]
pub struct SearchPlan {
    options: SearchOptions,
}

/// One drawn set of hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Counted from 1: the trial folder's number and the leaderboard's.
    pub index: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
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
        if self.halving.is_some_and(|eta| eta < 2) {
            return Err(TrainError::invalid("--halving", "ETA must be at least 2"));
        }
        if self.min_epochs == 0 || self.min_epochs > self.epochs {
            return Err(TrainError::invalid(
                "--min-epochs",
                format!("must be 1 to --epochs ({})", self.epochs),
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

    /// The rungs: one of `epochs` without halving; else `min_epochs` times ETA to the power
    /// of the rung, up to `epochs`, each keeping the best 1/ETA of the trials before (at least
    /// one).
    pub fn rungs(&self) -> Vec<Rung> {
        let o = &self.options;
        let Some(eta) = o.halving else {
            return vec![Rung {
                index: 0,
                trials: o.trials,
                epochs: o.epochs,
            }];
        };
        let mut rungs = vec![Rung {
            index: 0,
            trials: o.trials,
            epochs: o.min_epochs,
        }];
        while let Some(last) = rungs.last().copied()
            && last.epochs < o.epochs
        {
            rungs.push(Rung {
                index: last.index + 1,
                trials: (last.trials / eta).max(1),
                epochs: (last.epochs * eta).min(o.epochs),
            });
        }
        rungs
    }

    /// The training request of one trial in `rung`.
    pub fn trial_request(&self, trial: &Trial, rung: &Rung) -> TrainRequest {
        let o = &self.options;
        TrainRequest {
            options: TrainOptions {
                epochs: Some(rung.epochs),
                batch_size: Some(trial.batch_size),
                lr: Some(trial.lr),
                weight_decay: Some(trial.weight_decay),
                seed: Some(o.seed),
                limit: o.limit,
                schedule: None,
                patience: None,
                random_erasing: None,
                budget: None,
                label_smoothing: None,
                ema: None,
                class_weighting: None,
                flips: None,
                crop: None,
                identity_init: false,
                whiten: false,
            },
            // A trial run again (a requeued or killed job) continues from its checkpoint.
            resume: trial_dir(&o.out, trial.index).join("config.json").is_file(),
            out: trial_dir(&o.out, trial.index),
            data: o.data.clone(),
            compute: o.compute,
            world: World::single(),
            clock: Clock::wall(),
        }
    }
}

/// Every rung of `plan` one after the other on this machine: each trial of the rung, then the
/// rung closed (its survivors written) and the leaderboard collected.
pub fn run<E: Display + From<TrainError>>(
    plan: &SearchPlan,
    trials: &[Trial],
    score_name: &str,
    rerun: &Rerun,
    mut train: impl FnMut(&TrainRequest) -> Result<(f64, usize), E>,
) -> Result<Leaderboard, E> {
    let dir = &plan.options.out;
    let mut board = collect(plan, trials, score_name, rerun).map_err(TrainError::from)?;
    for rung in plan.rungs() {
        let entered = survivors(dir, trials, rung.index)
            .map_err(TrainError::from)?
            .unwrap_or_default();
        for (n, index) in entered.iter().enumerate() {
            let Some(trial) = trials.iter().find(|t| t.index == *index) else {
                continue;
            };
            progress::notice(&format!(
                "rung {} ({} epochs), trial {} ({}/{}): lr {:.3e}, weight decay {:.3e}, batch size {}",
                rung.index,
                rung.epochs,
                trial.index,
                n + 1,
                entered.len(),
                trial.lr,
                trial.weight_decay,
                trial.batch_size
            ));
            run_trial(plan, trial, &rung, &mut train)?;
            collect(plan, trials, score_name, rerun).map_err(TrainError::from)?;
        }
        board =
            close_rung(plan, trials, rung.index, score_name, rerun).map_err(TrainError::from)?;
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
            halving: None,
            min_epochs: 1,
        }
    }

    #[test]
    fn halving_keeps_a_third_of_each_rung_for_three_times_the_epochs() {
        let plan = |trials, epochs, min_epochs, halving| {
            SearchOptions {
                trials,
                epochs,
                min_epochs,
                halving,
                ..options()
            }
            .check()
            .unwrap()
            .rungs()
        };
        let rung = |index, trials, epochs| Rung {
            index,
            trials,
            epochs,
        };
        assert_eq!(plan(8, 2, 1, None), [rung(0, 8, 2)]);
        // Hyperband's bracket of 27 trials from 1 epoch to 27 epochs.
        assert_eq!(
            plan(27, 27, 1, Some(3)),
            [rung(0, 27, 1), rung(1, 9, 3), rung(2, 3, 9), rung(3, 1, 27)]
        );
        // The last rung stops at --epochs; at least one trial goes on.
        assert_eq!(
            plan(4, 10, 2, Some(3)),
            [rung(0, 4, 2), rung(1, 1, 6), rung(2, 1, 10)]
        );
        assert_eq!(plan(4, 3, 3, Some(2)), [rung(0, 4, 3)]);
    }

    #[test]
    fn halving_needs_an_eta_of_two_and_a_first_rung_within_the_epochs() {
        let eta_one = SearchOptions {
            halving: Some(1),
            ..options()
        };
        assert!(
            eta_one
                .check()
                .unwrap_err()
                .to_string()
                .starts_with("--halving")
        );
        let too_long = SearchOptions {
            halving: Some(3),
            min_epochs: 5,
            ..options()
        };
        assert!(
            too_long
                .check()
                .unwrap_err()
                .to_string()
                .starts_with("--min-epochs")
        );
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
