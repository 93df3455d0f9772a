//! The convolution fused with 2x2 max-pooling, forward and backward: each group's full-size
//! output (or output gradient) lives only in the cache.

use std::borrow::Cow;

use super::geometry::ConvGeometry;
use super::schedule::{Pass, Weights, for_each_group, in_runs, with_scratch};
use super::{add_channel_sums, operands};
use crate::engine::cpu::bf16;
use crate::engine::cpu::layers::{max_pool2_backward_planes, max_pool2_planes};

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
    let n = input.len() / g.in_len();
    let [input, weight] = operands(g, Pass::Forward, g.groups(n), [input, weight]);
    let images = g.images_per_group(n);
    let pooled_len = g.c_out * (g.h_out / 2) * (g.w_out / 2);
    let items: Vec<_> = input
        .chunks(images * g.in_len())
        .zip(pooled.chunks_mut(images * pooled_len))
        .zip(argmax.chunks_mut(images * pooled_len))
        .collect();
    let weights = Weights::new(&weight);
    for_each_group(items, |((x, p), a), scratch, threads| {
        let mut full = std::mem::take(&mut scratch.full);
        full.resize(x.len() / g.in_len() * g.out_len(), 0.0);
        g.forward_part(x, &weights, bias, &mut full, scratch, threads);
        max_pool2_planes(&full, g.h_out, g.w_out, p, a);
        scratch.full = full;
    });
}

/// The gradients of [`conv_pool_forward`] from the pooled output's gradient, a group of images
/// at a time: each group's full-size output gradient is expanded in the cache and used there
/// for the weight gradient and, when `grad_in` is given, the input gradient. Returns the weight
/// gradient and the per-channel sums (the bias gradient, of the output gradient as given: in
/// bf16 too); deterministic as [`conv_weight_grad`].
///
/// [`conv_weight_grad`]: super::conv_weight_grad
pub fn conv_pool_backward(
    g: &ConvGeometry,
    pooled_grad: &[f32],
    argmax: &[u8],
    input: &[f32],
    weight: &[f32],
    grad_in: Option<&mut [f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let group_count = g.groups(input.len() / g.in_len());
    let mut flipped = g.flipped(weight);
    // The operands that fp32 kernels read, rounded first: the input and the weights (where the
    // caller has not: `ConvGeometry::bf16_kernels`) and each group's expanded output gradient
    // (in the cache, after the bias's sums; always given in fp32). Every pass runs on this
    // convolution's groups, the flipped one's forward passes too.
    let input_grad_rounds = match &flipped {
        Some((flipped, _)) => flipped.kernels_round(Pass::Forward, group_count),
        None => g.kernels_round(Pass::InputGrad, group_count),
    };
    if let Some((_, kernels)) = &mut flipped
        && g.runs_bf16_kernels()
        && !input_grad_rounds
    {
        bf16::round_all(kernels);
    }
    let weight_grad_rounds = g.kernels_round(Pass::WeightGrad, group_count);
    let round_grad = g.bf16 && !(weight_grad_rounds && input_grad_rounds);
    let [input] = operands(g, Pass::WeightGrad, group_count, [input]);
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
    let flipped = flipped
        .as_ref()
        .map(|(geometry, kernels)| (geometry, Weights::new(kernels)));
    // Without a flipped kernel the input gradient reads the weights themselves.
    let weight = match flipped {
        Some(_) => Cow::Borrowed(weight),
        None => {
            let [weight] = operands(g, Pass::InputGrad, group_count, [weight]);
            weight
        }
    };
    let weight = &weight[..];
    let phases = match flipped {
        Some(_) => Vec::new(),
        None => g.input_grad_phases(weight),
    };
    let partials = in_runs(&mut groups, |run, threads| {
        let (mut dw, mut db) = (vec![0.0; g.weight_len()], vec![0.0f64; g.c_out]);
        let mut full = Vec::new();
        with_scratch(|scratch| {
            for (((x, pooled), argmax), dx) in run {
                full.resize(x.len() / g.in_len() * g.out_len(), 0.0);
                max_pool2_backward_planes(pooled, argmax, g.h_out, g.w_out, &mut full);
                add_channel_sums(&full, g.out_plane(), &mut db);
                if round_grad {
                    bf16::round_all(&mut full);
                }
                g.weight_grad_part(&full, x, &mut dw, scratch, threads);
                match (dx, &flipped) {
                    (Some(dx), Some((flipped, kernels))) => {
                        flipped.forward_part(&full, kernels, None, dx, scratch, threads)
                    }
                    (Some(dx), None) => {
                        g.input_grad_part(&full, weight, &phases, None, dx, scratch, threads)
                    }
                    (None, _) => {}
                }
            }
        });
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
