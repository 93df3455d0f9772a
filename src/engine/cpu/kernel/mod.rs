//! convlab's own kernels for CPUs with AVX-512, the inner loops of the convolutions
//! (`conv::implicit`, `conv::lanes`, `conv::phases`, `conv::pointwise`):
//! - [`block`], the micro-kernel: an `MR x NR` block of a product held in registers for a whole
//!   pass over the inner dimension, `a` packed as BLIS packs it (Van Zee & van de Geijn, 2015;
//!   [`pack_rows`]), each step of `b` read from wherever it starts ([`Steps`]: the input
//!   shifted, on a zero-padded grid). Alone it runs at the core's FMA peak: 172 of 173 GFLOP/s
//!   on an Intel Xeon, in passes of 64 steps.
//! - [`shifted_block`], for weight gradients: rows broadcast from shifted starts against rows of
//!   `b` laid out along the inner dimension.
//! - [`lanes_block`], for small planes' forward passes: 7 or 14 positions by up to four vectors
//!   of output channels (the channels in the lanes), the four-vector block in assembly.
//! - [`pointwise`], for 1x1 convolutions with few outputs: 16 positions at a time, every
//!   output's sum in a register.
//! - [`block_bf16`], the micro-kernel on pairs of bf16 steps (AVX512-BF16's `vdpbf16ps`), with
//!   its packing ([`pack_row_pairs`], [`interleave_planes`]), for `--precision bf16`'s stride-1
//!   forward passes on a padded grid (and so the input gradients that run as forward passes);
//!   [`pair_runs`] and [`bf16_runs`] round and pair values as they are copied onto a grid.
//! - [`copy_runs`], [`copy_runs_to_every_other`], [`copy_runs_from_every_other`] and
//!   [`transpose`]: the copies around them (padding, results with a bias, a stride-2 phase
//!   into or out of its rows, turning channels into positions), in masked vectors and
//!   register tiles.
//!
//! Each checks its operands' bounds once per call and says so in a panic; the `gemm` crate
//! stays the path on CPUs without AVX-512.
//!
//! By concern: `micro` (the micro-kernel, its packing and steps, and the weight gradients'
//! shifted blocks), `lanes` (small planes with the channels in the lanes), `pointwise`, `copy`
//! (the copies and the transpose), `loops` (`vectorised!` and `lane_sums`); each holds its
//! AVX-512 code beside the safe function that checks the operands and calls it. Here what they
//! share: whether the CPU runs them, and masks of the first lanes.

mod bf16_block;
mod copy;
mod lanes;
mod loops;
mod micro;
mod pointwise;
#[cfg(test)]
mod tests;

pub use bf16_block::{
    available_bf16, bf16_bits, bf16_runs, block_bf16, interleave_planes, pack_row_pairs, pair_rows,
    pair_runs, shifted_block_bf16, to_bf16,
};
pub use copy::{Runs, copy_runs, copy_runs_from_every_other, copy_runs_to_every_other, transpose};
pub use lanes::{LANES, LANES_VECTORS, lanes_block, lanes_block_bf16};
pub(crate) use loops::vectorised;
pub use loops::{lane_sums, run_vectorised};
pub use micro::{
    MR, NR, SHIFTED_ACCUMULATORS, Steps, block, pack_rows, shifted_block, shifted_rows,
};
pub use pointwise::{POINTWISE_ROWS, pointwise};

/// Whether this CPU runs the micro-kernel (the answer is cached by `std`).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// For the tests of what runs only with AVX-512: whether this CPU has none (and so the test is
/// skipped, which it says).
#[cfg(test)]
pub(crate) fn skipped_without_avx512() -> bool {
    let skipped = !available();
    if skipped {
        eprintln!("skipped: this CPU has no AVX-512, so convlab's own kernels never run here");
    }
    skipped
}

/// Masks the first `n` of 16 lanes.
#[cfg(target_arch = "x86_64")]
fn first_lanes(n: usize) -> std::arch::x86_64::__mmask16 {
    if n >= 16 { 0xffff } else { (1u16 << n) - 1 }
}
