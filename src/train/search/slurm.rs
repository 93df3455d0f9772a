//! A planned search as Slurm jobs: per rung, an array job whose tasks run `convlab search
//! trial` and a collect job after it (`--dependency=afterany`) that closes the rung; each rung
//! waits for the previous rung's collect job. Slurm does the scheduling, requeueing and
//! bookkeeping; convlab only writes the scripts into the search folder and calls `sbatch`. The
//! nodes share nothing but the search folder (and the data and the binary, on storage every
//! node sees); nothing locks files there.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Rung, SearchPlan};
use crate::fsutil::{shell_word, write_atomic};
use crate::run::RunError;
use crate::train::TrainError;

/// How to submit the trials, as given (`--max-parallel`, `--partition`, `--time`,
/// `--cpus-per-task`, `--sbatch-arg`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlurmOptions {
    /// At most this many trials of a rung at once (`%M` of the array).
    pub max_parallel: Option<usize>,
    pub partition: Option<String>,
    /// A rung-0 trial's time limit in Slurm's format (`MM`, `HH:MM:SS`, `D-HH`, ...); later
    /// rungs get it scaled by the epochs they add.
    pub time: Option<String>,
    /// The CPUs of each trial, which are the threads it computes with.
    pub cpus_per_task: usize,
    /// Anything else for `sbatch` (e.g. `--account=lab`, `--mem=4G`), one `#SBATCH` line each.
    pub sbatch_args: Vec<String>,
}

/// One rung as submitted: its array job and the collect job that closes it.
#[derive(Clone, Debug, PartialEq)]
pub struct SubmittedRung {
    pub rung: Rung,
    pub array_job: String,
    pub collect_job: String,
}

/// What was submitted, and where the scripts and the jobs' output are.
#[derive(Clone, Debug)]
pub struct Submitted {
    pub rungs: Vec<SubmittedRung>,
    pub scripts: PathBuf,
}

/// A checked time limit, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeLimit(u64);

impl SlurmOptions {
    /// Checks the options and that `sbatch` can be run, before anything is written.
    pub fn check(&self) -> Result<Option<TimeLimit>, TrainError> {
        if self.cpus_per_task == 0 {
            return Err(TrainError::invalid("--cpus-per-task", "must be at least 1"));
        }
        if self.max_parallel == Some(0) {
            return Err(TrainError::invalid("--max-parallel", "must be at least 1"));
        }
        if on_path("sbatch").is_none() {
            return Err(TrainError::invalid(
                "--slurm",
                "sbatch is not on PATH: submit from a Slurm login node (or run without --slurm)",
            ));
        }
        self.time
            .as_deref()
            .map(|t| {
                TimeLimit::parse(t).ok_or_else(|| {
                    TrainError::invalid(
                        "--time",
                        format!("'{t}' is not a Slurm time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)"),
                    )
                })
            })
            .transpose()
    }
}

impl TimeLimit {
    /// Slurm's time formats: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
    pub fn parse(text: &str) -> Option<Self> {
        let numbers = |part: &str| -> Option<Vec<u64>> {
            part.split(':').map(|n| n.parse::<u64>().ok()).collect()
        };
        let seconds = match text.split_once('-') {
            Some((days, rest)) => {
                let days: u64 = days.parse().ok()?;
                let hms = match numbers(rest)?.as_slice() {
                    [h] => h * 3600,
                    [h, m] => h * 3600 + m * 60,
                    [h, m, s] => h * 3600 + m * 60 + s,
                    _ => return None,
                };
                days * 86_400 + hms
            }
            None => match numbers(text)?.as_slice() {
                [m] => m * 60,
                [m, s] => m * 60 + s,
                [h, m, s] => h * 3600 + m * 60 + s,
                _ => return None,
            },
        };
        (seconds > 0).then_some(TimeLimit(seconds))
    }

    /// `D-HH:MM:SS`.
    pub fn format(self) -> String {
        let s = self.0;
        format!(
            "{}-{:02}:{:02}:{:02}",
            s / 86_400,
            s / 3600 % 24,
            s / 60 % 60,
            s % 60
        )
    }

    /// The limit of a trial in `rung`, which trains `added` epochs where a rung-0 trial trains
    /// `first`: this limit times `added / first`, never less than this one.
    pub fn scaled(self, added: usize, first: usize) -> Self {
        let factor = (added as f64 / first.max(1) as f64).max(1.0);
        TimeLimit((self.0 as f64 * factor).ceil() as u64)
    }
}

/// `program`'s path when it is on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// Writes the scripts of every rung of `plan` (whose folder is absolute) into its `slurm/`
/// folder and submits them with `sbatch`, each rung after the previous one's collect job.
/// `convlab` is the binary the jobs run.
pub fn submit(
    plan: &SearchPlan,
    convlab: &Path,
    options: &SlurmOptions,
    time: Option<TimeLimit>,
) -> Result<Submitted, TrainError> {
    let dir = &plan.options.out;
    let scripts = dir.join("slurm");
    std::fs::create_dir_all(&scripts).map_err(|e| RunError::not_writable(&scripts, e))?;
    let rungs = plan.rungs();
    let mut submitted: Vec<SubmittedRung> = Vec::new();
    for rung in &rungs {
        let added = match rung.index {
            0 => rung.epochs,
            r => rung.epochs - rungs[r - 1].epochs,
        };
        let rung_time = time.map(|t| t.scaled(added, rungs[0].epochs));
        let array = write_script(
            &scripts.join(format!("rung-{}.sh", rung.index)),
            &array_script(plan, convlab, options, rung, rung_time),
        )?;
        let after = submitted.last().map(|s| s.collect_job.clone());
        let array_job = sbatch(&array, after.as_deref())?;
        let collect = write_script(
            &scripts.join(format!("collect-{}.sh", rung.index)),
            &collect_script(plan, convlab, options, rung),
        )?;
        let collect_job = sbatch(&collect, Some(&array_job))?;
        submitted.push(SubmittedRung {
            rung: *rung,
            array_job,
            collect_job,
        });
    }
    Ok(Submitted {
        rungs: submitted,
        scripts,
    })
}

/// The `#SBATCH` lines every job of the search has.
fn common_lines(options: &SlurmOptions) -> String {
    let mut lines = String::new();
    if let Some(partition) = &options.partition {
        lines.push_str(&format!("#SBATCH --partition={partition}\n"));
    }
    for arg in &options.sbatch_args {
        lines.push_str(&format!("#SBATCH {arg}\n"));
    }
    lines
}

fn array_script(
    plan: &SearchPlan,
    convlab: &Path,
    options: &SlurmOptions,
    rung: &Rung,
    time: Option<TimeLimit>,
) -> String {
    let dir = &plan.options.out;
    let parallel = options
        .max_parallel
        .map(|m| format!("%{m}"))
        .unwrap_or_default();
    let time = time
        .map(|t| format!("#SBATCH --time={}\n", t.format()))
        .unwrap_or_default();
    format!(
        "#!/bin/sh\n\
         # Rung {rung} of the search in {dir}: {trials} trials of {epochs} epochs, written by convlab.\n\
         #SBATCH --job-name=convlab-rung-{rung}\n\
         #SBATCH --array=0-{last}{parallel}\n\
         #SBATCH --cpus-per-task={cpus}\n\
         #SBATCH --requeue\n\
         #SBATCH --output={out}\n\
         {time}{common}\
         exec {convlab} search trial {dir_word} --rung {rung} --index \"$SLURM_ARRAY_TASK_ID\"\n",
        rung = rung.index,
        dir = dir.display(),
        trials = rung.trials,
        epochs = rung.epochs,
        last = rung.trials - 1,
        cpus = options.cpus_per_task,
        out = dir
            .join(format!("slurm/rung-{}-%a.out", rung.index))
            .display(),
        common = common_lines(options),
        convlab = shell_word(&convlab.display().to_string()),
        dir_word = shell_word(&dir.display().to_string()),
    )
}

fn collect_script(
    plan: &SearchPlan,
    convlab: &Path,
    options: &SlurmOptions,
    rung: &Rung,
) -> String {
    let dir = &plan.options.out;
    format!(
        "#!/bin/sh\n\
         # Closes rung {rung} of the search in {dir} (its best go on) and writes the leaderboard.\n\
         #SBATCH --job-name=convlab-collect-{rung}\n\
         #SBATCH --cpus-per-task=1\n\
         #SBATCH --output={out}\n\
         {common}\
         exec {convlab} search collect {dir_word} --close-rung {rung}\n",
        rung = rung.index,
        dir = dir.display(),
        out = dir
            .join(format!("slurm/collect-{}.out", rung.index))
            .display(),
        common = common_lines(options),
        convlab = shell_word(&convlab.display().to_string()),
        dir_word = shell_word(&dir.display().to_string()),
    )
}

fn write_script(path: &Path, text: &str) -> Result<PathBuf, TrainError> {
    write_atomic(path, text.as_bytes()).map_err(|e| RunError::io(path, e))?;
    Ok(path.to_path_buf())
}

/// Submits `script` (after job `after` has ended, whatever its outcome) and returns its job id.
fn sbatch(script: &Path, after: Option<&str>) -> Result<String, TrainError> {
    let mut command = Command::new("sbatch");
    command.arg("--parsable");
    if let Some(job) = after {
        command.arg(format!("--dependency=afterany:{job}"));
    }
    let output = command
        .arg(script)
        .output()
        .map_err(|e| TrainError::invalid("--slurm", format!("could not run sbatch: {e}")))?;
    if !output.status.success() {
        return Err(TrainError::invalid(
            "--slurm",
            format!(
                "sbatch {} failed: {}",
                script.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    // `--parsable` prints `JOBID` or `JOBID;CLUSTER`.
    let text = String::from_utf8_lossy(&output.stdout);
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if id.is_empty() {
        return Err(TrainError::invalid(
            "--slurm",
            format!("sbatch {} printed no job id", script.display()),
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_times_read_as_slurm_reads_them_and_scale_by_the_epochs_added() {
        let seconds = |t: &str| TimeLimit::parse(t).map(|l| l.0);
        assert_eq!(seconds("30"), Some(1800));
        assert_eq!(seconds("30:15"), Some(1815));
        assert_eq!(seconds("2:00:00"), Some(7200));
        assert_eq!(seconds("1-12"), Some(129_600));
        assert_eq!(seconds("1-0:30"), Some(88_200));
        assert_eq!(seconds("1-00:00:01"), Some(86_401));
        for bad in ["", "abc", "1:2:3:4", "-5", "0", "1-"] {
            assert_eq!(seconds(bad), None, "{bad}");
        }
        let hour = TimeLimit::parse("60").unwrap();
        assert_eq!(hour.format(), "0-01:00:00");
        // Rung 1 of a halving by 3 from 1 epoch adds 2 epochs: twice the time.
        assert_eq!(hour.scaled(2, 1).format(), "0-02:00:00");
        assert_eq!(hour.scaled(1, 2).format(), "0-01:00:00");
    }
}
