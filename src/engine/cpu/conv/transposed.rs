//! The transposed convolution, as the convolution it transposes run the other way: its forward
//! pass is that convolution's input gradient and its input gradient that convolution's forward
//! pass.

use rayon::prelude::*;

use super::{ConvGeometry, conv_forward, conv_input_grad, conv_weight_grad};

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
