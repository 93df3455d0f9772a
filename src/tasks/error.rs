use crate::data::DataError;
use crate::distributed::DistributedError;
use crate::engine::EngineError;
use crate::figures::FigureError;
use crate::run::RunError;
use crate::train::TrainError;

/// What can stop a task's command: each area's own error.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Figure(#[from] FigureError),
    #[error(transparent)]
    Distributed(#[from] DistributedError),
    /// `--distributed` with what it cannot train on.
    #[error("--distributed: {0}")]
    NotDistributable(String),
    /// This rank of a data-parallel run started differently from rank 0 (its command line or
    /// its data).
    #[error("differs from rank 0: {0}")]
    RanksDiffer(String),
    /// A rank stopped the run before training: every rank reports its message.
    #[error("rank {rank}: {why}")]
    RankStopped {
        rank: usize,
        why: String,
        bad_input: bool,
    },
}

impl TaskError {
    /// Errors the user can fix by changing an input.
    pub fn is_bad_input(&self) -> bool {
        match self {
            TaskError::Data(e) => e.is_bad_input(),
            TaskError::Engine(e) => e.is_bad_input(),
            TaskError::Run(e) => e.is_bad_input(),
            TaskError::Train(e) => e.is_bad_input(),
            TaskError::Figure(_) => false,
            TaskError::Distributed(e) => e.is_bad_input(),
            TaskError::NotDistributable(_) | TaskError::RanksDiffer(_) => true,
            TaskError::RankStopped { bad_input, .. } => *bad_input,
        }
    }
}
