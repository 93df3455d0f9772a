//! The forward pass of a group of small images on convlab's own micro-kernel
//! (`engine::cpu::kernel`). The input is unfolded straight into the panels of columns the
//! kernel reads, so the columns are not packed a second time as the `gemm` crate packs its
//! operands, and each panel's results go from a small buffer to the images they belong to, the
//! bias added on the way. On an Intel Xeon the `gemm` crate's path spent about as long moving
//! the columns as multiplying them.

use std::ops::Range;

use super::geometry::ConvGeometry;
use super::schedule::Scratch;
use crate::engine::cpu::kernel::{self, MR, NR};
use crate::engine::cpu::matmul::{CountedProduct, Threads};

/// Steps of one pass of the micro-kernel: a 64 x 48 panel of columns (12 KiB) stays in the L1
/// cache beside the block of results while every panel of weights passes over it. Chosen over
/// 128 from one per-layer timing of `own` on a noisy host; every figure in README was measured
/// with it.
const KC: usize = 64;

impl ConvGeometry {
    /// Whether [`ConvGeometry::forward_group_packed`] and [`ConvGeometry::forward_image_packed`]
    /// run this convolution: the micro-kernel is there, and the columns can be unfolded by
    /// shifting (stride 1, output planes the size of the input's; 1x1 convolutions read their
    /// input as it lies and gain nothing).
    pub(super) fn runs_packed(&self) -> bool {
        kernel::available()
            && self.stride == 1
            && (self.h_out, self.w_out) == (self.h, self.w)
            && !self.is_pointwise()
    }

    /// Whole images: the forward pass through the micro-kernel ([`ConvGeometry::runs_packed`]
    /// must hold).
    pub(super) fn forward_group_packed(
        &self,
        images: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        kernel::pack_rows(weight, self.c_out, self.patch(), &mut scratch.weights);
        self.forward_rows_packed(images, 0..self.h, bias, out, scratch);
    }

    /// One image with a large plane, a few output rows at a time ([`ConvGeometry::runs_packed`]
    /// must hold).
    pub(super) fn forward_image_packed(
        &self,
        image: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        kernel::pack_rows(weight, self.c_out, self.patch(), &mut scratch.weights);
        for (y0, y1) in self.blocks() {
            self.forward_rows_packed(image, y0..y1, bias, out, scratch);
        }
    }

    /// Output rows `rows` of every image in `images`, with the weights already packed in
    /// `scratch.weights`.
    fn forward_rows_packed(
        &self,
        images: &[f32],
        rows: Range<usize>,
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let span = rows.len() * self.w;
        let width = images.len() / self.in_len() * span;
        self.unfold_into_panels(images, rows.clone(), width, &mut scratch.cols);
        self.multiply_panels(scratch, width, |panel, block| {
            self.scatter_panel(
                block,
                panel * NR,
                width,
                (span, rows.start * self.w),
                bias,
                out,
            )
        });
    }

    /// The micro-kernel over every panel of `width` columns in `scratch.cols` against the
    /// weights in `scratch.weights`; each panel's block of results (`[c_out rounded up to MR][NR]`) goes
    /// to `write(panel, block)` while it is in the L1 cache.
    fn multiply_panels(
        &self,
        scratch: &mut Scratch,
        width: usize,
        mut write: impl FnMut(usize, &[f32]),
    ) {
        let patch = self.patch();
        // The products' work, counted as `matmul` counts its: `width` real columns, not the
        // padding of the last panel.
        let flops = 2 * (self.c_out * width * patch) as u64;
        let _counted = CountedProduct::start(flops, Threads::One);
        let Scratch {
            cols,
            weights,
            block,
            ..
        } = scratch;
        block.resize(self.c_out.div_ceil(MR) * MR * NR, 0.0);
        for (panel, columns) in cols.chunks_exact(patch * NR).enumerate() {
            for p0 in (0..patch).step_by(KC) {
                let steps = KC.min(patch - p0);
                for (ip, rows) in block.chunks_exact_mut(MR * NR).enumerate() {
                    let weights = &weights[(ip * patch + p0) * MR..];
                    kernel::block(steps, weights, &columns[p0 * NR..], NR, rows, NR, p0 > 0);
                }
            }
            write(panel, block);
        }
    }

    /// Output rows `rows` of each image as `width` columns in panels of [`NR`], each laid out
    /// patch row by patch row (`[panel][patch][NR]`), the last padded with zeros: position
    /// `(y, x)` of image `i` is column `i * span + (y - rows.start) * w + x`, `span` being the
    /// rows' positions. Unfolding into a buffer first and dealing its rows out to the panels
    /// took three times as long.
    fn unfold_into_panels(
        &self,
        images: &[f32],
        rows: Range<usize>,
        width: usize,
        cols: &mut Vec<f32>,
    ) {
        let (patch, span, first) = (self.patch(), rows.len() * self.w, rows.start * self.w);
        let panels = width.div_ceil(NR);
        cols.resize(panels * patch * NR, 0.0);
        let filled = width - (panels - 1) * NR;
        cols[(panels - 1) * patch * NR..]
            .chunks_exact_mut(NR)
            .for_each(|step| step[filled..].fill(0.0));
        for (i, image) in images.chunks(self.in_len()).enumerate() {
            self.unfold_shifted(image, rows.clone(), cols, |p, x| {
                let column = i * span + x - first;
                let (panel, lane) = (column / NR, column % NR);
                ((panel * patch + p) * NR + lane, NR - lane)
            });
        }
    }

    /// Columns `first..first + NR` (those before `width`) of the block's rows, plus the bias,
    /// to the output planes of the images they belong to: with `(span, offset)`, column `j` is
    /// position `offset + j % span` of image `j / span`.
    fn scatter_panel(
        &self,
        block: &[f32],
        first: usize,
        width: usize,
        (span, offset): (usize, usize),
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let plane = self.out_plane();
        let last = (first + NR).min(width);
        let mut j = first;
        while j < last {
            let (image, x) = (j / span, j % span);
            let run = (span - x).min(last - j);
            let image_out = &mut out[image * self.out_len()..(image + 1) * self.out_len()];
            for (c, channel) in image_out.chunks_exact_mut(plane).enumerate() {
                let b = bias.map_or(0.0, |b| b[c]);
                let values = &block[c * NR + j - first..][..run];
                channel[offset + x..offset + x + run]
                    .iter_mut()
                    .zip(values)
                    .for_each(|(o, &v)| *o = v + b);
            }
            j += run;
        }
    }
}
