//! Stride-1 convolutions whose output planes are the size of their input's, and stride-2 ones
//! whose planes are half of it, on convlab's own kernels (`engine::cpu::kernel`), as implicit
//! GEMMs: nothing is unfolded. The input is copied once, zero-padded, onto a grid ([`Padded`];
//! at stride 2, split into its four sub-pixel phases) where each step `(c, ky, kx)` of the
//! patch is a plane shifted, so the kernels read every step straight from it:
//! - the forward pass (and a stride-1 input gradient, which runs as a forward pass with
//!   flipped kernels): the micro-kernel's `8 x 48` blocks, panels of 48 grid positions, each
//!   block's results copied to the output with the bias while in L1 ([`panels`]; small planes
//!   take `conv::lanes` instead, and strided input gradients run each phase through the same
//!   panels in `conv::phases`);
//! - the weight gradient: `kernel::shifted_block`, each step broadcast from the grid against
//!   the output gradient laid out position by position, over the output positions only;
//! - with bf16 operands (`--precision bf16`) and AVX512-BF16, the forward pass on
//!   `kernel::block_bf16` (the grid's channels interleaved in pairs, each pair of steps one
//!   `vdpbf16ps`) and the weight gradient on `kernel::shifted_block_bf16` (the output
//!   positions in pairs); a strided input gradient's phases (`conv::phases`) pair the output
//!   gradient's channels the same way. The grid is then filled in bf16 as it is copied
//!   ([`Padded::fill_pairs`], [`Padded::fill_bf16`]): no fp32 grid is written and read again.
//!
//! On an Intel Xeon the unfolding this replaces cost about a third of a small plane's forward
//! pass, and the `gemm` crate's weight gradients (which unfold, then pack both operands again)
//! ran 36% slower than PyTorch's.

use std::ops::Range;

use super::geometry::ConvGeometry;
use super::scratch::Scratch;
use crate::engine::cpu::kernel::{self, MR, NR, SHIFTED_ACCUMULATORS};
use crate::engine::cpu::matmul::{CountedProduct, Threads};
use crate::engine::cpu::memory;

/// Steps of one pass of the micro-kernel, after which each block's sums go through memory (the
/// block of results, in L1). 128 and 256 measured the same as 64 on an Intel Xeon (per
/// convolution of `res`, within 1%).
const KC: usize = 64;

impl ConvGeometry {
    /// Whether this convolution runs here (forward passes and weight gradients): the kernels
    /// are there, and each step of a patch is a plane of the grid shifted ([`Self::grid_pad`];
    /// 1x1 convolutions read their input as it lies and gain nothing).
    pub(super) fn runs_implicit(&self) -> bool {
        kernel::available() && !self.is_pointwise() && self.grid_pad().is_some()
    }

    /// The zero border around each plane of the padded grid, where the convolution maps onto
    /// one: stride 1 with output planes the size of the input's (the border is the padding),
    /// or stride 2 with planes of exactly half the input's, whose input is split into its four
    /// sub-pixel phases (each a plane the output's size) so that every tap is one phase
    /// shifted by at most the border.
    pub(super) fn grid_pad(&self) -> Option<usize> {
        match self.stride {
            1 if (self.h_out, self.w_out) == (self.h, self.w) => Some(self.pad),
            2 if (self.h, self.w) == (2 * self.h_out, 2 * self.w_out) => {
                let (first, last) = (self.tap(0).1, self.tap(self.k - 1).1);
                Some(first.unsigned_abs().max(last.unsigned_abs()))
            }
            _ => None,
        }
    }

    /// Kernel tap `t` (along one axis) as the phase of the input it reads and that phase's
    /// shift from the output position: input `stride * y + t - pad` is phase `(t - pad) mod
    /// stride`, row `y + (t - pad) div stride`.
    fn tap(&self, t: usize) -> (usize, isize) {
        let (t, s) = (t as isize - self.pad as isize, self.stride as isize);
        (t.rem_euclid(s) as usize, t.div_euclid(s))
    }

    /// Planes of the padded grid: each input channel, or each of its phases.
    fn grid_planes(&self) -> usize {
        self.c_in * self.stride * self.stride
    }

    /// The forward pass of `images` (whole images side by side when small, each image in
    /// blocks of rows when large) through the micro-kernel ([`ConvGeometry::runs_implicit`]
    /// must hold).
    pub(super) fn forward_implicit(
        &self,
        images: &[f32],
        packed: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        self.in_padded_blocks(images, out, |images, rows, out| {
            self.forward_rows_implicit(images, packed, rows, bias, out, scratch)
        })
    }

    /// Whether this convolution's forward pass runs on the bf16 micro-kernel: bf16 operands,
    /// the kernel there, a padded grid (a strided grid pairs each phase of two channels).
    pub(super) fn runs_implicit_bf16(&self) -> bool {
        self.runs_bf16_kernels() && self.runs_implicit()
    }

    /// [`ConvGeometry::forward_implicit`] on the bf16 micro-kernel, the weights `pairs` as
    /// `Weights::pairs` lays them out ([`ConvGeometry::runs_implicit_bf16`] must hold).
    pub(super) fn forward_implicit_bf16(
        &self,
        images: &[f32],
        pairs: &[u32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        self.in_padded_blocks(images, out, |images, rows, out| {
            let n = images.len() / self.in_len();
            let padded = Padded::new(self, n, rows);
            padded.fill_pairs(self, images, scratch);
            scratch.steps.set(padded.pair_steps(self));
            let _counted = CountedProduct::start(padded.flops(self, n), Threads::One);
            let emit = |block: &[f32], first| padded.scatter(self, block, first, bias, out);
            panels_bf16(
                &padded,
                (self.c_out, self.pair_depth()),
                pairs,
                scratch,
                emit,
            );
        })
    }

    /// `f(images, output rows, out)` over whole images side by side when small, each image in
    /// blocks of rows when large.
    fn in_padded_blocks(
        &self,
        images: &[f32],
        out: &mut [f32],
        mut f: impl FnMut(&[f32], Range<usize>, &mut [f32]),
    ) {
        if self.groups_images() {
            return f(images, 0..self.h_out, out);
        }
        for (image, out) in images
            .chunks(self.in_len())
            .zip(out.chunks_mut(self.out_len()))
        {
            for rows in self.padded_blocks() {
                f(image, rows, out);
            }
        }
    }

    /// The blocks of output rows in which one large image goes through the kernels: each
    /// block's padded rows take about [`PADDED_FLOATS`].
    pub(super) fn padded_blocks(&self) -> impl Iterator<Item = Range<usize>> + use<> {
        let (h, pad) = (self.h_out, self.grid_pad().unwrap_or(self.pad));
        let rows = (PADDED_FLOATS / (self.grid_planes() * (self.w_out + pad)))
            .saturating_sub(2 * pad)
            .clamp(1, h);
        (0..h).step_by(rows).map(move |y0| y0..(y0 + rows).min(h))
    }

    /// Output rows `rows` of every image in `images` (all rows when there are several), with
    /// the weights `packed` for the micro-kernel.
    fn forward_rows_implicit(
        &self,
        images: &[f32],
        packed: &[f32],
        rows: Range<usize>,
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let n = images.len() / self.in_len();
        let padded = Padded::new(self, n, rows);
        padded.fill(self, images, &mut scratch.cols);
        scratch.steps.set(padded.steps(self));
        let _counted = CountedProduct::start(padded.flops(self, n), Threads::One);
        let emit = |block: &[f32], first| padded.scatter(self, block, first, bias, out);
        panels(&padded, (self.c_out, self.patch()), packed, scratch, emit);
    }

    /// Adds the weight gradient of `images` (whole images side by side when small, each image
    /// in blocks of rows when large) to `grad_weight`, on `kernel::shifted_block`:
    /// `dw[o][(c, ky, kx)] = Σ_q dy[q][o] · x[c][q + ky * row + kx]` over the positions `q` of
    /// the padded grid, the output gradient laid out position by position with zeros at the
    /// border positions ([`ConvGeometry::runs_implicit`] must hold). Neither operand is unfolded.
    pub(super) fn weight_grad_implicit(
        &self,
        grad_out: &[f32],
        images: &[f32],
        grad_weight: &mut [f32],
        scratch: &mut Scratch,
    ) {
        // The gradient transposed, `[step][channel]`, rounded up to whole blocks of steps,
        // summed over every block of rows and added to `grad_weight` once: added after each
        // block, a large plane's scalar transposition was 2% of a `unet` step.
        let (patch, channels) = (self.patch(), self.c_out.next_multiple_of(16));
        let mut block = std::mem::take(&mut scratch.block);
        let sums = memory::aligned(
            &mut block,
            patch.next_multiple_of(SHIFTED_ACCUMULATORS) * channels,
        );
        sums.fill(0.0);
        if self.groups_images() {
            let rows = 0..self.h_out;
            self.weight_grad_rows_implicit(grad_out, images, rows, sums, scratch);
        } else {
            for (grad_out, image) in grad_out
                .chunks(self.out_len())
                .zip(images.chunks(self.in_len()))
            {
                for rows in self.padded_blocks() {
                    self.weight_grad_rows_implicit(grad_out, image, rows, sums, scratch);
                }
            }
        }
        for (o, dw) in grad_weight.chunks_exact_mut(patch).enumerate() {
            for (s, d) in dw.iter_mut().enumerate() {
                *d += sums[s * channels + o];
            }
        }
        scratch.block = block;
    }

    /// Adds output rows `rows`' share of the weight gradient to `sums` (`[step][channel]`,
    /// `c_out` rounded up to 16 channels).
    fn weight_grad_rows_implicit(
        &self,
        grad_out: &[f32],
        images: &[f32],
        rows: Range<usize>,
        sums: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let n = images.len() / self.in_len();
        let padded = Padded::new(self, n, rows);
        let bf16 = self.runs_bf16_kernels();
        match bf16 {
            true => padded.fill_bf16(self, images, scratch),
            false => padded.fill(self, images, &mut scratch.cols),
        }
        let channels = self.c_out.next_multiple_of(16);
        let patch = self.patch();
        let _counted = CountedProduct::start(padded.flops(self, n), Threads::One);
        let steps = padded.steps(self);
        // Grid rows in passes whose output gradients (about 8192 values) stay in the L1 cache
        // while every block of steps goes over them: a large plane's did not fit in L2. Only
        // the output positions are summed, not the grid's borders (a third of a 7 x 7 grid).
        // The chunk's output gradient is laid out position by position as the pass starts,
        // into a buffer that stays in the cache: laid out whole first, a 28 x 28 layer's (7 MB
        // for 64 images of 32 channels) was cleared, written and read back through memory.
        let chunk = (8192 / channels / padded.row).max(1);
        let grid_rows = padded.width / padded.row;
        for r0 in (0..grid_rows).step_by(chunk) {
            let (q0, r1) = (r0 * padded.row, (r0 + chunk).min(grid_rows));
            let count = (r1 - r0) * padded.row;
            let by_position = memory::aligned(&mut scratch.rows, count * channels);
            padded.fill_by_position(self, grad_out, channels, r0..r1, by_position);
            let runs = padded.output_runs(r0..r1, self.w_out);
            // With bf16, the chunk's positions in pairs (any position outside the runs has a
            // zero output gradient, so a pair may reach one past a run).
            let pairs = match bf16 {
                true => {
                    kernel::pair_rows(by_position, channels, channels, count, &mut scratch.pairs);
                    position_pairs(&runs)
                }
                false => Vec::new(),
            };
            let mut first = 0;
            while first < channels {
                let vectors = ((channels - first) / 16).min(4);
                let block_rows = kernel::shifted_rows(vectors);
                for s0 in (0..patch).step_by(block_rows) {
                    // Steps past the patch read step 0 again; their sums are dropped.
                    let mut starts = [q0; SHIFTED_ACCUMULATORS];
                    let here = &steps[s0..(s0 + block_rows).min(patch)];
                    starts.iter_mut().zip(here).for_each(|(s, &h)| *s = h + q0);
                    let sums = &mut sums[s0 * channels + first..];
                    if bf16 {
                        kernel::shifted_block_bf16(
                            vectors,
                            &scratch.grid_bf16,
                            &starts[..block_rows],
                            &scratch.pairs[first..],
                            channels,
                            &pairs,
                            sums,
                            channels,
                        );
                    } else {
                        kernel::shifted_block(
                            vectors,
                            &scratch.cols,
                            &starts[..block_rows],
                            &by_position[first..],
                            channels,
                            &runs,
                            sums,
                            channels,
                        );
                    }
                }
                first += 16 * vectors;
            }
        }
    }
}

/// The pairs of positions `(2k, 2k + 1)` that cover `runs` (in order), once each.
fn position_pairs(runs: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut pairs: Vec<Range<usize>> = Vec::new();
    for run in runs.iter().filter(|r| !r.is_empty()) {
        let these = run.start / 2..run.end.div_ceil(2);
        match pairs.last_mut() {
            Some(last) if these.start <= last.end => last.end = last.end.max(these.end),
            _ => pairs.push(these),
        }
    }
    pairs
}

/// The micro-kernel over every panel of [`NR`] positions of a filled grid: `c_out x patch`
/// weights as `kernel::pack_rows` lays them out, the steps in `scratch.steps`; each panel's
/// block of results goes to `emit(block, first position)` while it is in L1.
pub(super) fn panels(
    padded: &Padded,
    (c_out, patch): (usize, usize),
    weights: &[f32],
    scratch: &mut Scratch,
    mut emit: impl FnMut(&[f32], usize),
) {
    let Scratch {
        cols, block, steps, ..
    } = scratch;
    block.resize(c_out.div_ceil(MR) * MR * NR, 0.0);
    for first in (0..padded.width).step_by(NR) {
        let columns = &cols[first..];
        for p0 in (0..patch).step_by(KC) {
            let pass = p0..(p0 + KC).min(patch);
            for (ip, rows) in block.chunks_exact_mut(MR * NR).enumerate() {
                let weights = &weights[(ip * patch + p0) * MR..];
                kernel::block(weights, columns, steps, pass.clone(), rows, NR, p0 > 0);
            }
        }
        emit(block, first);
    }
}

/// [`panels`] on the bf16 micro-kernel: `rows x 2 depth` weights as `kernel::pack_row_pairs`
/// lays them out, the grid's channel pairs in `scratch.pairs`, the pairs' starts in
/// `scratch.steps`.
pub(super) fn panels_bf16(
    padded: &Padded,
    (rows, depth): (usize, usize),
    weights: &[u32],
    scratch: &mut Scratch,
    mut emit: impl FnMut(&[f32], usize),
) {
    let Scratch {
        pairs,
        block,
        steps,
        ..
    } = scratch;
    block.resize(rows.div_ceil(MR) * MR * NR, 0.0);
    for first in (0..padded.width).step_by(NR) {
        let columns = &pairs[first..];
        for q0 in (0..depth).step_by(KC / 2) {
            let pass = q0..(q0 + KC / 2).min(depth);
            for (ip, rows) in block.chunks_exact_mut(MR * NR).enumerate() {
                let weights = &weights[(ip * depth + q0) * MR..];
                kernel::block_bf16(weights, columns, steps, pass.clone(), rows, NR, q0 > 0);
            }
        }
        emit(block, first);
    }
}

/// Floats of zero-padded input built at once for one image with a large plane (1 MiB).
const PADDED_FLOATS: usize = 1 << 18;

/// A group's input, zero-padded, as the micro-kernel reads it: each channel one long row of
/// grid positions, `row` apart from one image row to the next, so that step `(c, ky, kx)` of
/// the patch at grid position `q` is the value at `c * channel + ky * row + kx + q`, and a
/// panel of [`NR`] output positions reads [`NR`] consecutive values for each step (an implicit
/// GEMM: nothing is unfolded). The `pad` zeros after each row are the right border of that
/// row and the left border of the next, and the `pad` zero rows after each image the bottom
/// border of that image and the top border of the next, so the grid wastes few positions:
/// 7% of them on a 28 x 28 plane, 15% on 14 x 14, 31% on 7 x 7. A stride-2 convolution's
/// grid holds the input's four sub-pixel phases as planes of the output's size (`4 c_in`
/// planes), and each step reads the phase its tap falls on ([`ConvGeometry::grid_pad`]), so
/// strided convolutions are implicit GEMMs too.
pub(super) struct Padded {
    pad: usize,
    pub(super) row: usize,
    /// Output rows of each image, and grid rows from one image to the next (`rows` plus `pad`).
    rows: Range<usize>,
    pub(super) image_rows: usize,
    /// Grid positions computed: from the first image's first output row to the last one's last.
    pub(super) width: usize,
    /// The distance between channels.
    pub(super) channel: usize,
}

impl Padded {
    pub(super) fn new(g: &ConvGeometry, images: usize, rows: Range<usize>) -> Self {
        debug_assert!(
            images == 1 || rows == (0..g.h_out),
            "several images go whole"
        );
        let pad = g
            .grid_pad()
            .expect("a convolution that maps onto a padded grid");
        let row = g.w_out + pad;
        let image_rows = rows.len() + pad;
        let width = ((images - 1) * image_rows + rows.len()) * row;
        let lead = pad * row + pad;
        // Grid position 0 lies after `pad` rows and `pad` values of border; the channel has
        // room for the last panel's reads past `width` too, and the extra line keeps channels from
        // lying a power of two apart (the same cache set, as Winograd's points once did).
        let channel = (width.div_ceil(NR) * NR + 2 * lead).next_multiple_of(16) + 16;
        Padded {
            pad,
            row,
            rows,
            image_rows,
            width,
            channel,
        }
    }

    /// The images' input rows that the output rows read, in place, zeros everywhere else,
    /// written once: grid row by grid row, all channels at a time.
    pub(super) fn fill(&self, g: &ConvGeometry, images: &[f32], buffer: &mut Vec<f32>) {
        let runs = self.input_runs(g);
        let zeros = self.zero_runs(g.grid_planes());
        self.fill_rows(
            g,
            images,
            g.grid_planes(),
            buffer,
            |dst, source| match source {
                None => kernel::copy_runs(dst, &[], zeros, None),
                Some((image, y)) if g.stride == 1 => {
                    let at = image * g.in_len() + y * g.w;
                    kernel::copy_runs(dst, &images[at..], runs, None)
                }
                Some((image, y)) => {
                    let image = &images[image * g.in_len()..(image + 1) * g.in_len()];
                    self.fill_phases(g, image, y, dst)
                }
            },
        );
    }

    /// [`Padded::fill`] rounded to bf16 with the channels in pairs, as
    /// `kernel::interleave_planes` pairs the filled grid's planes: one pass at stride 1 (a
    /// strided grid is filled, then paired).
    pub(super) fn fill_pairs(&self, g: &ConvGeometry, images: &[f32], scratch: &mut Scratch) {
        if g.stride != 1 {
            self.fill(g, images, &mut scratch.cols);
            let (cols, planes) = (&scratch.cols, self.channel_planes(g));
            return kernel::interleave_planes(cols, g.c_in, planes, &mut scratch.pairs);
        }
        let pairs = g.c_in.div_ceil(2);
        self.fill_converted(g, images, pairs, &mut scratch.pairs, kernel::pair_runs);
    }

    /// [`Padded::fill`] in bf16 bits, and one zero past the end (so that a pair of values
    /// read at the last one stays inside), as `kernel::shifted_block_bf16` reads the grid: one
    /// pass at stride 1 (a strided grid is filled, then rounded).
    pub(super) fn fill_bf16(&self, g: &ConvGeometry, images: &[f32], scratch: &mut Scratch) {
        if g.stride != 1 {
            self.fill(g, images, &mut scratch.cols);
            return kernel::to_bf16(&scratch.cols, &mut scratch.grid_bf16);
        }
        let grid = &mut scratch.grid_bf16;
        self.fill_converted(g, images, g.c_in, grid, kernel::bf16_runs);
        grid.push(0);
    }

    /// A stride-1 grid of `planes` planes filled by `copy` (a kernel that converts runs as it
    /// copies them; a plane may take several of its rows, as a pair of channels takes two).
    fn fill_converted<T: Copy + Default>(
        &self,
        g: &ConvGeometry,
        images: &[f32],
        planes: usize,
        buffer: &mut Vec<T>,
        copy: fn(&mut [T], &[f32], kernel::Runs),
    ) {
        let runs = self.input_runs(g);
        // A zero row of every plane: as many runs as the planes take (two a pair of channels).
        let zeros = self.zero_runs(g.c_in.div_ceil(planes) * planes);
        self.fill_rows(g, images, planes, buffer, |dst, source| match source {
            None => copy(dst, &[], zeros),
            Some((image, y)) => copy(dst, &images[image * g.in_len() + y * g.w..], runs),
        });
    }

    /// A stride-1 grid row's copy: each channel's input row, then the border.
    fn input_runs(&self, g: &ConvGeometry) -> kernel::Runs {
        kernel::Runs {
            rows: g.c_in,
            len: g.w,
            src_stride: g.h * g.w,
            dst_stride: self.channel,
            zeros: self.pad,
        }
    }

    /// A zero grid row in each of `planes` planes (runs of nothing, then zeros).
    fn zero_runs(&self, planes: usize) -> kernel::Runs {
        kernel::Runs {
            rows: planes,
            len: 0,
            src_stride: 0,
            dst_stride: self.channel,
            zeros: self.row,
        }
    }

    /// `buffer` as `planes` planes of the grid (each [`Padded::channel`] long): zeros before
    /// the first row and past the last, and `row(grid row, source)` writing each grid row of
    /// every plane, `source` the `(image, output row)` whose input it holds, or `None` for a
    /// row of zeros.
    fn fill_rows<T: Copy + Default>(
        &self,
        g: &ConvGeometry,
        images: &[f32],
        planes: usize,
        buffer: &mut Vec<T>,
        mut row: impl FnMut(&mut [T], Option<(usize, usize)>),
    ) {
        buffer.resize(planes * self.channel, T::default());
        let grid_rows = self.pad + (images.len() / g.in_len()) * self.image_rows;
        // The left border of the first row, and what lies past the last.
        let end = self.pad + grid_rows * self.row;
        for plane in buffer.chunks_exact_mut(self.channel) {
            plane[..self.pad].fill(T::default());
            plane[end..].fill(T::default());
        }
        for r in 0..grid_rows {
            // Grid row `r - pad` from the first output row: the rows above it are image 0's,
            // and rows `rows.len()..image_rows` of an image are the rows below its output.
            let (image, y) = match r.checked_sub(self.pad) {
                Some(j) => (j / self.image_rows, self.rows.start + j % self.image_rows),
                None => (0, (self.rows.start + r).wrapping_sub(self.pad)),
            };
            row(
                &mut buffer[self.pad + r * self.row..],
                (y < g.h_out).then_some((image, y)),
            );
        }
    }

    /// Row `y` of every phase plane of a strided convolution's `image`, each followed by its
    /// border: phase `(py, px)` of channel `c` holds input `(c, s y + py, s x + px)` (`s` is
    /// 2, [`ConvGeometry::grid_pad`]).
    fn fill_phases(&self, g: &ConvGeometry, image: &[f32], y: usize, dst: &mut [f32]) {
        let s = g.stride;
        for (py, px) in (0..s).flat_map(|py| (0..s).map(move |px| (py, px))) {
            let runs = kernel::Runs {
                rows: g.c_in,
                len: g.w_out,
                src_stride: g.h * g.w,
                dst_stride: s * s * self.channel,
                zeros: self.pad,
            };
            let src = &image[(s * y + py) * g.w + px..];
            let dst = &mut dst[(py * s + px) * self.channel..];
            kernel::copy_runs_from_every_other(dst, src, runs);
        }
    }

    /// The output values `[images, c_out, h, w]` (their rows `rows`) on grid rows
    /// `grid_rows`, position by position: a row of `channels` values (`c_out` and zeros) per
    /// position from the first grid row's start, zero rows at the border positions.
    fn fill_by_position(
        &self,
        g: &ConvGeometry,
        values: &[f32],
        channels: usize,
        grid_rows: Range<usize>,
        buffer: &mut [f32],
    ) {
        buffer.fill(0.0);
        for (at_row, r) in grid_rows.enumerate() {
            let (image, y) = (r / self.image_rows, r % self.image_rows);
            if y >= self.rows.len() {
                continue;
            }
            let at = image * g.out_len() + (self.rows.start + y) * g.w_out;
            let grid_row = &mut buffer[at_row * self.row * channels..];
            kernel::transpose(
                &values[at..],
                g.out_plane(),
                (g.c_out, g.w_out),
                grid_row,
                channels,
            );
        }
    }

    /// The output positions of grid rows `grid_rows`, as runs from the first one's start: each
    /// row's `w` positions, none in the zero rows between images.
    fn output_runs(&self, grid_rows: Range<usize>, w: usize) -> Vec<Range<usize>> {
        let first = grid_rows.start;
        grid_rows
            .filter(|r| r % self.image_rows < self.rows.len())
            .map(|r| (r - first) * self.row..(r - first) * self.row + w)
            .collect()
    }

    /// The products' work for `images` images, counted as `matmul` counts its: the output's
    /// positions, not the grid's border.
    pub(super) fn flops(&self, g: &ConvGeometry, images: usize) -> u64 {
        2 * (g.c_out * images * self.rows.len() * g.w_out * g.patch()) as u64
    }

    /// Where each step of the patch starts, relative to the grid position being computed:
    /// the plane its tap reads (a channel, or a channel's phase), shifted.
    pub(super) fn steps(&self, g: &ConvGeometry) -> Vec<usize> {
        self.steps_over(g, g.c_in)
    }

    /// Where each pair of steps starts on the grid of channel pairs (`kernel::interleave_planes`
    /// of the filled grid, each channel's planes taken as one), relative to the grid position
    /// being computed: channel pair `j`, tap `(ky, kx)`, in `Weights::pairs`' order. A pair's
    /// planes lie as a channel's do, so these are the steps of half as many channels.
    pub(super) fn pair_steps(&self, g: &ConvGeometry) -> Vec<usize> {
        self.steps_over(g, g.c_in.div_ceil(2))
    }

    /// [`Padded::steps`] for `channels` channels (or pairs of them).
    fn steps_over(&self, g: &ConvGeometry, channels: usize) -> Vec<usize> {
        let (s, pad, channel, row) = (g.stride, self.pad as isize, self.channel, self.row);
        let taps: Vec<(usize, usize)> = (0..g.k)
            .map(|t| {
                let (phase, shift) = g.tap(t);
                (phase, (shift + pad) as usize)
            })
            .collect();
        (0..channels)
            .flat_map(|c| taps.iter().map(move |&(py, dy)| (c, py, dy)))
            .flat_map(|(c, py, dy)| {
                taps.iter()
                    .map(move |&(px, dx)| ((c * s + py) * s + px) * channel + dy * row + dx)
            })
            .collect()
    }

    /// The filled grid's planes as `kernel::interleave_planes` pairs channels: all of one
    /// channel's (its phases, with a stride) as one.
    pub(super) fn channel_planes(&self, g: &ConvGeometry) -> usize {
        self.channel * g.stride * g.stride
    }

    /// Grid positions `first..first + NR` (those before `width`) of the block's rows, plus the
    /// bias, to the output positions they hold; border positions are dropped.
    fn scatter(
        &self,
        g: &ConvGeometry,
        block: &[f32],
        first: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let plane = g.out_plane();
        for (q, (image, y, x), run) in self.output_runs_in_panel(g.w_out, first) {
            let runs = kernel::Runs {
                rows: g.c_out,
                len: run,
                src_stride: NR,
                dst_stride: plane,
                zeros: 0,
            };
            let at = image * g.out_len() + (self.rows.start + y) * g.w_out + x;
            let dst = &mut out[at..(image + 1) * g.out_len()];
            kernel::copy_runs(dst, &block[q - first..], runs, bias);
        }
    }

    /// The runs of output positions among grid positions `first..first + NR` (those before
    /// `width`), each as its first grid position, its `(image, row of the block, x)` and its
    /// length; border positions are skipped.
    fn output_runs_in_panel(
        &self,
        w_out: usize,
        first: usize,
    ) -> impl Iterator<Item = (usize, (usize, usize, usize), usize)> + '_ {
        let last = (first + NR).min(self.width);
        let mut q = first;
        std::iter::from_fn(move || {
            while q < last {
                let (grid_row, x) = (q / self.row, q % self.row);
                let (image, y) = (grid_row / self.image_rows, grid_row % self.image_rows);
                if x >= w_out || y >= self.rows.len() {
                    q = ((grid_row + 1) * self.row).min(last);
                    continue;
                }
                let (start, run) = (q, (w_out - x).min(last - q));
                q += run;
                return Some((start, (image, y, x), run));
            }
            None
        })
    }

    /// Like [`Padded::scatter`] (with a bias per input channel), to one sub-pixel phase of a
    /// stride-2 convolution's input gradient: grid position `(y, x)` of the block's `c_in` rows
    /// goes to input `(2 (rows.start + y) + py, 2 x + px)` of `grad_in [images, c_in, h, w]`
    /// (`g` the strided convolution).
    pub(super) fn scatter_phase(
        &self,
        g: &ConvGeometry,
        block: &[f32],
        first: usize,
        (py, px): (usize, usize),
        bias: Option<&[f32]>,
        grad_in: &mut [f32],
    ) {
        debug_assert_eq!(g.stride, 2, "the padded grid takes stride 2");
        let plane = g.h * g.w;
        for (q, (image, y, x), run) in self.output_runs_in_panel(g.w_out, first) {
            // Every other input value of the row, channel by channel.
            let at = image * g.in_len() + (2 * (self.rows.start + y) + py) * g.w + 2 * x + px;
            let runs = kernel::Runs {
                rows: g.c_in,
                len: run,
                src_stride: NR,
                dst_stride: plane,
                zeros: 0,
            };
            let dst = &mut grad_in[at..(image + 1) * g.in_len()];
            kernel::copy_runs_to_every_other(dst, &block[q - first..], runs, bias);
        }
    }
}
