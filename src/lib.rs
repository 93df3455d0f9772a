//! convlab: train, evaluate and explain convolutional networks.
//!
//! Module map (each arrow of the data flow in `DESIGN.md` is one module):
//! - [`data`]: reading data sets from disk (IDX, checksums, locating and fetching), the seeded
//!   train/validation split, augmentation and batching into tensors.
//! - [`models`]: architectures described once as layer lists ([`models::ModelSpec`]) and the burn
//!   network built from them.
//! - [`cpu`]: convlab's own CPU engine (convolutions as im2col + GEMM, the other layers, losses,
//!   optimisers) that trains and runs every model on the CPU; burn remains for GPUs.
//! - [`train`]: the training loop, validated hyper-parameters, the run folder, atomic checkpoints,
//!   resume and the per-epoch metrics log.
//! - [`metrics`]: accuracy, per-class accuracy, confusion matrices; exact average precision
//!   (as scikit-learn's) and IoU for segmentation.
//! - [`figures`]: PNG figures (curves, bars, filter and example grids, confusion matrix,
//!   segmentation predictions and legend).
//! - [`predict`]: segmentation of any photo with a trained run.
//! - [`progress`]: progress bars for work longer than a few seconds (loading, training).
//! - [`process`]: the process's peak memory, for run summaries and benchmarks.
//! - [`report`]: the HTML write-up of finished runs (`convlab report`).
//! - [`bench`]: timing of training steps, inference, epochs and time to accuracy, for the
//!   side-by-side comparison with PyTorch (`bench/compare.py`).
//! - [`cli`]: the `convlab` command line; `main.rs` only maps errors to exit codes.

#[cfg(feature = "engine")]
pub mod bench;
#[cfg(feature = "engine")]
pub mod cli;
#[cfg(feature = "engine")]
pub mod cpu;
pub mod data;
#[cfg(feature = "engine")]
pub mod device;
#[cfg(feature = "engine")]
pub mod error;
#[cfg(feature = "engine")]
pub mod figures;
pub mod fsutil;
pub mod metrics;
#[cfg(feature = "engine")]
pub mod models;
#[cfg(feature = "engine")]
pub mod predict;
pub mod process;
pub mod progress;
#[cfg(feature = "engine")]
pub mod report;
#[cfg(feature = "engine")]
pub mod train;

#[cfg(feature = "engine")]
pub use error::Error;
