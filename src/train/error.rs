use std::path::PathBuf;

use crate::engine::EngineError;
use crate::run::RunError;

/// What can stop training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{flag}: {reason}")]
    InvalidOption { flag: String, reason: String },
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
    /// Whether every rank of a data-parallel run stops with this error at the same step (they
    /// agree on a stop and on the whole batch's loss), rather than this rank alone.
    pub fn is_shared_by_every_rank(&self) -> bool {
        matches!(
            self,
            TrainError::Interrupted { .. } | TrainError::Diverged { .. }
        )
    }

    /// Errors the user can fix by changing an input; divergence, interruption and I/O failures
    /// are not.
    pub fn is_bad_input(&self) -> bool {
        match self {
            TrainError::Run(e) => e.is_bad_input(),
            TrainError::Engine(e) => e.is_bad_input(),
            TrainError::InvalidOption { .. } => true,
            TrainError::Diverged { .. } | TrainError::Interrupted { .. } => false,
        }
    }

    pub fn invalid(flag: &str, reason: impl Into<String>) -> Self {
        TrainError::InvalidOption {
            flag: flag.into(),
            reason: reason.into(),
        }
    }
}
