//! convlab: train, evaluate and explain convolutional networks.
//!
//! The map of the code is `docs/ARCHITECTURE.md`: the data flow, what each module owns, and
//! the one direction of imports (a module imports only from the layers before its own):
//! 1. [`data`] (data sets, label maps, split, augmentation, batches), [`models`] (every
//!    architecture as a layer list), [`metrics`] (confusion, accuracy, exact AP, IoU), and the
//!    helpers [`fsutil`], [`progress`], [`process`], and [`distributed`] (the ranks of a run
//!    over MPI);
//! 2. [`engine`]: convlab's CPU engine and burn behind one switch ([`engine::Model`] for
//!    inference, [`engine::Trainer`] for a step);
//! 3. [`run`]: the run folder's contract (configuration, records, results, checkpoints);
//! 4. [`train`] (the loop, resume, search) and [`figures`] (PNG figures), which do not import
//!    each other;
//! 5. [`tasks`]: train / eval / search written once over a task trait, with classification and
//!    segmentation supplying what differs;
//! 6. [`predict`], [`report`], [`export`], [`bench`];
//! 7. [`cli`]: the command line, the only module that knows clap, writes to the terminal (the
//!    lower layers report through [`progress`]) and picks exit codes.

#[cfg(feature = "full")]
pub mod bench;
#[cfg(feature = "full")]
pub mod cli;
pub mod data;
#[cfg(feature = "full")]
pub mod distributed;
#[cfg(feature = "full")]
pub mod engine;
#[cfg(feature = "full")]
pub mod export;
#[cfg(feature = "full")]
pub mod figures;
pub mod fsutil;
pub mod metrics;
#[cfg(feature = "full")]
pub mod models;
#[cfg(feature = "full")]
pub mod predict;
pub mod process;
pub mod progress;
#[cfg(feature = "full")]
pub mod report;
#[cfg(feature = "full")]
pub mod run;
#[cfg(feature = "full")]
pub mod tasks;
#[cfg(feature = "full")]
pub mod train;
