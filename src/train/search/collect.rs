//! Collecting a search: the leaderboard of the results that exist (safe while trials still
//! run, and as often as wanted), and closing a rung: the survivors the next rung trains.

use std::path::{Path, PathBuf};

use super::trial::{TrialResult, TrialState, result_path, state, trial_dir};
use super::{Rerun, SearchPlan, Trial};
use crate::fsutil::{csv_field, write_atomic};
use crate::run::RunError;
use crate::run::json::{read_json, write_json};

/// The search as collected: the trials with a result, furthest rung first and best first
/// within it, the others (failed or not finished) by index, and the command that trains the
/// best longer.
#[derive(Clone, Debug)]
pub struct Leaderboard {
    pub score_name: String,
    pub board: Vec<TrialResult>,
    pub unfinished: Vec<TrialState>,
    pub rerun: Option<String>,
}

/// Where the trials that train in `rung` (from 1) are listed, best first.
fn survivors_path(dir: &Path, rung: usize) -> PathBuf {
    dir.join(format!("survivors-{rung}.json"))
}

/// The trial numbers that train in `rung`: every trial in rung 0; in later rungs those its
/// closed predecessor kept (`None` until it is closed).
pub fn survivors(
    dir: &Path,
    trials: &[Trial],
    rung: usize,
) -> Result<Option<Vec<usize>>, RunError> {
    if rung == 0 {
        return Ok(Some(trials.iter().map(|t| t.index).collect()));
    }
    let path = survivors_path(dir, rung);
    if !path.is_file() {
        return Ok(None);
    }
    read_json(&path).map(Some)
}

/// Closes `rung` of `plan`: the best of its results (a trial without one is out) go on to
/// the next rung, written once as `survivors-{rung+1}.json`; then collects.
pub fn close_rung(
    plan: &SearchPlan,
    trials: &[Trial],
    rung: usize,
    score_name: &str,
    rerun: &Rerun,
) -> Result<Leaderboard, RunError> {
    let dir = &plan.options.out;
    let rungs = plan.rungs();
    if let (Some(next), Some(entered)) = (rungs.get(rung + 1), survivors(dir, trials, rung)?)
        && !survivors_path(dir, next.index).is_file()
    {
        // Each entrant's result in this rung (one without it is out).
        let mut finished: Vec<TrialResult> = entered
            .iter()
            .filter_map(|&index| read_json(&result_path(dir, index, rung)).ok())
            .collect();
        finished.sort_by(|a, b| b.score.total_cmp(&a.score));
        let kept: Vec<usize> = finished
            .iter()
            .filter(|r| !r.score.is_nan())
            .take(next.trials)
            .map(|r| r.trial.index)
            .collect();
        write_json(&survivors_path(dir, next.index), &kept)?;
    }
    collect(plan, trials, score_name, rerun)
}

/// The search in `plan`'s folder as its result files say now: writes `leaderboard.csv` and
/// returns the board.
pub fn collect(
    plan: &SearchPlan,
    trials: &[Trial],
    score_name: &str,
    rerun: &Rerun,
) -> Result<Leaderboard, RunError> {
    let dir = &plan.options.out;
    let rungs = plan.rungs().len();
    let states: Vec<TrialState> = trials.iter().map(|t| state(dir, t, rungs)).collect();
    let mut board: Vec<TrialResult> = states
        .iter()
        .filter_map(|s| match s {
            TrialState::Done(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    board.sort_by(|a, b| b.rung.cmp(&a.rung).then(b.score.total_cmp(&a.score)));
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

/// `leaderboard.csv`: the trials with a result as ranked, then the others by index with their
/// status (`failed` with the reason, or `not finished`).
fn write_leaderboard(
    dir: &Path,
    score_name: &str,
    board: &[TrialResult],
    states: &[TrialState],
) -> Result<(), RunError> {
    let mut csv = format!(
        "rank,trial,lr,weight_decay,batch_size,{score_name},best_epoch,seconds,run,node,status,rung,epochs\n"
    );
    let row = |rank: String, t: &Trial, rest: String| {
        format!(
            "{rank},{},{},{},{},{rest}\n",
            t.index, t.lr, t.weight_decay, t.batch_size
        )
    };
    let run = |t: &Trial| csv_field(&trial_dir(dir, t.index).display().to_string());
    for (rank, r) in board.iter().enumerate() {
        csv.push_str(&row(
            (rank + 1).to_string(),
            &r.trial,
            format!(
                "{},{},{:.1},{},{},done,{},{}",
                r.score,
                r.best_epoch,
                r.seconds,
                run(&r.trial),
                csv_field(&r.node),
                r.rung,
                r.epochs
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
            format!(",,,{},,{},,", run(trial), csv_field(&status)),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| RunError::not_writable(dir, e))?;
    let path = dir.join("leaderboard.csv");
    write_atomic(&path, csv.as_bytes()).map_err(|e| RunError::io(&path, e))
}
