//! Training: validated hyper-parameters, the run folder, atomic checkpoints and resume, the
//! per-epoch metrics log and the loops themselves.

pub mod checkpoint;
pub mod classify;
mod error;
pub mod fit;
pub mod interrupt;
pub mod log;
pub mod options;
pub mod run_dir;
pub mod schedule;
pub mod search;
pub mod segment;
pub mod trainer;

pub use error::TrainError;
