//! How a batch is cut and run: the group sizes, each thread's `Scratch` kept between calls,
//! how many images go into one product and which method each group takes (row blocks, a group
//! side by side, Winograd, phases), and how groups go over the threads (`for_each_group`, and
//! `in_runs` for sums that must not depend on rayon's scheduling).

use std::cell::RefCell;
use std::sync::OnceLock;

use rayon::prelude::*;

use super::geometry::ConvGeometry;
use super::phases::PhaseKernel;
use super::scratch::Scratch;
use super::winograd;
use crate::engine::cpu::kernel;
use crate::engine::cpu::matmul::Threads;
use crate::engine::cpu::memory;

/// Floats of unfolded columns for a group of small images (2 MiB).
const GROUP_FLOATS: usize = 1 << 19;

/// A convolution's weights `[c_out, patch]`, and their packing for the micro-kernel, made once
/// per call by the first group that needs it: each group packing its own took 8% of a `unet`
/// convolution at 16 x 16 (256 -> 128 channels, a 1.2 MB packing for each image).
pub(super) struct Weights<'a> {
    pub(super) values: &'a [f32],
    packed: OnceLock<Vec<f32>>,
    pairs: OnceLock<Vec<u32>>,
    /// The lanes kernel's bf16 pairs, and where they start on a 64-byte boundary.
    lane_pairs: OnceLock<(Vec<u32>, usize)>,
}

impl<'a> Weights<'a> {
    pub(super) fn new(values: &'a [f32]) -> Self {
        Weights {
            values,
            packed: OnceLock::new(),
            pairs: OnceLock::new(),
            lane_pairs: OnceLock::new(),
        }
    }

    /// The weights as `kernel::pack_rows` lays out `rows x depth` values.
    pub(super) fn packed(&self, rows: usize, depth: usize) -> &[f32] {
        self.packed.get_or_init(|| {
            let mut packed = Vec::new();
            kernel::pack_rows(self.values, rows, depth, &mut packed);
            packed
        })
    }

    /// The weights `[c_out, c_in, k, k]` of `g` for the bf16 micro-kernel: each output's row as
    /// pairs of input channels tap by tap (channel `2j` low, `2j + 1` high, zero past the
    /// last channel), as `kernel::pack_row_pairs` lays them out.
    pub(super) fn pairs(&self, g: &ConvGeometry) -> &[u32] {
        self.pairs.get_or_init(|| {
            let (taps, pairs) = (g.k * g.k, g.c_in.div_ceil(2));
            let mut rows = vec![0.0; g.c_out * pairs * taps * 2];
            for (o, row) in rows.chunks_exact_mut(pairs * taps * 2).enumerate() {
                for c in 0..g.c_in {
                    for t in 0..taps {
                        row[((c / 2) * taps + t) * 2 + c % 2] =
                            self.values[(o * g.c_in + c) * taps + t];
                    }
                }
            }
            let mut packed = Vec::new();
            kernel::pack_row_pairs(&rows, g.c_out, pairs * taps, &mut packed);
            packed
        })
    }
}

impl Weights<'_> {
    /// The weights `[c_out, c_in, k, k]` of `g` for `kernel::lanes_block_bf16`: pair `(j,
    /// tap)` of the patch (input channels `2j` and `2j + 1` at that tap) as `c_out` rounded up
    /// to 16 lanes, each an output's two weights in bf16 (channel `2j` low), zeros past `c_out`
    /// and past the last input channel; on a 64-byte boundary.
    pub(super) fn lane_pairs(&self, g: &ConvGeometry) -> &[u32] {
        let (values, skip) = self.lane_pairs.get_or_init(|| {
            let (taps, channels) = (g.k * g.k, g.c_out.next_multiple_of(16));
            let len = g.pair_depth() * channels;
            let mut values = Vec::new();
            let w = memory::aligned(&mut values, len);
            w.fill(0);
            for (pair, lanes) in w.chunks_exact_mut(taps * channels).enumerate() {
                for c in (2 * pair..2 * pair + 2).filter(|&c| c < g.c_in) {
                    let shift = 16 * (c % 2);
                    for (t, lanes) in lanes.chunks_exact_mut(channels).enumerate() {
                        for (o, lane) in lanes[..g.c_out].iter_mut().enumerate() {
                            let weight = self.values[(o * g.c_in + c) * taps + t];
                            *lane |= (kernel::bf16_bits(weight) as u32) << shift;
                        }
                    }
                }
            }
            let skip = w.as_ptr() as usize - values.as_ptr() as usize;
            (values, skip / size_of::<u32>())
        });
        let len = g.pair_depth() * g.c_out.next_multiple_of(16);
        &values[*skip..*skip + len]
    }
}

impl ConvGeometry {
    /// Images per product: small planes are unfolded several images side by side so that each
    /// GEMM is large enough to run at the kernel's speed (a 14x14 plane alone is 196 columns);
    /// large planes go one image at a time, in row blocks.
    pub(super) fn images_per_group(&self, n: usize) -> usize {
        if !self.groups_images() {
            return 1;
        }
        // As many groups as the size allows, rounded up to a multiple of the threads, and the
        // images spread evenly over them: groups of 18 left 64 images as 18 + 18 | 18 + 10 on
        // two threads, one of them idle for an eighth of the pass.
        let by_size = (GROUP_FLOATS / (self.patch() * self.out_plane())).max(1);
        let groups = n
            .div_ceil(by_size)
            .next_multiple_of(rayon::current_num_threads());
        n.div_ceil(groups).max(1)
    }

    /// Whether this convolution's bf16 operands go to the bf16 kernels (AVX512-BF16): then
    /// they run its forward passes rather than Winograd's method in fp32, which the twice
    /// faster products outrun, and its weight gradients.
    pub(super) fn runs_bf16_kernels(&self) -> bool {
        self.bf16 && self.bf16_kernels
    }

    /// The number of groups `n` images make ([`ConvGeometry::images_per_group`] each).
    pub(super) fn groups(&self, n: usize) -> usize {
        n.div_ceil(self.images_per_group(n))
    }

    /// Whether `pass` over `groups` groups of images reads its operands only through kernels
    /// that round each value to bf16 as they read it: the bf16 kernels as they lay their
    /// operands out (`Padded::fill_pairs`, `Padded::fill_bf16`, `kernel::pair_rows`, the
    /// weights' pairs), where every group runs on one thread (the methods above choose by that)
    /// on the implicit paths, and `kernel::pointwise` (1x1 convolutions with few outputs,
    /// forward passes and input gradients). Elsewhere (the `gemm` crate's products, a CPU
    /// without AVX512-BF16) fp32 kernels read the operands, so they must be rounded first.
    pub(super) fn kernels_round(&self, pass: Pass, groups: usize) -> bool {
        let implicit = self.runs_bf16_kernels()
            && per_group(groups)
            && match pass {
                Pass::Forward | Pass::WeightGrad => self.runs_implicit(),
                Pass::InputGrad => self.input_grad_runs_implicit(),
            };
        let pointwise = self.bf16 && self.runs_pointwise() && !matches!(pass, Pass::WeightGrad);
        implicit || pointwise
    }

    /// Whether whole images are unfolded side by side (small planes) rather than one image in
    /// row blocks.
    pub(super) fn groups_images(&self) -> bool {
        self.patch() * self.out_plane() < GROUP_FLOATS / 2
    }

    /// The forward pass of consecutive images, by whichever of the two layouts fits the plane;
    /// small planes with many channels by Winograd's method (on large planes one image's
    /// transforms outgrow the caches: `unet` was 5% slower with them).
    pub(super) fn forward_part(
        &self,
        images: &[f32],
        weights: &Weights,
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Scratch,
        threads: Threads,
    ) {
        if self.runs_pointwise() {
            for (x, o) in images
                .chunks(self.in_len())
                .zip(out.chunks_mut(self.out_len()))
            {
                self.forward_pointwise(x, weights.values, bias, o)
            }
        } else if self.groups_images() && winograd::applies(self) && !self.runs_bf16_kernels() {
            let Scratch { cols, rows, .. } = scratch;
            winograd::forward(self, images, weights.values, bias, out, cols, rows, threads)
        } else if threads == Threads::One && self.runs_in_lanes() {
            self.forward_lanes(images, weights, bias, out, scratch)
        } else if threads == Threads::One && self.runs_implicit_bf16() {
            self.forward_implicit_bf16(images, weights.pairs(self), bias, out, scratch)
        } else if threads == Threads::One && self.runs_implicit() {
            let packed = weights.packed(self.c_out, self.patch());
            self.forward_implicit(images, packed, bias, out, scratch)
        } else if self.groups_images() {
            self.forward_group(images, weights.values, bias, out, scratch, threads)
        } else {
            for (x, o) in images
                .chunks(self.in_len())
                .zip(out.chunks_mut(self.out_len()))
            {
                self.forward_image(x, weights.values, bias, o, &mut scratch.cols, threads)
            }
        }
    }

    /// The input gradient of consecutive images (overwriting `grad_in`) plus `bias` per input
    /// channel; `phases` from [`ConvGeometry::input_grad_phases`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn input_grad_part(
        &self,
        grad_out: &[f32],
        weight: &[f32],
        phases: &[PhaseKernel],
        bias: Option<&[f32]>,
        grad_in: &mut [f32],
        scratch: &mut Scratch,
        threads: Threads,
    ) {
        if threads == Threads::One && self.input_grad_runs_implicit() {
            return self.input_grad_implicit(grad_out, phases, bias, grad_in, scratch);
        }
        if self.runs_pointwise() {
            let mut weight_t = vec![0.0; weight.len()];
            kernel::transpose(
                weight,
                self.c_in,
                (self.c_out, self.c_in),
                &mut weight_t,
                self.c_out,
            );
            for (dy, dx) in grad_out
                .chunks(self.out_len())
                .zip(grad_in.chunks_mut(self.in_len()))
            {
                self.input_grad_pointwise(dy, &weight_t, dx)
            }
        } else if self.groups_images() {
            self.input_grad_group(grad_out, weight, grad_in, scratch, threads)
        } else {
            for (dy, dx) in grad_out
                .chunks(self.out_len())
                .zip(grad_in.chunks_mut(self.in_len()))
            {
                if self.stride > 1 {
                    self.input_grad_by_phases(dy, phases, dx, scratch, threads)
                } else {
                    self.input_grad_image(dy, weight, dx, &mut scratch.cols, threads)
                }
            }
        }
        if let Some(bias) = bias {
            super::add_bias(grad_in, self.h * self.w, bias);
        }
    }

    /// Adds the weight gradient of consecutive images to `grad_weight`.
    pub(super) fn weight_grad_part(
        &self,
        grad_out: &[f32],
        images: &[f32],
        grad_weight: &mut [f32],
        scratch: &mut Scratch,
        threads: Threads,
    ) {
        if self.groups_images() && winograd::applies(self) && !self.runs_bf16_kernels() {
            let Scratch { cols, rows, .. } = scratch;
            winograd::weight_grad(self, grad_out, images, grad_weight, cols, rows, threads)
        } else if threads == Threads::One && self.runs_implicit() {
            self.weight_grad_implicit(grad_out, images, grad_weight, scratch)
        } else if self.groups_images() {
            self.weight_grad_group(grad_out, images, grad_weight, scratch, threads)
        } else {
            for (dy, x) in grad_out
                .chunks(self.out_len())
                .zip(images.chunks(self.in_len()))
            {
                self.weight_grad_image(dy, x, grad_weight, &mut scratch.cols, threads)
            }
        }
    }
}

/// The three passes of a convolution, for [`ConvGeometry::kernels_round`].
#[derive(Clone, Copy, Debug)]
pub(super) enum Pass {
    Forward,
    /// The input gradient of a convolution that does not run as a forward pass with flipped
    /// kernels (`ConvGeometry::flipped`): strided and 1x1 ones.
    InputGrad,
    WeightGrad,
}

/// Whether a batch of `n` is split over the threads (one group of images each) rather than
/// each product.
fn per_group(groups: usize) -> bool {
    groups >= rayon::current_num_threads()
}

thread_local! {
    /// Each thread's buffers, kept from one convolution to the next. A fresh `Scratch` for
    /// every group (rayon's `for_each_init` makes one per piece of work it splits off) was
    /// zero-filled as it grew: 4-8% of a training step on an Intel Xeon.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// `f` with this thread's [`Scratch`], or a fresh one when the thread's is in use (a product
/// on all threads lets its thread run other work while it waits).
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// Runs `f(group, scratch, threads)` for every group, over the threads when there are enough.
pub(super) fn for_each_group<T: Send>(items: Vec<T>, f: impl Fn(T, &mut Scratch, Threads) + Sync) {
    if per_group(items.len()) {
        items
            .into_par_iter()
            .for_each(|item| with_scratch(|scratch| f(item, scratch, Threads::One)));
    } else {
        with_scratch(|scratch| {
            items
                .into_iter()
                .for_each(|item| f(item, scratch, Threads::All))
        });
    }
}

/// Calls `f` on fixed runs of consecutive `items` (one run per thread when there are enough
/// items, else one run whose products use all threads) and returns the results in order, so
/// that a sum over them does not depend on how rayon schedules the work.
pub(super) fn in_runs<T: Send, R: Send>(
    items: &mut [T],
    f: impl Fn(&mut [T], Threads) -> R + Sync,
) -> Vec<R> {
    if per_group(items.len()) {
        let per_run = items.len().div_ceil(rayon::current_num_threads());
        items
            .par_chunks_mut(per_run)
            .map(|run| f(run, Threads::One))
            .collect()
    } else {
        vec![f(items, Threads::All)]
    }
}
