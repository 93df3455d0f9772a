//! The run folder's contract (`--out runs/NAME`): where each file lives ([`RunDir`]), what
//! `config.json` holds (checked hyper-parameters and each task's configuration), the epoch
//! records of `metrics.jsonl` (and the TensorBoard event file made from them), the results of
//! `metrics.json`, and the checkpoint container.
//! Everything that reads a run folder (eval, predict, report, figures, bench) reads it through
//! this module; training writes it through this module.

pub mod checkpoint;
pub mod config;
mod dir;
mod error;
pub mod json;
pub mod records;
pub mod results;
pub mod schedule;
pub mod tensorboard;

pub use dir::RunDir;
pub use error::RunError;
