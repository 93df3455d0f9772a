//! One trial of a search: trained in its own run folder (`trial-NN/`), resumed when it is run
//! again, its result written atomically once per rung (`rung-R.json`), or why it failed
//! (`failed.json`).

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{Rung, SearchPlan, Trial};
use crate::run::config::AnyConfig;
use crate::run::json::{read_json, write_json};
use crate::train::{TrainError, TrainRequest};

/// A trial's result at the end of a rung (`rung-R.json` in its folder): its best validation
/// score and when it was reached, and where and how it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub trial: Trial,
    pub rung: usize,
    /// Epochs trained when the rung ended.
    pub epochs: usize,
    pub score: f64,
    pub best_epoch: usize,
    /// Wall time of the trial's run in this rung (training and final evaluation).
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
    pub rung: usize,
    pub reason: String,
}

/// A trial as collected: its result in the last rung it finished, its failure, or nothing yet.
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

/// Where a trial's result in `rung` is written.
pub fn result_path(dir: &Path, index: usize, rung: usize) -> PathBuf {
    trial_dir(dir, index).join(format!("rung-{rung}.json"))
}

/// Where a trial's failure is written.
pub fn failure_path(dir: &Path, index: usize) -> PathBuf {
    trial_dir(dir, index).join("failed.json")
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
    pub fn for_trial(&self, t: &Trial) -> String {
        format!(
            "{} --model {} --lr {:.3e} --weight-decay {:.3e} --batch-size {} --epochs {} --out runs/{}-best",
            self.command, self.model, t.lr, t.weight_decay, t.batch_size, self.epochs, self.model
        )
    }
}

/// Runs `trial` of `plan` to the end of `rung` with `train` (which trains the request, from
/// the trial's last checkpoint when there is one, and returns the best validation score and its
/// epoch), unless it has a result in that rung already: then that result. Writes the rung's
/// result atomically when it finishes, `failed.json` with the reason when it fails.
pub fn run_trial<E: Display + From<TrainError>>(
    plan: &SearchPlan,
    trial: &Trial,
    rung: &Rung,
    train: impl FnOnce(&TrainRequest) -> Result<(f64, usize), E>,
) -> Result<TrialResult, E> {
    let dir = &plan.options.out;
    let done = result_path(dir, trial.index, rung.index);
    if done.is_file() {
        return Ok(read_json(&done).map_err(TrainError::from)?);
    }
    refuse_another_plans_run(plan, trial)?;
    let started = Instant::now();
    let request = plan.trial_request(trial, rung);
    let (score, best_epoch) = train(&request).inspect_err(|e| {
        let failure = TrialFailure {
            trial: trial.clone(),
            rung: rung.index,
            reason: e.to_string(),
        };
        // The failure is the error returned; a failure file that cannot be written loses
        // only its reason in the leaderboard.
        let _ = write_json(&failure_path(dir, trial.index), &failure);
    })?;
    let slurm = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let result = TrialResult {
        trial: trial.clone(),
        rung: rung.index,
        epochs: rung.epochs,
        score,
        best_epoch,
        seconds: started.elapsed().as_secs_f64(),
        threads: crate::engine::threads(),
        node: slurm("SLURMD_NODENAME").unwrap_or_else(host_name),
        job: slurm("SLURM_ARRAY_JOB_ID").or_else(|| slurm("SLURM_JOB_ID")),
        array_task: slurm("SLURM_ARRAY_TASK_ID"),
    };
    let _ = std::fs::remove_file(failure_path(dir, trial.index));
    write_json(&done, &result).map_err(TrainError::from)?;
    Ok(result)
}

/// Refuses a trial folder holding a run that is not this trial's (another search's, or one
/// copied in): resuming it would train something other than the plan says.
fn refuse_another_plans_run(plan: &SearchPlan, trial: &Trial) -> Result<(), TrainError> {
    let dir = trial_dir(&plan.options.out, trial.index);
    let config = dir.join("config.json");
    if !config.is_file() {
        return Ok(());
    }
    let params = AnyConfig::read(&config)?.params().clone();
    let o = &plan.options;
    let same = params.lr() == trial.lr
        && params.weight_decay() == trial.weight_decay
        && params.batch_size() == trial.batch_size
        && params.seed() == o.seed
        && params.limit() == o.limit;
    if same {
        return Ok(());
    }
    Err(TrainError::invalid(
        "--index",
        format!(
            "{} holds a run of another plan (lr {:e}, weight decay {:e}, batch size {}; trial {} of this plan has lr {:e}, weight decay {:e}, batch size {}): move it away",
            dir.display(),
            params.lr(),
            params.weight_decay(),
            params.batch_size(),
            trial.index,
            trial.lr,
            trial.weight_decay,
            trial.batch_size
        ),
    ))
}

/// This machine's name (`/etc/hostname`), or "localhost".
fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `trial`'s state as its files say: its result in the highest rung it finished, else its
/// failure, else nothing yet.
pub fn state(dir: &Path, trial: &Trial, rungs: usize) -> TrialState {
    let last = (0..rungs)
        .rev()
        .find_map(|rung| read_json::<TrialResult>(&result_path(dir, trial.index, rung)).ok());
    let failure = read_json::<TrialFailure>(&failure_path(dir, trial.index)).ok();
    match (last, failure) {
        // A failure in a later rung than the last result is the trial's news.
        (Some(done), Some(failed)) if failed.rung > done.rung => TrialState::Failed(failed),
        (Some(done), _) => TrialState::Done(done),
        (None, Some(failed)) => TrialState::Failed(failed),
        (None, None) => TrialState::Missing(trial.clone()),
    }
}
