//! Random hyper-parameter search shared by every task: learning rate and weight decay drawn
//! log-uniformly, batch size from a list; each trial a short run scored on the validation split;
//! a leaderboard (`leaderboard.csv`, best first) and the command that re-runs the best trial.
//!
//! A search is a plan, trials and a collection, so that its trials can run anywhere that sees
//! the search folder (one after the other here, or as a Slurm job array): the plan is drawn
//! once; trial K (counted from 0, as Slurm's array indices are) trains in `trial-{K+1:02}/`, an
//! ordinary run folder, and writes `trial.json` there atomically when it has finished (or
//! `failed.json` with the reason); run again, a trial resumes from its checkpoint and never
//! writes a second result; collecting reads the result files that exist, as often as wanted.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{TrainError, TrainRequest};
use crate::engine::Compute;
use crate::fsutil::{csv_field, write_atomic};
use crate::run::RunError;
use crate::run::config::TrainOptions;
use crate::run::json::{read_json, write_json};

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

/// A finished trial (`trial.json` in its folder): its best validation score and when it was
/// reached, and where and how it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub trial: Trial,
    pub score: f64,
    pub best_epoch: usize,
    /// Wall time of the trial's last run (training and final evaluation).
    pub seconds: f64,
    /// The engine's threads.
    pub threads: usize,
    /// The host (`SLURMD_NODENAME` under Slurm).
    pub node: String,
    /// Slurm's job id (`SLURM_ARRAY_JOB_ID`, else `SLURM_JOB_ID`), when it ran under Slurm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Slurm's array index (`SLURM_ARRAY_TASK_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_task: Option<String>,
}

/// Why a trial stopped without a result (`failed.json` in its folder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialFailure {
    pub trial: Trial,
    pub reason: String,
}

/// A trial as collected: finished, failed, or not finished (yet).
#[derive(Clone, Debug, PartialEq)]
pub enum TrialState {
    Done(TrialResult),
    Failed(TrialFailure),
    Missing(Trial),
}

/// Trial `index`'s folder inside the search folder `dir`.
pub fn trial_dir(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("trial-{index:02}"))
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
            // A trial run again (a requeued or killed job) continues from its checkpoint.
            resume: trial_dir(&o.out, trial.index).join("config.json").is_file(),
            out: trial_dir(&o.out, trial.index),
            data: o.data.clone(),
            compute: o.compute,
        }
    }
}

/// The search as collected: the finished trials, best first, the others (failed or not
/// finished) by index, and the command that trains the best longer.
#[derive(Clone, Debug)]
pub struct Leaderboard {
    pub score_name: String,
    pub board: Vec<TrialResult>,
    pub unfinished: Vec<TrialState>,
    pub rerun: Option<String>,
}

/// How to train a search's best trial longer: the task's train command (e.g. `convlab
/// classify train --data DIR`), the model and the epochs of its recipe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rerun {
    pub command: String,
    pub model: String,
    pub epochs: usize,
}

impl Rerun {
    fn for_trial(&self, t: &Trial) -> String {
        format!(
            "{} --model {} --lr {:.3e} --weight-decay {:.3e} --batch-size {} --epochs {} --out runs/{}-best",
            self.command, self.model, t.lr, t.weight_decay, t.batch_size, self.epochs, self.model
        )
    }
}

/// Runs one trial of `plan` with `train` (which trains the request and returns the best
/// validation score and its epoch), unless it has a result already: then that result. Writes
/// `trial.json` atomically when it finishes, `failed.json` with the reason when it fails.
pub fn run_trial<E: Display + From<TrainError>>(
    plan: &SearchPlan,
    trial: &Trial,
    train: impl FnOnce(&TrainRequest) -> Result<(f64, usize), E>,
) -> Result<TrialResult, E> {
    let dir = trial_dir(&plan.options.out, trial.index);
    let done = dir.join(RESULT_FILE);
    if done.is_file() {
        return Ok(read_json(&done).map_err(TrainError::from)?);
    }
    let started = Instant::now();
    let request = plan.trial_request(trial);
    let (score, best_epoch) = train(&request).inspect_err(|e| {
        let failure = TrialFailure {
            trial: trial.clone(),
            reason: e.to_string(),
        };
        // The failure is the error returned; a failure file that cannot be written loses
        // only its reason in the leaderboard.
        let _ = write_json(&dir.join(FAILURE_FILE), &failure);
    })?;
    let slurm = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let result = TrialResult {
        trial: trial.clone(),
        score,
        best_epoch,
        seconds: started.elapsed().as_secs_f64(),
        threads: crate::engine::threads(),
        node: slurm("SLURMD_NODENAME")
            .or_else(|| slurm("HOSTNAME"))
            .unwrap_or_else(host_name),
        job: slurm("SLURM_ARRAY_JOB_ID").or_else(|| slurm("SLURM_JOB_ID")),
        array_task: slurm("SLURM_ARRAY_TASK_ID"),
    };
    let _ = std::fs::remove_file(dir.join(FAILURE_FILE));
    write_json(&done, &result).map_err(TrainError::from)?;
    Ok(result)
}

const RESULT_FILE: &str = "trial.json";
const FAILURE_FILE: &str = "failed.json";

/// This machine's name (`/etc/hostname`), or "localhost".
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Every trial of `plan` one after the other on this machine, collecting after each.
pub fn run<E: Display + From<TrainError>>(
    plan: &SearchPlan,
    trials: &[Trial],
    score_name: &str,
    rerun: &Rerun,
    mut train: impl FnMut(&TrainRequest) -> Result<(f64, usize), E>,
) -> Result<Leaderboard, E> {
    let count = trials.len();
    for trial in trials {
        eprintln!(
            "trial {}/{count}: lr {:.3e}, weight decay {:.3e}, batch size {}",
            trial.index, trial.lr, trial.weight_decay, trial.batch_size
        );
        run_trial(plan, trial, &mut train)?;
        collect(&plan.options.out, trials, score_name, rerun).map_err(TrainError::from)?;
    }
    Ok(collect(&plan.options.out, trials, score_name, rerun).map_err(TrainError::from)?)
}

/// The search in `dir` as its result files say now (trials still running count as not
/// finished): writes `leaderboard.csv` and returns the board.
pub fn collect(
    dir: &Path,
    trials: &[Trial],
    score_name: &str,
    rerun: &Rerun,
) -> Result<Leaderboard, RunError> {
    let states: Vec<TrialState> = trials
        .iter()
        .map(|trial| {
            let folder = trial_dir(dir, trial.index);
            if let Ok(result) = read_json::<TrialResult>(&folder.join(RESULT_FILE)) {
                TrialState::Done(result)
            } else if let Ok(failure) = read_json::<TrialFailure>(&folder.join(FAILURE_FILE)) {
                TrialState::Failed(failure)
            } else {
                TrialState::Missing(trial.clone())
            }
        })
        .collect();
    let done: Vec<TrialResult> = states
        .iter()
        .filter_map(|s| match s {
            TrialState::Done(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    let board = sorted(&done);
    write_leaderboard(dir, score_name, &board, &states)?;
    Ok(Leaderboard {
        score_name: score_name.to_string(),
        rerun: board.first().map(|best| rerun.for_trial(&best.trial)),
        board,
        unfinished: states
            .into_iter()
            .filter(|s| !matches!(s, TrialState::Done(_)))
            .collect(),
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

/// `leaderboard.csv`: the finished trials best first, then the others by index with their
/// status (`failed` with the reason, or `not finished`).
fn write_leaderboard(
    dir: &Path,
    score_name: &str,
    board: &[TrialResult],
    states: &[TrialState],
) -> Result<(), RunError> {
    let mut csv = format!(
        "rank,trial,lr,weight_decay,batch_size,{score_name},best_epoch,seconds,run,node,status\n"
    );
    let row = |rank: String, t: &Trial, rest: String| {
        format!(
            "{rank},{},{},{},{},{rest}\n",
            t.index, t.lr, t.weight_decay, t.batch_size
        )
    };
    let run = |t: &Trial| trial_dir(dir, t.index).display().to_string();
    for (rank, r) in board.iter().enumerate() {
        csv.push_str(&row(
            (rank + 1).to_string(),
            &r.trial,
            format!(
                "{},{},{:.1},{},{},done",
                r.score,
                r.best_epoch,
                r.seconds,
                csv_field(&run(&r.trial)),
                csv_field(&r.node)
            ),
        ));
    }
    for state in states {
        let (trial, status) = match state {
            TrialState::Done(_) => continue,
            TrialState::Failed(f) => (&f.trial, format!("failed: {}", f.reason)),
            TrialState::Missing(t) => (t, "not finished".to_string()),
        };
        csv.push_str(&row(
            String::new(),
            trial,
            format!(",,,{},,{}", csv_field(&run(trial)), csv_field(&status)),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| RunError::not_writable(dir, e))?;
    let path = dir.join("leaderboard.csv");
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
