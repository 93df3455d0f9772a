//! Training: the loop shared by every task ([`fit`]) and how a run is launched ([`Launch`]:
//! engine, ranks, resume, the clock a `--budget` reads), opening a run folder for training or
//! resuming it ([`start`]), the hyper-parameter search ([`search`]), Ctrl-C handling
//! ([`interrupt`]) and the frozen patch-whitening first layer of `--whiten` ([`whitening`]).
//! The run folder's files are defined in `run`; the engines in `engine`.

mod error;
pub mod fit;
pub mod interrupt;
mod launch;
pub mod search;
pub mod start;
pub mod whitening;

pub use error::TrainError;
pub use fit::{TrainStats, TrainingTask, fit};
pub use launch::{Clock, Launch, epochs_within};
pub use start::{TrainRequest, open_for_training};
