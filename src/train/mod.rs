//! Training: the loop shared by every task ([`fit`]), opening a run folder for training or
//! resuming it ([`start`]), the hyper-parameter search ([`search`]) and Ctrl-C handling
//! ([`interrupt`]). The run folder's files are defined in `run`; the engines in `engine`.

mod error;
pub mod fit;
pub mod interrupt;
pub mod search;
pub mod start;

pub use error::TrainError;
pub use fit::{TrainStats, TrainingTask, fit};
pub use start::{TrainRequest, open_for_training};
