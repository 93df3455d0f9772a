use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{flag}: {reason}")]
    InvalidOption { flag: String, reason: String },
    #[error("{}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: output folder is not writable: {reason}", path.display())]
    NotWritable { path: PathBuf, reason: String },
    #[error(
        "{}: not enough free disk space for the checkpoints: they need about {} MB, {} MB are free",
        path.display(), needed / 1_000_000, available / 1_000_000
    )]
    DiskFull {
        path: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error("--device: {0}")]
    Device(String),
    #[error(
        "training diverged at epoch {epoch}, step {step}: loss is {loss}; the last good checkpoint is kept in {}\nhint: lower the learning rate (--lr)",
        checkpoint.display()
    )]
    Diverged {
        epoch: usize,
        step: usize,
        loss: f32,
        checkpoint: PathBuf,
    },
    #[error("{}: {reason}", path.display())]
    Record { path: PathBuf, reason: String },
    #[error(
        "interrupted in epoch {epoch} after step {step} of {steps}; checkpoint saved to {}\nhint: continue with the same command and --resume",
        checkpoint.display()
    )]
    Interrupted {
        epoch: usize,
        step: usize,
        steps: usize,
        checkpoint: PathBuf,
    },
}

impl TrainError {
    /// Errors the user can fix by changing an input; divergence and I/O failures are not.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            TrainError::Io { .. }
                | TrainError::Diverged { .. }
                | TrainError::Record { .. }
                | TrainError::Interrupted { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(flag: &str, reason: impl Into<String>) -> Self {
        TrainError::InvalidOption {
            flag: flag.into(),
            reason: reason.into(),
        }
    }
}
