//! The run folder (`--out runs/NAME`): where each output of a run lives.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::RunError;
use super::json::write_json;
use crate::engine::{Precision, Tta};

#[derive(Clone, Debug)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunDir { root: root.into() }
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }

    pub fn metrics_log(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.json")
    }

    /// Where an evaluation with test-time augmentation `tta`, at `precision` when that is not
    /// the run's own, writes its metrics: `metrics.json` for neither, else
    /// `metrics_tta_<views>.json`, `metrics_<precision>.json` or
    /// `metrics_tta_<views>_<precision>.json`, so the plain figures stay.
    pub fn metrics_with(&self, tta: Tta, precision: Option<Precision>) -> PathBuf {
        let mut name = String::from("metrics");
        if !tta.is_none() {
            name += &format!("_tta_{}", tta.name());
        }
        if let Some(precision) = precision {
            name += &format!("_{}", precision.name());
        }
        self.root.join(name + ".json")
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    pub fn last_checkpoint(&self) -> PathBuf {
        self.checkpoints().join("last.ckpt")
    }

    pub fn best_checkpoint(&self) -> PathBuf {
        self.checkpoints().join("best.ckpt")
    }

    /// The checkpoint a finished run is evaluated with: the best, else the last.
    pub fn final_checkpoint(&self) -> PathBuf {
        let best = self.best_checkpoint();
        if best.exists() {
            best
        } else {
            self.last_checkpoint()
        }
    }

    pub fn figures(&self) -> PathBuf {
        self.root.join("figures")
    }

    /// Creates the folders and proves they are writable, before any long work starts.
    pub fn prepare(&self) -> Result<(), RunError> {
        for dir in [self.root.clone(), self.checkpoints(), self.figures()] {
            if dir.exists() && !dir.is_dir() {
                return Err(RunError::not_writable(dir, "exists and is not a folder"));
            }
            std::fs::create_dir_all(&dir).map_err(|e| RunError::not_writable(&dir, e))?;
            crate::fsutil::remove_stale_temp_files(&dir);
        }
        let probe = self.checkpoints().join(".write-test");
        crate::fsutil::write_atomic(&probe, b"ok")
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(|e| RunError::not_writable(&self.root, e))
    }

    /// Refuses to start when the checkpoints folder's filesystem has less free space than
    /// `checkpoint_bytes` needs: the last and best checkpoints plus a temporary copy while one
    /// is replaced.
    pub fn check_space(&self, checkpoint_bytes: u64) -> Result<(), RunError> {
        let dir = self.checkpoints();
        match crate::fsutil::available_space(&dir) {
            Some(available) => enough_space(&dir, 3 * checkpoint_bytes, available),
            None => Ok(()),
        }
    }

    /// Prepares the folders and writes `config.json`: what every training run does before its
    /// first step.
    pub fn start<C: Serialize>(&self, config: &C) -> Result<(), RunError> {
        self.prepare()?;
        write_json(&self.config(), config)
    }

    /// A run folder that exists and holds a `config.json` (for eval, resume and predict).
    pub fn existing(root: &Path) -> Result<Self, RunError> {
        let run = RunDir::new(root);
        if !run.config().is_file() {
            return Err(RunError::bad_file(
                run.config(),
                "not found: is this a run folder made by `convlab ... train`?",
            ));
        }
        Ok(run)
    }

    /// A run folder starting afresh: refuses to overwrite an earlier run's checkpoints.
    pub fn fresh(root: &Path) -> Result<Self, RunError> {
        let run = RunDir::new(root);
        if run.last_checkpoint().exists() {
            return Err(RunError::invalid(
                "--out",
                format!(
                    "{} already holds a run; pass --resume to continue it, or choose another --out",
                    root.display()
                ),
            ));
        }
        Ok(run)
    }
}

fn enough_space(dir: &Path, needed: u64, available: u64) -> Result<(), RunError> {
    if available >= needed {
        Ok(())
    } else {
        Err(RunError::DiskFull {
            path: dir.into(),
            needed,
            available,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_little_space_for_the_checkpoints_is_refused_with_the_figures() {
        let dir = Path::new("runs/x/checkpoints");
        assert!(enough_space(dir, 30_000_000, 30_000_000).is_ok());
        let err = enough_space(dir, 30_000_000, 12_500_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "runs/x/checkpoints: not enough free disk space for the checkpoints: they need about 30 MB, 12 MB are free"
        );
        assert!(err.is_bad_input());
    }
}
