use crate::data::DataError;
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
        }
    }
}
