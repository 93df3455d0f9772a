//! The forward pass of stride-1 "same" convolutions on small planes with the output channels
//! in the vector lanes (`kernel::lanes_block`), as PyTorch's oneDNN computes them: blocks of 7
//! or 14 positions of one output row, so no work falls on the zero-padded grid's borders. The
//! micro-kernel's 48-position panels spend 15% of their work on a 14 x 14 plane's borders and
//! 31% on a 7 x 7 one's.

use std::ops::Range;

use super::geometry::ConvGeometry;
use super::implicit::Padded;
use super::schedule::Weights;
use super::scratch::Scratch;
use crate::engine::cpu::kernel::{self, LANES, LANES_VECTORS};
use crate::engine::cpu::matmul::{CountedProduct, Threads};
use crate::engine::cpu::memory;

/// Steps of one pass, after which the block's sums go through memory: the pass's weights
/// (`KC x 64` values for four vectors) stay in the L1 cache while every block reads them.
const KC: usize = 64;

/// Results of one chunk of output rows (128 KiB), laid out before the next chunk starts.
const CHUNK_FLOATS: usize = 1 << 15;

impl ConvGeometry {
    /// Whether a group of whole images goes through [`ConvGeometry::forward_lanes`]: rows of
    /// whole blocks (7, 14, 28), at least two vectors of output channels, and patches deep
    /// enough to pay for laying the results out again. Measured per convolution of `res` on an
    /// Intel Xeon (forward passes, against the micro-kernel): 64 -> 64 channels 0.91 against
    /// 1.17 ms at 7 x 7 and 3.44 against 3.72 at 14 x 14, 32 -> 32 at 28 x 28 3.39 against
    /// 3.51; the first layer (1 -> 32, 9 steps) 0.47 against 0.34.
    pub(super) fn runs_in_lanes(&self) -> bool {
        self.runs_implicit()
            && self.groups_images()
            && self.w_out <= 28
            && self.w_out.is_multiple_of(LANES)
            && self.c_out >= 32
            && self.c_in >= 16
    }

    /// The forward pass of whole `images` through `kernel::lanes_block`, or with bf16
    /// operands and AVX512-BF16 through `kernel::lanes_block_bf16` on pairs of input channels
    /// ([`ConvGeometry::runs_in_lanes`] must hold).
    pub(super) fn forward_lanes(
        &self,
        images: &[f32],
        weight: &Weights,
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let n = images.len() / self.in_len();
        let padded = Padded::new(self, n, 0..self.h_out);
        let bf16 = self.runs_bf16_kernels();
        match bf16 {
            true => padded.fill_pairs(self, images, scratch),
            false => padded.fill(self, images, &mut scratch.cols),
        }
        let channels = self.c_out.next_multiple_of(16);
        let _counted = CountedProduct::start(padded.flops(self, n), Threads::One);
        let Scratch {
            cols,
            rows,
            weights,
            steps,
            pairs,
            ..
        } = scratch;
        if bf16 {
            steps.set(padded.pair_steps(self));
            let depth = self.pair_depth();
            let w = weight.lane_pairs(self);
            self.lanes_passes(
                &padded,
                n,
                (depth, KC / 2),
                bias,
                out,
                rows,
                |b, q, r, v, c, add| {
                    let w = &w[r.start * channels + 16 * v..];
                    kernel::lanes_block_bf16(
                        b,
                        &pairs[q..],
                        steps,
                        r,
                        w,
                        channels,
                        c,
                        channels,
                        add,
                    )
                },
            );
        } else {
            steps.set(padded.steps(self));
            let patch = self.patch();
            // The weights step by step, `[patch][channels]`, zeros in the lanes past `c_out`.
            let w = memory::aligned(weights, patch * channels);
            w.fill(0.0);
            kernel::transpose(weight.values, patch, (self.c_out, patch), w, channels);
            self.lanes_passes(
                &padded,
                n,
                (patch, KC),
                bias,
                out,
                rows,
                |b, q, r, v, c, add| {
                    let w = &w[r.start * channels + 16 * v..];
                    kernel::lanes_block(b, &cols[q..], steps, r, w, channels, c, channels, add)
                },
            );
        }
    }

    /// The blocks of the lanes kernel over `depth` steps in passes of `kc`, and the results
    /// laid out into `out` plus the bias: `block(shape, grid position, steps of the pass,
    /// first vector of channels, results, add)` runs one block.
    #[allow(clippy::too_many_arguments)]
    fn lanes_passes(
        &self,
        padded: &Padded,
        n: usize,
        (depth, kc): (usize, usize),
        bias: Option<&[f32]>,
        out: &mut [f32],
        rows_buffer: &mut Vec<f32>,
        block: impl Fn((usize, usize), usize, Range<usize>, usize, &mut [f32], bool),
    ) {
        let channels = self.c_out.next_multiple_of(16);
        let vectors = channels / 16;
        let per_block = vectors.div_ceil(vectors.div_ceil(LANES_VECTORS));
        // Two vectors of channels take blocks of 14 positions where the rows allow: 28
        // accumulators rather than 14 (32 -> 32 channels at 28 x 28: 3.39 against 3.51 ms).
        let positions = match vectors <= 2 && self.w_out.is_multiple_of(2 * LANES) {
            true => 2 * LANES,
            false => LANES,
        };
        // Output rows in chunks whose results stay in L2 through every pass and are laid out
        // before the next chunk: a whole group's results (3.2 MB for 32 images of 32 x 28 x
        // 28) went through memory once per pass.
        let rows_per_chunk = (CHUNK_FLOATS / (self.w_out * channels)).max(1);
        let results = memory::aligned(rows_buffer, rows_per_chunk * self.w_out * channels);
        let all_rows = n * self.h_out;
        for first_row in (0..all_rows).step_by(rows_per_chunk) {
            let rows = first_row..(first_row + rows_per_chunk).min(all_rows);
            for p0 in (0..depth).step_by(kc) {
                let pass = p0..(p0 + kc).min(depth);
                for v0 in (0..vectors).step_by(per_block) {
                    let shape = (positions, per_block.min(vectors - v0));
                    let starts = self.lane_starts(padded, rows.clone(), positions);
                    for (at, q) in starts.enumerate() {
                        let c = &mut results[at * positions * channels + 16 * v0..];
                        block(shape, q, pass.clone(), v0, c, p0 > 0);
                    }
                }
            }
            self.lay_out_rows(results, channels, rows, bias, out);
        }
    }

    /// Output rows `rows` (counted over all images) from `results`, position by position with
    /// `channels` values each, into `out [n, c_out, h_out, w_out]`, plus the bias.
    fn lay_out_rows(
        &self,
        results: &[f32],
        channels: usize,
        rows: Range<usize>,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let (plane, w) = (self.out_plane(), self.w_out);
        for (at, r) in rows.enumerate() {
            let (image, y) = (r / self.h_out, r % self.h_out);
            let src = &results[at * w * channels..];
            let dst = &mut out[image * self.out_len() + y * w..];
            kernel::transpose(src, channels, (w, self.c_out), dst, plane);
            if let Some(bias) = bias {
                for (channel, &b) in bias.iter().enumerate() {
                    let row = &mut dst[channel * plane..channel * plane + w];
                    row.iter_mut().for_each(|v| *v += b);
                }
            }
        }
    }

    /// The grid position of each block's first position: output rows `rows` (counted over
    /// all images), in blocks of `positions`.
    fn lane_starts(
        &self,
        padded: &Padded,
        rows: Range<usize>,
        positions: usize,
    ) -> impl Iterator<Item = usize> + use<> {
        let (h, w) = (self.h_out, self.w_out);
        let (row, image_rows) = (padded.row, padded.image_rows);
        rows.flat_map(move |r| {
            let first = (r / h * image_rows + r % h) * row;
            (0..w).step_by(positions).map(move |x| first + x)
        })
    }
}
