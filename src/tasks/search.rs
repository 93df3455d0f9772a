//! `convlab TASK search`, `convlab search trial` and `convlab search collect`: a search's plan
//! (`plan.json`: which task reads which data, the model, the options and the drawn trials),
//! one trial of it on whatever machine runs it, and the leaderboard of what has finished. The
//! draws, the trial folders and the leaderboard are `train::search`'s; this module knows the
//! tasks.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    Classification, ModelOf, RecordOf, Segmentation, Task, TaskError, TaskSource, absolute,
    plan_training,
};
use crate::data::fashion_mnist::Checksums;
use crate::fsutil::shell_word;
use crate::models::ModelKind;
use crate::run::RunError;
use crate::run::json::{read_json, read_log, write_json};
use crate::train::search::{
    self, Leaderboard, Rerun, Rung, SearchOptions, SearchPlan, SlurmOptions, Submitted, Trial,
    TrialResult, survivors,
};
use crate::train::{TrainError, TrainRequest};

/// `plan.json`: everything a trial needs, on any machine that sees the search folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchFile {
    pub source: TaskSource,
    pub model: String,
    /// The validation score the trials are ranked by (`val_accuracy`, `val_map`).
    pub score_name: String,
    pub rerun: Rerun,
    pub options: SearchOptions,
    pub trials: Vec<Trial>,
}

/// Where a search's trials run.
#[derive(Clone, Debug, PartialEq)]
pub enum SearchMode {
    /// Here, one after the other.
    Here,
    /// Nowhere yet (`--plan-only`): `convlab search trial` runs them.
    PlanOnly,
    /// As Slurm jobs (`--slurm`).
    Slurm(SlurmOptions),
}

/// What `convlab TASK search` did.
pub enum SearchOutcome {
    /// `--plan-only`: the plan written, no trial run.
    Planned { plan: PathBuf, trials: usize },
    /// `--slurm`: the plan written and its jobs submitted.
    Submitted(Submitted),
    /// Every trial run here, and the leaderboard.
    Finished(Leaderboard),
}

const PLAN_FILE: &str = "plan.json";

/// `convlab TASK search`: draws the trials and writes the plan into the search folder; then
/// runs them as `mode` says (here one after the other, collecting; not at all; or as Slurm
/// jobs). The same search asked for again continues (finished trials are kept, a stopped one
/// resumes).
pub fn search_command<T: Task>(
    task: &T,
    model: ModelOf<T>,
    options: SearchOptions,
    mode: SearchMode,
) -> Result<SearchOutcome, TaskError> {
    let (given_data, given_out) = (options.data.clone(), options.out.clone());
    let slurm_time = match &mode {
        SearchMode::Slurm(slurm) => slurm.check()?,
        _ => None,
    };
    let plan = SearchOptions {
        data: options.data.as_deref().map(absolute),
        // Jobs on other nodes find the folder by its absolute path.
        out: std::path::absolute(&options.out).unwrap_or_else(|_| options.out.clone()),
        ..options
    }
    .check()?;
    // The data is read once before anything is written or submitted: a wrong folder is an
    // error here, not in every trial.
    task.load(plan.options().data.as_deref(), None)?;
    let shown_data = given_data
        .as_deref()
        .map(|dir| format!(" --data {}", shell_word(&dir.display().to_string())))
        .unwrap_or_default();
    let file = SearchFile {
        source: task.source(),
        model: model.name().to_string(),
        score_name: T::SCORE_NAME.to_string(),
        rerun: Rerun {
            command: format!(
                "convlab {} train{shown_data}{}",
                task.name(),
                task.data_options()
            ),
            model: model.name().to_string(),
            epochs: T::recipe(model).epochs,
        },
        options: plan.options().clone(),
        trials: plan.draw(),
    };
    let path = write_plan(&plan.options().out, &given_out, &file)?;
    match mode {
        SearchMode::PlanOnly => {
            return Ok(SearchOutcome::Planned {
                plan: path,
                trials: file.trials.len(),
            });
        }
        SearchMode::Slurm(slurm) => {
            let convlab = std::env::current_exe().map_err(|e| {
                TrainError::invalid("--slurm", format!("cannot tell where convlab is: {e}"))
            })?;
            return Ok(SearchOutcome::Submitted(search::submit(
                &plan, &convlab, &slurm, slurm_time,
            )?));
        }
        SearchMode::Here => {}
    }
    let board = search::run(
        &plan,
        &file.trials,
        &file.score_name,
        &file.rerun,
        |request| train_trial(task, model, request),
    )?;
    Ok(SearchOutcome::Finished(board))
}

/// `convlab search trial DIR --index K [--rung R]`: the K-th (from 0) trial that trains in rung
/// R (every trial in rung 0; the survivors of rung R - 1 after it was closed), unless it has
/// finished the rung already (then its result); `None` when the rung keeps fewer than K + 1
/// trials (some failed before). Under Slurm it computes with the CPUs the job was given
/// (`--cpus-per-task`), since a node without CPU binding would let it take every core.
pub fn trial_command(
    dir: &Path,
    index: usize,
    rung: usize,
) -> Result<Option<TrialResult>, TaskError> {
    if let Some(cpus) = std::env::var("SLURM_CPUS_PER_TASK")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        crate::engine::use_threads(cpus);
    }
    let (file, plan) = read_plan(dir)?;
    let rung = plan_rung(&plan, dir, "--rung", rung)?;
    if index >= rung.trials {
        return Err(TrainError::invalid(
            "--index",
            format!(
                "rung {} of {} has trials 0 to {} (got {index})",
                rung.index,
                dir.join(PLAN_FILE).display(),
                rung.trials - 1
            ),
        )
        .into());
    }
    let Some(entered) = survivors(dir, &file.trials, rung.index)? else {
        return Err(TrainError::invalid(
            "--rung",
            format!(
                "rung {} has not been decided yet: close rung {} first (convlab search collect {} --close-rung {})",
                rung.index,
                rung.index - 1,
                dir.display(),
                rung.index - 1
            ),
        )
        .into());
    };
    let Some(trial) = entered
        .get(index)
        .and_then(|&n| file.trials.iter().find(|t| t.index == n))
    else {
        return Ok(None);
    };
    let result = match file.source {
        TaskSource::Fashion { skip_checksums } => {
            let checksums = match skip_checksums {
                true => Checksums::Skip,
                false => Checksums::Verify,
            };
            let task = Classification::fashion_mnist(checksums);
            one_trial(&task, &file, &plan, trial, &rung)
        }
        TaskSource::Classify { size } => {
            one_trial(&Classification::folder(size), &file, &plan, trial, &rung)
        }
        TaskSource::Facade => one_trial(&Segmentation::mini_facade(), &file, &plan, trial, &rung),
        TaskSource::Segment { size } => {
            one_trial(&Segmentation::folder(size), &file, &plan, trial, &rung)
        }
    }?;
    Ok(Some(result))
}

/// `convlab search collect DIR [--close-rung R]`: the leaderboard of the trials that have
/// finished so far; closing rung R first decides which trials train in rung R + 1.
pub fn collect_command(dir: &Path, close: Option<usize>) -> Result<Leaderboard, TaskError> {
    let (file, plan) = read_plan(dir)?;
    let board = match close {
        Some(rung) => {
            let rung = plan_rung(&plan, dir, "--close-rung", rung)?;
            search::close_rung(
                &plan,
                &file.trials,
                rung.index,
                &file.score_name,
                &file.rerun,
            )?
        }
        None => search::collect(&plan, &file.trials, &file.score_name, &file.rerun)?,
    };
    Ok(board)
}

/// Runs `trial` of the plan with `task`'s model named in `file`.
fn one_trial<T: Task>(
    task: &T,
    file: &SearchFile,
    plan: &SearchPlan,
    trial: &Trial,
    rung: &Rung,
) -> Result<TrialResult, TaskError> {
    let model = ModelOf::<T>::from_name(&file.model).ok_or_else(|| {
        RunError::bad_file(
            plan.options().out.join(PLAN_FILE),
            format!("no '{}' model named '{}'", task.name(), file.model),
        )
    })?;
    search::run_trial(plan, trial, rung, |request| {
        train_trial(task, model, request)
    })
}

/// Trains one trial's request as `train` would (resuming it when its folder has a run),
/// evaluates it, and returns its best validation score and that epoch.
fn train_trial<T: Task>(
    task: &T,
    model: ModelOf<T>,
    request: &TrainRequest,
) -> Result<(f64, usize), TaskError> {
    let plan = plan_training(task, Some(model), request)?;
    let log = plan.run.metrics_log();
    plan.train()?;
    let history: Vec<RecordOf<T>> = read_log(&log)?;
    Ok(T::best_score(&history))
}

/// Writes `file` as the search folder's plan, or keeps the one there when it is the same
/// search; refuses a folder that holds another search (naming it as `given`).
fn write_plan(dir: &Path, given: &Path, file: &SearchFile) -> Result<PathBuf, TaskError> {
    let path = dir.join(PLAN_FILE);
    if path.is_file() {
        let saved: SearchFile = read_json(&path)?;
        if &saved != file {
            return Err(TrainError::invalid(
                "--out",
                format!(
                    "{} holds another search's plan; choose another --out",
                    given.display()
                ),
            )
            .into());
        }
        return Ok(path);
    }
    std::fs::create_dir_all(dir).map_err(|e| RunError::not_writable(dir, e))?;
    write_json(&path, file)?;
    Ok(path)
}

/// Rung `index` of `plan` (read from `dir`), or why there is none (naming `flag`).
fn plan_rung(plan: &SearchPlan, dir: &Path, flag: &str, index: usize) -> Result<Rung, TrainError> {
    let rungs = plan.rungs();
    rungs.get(index).copied().ok_or_else(|| {
        TrainError::invalid(
            flag,
            format!(
                "{} has rungs 0 to {} (got {index})",
                dir.join(PLAN_FILE).display(),
                rungs.len() - 1
            ),
        )
    })
}

/// The plan in `dir`, and the checked search it describes (its trials' folders in `dir`).
fn read_plan(dir: &Path) -> Result<(SearchFile, SearchPlan), TaskError> {
    let file: SearchFile = read_json(&dir.join(PLAN_FILE))?;
    let plan = SearchOptions {
        out: dir.to_path_buf(),
        ..file.options.clone()
    }
    .check()?;
    Ok((file, plan))
}
