//! The im2col + GEMM products of one group: one image in row blocks (large planes), or
//! several whole images unfolded side by side into one product (small planes).

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
