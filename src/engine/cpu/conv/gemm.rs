//! The im2col + GEMM products of one group: one image in row blocks (large planes), or
//! several whole images unfolded side by side into one product (small planes). Every path
//! runs one of three products (`forward_product`, `input_grad_product`, `weight_grad_product`);
//! a pointwise convolution's input is its own columns.

use super::geometry::ConvGeometry;
use super::scratch::Scratch;
use crate::engine::cpu::matmul::{Threads, View, matmul};

impl ConvGeometry {
    /// Several whole images: the forward pass, through one product.
    pub(super) fn forward_group(
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
        let (cols, rows) = (&scratch.cols, &mut scratch.rows);
        self.forward_product(weight, cols, width, rows, width, threads);
        for (i, image_out) in out.chunks_mut(self.out_len()).enumerate() {
            for (c, channel) in image_out.chunks_mut(plane).enumerate() {
                let b = bias.map_or(0.0, |b| b[c]);
                let src = &scratch.rows[c * width + i * plane..c * width + (i + 1) * plane];
                channel.iter_mut().zip(src).for_each(|(o, &v)| *o = v + b);
            }
        }
    }

    /// Several whole images: the input gradient, overwriting `grad_in`.
    pub(super) fn input_grad_group(
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
        let rows = View::rows(&scratch.rows, width);
        self.input_grad_product(weight, rows, width, &mut scratch.cols, threads);
        grad_in.fill(0.0);
        for (i, image) in grad_in.chunks_mut(self.in_len()).enumerate() {
            self.col2im(&scratch.cols, 0, self.h_out, image, width, i * plane);
        }
    }

    /// Several whole images: adds their weight gradient to `grad_weight`.
    pub(super) fn weight_grad_group(
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
        let rows = View::rows(&scratch.rows, width);
        self.weight_grad_product(rows, &scratch.cols, width, grad_weight, threads);
    }

    /// One image: `out [c_out, out_plane] = weight [c_out, patch] · cols (+ bias)`.
    pub(super) fn forward_image(
        &self,
        image: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        cols: &mut Vec<f32>,
        threads: Threads,
    ) {
        let plane = self.out_plane();
        if self.is_pointwise() {
            self.forward_product(weight, image, plane, out, plane, threads);
        } else {
            for (y0, y1) in self.blocks() {
                let width = self.unfold_block(image, y0, y1, cols);
                let dst = &mut out[y0 * self.w_out..];
                self.forward_product(weight, cols, width, dst, plane, threads);
            }
        }
        if let Some(bias) = bias {
            super::add_bias(out, plane, bias);
        }
    }

    /// One image: `grad_in = col2im(weightᵀ · grad_out)`, overwriting `grad_in`.
    pub(super) fn input_grad_image(
        &self,
        grad_out: &[f32],
        weight: &[f32],
        grad_in: &mut [f32],
        cols: &mut Vec<f32>,
        threads: Threads,
    ) {
        let plane = self.out_plane();
        if self.is_pointwise() {
            let rows = View::rows(grad_out, plane);
            return self.input_grad_product(weight, rows, plane, grad_in, threads);
        }
        grad_in.fill(0.0);
        for (y0, y1) in self.blocks() {
            let width = (y1 - y0) * self.w_out;
            cols.resize(self.patch() * width, 0.0);
            let rows = View::rows(&grad_out[y0 * self.w_out..], plane);
            self.input_grad_product(weight, rows, width, cols, threads);
            self.col2im(cols, y0, y1, grad_in, width, 0);
        }
    }

    /// One image: `grad_weight += grad_out [c_out, out_plane] · colsᵀ`.
    pub(super) fn weight_grad_image(
        &self,
        grad_out: &[f32],
        image: &[f32],
        grad_weight: &mut [f32],
        cols: &mut Vec<f32>,
        threads: Threads,
    ) {
        let plane = self.out_plane();
        if self.is_pointwise() {
            let rows = View::rows(grad_out, plane);
            return self.weight_grad_product(rows, image, plane, grad_weight, threads);
        }
        for (y0, y1) in self.blocks() {
            let width = self.unfold_block(image, y0, y1, cols);
            let rows = View::rows(&grad_out[y0 * self.w_out..], plane);
            self.weight_grad_product(rows, cols, width, grad_weight, threads);
        }
    }

    /// Unfolds output rows `y0..y1` of one image into `cols` (resized to fit) and returns the
    /// block's width, `(y1 - y0) * w_out`.
    fn unfold_block(&self, image: &[f32], y0: usize, y1: usize, cols: &mut Vec<f32>) -> usize {
        let width = (y1 - y0) * self.w_out;
        cols.resize(self.patch() * width, 0.0);
        self.im2col(image, y0, y1, cols, width, 0);
        width
    }

    /// The forward product `dst [c_out, width] = weight [c_out, patch] · cols [patch, width]`,
    /// with the rows of `dst` `dst_stride` apart.
    fn forward_product(
        &self,
        weight: &[f32],
        cols: &[f32],
        width: usize,
        dst: &mut [f32],
        dst_stride: usize,
        threads: Threads,
    ) {
        let (m, k) = (self.c_out, self.patch());
        let (a, b) = (View::rows(weight, k), View::rows(cols, width));
        matmul(m, width, k, dst, dst_stride, false, a, b, threads);
    }

    /// The input-gradient product `cols [patch, width] = weightᵀ · rows [c_out, width]`,
    /// overwriting `cols`.
    fn input_grad_product(
        &self,
        weight: &[f32],
        rows: View,
        width: usize,
        cols: &mut [f32],
        threads: Threads,
    ) {
        let (m, k) = (self.patch(), self.c_out);
        let a = View::transposed(weight, m);
        matmul(m, width, k, cols, width, false, a, rows, threads);
    }

    /// The weight-gradient product `grad_weight [c_out, patch] += rows [c_out, width] ·
    /// cols [patch, width]ᵀ`.
    fn weight_grad_product(
        &self,
        rows: View,
        cols: &[f32],
        width: usize,
        grad_weight: &mut [f32],
        threads: Threads,
    ) {
        let (m, n) = (self.c_out, self.patch());
        let b = View::transposed(cols, width);
        matmul(m, n, width, grad_weight, n, true, rows, b, threads);
    }
}
