//! The transposed convolution, as the convolution it transposes run the other way: its forward
//! pass is that convolution's input gradient and its input gradient that convolution's forward
//! pass.

use super::{ConvGeometry, conv_forward, conv_weight_grad, input_grad_plus};

/// The transposed convolution of `input [n, c_in, h, w]` (`g` from [`ConvGeometry::transposing`],
/// weight `[c_in, c_out, k, k]`) into `out [n, c_out, h', w']`.
pub fn conv_transpose_forward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    input_grad_plus(g, input, weight, bias, out);
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
