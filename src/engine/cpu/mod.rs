//! convlab's own CPU engine: the few operations the project's models use (convolution and
//! transposed convolution as implicit GEMMs on its own AVX-512 kernels, im2col + GEMM, or by
//! Winograd's method, whichever the shape and the CPU call for; batch norm,
//! ReLU / Leaky ReLU, 2x2 max-pool, linear, dropout, channel concat, softmax cross-entropy) with
//! their backward passes, and the optimisers, on plain `f32` buffers in NCHW order (bf16 bits
//! where a `--precision bf16` training pass stores activations between layers), threaded
//! with rayon. [`CpuNet`] builds a network from the same [`ModelSpec`](crate::models::ModelSpec)
//! burn's `Net` is built from, with the same parameter names and shapes.
//!
//! Parameters travel through burn's records (see `engine::burn`), so a model trained here is
//! evaluated or resumed on burn and back; only the optimiser's moments have a format of their
//! own (`optim.rs`).

pub mod bf16;
pub mod conv;
pub mod kernel;
pub mod layers;
pub mod loss;
pub mod matmul;
pub mod memory;
pub mod net;
pub mod optim;
pub mod peak;

pub use loss::LossSpec;
pub use net::{Activation, CpuNet, LayerParams, Shard, Tape};
pub use optim::{Optimizer, OptimizerKind};
