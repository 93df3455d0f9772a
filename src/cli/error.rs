//! The command line's error: one variant per area, each area owning its own enum, and the exit
//! status of each.

use crate::bench::BenchError;
use crate::engine::EngineError;
use crate::report::ReportError;
use crate::tasks::TaskError;
use crate::train::TrainError;
use crate::train::interrupt::EXIT_INTERRUPTED;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Bench(#[from] BenchError),
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        Error::Task(e.into())
    }
}

impl Error {
    /// Exit status per `DESIGN.md`: 2 for bad input or usage, 1 for internal failures; and 130
    /// (the shell's convention) for a run stopped by Ctrl-C after saving its checkpoint.
    pub fn exit_code(&self) -> i32 {
        if matches!(
            self,
            Error::Task(TaskError::Train(TrainError::Interrupted { .. }))
        ) {
            return EXIT_INTERRUPTED;
        }
        let bad_input = match self {
            Error::Task(e) => e.is_bad_input(),
            Error::Report(e) => e.is_bad_input(),
            Error::Bench(e) => e.is_bad_input(),
        };
        if bad_input { 2 } else { 1 }
    }
}
