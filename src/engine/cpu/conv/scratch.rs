//! Each thread's buffers for a convolution (`Scratch`), reused from one group of images to the
//! next so that no group allocates: every method of `conv` writes into them.

use crate::engine::cpu::kernel;

/// Per-thread buffers: unfolded columns, and output-shaped rows of a group.
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) cols: Vec<f32>,
    pub(super) rows: Vec<f32>,
    /// A group's full-size output, pooled before it leaves the cache.
    pub(super) full: Vec<f32>,
    /// The weights laid out for the lanes kernel, and the block of results of one panel.
    pub(super) weights: Vec<f32>,
    pub(super) block: Vec<f32>,
    /// Where each step of the patch starts in the zero-padded input the micro-kernel reads.
    pub(super) steps: kernel::Steps,
    /// The zero-padded input as planes of bf16 channel pairs, for the bf16 micro-kernel; or
    /// the output gradient's positions in pairs, for the bf16 weight gradient.
    pub(super) pairs: Vec<u32>,
    /// The zero-padded input in bf16, for the bf16 weight gradient.
    pub(super) grid_bf16: Vec<u16>,
    /// A group's input stored in bf16, expanded to fp32 for the kernels.
    pub(super) expanded: Vec<f32>,
    /// A group's output as the kernels write it, before it is stored in bf16.
    pub(super) written: Vec<f32>,
}
