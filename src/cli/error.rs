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
    /// An error of a data-parallel run that rank 0 has printed already: every rank exits
    /// with its status, silently.
    #[error("stopped with every rank (rank 0 said why)")]
    Printed(i32),
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        Error::Task(e.into())
    }
}

impl Error {
    /// Whether the error is still to print (not one rank 0 of a data-parallel run printed).
    pub fn is_printed_here(&self) -> bool {
        !matches!(self, Error::Printed(_))
    }

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
            Error::Printed(code) => return *code,
        };
        if bad_input { 2 } else { 1 }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::run::RunError;

    #[test]
    fn each_error_keeps_its_documented_exit_status() {
        let diverged = Error::Bench(BenchError::Diverged {
            step: 3,
            loss: f32::NAN,
        });
        assert_eq!(
            diverged.exit_code(),
            1,
            "a diverged benchmark is no bad input"
        );
        let network = Error::Bench(BenchError::InvalidOption {
            flag: "--network",
            reason: "unknown".into(),
        });
        assert_eq!(network.exit_code(), 2);
        let interrupted = Error::Task(TaskError::Train(TrainError::Interrupted {
            epoch: 1,
            step: 2,
            steps: 3,
            checkpoint: PathBuf::from("runs/x/checkpoints/last.ckpt"),
        }));
        assert_eq!(interrupted.exit_code(), 130);
        let io = Error::Task(TaskError::Run(RunError::io(
            "runs/x/metrics.json",
            std::io::Error::other("disk"),
        )));
        assert_eq!(io.exit_code(), 1);
        let bad_file = Error::Task(TaskError::Run(RunError::bad_file("runs/x", "missing")));
        assert_eq!(bad_file.exit_code(), 2);
        let gpu = Error::from(EngineError::Device("no GPU".into()));
        assert_eq!(gpu.exit_code(), 2);
    }
}
