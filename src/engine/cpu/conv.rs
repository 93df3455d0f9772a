//! Convolution and transposed convolution, forward and backward, as im2col + GEMM: one image
//! at a time in row blocks where planes are large, several images per product where small.
//!
//! One geometry serves both: a transposed convolution's forward pass is the input gradient of
//! the convolution it transposes, and its input gradient is that convolution's forward pass
//! (PyTorch's `ConvTranspose2d` is defined that way). The unfolded columns are built a few
//! output rows at a time, so the block the GEMM reads stays in cache and the buffer stays small.

use rayon::prelude::*;

use super::layers::{max_pool2_backward_planes, max_pool2_planes};
use super::matmul::{Threads, View, matmul};
use super::winograd;

/// Floats of unfolded columns built at once for one image (1 MiB).
const BLOCK_FLOATS: usize = 1 << 18;
/// Floats of unfolded columns for a group of small images (2 MiB).
const GROUP_FLOATS: usize = 1 << 19;

/// Per-thread buffers: unfolded columns, and output-shaped rows of a group.
#[derive(Default)]
struct Scratch {
    cols: Vec<f32>,
    rows: Vec<f32>,
    /// A group's full-size output, pooled before it leaves the cache.
    full: Vec<f32>,
}

/// A convolution from `[c_in, h, w]` to `[c_out, h_out, w_out]` with a square kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub h_out: usize,
    pub w_out: usize,
}

impl ConvGeometry {
    /// The convolution of a `[c_in, h, w]` input; `h + 2 pad >= k` is the caller's to check.
    pub fn conv(
        c_in: usize,
        h: usize,
        w: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        ConvGeometry {
            c_in,
            h,
            w,
            c_out,
            k,
            stride,
            pad,
            h_out: (h + 2 * pad - k) / stride + 1,
            w_out: (w + 2 * pad - k) / stride + 1,
        }
    }

    /// The convolution that a transposed convolution of a `[c_in, h, w]` input to `c_out`
    /// channels transposes: it maps the transposed one's output back to its input, and its
    /// weight `[c_in, c_out, k, k]` is the transposed one's, as stored.
    pub fn transposing(
        c_in: usize,
        h: usize,
        w: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        ConvGeometry {
            c_in: c_out,
            h: (h - 1) * stride + k - 2 * pad,
            w: (w - 1) * stride + k - 2 * pad,
            c_out: c_in,
            k,
            stride,
            pad,
            h_out: h,
            w_out: w,
        }
    }

    pub fn patch(&self) -> usize {
        self.c_in * self.k * self.k
    }

    pub fn in_len(&self) -> usize {
        self.c_in * self.h * self.w
    }

    pub fn out_plane(&self) -> usize {
        self.h_out * self.w_out
    }

    pub fn out_len(&self) -> usize {
        self.c_out * self.out_plane()
    }

    pub fn weight_len(&self) -> usize {
        self.c_out * self.patch()
    }

    /// A 1x1 convolution with stride 1 and no padding reads its input as the columns.
    fn is_pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    fn rows_per_block(&self) -> usize {
        (BLOCK_FLOATS / (self.patch() * self.w_out).max(1)).clamp(1, self.h_out)
    }

    fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (rows, h_out) = (self.rows_per_block(), self.h_out);
        (0..h_out)
            .step_by(rows)
            .map(move |y0| (y0, (y0 + rows).min(h_out)))
    }

    /// Output columns `x` whose source `x * stride + kx - pad` lies inside the input.
    fn inside_x(&self, kx: usize) -> (usize, usize) {
        let first = (self.pad.saturating_sub(kx)).div_ceil(self.stride);
        let last = (self.w + self.pad)
            .saturating_sub(kx)
            .div_ceil(self.stride)
            .min(self.w_out);
        (first.min(last), last)
    }

    /// Unfolds output rows `y0..y1` of one image into `cols`: patch row `r` of the block
    /// starts at `r * row_stride + offset` (other images of a group sit beside it).
    fn im2col(
        &self,
        image: &[f32],
        y0: usize,
        y1: usize,
        cols: &mut [f32],
        row_stride: usize,
        offset: usize,
    ) {
        let (k, w_out) = (self.k, self.w_out);
        let mut phases = RowPhases::new(self.w, self.stride);
        for c in 0..self.c_in {
            let plane = &image[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ky in 0..k {
                let row = |kx: usize, y: usize| {
                    ((c * k + ky) * k + kx) * row_stride + offset + (y - y0) * w_out
                };
                for y in y0..y1 {
                    let Some(iy) = self.source_row(y, ky) else {
                        for kx in 0..k {
                            cols[row(kx, y)..][..w_out].fill(0.0);
                        }
                        continue;
                    };
                    let src = &plane[iy * self.w..(iy + 1) * self.w];
                    phases.split(src);
                    for kx in 0..k {
                        let (first, last) = self.inside_x(kx);
                        let dst = &mut cols[row(kx, y)..][..w_out];
                        dst[..first].fill(0.0);
                        dst[last..].fill(0.0);
                        let run = phases.run(src, self.offset_x(kx), first, last);
                        dst[first..last].copy_from_slice(run);
                    }
                }
            }
        }
    }

    /// The input row that output row `y` reads through kernel row `ky`, if inside the input.
    fn source_row(&self, y: usize, ky: usize) -> Option<usize> {
        (y * self.stride + ky)
            .checked_sub(self.pad)
            .filter(|&iy| iy < self.h)
    }

    /// Output column `x` reads input column `x * stride + offset_x(kx)` through kernel column `kx`.
    fn offset_x(&self, kx: usize) -> isize {
        kx as isize - self.pad as isize
    }

    /// Adds columns laid out as [`ConvGeometry::im2col`] writes them back onto their image.
    fn col2im(
        &self,
        cols: &[f32],
        y0: usize,
        y1: usize,
        image: &mut [f32],
        row_stride: usize,
        offset: usize,
    ) {
        let (k, w_out) = (self.k, self.w_out);
        let mut phases = RowPhases::new(self.w, self.stride);
        for c in 0..self.c_in {
            let plane = &mut image[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ky in 0..k {
                for y in y0..y1 {
                    let Some(iy) = self.source_row(y, ky) else {
                        continue;
                    };
                    let dst = &mut plane[iy * self.w..(iy + 1) * self.w];
                    for kx in 0..k {
                        let row = ((c * k + ky) * k + kx) * row_stride + offset + (y - y0) * w_out;
                        let (first, last) = self.inside_x(kx);
                        let run = phases.run_mut(dst, self.offset_x(kx), first, last);
                        run.iter_mut()
                            .zip(&cols[row + first..row + last])
                            .for_each(|(d, s)| *d += s);
                    }
                    phases.add_to(dst);
                }
            }
        }
    }

    /// Images per product: small planes are unfolded several images side by side so that each
    /// GEMM is large enough to run at the kernel's speed (a 14x14 plane alone is 196 columns);
    /// large planes go one image at a time, in row blocks.
    fn images_per_group(&self, n: usize) -> usize {
        if !self.groups_images() {
            return 1;
        }
        let by_size = (GROUP_FLOATS / (self.patch() * self.out_plane())).max(1);
        let by_threads = n.div_ceil(rayon::current_num_threads()).max(1);
        by_size.min(by_threads)
    }

    /// Whether whole images are unfolded side by side (small planes) rather than one image in
    /// row blocks.
    fn groups_images(&self) -> bool {
        self.patch() * self.out_plane() < GROUP_FLOATS / 2
    }

    /// The forward pass of consecutive images, by whichever of the two layouts fits the plane;
    /// small planes with many channels by Winograd's method (on large planes one image's
    /// transforms outgrow the caches: `unet` was 5% slower with them).
    fn forward_part(
        &self,
        images: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Scratch,
        threads: Threads,
    ) {
        if self.groups_images() && winograd::applies(self) {
            let Scratch { cols, rows, .. } = scratch;
            winograd::forward(self, images, weight, bias, out, cols, rows, threads)
        } else if self.groups_images() {
            self.forward_group(images, weight, bias, out, scratch, threads)
        } else {
            for (x, o) in images
                .chunks(self.in_len())
                .zip(out.chunks_mut(self.out_len()))
            {
                self.forward_image(x, weight, bias, o, &mut scratch.cols, threads)
            }
        }
    }

    /// The input gradient of consecutive images (overwriting `grad_in`); `phases` from
    /// [`ConvGeometry::input_grad_phases`].
    fn input_grad_part(
        &self,
        grad_out: &[f32],
        weight: &[f32],
        phases: &[PhaseKernel],
        grad_in: &mut [f32],
        scratch: &mut Scratch,
        threads: Threads,
    ) {
        if self.groups_images() {
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
    }

    /// The kernel taps through which input positions of phase `p` (position mod stride) are
    /// reached, each with the offset from the phase's own index to the output position read:
    /// input `stride * m + p` receives from output `m + offset` through tap `kernel_index`.
    fn phase_taps(&self, p: usize) -> Vec<(usize, isize)> {
        let (s, reach) = (self.stride as isize, (p + self.pad) as isize);
        (0..self.k)
            .filter(|&t| (reach - t as isize).rem_euclid(s) == 0)
            .map(|t| (t, (reach - t as isize) / s))
            .collect()
    }

    /// What [`ConvGeometry::input_grad_part`] needs to compute input gradients by phase: the
    /// phase kernels where images go one at a time with a stride, none otherwise. Built once
    /// per pass, not per image.
    fn input_grad_phases(&self, weight: &[f32]) -> Vec<PhaseKernel> {
        if self.stride > 1 && !self.groups_images() {
            self.phase_kernels(weight)
        } else {
            Vec::new()
        }
    }

    /// Every phase's taps and its kernel `[c_in, c_out * taps_y * taps_x]`.
    fn phase_kernels(&self, weight: &[f32]) -> Vec<PhaseKernel> {
        let (s, k, c_in, c_out) = (self.stride, self.k, self.c_in, self.c_out);
        let phase = |py: usize, px: usize| {
            let (taps_y, taps_x) = (self.phase_taps(py), self.phase_taps(px));
            let inner = c_out * taps_y.len() * taps_x.len();
            let mut kernel = vec![0.0; c_in * inner];
            for (ci, row) in kernel.chunks_mut(inner.max(1)).enumerate().take(c_in) {
                let mut at = 0;
                for co in 0..c_out {
                    for &(ky, _) in &taps_y {
                        for &(kx, _) in &taps_x {
                            row[at] = weight[((co * c_in + ci) * k + ky) * k + kx];
                            at += 1;
                        }
                    }
                }
            }
            PhaseKernel {
                py,
                px,
                taps_y,
                taps_x,
                kernel,
            }
        };
        (0..s)
            .flat_map(|py| (0..s).map(move |px| (py, px)))
            .map(|(py, px)| phase(py, px))
            .collect()
    }

    /// One image's input gradient of a strided convolution, one phase at a time (sub-pixel):
    /// the input positions with the same remainders modulo the stride receive from the same
    /// kernel taps, so each phase is a dense product written once, where col2im would scatter
    /// and add `k²` values per output position.
    fn input_grad_by_phases(
        &self,
        grad_out: &[f32],
        phases: &[PhaseKernel],
        grad_in: &mut [f32],
        scratch: &mut Scratch,
        threads: Threads,
    ) {
        let (s, c_in) = (self.stride, self.c_in);
        for phase in phases {
            let (py, px, taps_y, taps_x) = (phase.py, phase.px, &phase.taps_y, &phase.taps_x);
            let rows = self.h.saturating_sub(py).div_ceil(s);
            let cols = self.w.saturating_sub(px).div_ceil(s);
            let inner = phase.kernel.len() / c_in;
            let rows_per_block = (BLOCK_FLOATS / (inner * cols).max(1)).clamp(1, rows.max(1));
            for m0 in (0..rows).step_by(rows_per_block) {
                let m1 = (m0 + rows_per_block).min(rows);
                let width = (m1 - m0) * cols;
                let gathered = &mut scratch.cols;
                gathered.resize(inner * width, 0.0);
                let mut row = 0;
                for plane in grad_out.chunks(self.out_plane()) {
                    for &(_, oy) in taps_y {
                        for &(_, ox) in taps_x {
                            for m in m0..m1 {
                                let dst = &mut gathered[row + (m - m0) * cols..][..cols];
                                self.gather_shifted(plane, m as isize + oy, ox, dst);
                            }
                            row += width;
                        }
                    }
                }
                scratch.rows.resize(c_in * width, 0.0);
                matmul(
                    c_in,
                    width,
                    inner,
                    &mut scratch.rows,
                    width,
                    false,
                    View::rows(&phase.kernel, inner.max(1)),
                    View::rows(gathered, width),
                    threads,
                );
                for (ci, values) in scratch.rows.chunks(width).enumerate() {
                    let channel = &mut grad_in[ci * self.h * self.w..(ci + 1) * self.h * self.w];
                    for m in m0..m1 {
                        let y = s * m + py;
                        let dst = &mut channel[y * self.w..(y + 1) * self.w];
                        let src = &values[(m - m0) * cols..(m - m0 + 1) * cols];
                        dst[px..]
                            .iter_mut()
                            .step_by(s)
                            .zip(src)
                            .for_each(|(d, &v)| *d = v);
                    }
                }
            }
        }
    }

    /// `dst[n] = plane[y][n + shift]` of an output-shaped plane, zero outside it.
    fn gather_shifted(&self, plane: &[f32], y: isize, shift: isize, dst: &mut [f32]) {
        let w = self.w_out as isize;
        if y < 0 || y >= self.h_out as isize {
            dst.fill(0.0);
            return;
        }
        let len = dst.len() as isize;
        let first = (-shift).clamp(0, len);
        let last = (w - shift).clamp(first, len);
        let src = &plane[y as usize * self.w_out..(y as usize + 1) * self.w_out];
        let (first, last) = (first as usize, last as usize);
        dst[..first].fill(0.0);
        dst[last..].fill(0.0);
        let start = (first as isize + shift) as usize;
        dst[first..last].copy_from_slice(&src[start..start + last - first]);
    }

    /// Adds the weight gradient of consecutive images to `grad_weight`.
    fn weight_grad_part(
        &self,
        grad_out: &[f32],
        images: &[f32],
        grad_weight: &mut [f32],
        scratch: &mut Scratch,
        threads: Threads,
    ) {
        if self.groups_images() && winograd::applies(self) {
            let Scratch { cols, rows, .. } = scratch;
            winograd::weight_grad(self, grad_out, images, grad_weight, cols, rows, threads)
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

    /// The input gradient of a stride-1 convolution is itself a convolution of the output
    /// gradient, with each kernel flipped, inputs and outputs swapped, and padding `k - 1 - pad`.
    /// Run that way it is a forward pass: products whose inner size is `c_out k²` rather than
    /// `c_out`, and no col2im.
    fn flipped(&self, weight: &[f32]) -> Option<(ConvGeometry, Vec<f32>)> {
        if self.stride != 1 || self.is_pointwise() || self.pad >= self.k {
            return None;
        }
        let (k, c_in, c_out) = (self.k, self.c_in, self.c_out);
        let g = ConvGeometry::conv(c_out, self.h_out, self.w_out, c_in, k, 1, k - 1 - self.pad);
        debug_assert_eq!((g.h_out, g.w_out), (self.h, self.w));
        let mut kernels = vec![0.0; weight.len()];
        for o in 0..c_out {
            for i in 0..c_in {
                for ky in 0..k {
                    for kx in 0..k {
                        kernels[((i * c_out + o) * k + k - 1 - ky) * k + k - 1 - kx] =
                            weight[((o * c_in + i) * k + ky) * k + kx];
                    }
                }
            }
        }
        Some((g, kernels))
    }

    /// Several whole images: the forward pass, through one product.
    fn forward_group(
        &self,
        images: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Scratch,
        threads: Threads,
    ) {
        let plane = self.out_plane();
        let width = images.len() / self.in_len() * plane;
        self.unfold_group(images, width, &mut scratch.cols);
        scratch.rows.resize(self.c_out * width, 0.0);
        matmul(
            self.c_out,
            width,
            self.patch(),
            &mut scratch.rows,
            width,
            false,
            View::rows(weight, self.patch()),
            View::rows(&scratch.cols, width),
            threads,
        );
        for (i, image_out) in out.chunks_mut(self.out_len()).enumerate() {
            for (c, channel) in image_out.chunks_mut(plane).enumerate() {
                let b = bias.map_or(0.0, |b| b[c]);
                let src = &scratch.rows[c * width + i * plane..c * width + (i + 1) * plane];
                channel.iter_mut().zip(src).for_each(|(o, &v)| *o = v + b);
            }
        }
    }

    /// Several whole images: the input gradient, overwriting `grad_in`.
    fn input_grad_group(
        &self,
        grad_out: &[f32],
        weight: &[f32],
        grad_in: &mut [f32],
        scratch: &mut Scratch,
        threads: Threads,
    ) {
        let plane = self.out_plane();
        let width = grad_out.len() / self.out_len() * plane;
        self.gather_rows(grad_out, width, &mut scratch.rows);
        scratch.cols.resize(self.patch() * width, 0.0);
        matmul(
            self.patch(),
            width,
            self.c_out,
            &mut scratch.cols,
            width,
            false,
            View::transposed(weight, self.patch()),
            View::rows(&scratch.rows, width),
            threads,
        );
        grad_in.fill(0.0);
        for (i, image) in grad_in.chunks_mut(self.in_len()).enumerate() {
            self.col2im(&scratch.cols, 0, self.h_out, image, width, i * plane);
        }
    }

    /// Several whole images: adds their weight gradient to `grad_weight`.
    fn weight_grad_group(
        &self,
        grad_out: &[f32],
        images: &[f32],
        grad_weight: &mut [f32],
        scratch: &mut Scratch,
        threads: Threads,
    ) {
        let width = images.len() / self.in_len() * self.out_plane();
        self.unfold_group(images, width, &mut scratch.cols);
        self.gather_rows(grad_out, width, &mut scratch.rows);
        matmul(
            self.c_out,
            self.patch(),
            width,
            grad_weight,
            self.patch(),
            true,
            View::rows(&scratch.rows, width),
            View::transposed(&scratch.cols, width),
            threads,
        );
    }

    /// The columns of whole images side by side: `[patch, images * out_plane]`.
    fn unfold_group(&self, images: &[f32], width: usize, cols: &mut Vec<f32>) {
        cols.resize(self.patch() * width, 0.0);
        for (i, image) in images.chunks(self.in_len()).enumerate() {
            self.im2col(image, 0, self.h_out, cols, width, i * self.out_plane());
        }
    }

    /// Output-shaped values `[images, c_out, plane]` as `[c_out, images * plane]`.
    fn gather_rows(&self, values: &[f32], width: usize, rows: &mut Vec<f32>) {
        let plane = self.out_plane();
        rows.resize(self.c_out * width, 0.0);
        for (i, image) in values.chunks(self.out_len()).enumerate() {
            for (c, channel) in image.chunks(plane).enumerate() {
                rows[c * width + i * plane..c * width + (i + 1) * plane].copy_from_slice(channel);
            }
        }
    }

    /// One image: `out [c_out, out_plane] = weight [c_out, patch] · cols (+ bias)`.
    fn forward_image(
        &self,
        image: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        cols: &mut Vec<f32>,
        threads: Threads,
    ) {
        let plane = self.out_plane();
        let lhs = View::rows(weight, self.patch());
        if self.is_pointwise() {
            matmul(
                self.c_out,
                plane,
                self.c_in,
                out,
                plane,
                false,
                lhs,
                View::rows(image, plane),
                threads,
            );
        } else {
            for (y0, y1) in self.blocks() {
                let width = (y1 - y0) * self.w_out;
                cols.resize(self.patch() * width, 0.0);
                self.im2col(image, y0, y1, cols, width, 0);
                let dst = &mut out[y0 * self.w_out..];
                matmul(
                    self.c_out,
                    width,
                    self.patch(),
                    dst,
                    plane,
                    false,
                    lhs,
                    View::rows(cols, width),
                    threads,
                );
            }
        }
        if let Some(bias) = bias {
            for (channel, &b) in out.chunks_mut(plane).zip(bias) {
                channel.iter_mut().for_each(|v| *v += b);
            }
        }
    }

    /// One image: `grad_in = col2im(weightᵀ · grad_out)`, overwriting `grad_in`.
    fn input_grad_image(
        &self,
        grad_out: &[f32],
        weight: &[f32],
        grad_in: &mut [f32],
        cols: &mut Vec<f32>,
        threads: Threads,
    ) {
        let plane = self.out_plane();
        let lhs = View::transposed(weight, self.patch());
        if self.is_pointwise() {
            matmul(
                self.c_in,
                plane,
                self.c_out,
                grad_in,
                plane,
                false,
                lhs,
                View::rows(grad_out, plane),
                threads,
            );
            return;
        }
        grad_in.fill(0.0);
        for (y0, y1) in self.blocks() {
            let width = (y1 - y0) * self.w_out;
            cols.resize(self.patch() * width, 0.0);
            let rhs = View::rows(&grad_out[y0 * self.w_out..], plane);
            matmul(
                self.patch(),
                width,
                self.c_out,
                cols,
                width,
                false,
                lhs,
                rhs,
                threads,
            );
            self.col2im(cols, y0, y1, grad_in, width, 0);
        }
    }

    /// One image: `grad_weight += grad_out [c_out, out_plane] · colsᵀ`.
    fn weight_grad_image(
        &self,
        grad_out: &[f32],
        image: &[f32],
        grad_weight: &mut [f32],
        cols: &mut Vec<f32>,
        threads: Threads,
    ) {
        let plane = self.out_plane();
        if self.is_pointwise() {
            let rhs = View::transposed(image, plane);
            matmul(
                self.c_out,
                self.c_in,
                plane,
                grad_weight,
                self.patch(),
                true,
                View::rows(grad_out, plane),
                rhs,
                threads,
            );
            return;
        }
        for (y0, y1) in self.blocks() {
            let width = (y1 - y0) * self.w_out;
            cols.resize(self.patch() * width, 0.0);
            self.im2col(image, y0, y1, cols, width, 0);
            let lhs = View::rows(&grad_out[y0 * self.w_out..], plane);
            matmul(
                self.c_out,
                self.patch(),
                width,
                grad_weight,
                self.patch(),
                true,
                lhs,
                View::transposed(cols, width),
                threads,
            );
        }
    }
}

/// Whether a batch of `n` is split over the threads (one group of images each) rather than
/// each product.
fn per_group(groups: usize) -> bool {
    groups >= rayon::current_num_threads()
}

/// Runs `f(group, scratch, threads)` for every group, over the threads when there are enough.
fn for_each_group<T: Send>(items: Vec<T>, f: impl Fn(T, &mut Scratch, Threads) + Sync) {
    if per_group(items.len()) {
        items
            .into_par_iter()
            .for_each_init(Scratch::default, |scratch, item| {
                f(item, scratch, Threads::One)
            });
    } else {
        let mut scratch = Scratch::default();
        items
            .into_iter()
            .for_each(|item| f(item, &mut scratch, Threads::All));
    }
}

/// `out [n, c_out, h_out, w_out]` of the convolution of `input [n, c_in, h, w]`.
pub fn conv_forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let images = g.images_per_group(input.len() / g.in_len());
    let items: Vec<_> = input
        .chunks(images * g.in_len())
        .zip(out.chunks_mut(images * g.out_len()))
        .collect();
    for_each_group(items, |(x, o), scratch, threads| {
        g.forward_part(x, weight, bias, o, scratch, threads)
    });
}

/// The convolution followed by 2x2 max-pooling, a group of images at a time: each group's
/// full-size output is pooled while still in the cache and never stored. Writes the pooled
/// output `[n, c_out, h_out / 2, w_out / 2]` and which of the four each value took.
pub fn conv_pool_forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    pooled: &mut [f32],
    argmax: &mut [u8],
) {
    let images = g.images_per_group(input.len() / g.in_len());
    let pooled_len = g.c_out * (g.h_out / 2) * (g.w_out / 2);
    let items: Vec<_> = input
        .chunks(images * g.in_len())
        .zip(pooled.chunks_mut(images * pooled_len))
        .zip(argmax.chunks_mut(images * pooled_len))
        .collect();
    for_each_group(items, |((x, p), a), scratch, threads| {
        let mut full = std::mem::take(&mut scratch.full);
        full.resize(x.len() / g.in_len() * g.out_len(), 0.0);
        g.forward_part(x, weight, bias, &mut full, scratch, threads);
        max_pool2_planes(&full, g.h_out, g.w_out, p, a);
        scratch.full = full;
    });
}

/// The gradients of [`conv_pool_forward`] from the pooled output's gradient, a group of images
/// at a time: each group's full-size output gradient is expanded in the cache and used there
/// for the weight gradient and, when `grad_in` is given, the input gradient. Returns the weight
/// gradient and the per-channel sums (the bias gradient); deterministic as [`conv_weight_grad`].
pub fn conv_pool_backward(
    g: &ConvGeometry,
    pooled_grad: &[f32],
    argmax: &[u8],
    input: &[f32],
    weight: &[f32],
    grad_in: Option<&mut [f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let images = g.images_per_group(input.len() / g.in_len());
    let pooled_len = images * g.c_out * (g.h_out / 2) * (g.w_out / 2);
    let dx_groups: Box<dyn Iterator<Item = Option<&mut [f32]>>> = match grad_in {
        Some(dx) => Box::new(dx.chunks_mut(images * g.in_len()).map(Some)),
        None => Box::new(std::iter::repeat_with(|| None)),
    };
    let mut groups: Vec<_> = input
        .chunks(images * g.in_len())
        .zip(pooled_grad.chunks(pooled_len))
        .zip(argmax.chunks(pooled_len))
        .zip(dx_groups)
        .collect();
    let flipped = g.flipped(weight);
    let phases = match flipped {
        Some(_) => Vec::new(),
        None => g.input_grad_phases(weight),
    };
    let partials = in_runs(&mut groups, |run, threads| {
        let (mut dw, mut db) = (vec![0.0; g.weight_len()], vec![0.0f64; g.c_out]);
        let (mut scratch, mut full) = (Scratch::default(), Vec::new());
        for (((x, pooled), argmax), dx) in run {
            full.resize(x.len() / g.in_len() * g.out_len(), 0.0);
            max_pool2_backward_planes(pooled, argmax, g.h_out, g.w_out, &mut full);
            add_channel_sums(&full, g.out_plane(), &mut db);
            g.weight_grad_part(&full, x, &mut dw, &mut scratch, threads);
            match (dx, &flipped) {
                (Some(dx), Some((flipped, kernels))) => {
                    flipped.forward_part(&full, kernels, None, dx, &mut scratch, threads)
                }
                (Some(dx), None) => {
                    g.input_grad_part(&full, weight, &phases, dx, &mut scratch, threads)
                }
                (None, _) => {}
            }
        }
        (dw, db)
    });
    let mut parts = partials.into_iter();
    let (mut dw, mut db) = parts.next().expect("at least one image");
    for (w, b) in parts {
        dw.iter_mut().zip(&w).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
    }
    (dw, db.into_iter().map(|v| v as f32).collect())
}

/// The input gradient `[n, c_in, h, w]` of a convolution, overwriting `grad_in`.
pub fn conv_input_grad(g: &ConvGeometry, grad_out: &[f32], weight: &[f32], grad_in: &mut [f32]) {
    if let Some((flipped, kernels)) = g.flipped(weight) {
        conv_forward(&flipped, grad_out, &kernels, None, grad_in);
        return;
    }
    let images = g.images_per_group(grad_in.len() / g.in_len());
    let items: Vec<_> = grad_out
        .chunks(images * g.out_len())
        .zip(grad_in.chunks_mut(images * g.in_len()))
        .collect();
    let phases = g.input_grad_phases(weight);
    for_each_group(items, |(dy, dx), scratch, threads| {
        g.input_grad_part(dy, weight, &phases, dx, scratch, threads)
    });
}

/// The weight gradient `[c_out, c_in, k, k]` of a convolution, summed over the batch. Each
/// thread sums a fixed run of groups and the runs are added in order, so the result does not
/// depend on how rayon schedules the work (training is repeatable for a given thread count).
pub fn conv_weight_grad(g: &ConvGeometry, grad_out: &[f32], input: &[f32]) -> Vec<f32> {
    let images = g.images_per_group(input.len() / g.in_len());
    let mut groups: Vec<_> = grad_out
        .chunks(images * g.out_len())
        .zip(input.chunks(images * g.in_len()))
        .collect();
    in_runs(&mut groups, |run, threads| {
        let (mut acc, mut scratch) = (vec![0.0; g.weight_len()], Scratch::default());
        for &mut (dy, x) in run {
            g.weight_grad_part(dy, x, &mut acc, &mut scratch, threads);
        }
        acc
    })
    .into_iter()
    .reduce(add_into)
    .expect("at least one image")
}

/// Calls `f` on fixed runs of consecutive `items` (one run per thread when there are enough
/// items, else one run whose products use all threads) and returns the results in order, so
/// that a sum over them does not depend on how rayon schedules the work.
fn in_runs<T: Send, R: Send>(items: &mut [T], f: impl Fn(&mut [T], Threads) -> R + Sync) -> Vec<R> {
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

fn add_into(mut a: Vec<f32>, b: Vec<f32>) -> Vec<f32> {
    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
    a
}

/// Per-channel sums of `[n, channels, plane]` values (a bias gradient).
pub fn channel_sums(values: &[f32], channels: usize, plane: usize) -> Vec<f32> {
    let mut sums = vec![0.0f64; channels];
    add_channel_sums(values, plane, &mut sums);
    sums.into_iter().map(|s| s as f32).collect()
}

/// Adds the per-channel sums of `[n, sums.len(), plane]` values to `sums`.
fn add_channel_sums(values: &[f32], plane: usize, sums: &mut [f64]) {
    for image in values.chunks(sums.len() * plane) {
        for (sum, channel) in sums.iter_mut().zip(image.chunks(plane)) {
            *sum += channel.iter().map(|&v| v as f64).sum::<f64>();
        }
    }
}

/// The transposed convolution of `input [n, c_in, h, w]` (`g` from [`ConvGeometry::transposing`],
/// weight `[c_in, c_out, k, k]`) into `out [n, c_out, h', w']`.
pub fn conv_transpose_forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    conv_input_grad(g, input, weight, out);
    if let Some(bias) = bias {
        let plane = g.h * g.w;
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(i, channel)| {
                let b = bias[i % g.c_in];
                channel.iter_mut().for_each(|v| *v += b);
            });
    }
}

/// The input gradient of a transposed convolution: the forward pass of the one it transposes.
pub fn conv_transpose_input_grad(
    g: &ConvGeometry,
    grad_out: &[f32],
    weight: &[f32],
    grad_in: &mut [f32],
) {
    conv_forward(g, grad_out, weight, None, grad_in);
}

/// The weight gradient `[c_in, c_out, k, k]` of a transposed convolution.
pub fn conv_transpose_weight_grad(g: &ConvGeometry, grad_out: &[f32], input: &[f32]) -> Vec<f32> {
    conv_weight_grad(g, input, grad_out)
}

/// One phase (`py`, `px`: input position mod stride) of a strided convolution's input
/// gradient: the kernel taps reaching it, with their offsets, and the kernel they make.
struct PhaseKernel {
    py: usize,
    px: usize,
    taps_y: Vec<(usize, isize)>,
    taps_x: Vec<(usize, isize)>,
    kernel: Vec<f32>,
}

/// An input row split by phase (column mod stride), so that each kernel column of a strided
/// convolution reads or adds one contiguous run instead of every `stride`-th value. With
/// stride 1 the row itself is read or added to and nothing is copied.
struct RowPhases {
    stride: usize,
    len: usize,
    buffer: Vec<f32>,
}

impl RowPhases {
    fn new(w: usize, stride: usize) -> Self {
        let len = w.div_ceil(stride);
        let buffer = vec![0.0; if stride > 1 { stride * len } else { 0 }];
        RowPhases {
            stride,
            len,
            buffer,
        }
    }

    /// Takes `row`'s values for [`RowPhases::run`].
    fn split(&mut self, row: &[f32]) {
        for (p, phase) in self.buffer.chunks_mut(self.len).enumerate() {
            phase
                .iter_mut()
                .zip(row[p..].iter().step_by(self.stride))
                .for_each(|(d, &v)| *d = v);
        }
    }

    /// The values of `row`'s columns `x * stride + offset` for `x` in `first..last`.
    fn run<'a>(&'a self, row: &'a [f32], offset: isize, first: usize, last: usize) -> &'a [f32] {
        let (phase, start) = self.locate(offset, first);
        match self.stride {
            1 => &row[start..start + last - first],
            _ => &self.buffer[phase * self.len + start..][..last - first],
        }
    }

    /// Where to add values for `row`'s columns `x * stride + offset`, `x` in `first..last`;
    /// with a stride above 1 they reach the row at [`RowPhases::add_to`].
    fn run_mut<'a>(
        &'a mut self,
        row: &'a mut [f32],
        offset: isize,
        first: usize,
        last: usize,
    ) -> &'a mut [f32] {
        let (phase, start) = self.locate(offset, first);
        match self.stride {
            1 => &mut row[start..start + last - first],
            _ => &mut self.buffer[phase * self.len + start..][..last - first],
        }
    }

    /// Adds the values gathered by [`RowPhases::run_mut`] to `row` and clears them.
    fn add_to(&mut self, row: &mut [f32]) {
        for (p, phase) in self.buffer.chunks_mut(self.len).enumerate() {
            row[p..]
                .iter_mut()
                .step_by(self.stride)
                .zip(phase.iter_mut())
                .for_each(|(d, v)| *d += std::mem::take(v));
        }
    }

    /// Column `x * stride + offset` is value `x + shift` of phase `p`: `(p, first + shift)`.
    fn locate(&self, offset: isize, first: usize) -> (usize, usize) {
        let stride = self.stride as isize;
        let (phase, shift) = (offset.rem_euclid(stride), offset.div_euclid(stride));
        (phase as usize, (first as isize + shift) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one multiply-add at a time.
    fn naive_conv(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; g.out_len()];
        for o in 0..g.c_out {
            for y in 0..g.h_out {
                for xo in 0..g.w_out {
                    let mut s = 0.0;
                    for c in 0..g.c_in {
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let iy = (y * g.stride + ky) as isize - g.pad as isize;
                                let ix = (xo * g.stride + kx) as isize - g.pad as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w
                                {
                                    s += x[(c * g.h + iy as usize) * g.w + ix as usize]
                                        * w[((o * g.c_in + c) * g.k + ky) * g.k + kx];
                                }
                            }
                        }
                    }
                    out[(o * g.h_out + y) * g.w_out + xo] = s;
                }
            }
        }
        out
    }

    /// Each value within `tolerance` of the expected one.
    fn assert_close(actual: &[f32], expected: &[f32], tolerance: f32, g: &ConvGeometry) {
        assert_eq!(actual.len(), expected.len(), "{g:?}");
        for (a, b) in actual.iter().zip(expected) {
            assert!((a - b).abs() < tolerance, "{g:?}: {a} vs {b}");
        }
    }

    fn ramp(n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 % 23) as f32 - 11.0) * scale)
            .collect()
    }

    #[test]
    fn forward_matches_the_definition_for_strides_paddings_and_odd_sizes() {
        for (c_in, h, w, c_out, k, stride, pad) in [
            (2, 5, 7, 3, 3, 1, 1),
            (3, 9, 8, 2, 3, 2, 1),
            (1, 6, 6, 4, 4, 2, 1),
            (2, 5, 5, 2, 1, 1, 0),
            (2, 4, 4, 3, 3, 1, 0),
        ] {
            let g = ConvGeometry::conv(c_in, h, w, c_out, k, stride, pad);
            let x = ramp(g.in_len(), 0.1);
            let wt = ramp(g.weight_len(), 0.05);
            let mut out = vec![0.0; g.out_len()];
            conv_forward(&g, &x, &wt, None, &mut out);
            assert_close(&out, &naive_conv(&g, &x, &wt), 1e-4, &g);
        }
    }

    #[test]
    fn winograd_convolutions_match_the_definition_for_odd_sizes_and_several_images() {
        for (n, h, w) in [(3, 7, 5), (2, 6, 6), (1, 1, 3)] {
            let g = ConvGeometry::conv(64, h, w, 65, 3, 1, 1);
            assert!(winograd::applies(&g) && g.groups_images());
            let x = ramp(n * g.in_len(), 0.1);
            let wt = ramp(g.weight_len(), 0.05);
            let bias = ramp(g.c_out, 0.3);
            let mut out = vec![0.0; n * g.out_len()];
            conv_forward(&g, &x, &wt, Some(&bias), &mut out);
            for (image_out, image) in out.chunks(g.out_len()).zip(x.chunks(g.in_len())) {
                let mut expected = naive_conv(&g, image, &wt);
                for (channel, &b) in expected.chunks_mut(g.out_plane()).zip(&bias) {
                    channel.iter_mut().for_each(|v| *v += b);
                }
                assert_close(image_out, &expected, 1e-4, &g);
            }
        }
    }

    #[test]
    fn winograd_weight_gradient_matches_the_unfolded_product() {
        for (n, h, w) in [(3, 7, 5), (2, 6, 6)] {
            let g = ConvGeometry::conv(64, h, w, 65, 3, 1, 1);
            let x = ramp(n * g.in_len(), 0.1);
            let dy = ramp(n * g.out_len(), 0.07);
            let mut scratch = Scratch::default();
            let mut winograd = vec![0.5; g.weight_len()];
            g.weight_grad_part(&dy, &x, &mut winograd, &mut scratch, Threads::One);
            let mut unfolded = vec![0.5; g.weight_len()];
            g.weight_grad_group(&dy, &x, &mut unfolded, &mut scratch, Threads::One);
            assert_close(&winograd, &unfolded, 1e-4, &g);
        }
    }

    #[test]
    fn strided_input_gradients_by_phases_match_col2im() {
        for (c_in, h, w, c_out, k, stride, pad) in [
            (3, 7, 5, 4, 3, 2, 1),
            (2, 8, 8, 3, 4, 2, 1),
            (2, 9, 7, 2, 3, 2, 0),
            (2, 6, 7, 3, 1, 2, 0),
            (3, 10, 9, 2, 5, 3, 2),
        ] {
            let g = ConvGeometry::conv(c_in, h, w, c_out, k, stride, pad);
            let wt = ramp(g.weight_len(), 0.05);
            let dy = ramp(g.out_len(), 0.07);
            let mut scratch = Scratch::default();
            let mut by_phases = vec![f32::NAN; g.in_len()];
            let phases = g.phase_kernels(&wt);
            g.input_grad_by_phases(&dy, &phases, &mut by_phases, &mut scratch, Threads::One);
            let mut scattered = vec![0.0; g.in_len()];
            g.input_grad_image(&dy, &wt, &mut scattered, &mut scratch.cols, Threads::One);
            assert_close(&by_phases, &scattered, 1e-5, &g);
        }
    }

    /// <conv(x), dy> = <x, input_grad(dy)> and = <w, weight_grad(dy, x)>: the adjoint identities
    /// every correct backward pass satisfies.
    #[test]
    fn backward_passes_are_the_adjoints_of_the_forward_pass() {
        for (n, (c_in, h, w, c_out, k, stride, pad)) in [
            (1, (2, 7, 5, 3, 3, 2, 1)),
            (3, (3, 6, 6, 2, 4, 2, 1)),
            (2, (2, 5, 5, 4, 1, 1, 0)),
            (3, (64, 6, 5, 64, 3, 1, 1)),
        ] {
            let g = ConvGeometry::conv(c_in, h, w, c_out, k, stride, pad);
            let x = ramp(n * g.in_len(), 0.1);
            let wt = ramp(g.weight_len(), 0.03);
            let dy = ramp(n * g.out_len(), 0.07);
            let mut y = vec![0.0; n * g.out_len()];
            conv_forward(&g, &x, &wt, None, &mut y);
            let mut dx = vec![1.0; x.len()];
            conv_input_grad(&g, &dy, &wt, &mut dx);
            let dw = conv_weight_grad(&g, &dy, &x);
            let dot =
                |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p * q) as f64).sum::<f64>();
            let lhs = dot(&y, &dy);
            assert!(
                (lhs - dot(&x, &dx)).abs() < 1e-3 * lhs.abs().max(1.0),
                "{g:?}"
            );
            assert!(
                (lhs - dot(&wt, &dw)).abs() < 1e-3 * lhs.abs().max(1.0),
                "{g:?}"
            );
        }
    }
}
