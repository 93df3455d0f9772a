//! Convolution and transposed convolution, forward and backward: with AVX-512, stride-1
//! "same" and stride-2 convolutions (and so the transposed convolutions, which run them the
//! other way) as implicit GEMMs on convlab's own kernels; everything else as im2col + GEMM, one
//! image at a time in row blocks where planes are large, several images per product where
//! small.
//!
//! One geometry serves both: a transposed convolution's forward pass is the input gradient of
//! the convolution it transposes, and its input gradient is that convolution's forward pass
//! (PyTorch's `ConvTranspose2d` is defined that way). The unfolded columns are built a few
//! output rows at a time, so the block the GEMM reads stays in cache and the buffer stays small.
//!
//! By concern: `geometry` (the shape, im2col / col2im, row blocks), `schedule` (groups, scratch
//! buffers, which method a group takes, threads), `gemm` (the unfolded products through the
//! `gemm` crate), `implicit` (forward passes and weight gradients on convlab's own kernels,
//! read straight from a zero-padded input), `lanes` (small planes' forward passes with the
//! output channels in the vector lanes), `phases` (strided input gradients by sub-pixel
//! phase), `pointwise` (1x1 convolutions with few outputs), `pooled` (convolution fused with
//! max-pooling), `transposed` (transposed convolution), `winograd` (3x3 stride-1 convolutions
//! by Winograd's method), `scratch` (each thread's buffers); here the entry points.

mod gemm;
mod geometry;
mod implicit;
mod lanes;
mod phases;
mod pointwise;
mod pooled;
mod schedule;
mod scratch;
#[cfg(test)]
mod tests;
mod transposed;
mod winograd;

pub use geometry::ConvGeometry;
pub use pooled::{conv_pool_backward, conv_pool_forward};
pub use transposed::{
    conv_transpose_forward, conv_transpose_input_grad, conv_transpose_weight_grad,
};

use std::borrow::Cow;

use schedule::{Pass, Weights, for_each_group, in_runs, with_scratch};

use super::bf16::{self, Storage};
use super::{kernel, layers, peak};

/// `out [n, c_out, h_out, w_out]` of the convolution of `input [n, c_in, h, w]`.
pub fn conv_forward<X: Storage, Y: Storage>(
    g: &ConvGeometry,
    input: &[X],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [Y],
) {
    conv_forward_then(g, input, weight, bias, out, |_, _| {})
}

/// [`conv_forward`], then `then(first image, images)` on each group of whole output images as
/// soon as the group is written (while it is still in cache): what a layer that follows would
/// otherwise do in a pass of its own over the batch, such as evaluation's batch norm and ReLU,
/// or the sums behind a training batch norm's statistics.
///
/// Either side may be stored in bf16 ([`Storage`]): a group's input is expanded to fp32 as
/// the kernels read it, and its output is written in fp32 and stored from the cache, rounded
/// first, so that `then` sees the values as stored.
pub fn conv_forward_then<X: Storage, Y: Storage>(
    g: &ConvGeometry,
    input: &[X],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [Y],
    then: impl Fn(usize, &mut [f32]) + Sync,
) {
    let n = input.len() / g.in_len();
    let [input] = operands(g, Pass::Forward, g.groups(n), [input]);
    let [weight] = operands(g, Pass::Forward, g.groups(n), [weight]);
    let images = g.images_per_group(n);
    let items: Vec<_> = input
        .chunks(images * g.in_len())
        .zip(out.chunks_mut(images * g.out_len()))
        .enumerate()
        .collect();
    let weights = Weights::new(&weight);
    for_each_group(items, |(group, (x, o)), scratch, threads| {
        let mut expanded = std::mem::take(&mut scratch.expanded);
        let x = bf16::in_f32(x, &mut expanded);
        if let Some(o) = Y::as_f32_mut(o) {
            g.forward_part(x, &weights, bias, o, scratch, threads);
            then(group * images, o);
        } else {
            // The kernels overwrite every value (as a pooled group's buffer relies on).
            let mut written = std::mem::take(&mut scratch.written);
            written.resize(o.len(), 0.0);
            g.forward_part(x, &weights, bias, &mut written, scratch, threads);
            bf16::round_here(&mut written);
            then(group * images, &mut written);
            bf16::store_into(&written, o);
            scratch.written = written;
        }
        scratch.expanded = expanded;
    });
}

/// The input gradient `[n, c_in, h, w]` of a convolution, overwriting `grad_in`.
pub fn conv_input_grad(g: &ConvGeometry, grad_out: &[f32], weight: &[f32], grad_in: &mut [f32]) {
    input_grad_plus(g, grad_out, weight, None, grad_in)
}

/// [`conv_input_grad`] plus `bias[c]` on every value of input channel `c` (a transposed
/// convolution's forward pass), added as results leave the kernels where a path can.
fn input_grad_plus(
    g: &ConvGeometry,
    grad_out: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    grad_in: &mut [f32],
) {
    if let Some((flipped, kernels)) = g.flipped(weight) {
        conv_forward(&flipped, grad_out, &kernels, bias, grad_in);
        return;
    }
    let n = grad_in.len() / g.in_len();
    let [grad_out, weight] = operands(g, Pass::InputGrad, g.groups(n), [grad_out, weight]);
    let (grad_out, weight) = (&grad_out[..], &weight[..]);
    let images = g.images_per_group(n);
    let items: Vec<_> = grad_out
        .chunks(images * g.out_len())
        .zip(grad_in.chunks_mut(images * g.in_len()))
        .collect();
    let phases = g.input_grad_phases(weight);
    for_each_group(items, |(dy, dx), scratch, threads| {
        g.input_grad_part(dy, weight, &phases, bias, dx, scratch, threads)
    });
}

/// The weight gradient `[c_out, c_in, k, k]` of a convolution, summed over the batch (its
/// input in either [`Storage`], expanded a group at a time). Each thread sums a fixed run of
/// groups and the runs are added in order, so the result does not depend on how rayon
/// schedules the work (training is repeatable for a given thread count).
pub fn conv_weight_grad<X: Storage>(g: &ConvGeometry, grad_out: &[f32], input: &[X]) -> Vec<f32> {
    let n = input.len() / g.in_len();
    let [grad_out] = operands(g, Pass::WeightGrad, g.groups(n), [grad_out]);
    let [input] = operands(g, Pass::WeightGrad, g.groups(n), [input]);
    let images = g.images_per_group(n);
    let mut groups: Vec<_> = grad_out
        .chunks(images * g.out_len())
        .zip(input.chunks(images * g.in_len()))
        .collect();
    in_runs(&mut groups, |run, threads| {
        let mut acc = vec![0.0; g.weight_len()];
        with_scratch(|scratch| {
            for &mut (dy, x) in run {
                let mut expanded = std::mem::take(&mut scratch.expanded);
                let x = bf16::in_f32(x, &mut expanded);
                g.weight_grad_part(dy, x, &mut acc, scratch, threads);
                scratch.expanded = expanded;
            }
        });
        acc
    })
    .into_iter()
    .reduce(add_into)
    .expect("at least one image")
}

/// Whether a network's bf16 convolutions should run the bf16 kernels here: where the CPU has
/// them and `vdpbf16ps` outruns fp32's FMAs ([`peak::bf16_outpaces_fp32`]). It does on AMD's
/// Zen 4 (twice the fp32 rate); on Intel's Xeons without AMX it runs at half the fp32 rate
/// (measured on a Xeon, family 6 model 207: 159-174 GFLOP/s against 240-350), and a bf16
/// step took 1.4x-1.6x fp32's on the bf16 kernels. Elsewhere bf16 runs the emulated path.
///
/// Where the kernels run, a network hands them fp32 values, which they round as they lay them
/// out, and each activation is read once (a rounded copy of every convolution's input, and of
/// its output gradient, cost 2-4% of a bf16 training step of `own`, `res` and `unet`).
/// Elsewhere (the emulated path, where fp32 kernels read every operand) the caller rounds each
/// operand once and hands the rounded values to every pass: a rounded copy per pass made those
/// steps 6-8% slower. A pooled convolution's output gradient is the exception: it takes it in
/// fp32 either way and rounds each group's expanded gradient in the cache.
pub fn bf16_kernels_pay() -> bool {
    kernel::available_bf16() && peak::bf16_outpaces_fp32()
}

/// The operands of `pass` over `groups` groups of images as its kernels must read them: as
/// they are in fp32, where the kernels round them ([`ConvGeometry::kernels_round`]) or where
/// the caller has (no bf16 kernels run: [`ConvGeometry::bf16_kernels`]), rounded copies
/// otherwise.
fn operands<'a, S: Storage, const N: usize>(
    g: &ConvGeometry,
    pass: Pass,
    groups: usize,
    values: [&'a [S]; N],
) -> [Cow<'a, [S]>; N] {
    let round = g.runs_bf16_kernels() && !g.kernels_round(pass, groups);
    values.map(|v| match round {
        true => S::rounded(v),
        false => Cow::Borrowed(v),
    })
}

fn add_into(mut a: Vec<f32>, b: Vec<f32>) -> Vec<f32> {
    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
    a
}

/// Adds `bias[c]` to every value of channel `c` of `[n, bias.len(), plane]` values.
fn add_bias(values: &mut [f32], plane: usize, bias: &[f32]) {
    for (channel, &b) in values.chunks_mut(plane).zip(bias.iter().cycle()) {
        channel.iter_mut().for_each(|v| *v += b);
    }
}

/// Adds the per-channel sums of `[n, sums.len(), plane]` values to `sums`, each plane summed
/// as `layers::channel_sums` sums it (in 16 running sums: one f64 sum waited on its previous
/// addition at every value, 8% of a `base` training step in its pooled convolution).
fn add_channel_sums(values: &[f32], plane: usize, sums: &mut [f64]) {
    let planes = layers::sums_of_planes(values, plane);
    for (at, (sum, _)) in planes.into_iter().enumerate() {
        sums[at % sums.len()] += sum;
    }
}
