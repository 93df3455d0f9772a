//! The top-level error: one variant per area, each area owning its own enum.

use crate::{data::DataError, figures::FigureError, report::ReportError, train::TrainError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Figure(#[from] FigureError),
    #[error(transparent)]
    Report(#[from] ReportError),
}

impl Error {
    /// Exit status per `DESIGN.md`: 2 for bad input or usage, 1 for internal failures; and 130
    /// (the shell's convention) for a run stopped by Ctrl-C after saving its checkpoint.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Train(TrainError::Interrupted { .. }) => {
                crate::train::interrupt::EXIT_INTERRUPTED
            }
            Error::Data(e) if e.is_bad_input() => 2,
            Error::Train(e) if e.is_bad_input() => 2,
            Error::Report(e) if e.is_bad_input() => 2,
            _ => 1,
        }
    }
}
