//! The convolutions against their definition, the Winograd and phase paths against the
//! unfolded ones, and the backward passes as adjoints of the forward pass.

use super::schedule::Weights;
use super::scratch::Scratch;
use super::*;
use crate::engine::cpu::matmul::Threads;

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
                            if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
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

/// The convolutions of `(c_in, h, w, c_out, k, stride, pad)` shapes.
fn convs<const N: usize>(
    shapes: [(usize, usize, usize, usize, usize, usize, usize); N],
) -> impl Iterator<Item = ConvGeometry> {
    shapes
        .into_iter()
        .map(|(c_in, h, w, c_out, k, stride, pad)| {
            ConvGeometry::conv(c_in, h, w, c_out, k, stride, pad)
        })
}

fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 % 23) as f32 - 11.0) * scale)
        .collect()
}

#[test]
fn forward_matches_the_definition_for_strides_paddings_and_odd_sizes() {
    for g in convs([
        (2, 5, 7, 3, 3, 1, 1),
        (3, 9, 8, 2, 3, 2, 1),
        (1, 6, 6, 4, 4, 2, 1),
        (2, 5, 5, 2, 1, 1, 0),
        (2, 4, 4, 3, 3, 1, 0),
    ]) {
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
        let g = ConvGeometry::conv(128, h, w, 129, 3, 1, 1);
        assert!(winograd::applies(&g) && g.groups_images());
        check_forward(&g, n, |g, x, wt, bias, out, _| {
            conv_forward(g, x, wt.values, bias, out)
        });
    }
}

#[test]
fn winograd_weight_gradient_matches_the_unfolded_product() {
    for (n, h, w) in [(3, 7, 5), (2, 6, 6)] {
        let g = ConvGeometry::conv(128, h, w, 129, 3, 1, 1);
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
    for g in convs([
        (3, 7, 5, 4, 3, 2, 1),
        (2, 8, 8, 3, 4, 2, 1),
        (2, 9, 7, 2, 3, 2, 0),
        (2, 6, 7, 3, 1, 2, 0),
        (3, 10, 9, 2, 5, 3, 2),
    ]) {
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
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p * q) as f64).sum::<f64>();
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

/// Unfolded columns against their definition: patch row `(c, ky, kx)`, output `(y, x)` holds
/// input `(c, y * stride + ky - pad, x * stride + kx - pad)`, zero outside the input. Covers
/// the stride-1 copies of whole spans (kernel 3 and 5, one-pixel planes, a row block in the
/// middle of the plane, beside other images) and the row-by-row path.
#[test]
fn unfolding_matches_the_definition_in_row_blocks_beside_other_images() {
    for (c_in, h, w, k, stride, pad) in [
        (2, 5, 7, 3, 1, 1),
        (3, 4, 1, 3, 1, 1),
        (1, 1, 1, 3, 1, 1),
        (2, 6, 9, 5, 1, 2),
        (2, 3, 3, 1, 1, 0),
        (2, 7, 6, 3, 2, 1),
        (1, 5, 5, 3, 1, 0),
    ] {
        let g = ConvGeometry::conv(c_in, h, w, 1, k, stride, pad);
        let image = ramp(g.in_len(), 0.1);
        for (y0, y1) in [(0, g.h_out), (g.h_out / 3, g.h_out.div_ceil(2).max(1))] {
            let width = (y1 - y0) * g.w_out;
            let (row_stride, offset) = (width + 5, 3);
            let mut cols = vec![f32::NAN; g.patch() * row_stride];
            g.im2col(&image, y0, y1, &mut cols, row_stride, offset);
            for c in 0..c_in {
                for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                    for (y, x) in (y0..y1).flat_map(|y| (0..g.w_out).map(move |x| (y, x))) {
                        let iy = (y * stride + ky) as isize - pad as isize;
                        let ix = (x * stride + kx) as isize - pad as isize;
                        let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                        let expected = if inside {
                            image[(c * h + iy as usize) * w + ix as usize]
                        } else {
                            0.0
                        };
                        let at =
                            ((c * k + ky) * k + kx) * row_stride + offset + (y - y0) * g.w_out + x;
                        assert_eq!(
                            cols[at], expected,
                            "{g:?} rows {y0}..{y1} c {c} k ({ky}, {kx}) at ({y}, {x})"
                        );
                    }
                }
            }
        }
    }
}

/// The micro-kernel's forward passes against the definition: a group of images with panels
/// that straddle images, output channels that are not a multiple of the kernel's rows, patches
/// deeper than several passes (30 x 9 = 270 steps), one-pixel planes and 5x5 kernels; large
/// images, whole and in two blocks of rows; stride 2 on the input's phases (3x3 as the
/// encoders have it, 4x4 as a transposed convolution's input gradient), whole images side by
/// side and a large one in blocks of rows.
#[test]
fn forward_on_the_micro_kernel_matches_the_definition() {
    if crate::engine::cpu::kernel::skipped_without_avx512() {
        return;
    }
    for (n, c_in, h, w, c_out, k, stride, pad) in [
        (3, 2, 5, 7, 13, 3, 1, 1),
        (2, 30, 6, 5, 9, 3, 1, 1),
        (4, 3, 1, 1, 8, 3, 1, 1),
        (2, 1, 28, 28, 32, 3, 1, 1),
        (2, 3, 6, 6, 4, 5, 1, 2),
        (1, 16, 40, 64, 5, 3, 1, 1),
        (1, 64, 70, 64, 5, 3, 1, 1),
        (3, 3, 8, 10, 13, 3, 2, 1),
        (2, 5, 6, 4, 9, 4, 2, 1),
        (1, 2, 2, 2, 8, 3, 2, 1),
        (1, 64, 140, 64, 5, 3, 2, 1),
    ] {
        let g = ConvGeometry::conv(c_in, h, w, c_out, k, stride, pad);
        assert_runs_implicit(&g);
        check_forward(&g, n, |g, x, wt, bias, out, scratch| {
            let mut packed = Vec::new();
            crate::engine::cpu::kernel::pack_rows(wt.values, g.c_out, g.patch(), &mut packed);
            g.forward_implicit(x, &packed, bias, out, scratch)
        });
    }
}

/// Checks that the implicit kernels run `g`, and from 70 rows one image at a time in several
/// blocks of rows (so the cases cover both ways of cutting the work).
fn assert_runs_implicit(g: &ConvGeometry) {
    assert!(g.runs_implicit());
    if g.h >= 70 {
        assert!(!g.groups_images() && g.padded_blocks().count() > 1);
    }
}

/// A forward pass with a bias against the definition, on `n` images (the output starts as NaN,
/// so every value must be written); with bf16 operands, the definition on the operands rounded
/// to bf16 (the kernels round them).
fn check_forward(
    g: &ConvGeometry,
    n: usize,
    forward: impl Fn(&ConvGeometry, &[f32], &Weights, Option<&[f32]>, &mut [f32], &mut Scratch),
) {
    let x = ramp(n * g.in_len(), 0.1);
    let wt = ramp(g.weight_len(), 0.05);
    let bias = ramp(g.c_out, 0.3);
    let mut out = vec![f32::NAN; n * g.out_len()];
    let weights = Weights::new(&wt);
    forward(
        g,
        &x,
        &weights,
        Some(&bias),
        &mut out,
        &mut Scratch::default(),
    );
    let operand = |v: &[f32]| match g.bf16 {
        true => v
            .iter()
            .map(|&v| crate::engine::cpu::bf16::round(v))
            .collect(),
        false => v.to_vec(),
    };
    let (x, wt) = (operand(&x), operand(&wt));
    for (image_out, image) in out.chunks(g.out_len()).zip(x.chunks(g.in_len())) {
        let mut expected = naive_conv(g, image, &wt);
        for (channel, &b) in expected.chunks_mut(g.out_plane()).zip(&bias) {
            channel.iter_mut().for_each(|v| *v += b);
        }
        assert_close(image_out, &expected, 1e-4, g);
    }
}

/// The forward passes with the channels in the vector lanes against the definition: patches
/// deeper than several passes (30 x 9 = 270 steps), channels in blocks of four vectors and
/// fewer (80 = 3 + 2 vectors, 112 = 4 + 3, 72 with lanes past the channels), two vectors in
/// blocks of 14 positions, 5x5 kernels, rows of one and two blocks, planes wider than high;
/// groups of several chunks of rows, chunks that end inside an image and a shorter last chunk
/// (28 x 28 x 32 channels: chunks of 36 rows; 7 x 7 x 128: 36 rows of 42).
#[test]
fn forward_in_lanes_matches_the_definition() {
    if crate::engine::cpu::kernel::skipped_without_avx512() {
        return;
    }
    for (n, c_in, h, w, c_out, k, pad) in [
        (3, 30, 7, 7, 64, 3, 1),
        (2, 20, 14, 14, 80, 3, 1),
        (2, 16, 7, 7, 112, 5, 2),
        (3, 16, 7, 14, 72, 3, 1),
        (2, 16, 14, 28, 32, 3, 1),
        (5, 16, 28, 28, 32, 3, 1),
        (6, 16, 7, 7, 128, 3, 1),
    ] {
        let g = ConvGeometry::conv(c_in, h, w, c_out, k, 1, pad);
        assert!(g.runs_in_lanes(), "{g:?}");
        check_forward(&g, n, ConvGeometry::forward_lanes);
        if crate::engine::cpu::kernel::available_bf16() {
            check_forward(&g.with_bf16(true), n, ConvGeometry::forward_lanes);
        }
    }
    // With an odd channel count the last pair's high half is zero.
    let g = ConvGeometry::conv(17, 14, 14, 64, 3, 1, 1).with_bf16(true);
    if crate::engine::cpu::kernel::available_bf16() {
        check_forward(&g, 2, ConvGeometry::forward_lanes);
    } else {
        eprintln!("skipped the bf16 cases: this CPU has no AVX512-BF16");
    }
}

/// The input gradient of strided convolutions on the output gradient's padded grid against
/// the definition (`dx[c][s y + ky - pad][s x + kx - pad] += dy[o][y][x] · w[o][c][ky][kx]`,
/// in f64): 3x3 and 4x4 kernels, whole images side by side and a large one in blocks of rows;
/// every input position is written (the buffer starts as NaN), with a bias per input channel.
#[test]
fn strided_input_gradient_on_the_micro_kernel_matches_the_definition() {
    if crate::engine::cpu::kernel::skipped_without_avx512() {
        return;
    }
    for (n, c_in, h, w, c_out, k) in [
        (3, 3, 8, 10, 13, 3),
        (2, 5, 6, 4, 9, 4),
        (2, 16, 16, 16, 20, 4),
        (1, 16, 140, 64, 256, 3),
    ] {
        let g = ConvGeometry::conv(c_in, h, w, c_out, k, 2, 1);
        assert!(g.input_grad_runs_implicit(), "{g:?}");
        if h == 140 {
            let grid = ConvGeometry::conv(c_out, g.h_out, g.w_out, c_in, 3, 1, 1);
            assert!(!g.groups_images() && grid.padded_blocks().count() > 1);
        }
        let dy = ramp(n * g.out_len(), 0.07);
        let wt = ramp(g.weight_len(), 0.05);
        let mut dx = vec![f32::NAN; n * g.in_len()];
        let phases = g.phase_kernels(&wt);
        // With a bias per input channel, as a transposed convolution's forward pass adds it.
        let bias = ramp(c_in, 0.3);
        g.input_grad_implicit(&dy, &phases, Some(&bias), &mut dx, &mut Scratch::default());
        for (grad_in, grad_out) in dx.chunks(g.in_len()).zip(dy.chunks(g.out_len())) {
            let mut expected: Vec<f64> = (0..g.in_len())
                .map(|at| bias[at / (h * w)] as f64)
                .collect();
            for (o, c, ky, kx) in (0..c_out).flat_map(|o| {
                (0..c_in).flat_map(move |c| {
                    (0..k).flat_map(move |ky| (0..k).map(move |kx| (o, c, ky, kx)))
                })
            }) {
                let weight = wt[((o * c_in + c) * k + ky) * k + kx] as f64;
                for (y, x) in (0..g.h_out).flat_map(|y| (0..g.w_out).map(move |x| (y, x))) {
                    let (iy, ix) = ((2 * y + ky) as isize - 1, (2 * x + kx) as isize - 1);
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                        let at = (c * h + iy as usize) * w + ix as usize;
                        expected[at] += grad_out[(o * g.h_out + y) * g.w_out + x] as f64 * weight;
                    }
                }
            }
            let expected: Vec<f32> = expected.into_iter().map(|v| v as f32).collect();
            assert_close(grad_in, &expected, 1e-4, &g);
        }
    }
}

/// The weight gradient by its definition, in f64: `dw[o][c][ky][kx] = Σ dy[o][y][x] ·
/// x[c][y + ky - pad][x + kx - pad]` over every image and output position.
fn naive_weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dw = vec![0.0f64; g.weight_len()];
    for (image, grad) in x.chunks(g.in_len()).zip(dy.chunks(g.out_len())) {
        for (o, c, ky, kx) in (0..g.c_out).flat_map(|o| {
            (0..g.c_in).flat_map(move |c| {
                (0..g.k).flat_map(move |ky| (0..g.k).map(move |kx| (o, c, ky, kx)))
            })
        }) {
            let mut s = 0.0f64;
            for (y, xo) in (0..g.h_out).flat_map(|y| (0..g.w_out).map(move |xo| (y, xo))) {
                let iy = (y * g.stride + ky) as isize - g.pad as isize;
                let ix = (xo * g.stride + kx) as isize - g.pad as isize;
                if iy >= 0 && ix >= 0 && (iy as usize) < g.h && (ix as usize) < g.w {
                    s += grad[(o * g.h_out + y) * g.w_out + xo] as f64
                        * image[(c * g.h + iy as usize) * g.w + ix as usize] as f64;
                }
            }
            dw[((o * g.c_in + c) * g.k + ky) * g.k + kx] += s;
        }
    }
    dw.into_iter().map(|v| v as f32).collect()
}

/// The micro-kernel's weight gradients against the definition: several images whose grid
/// rows run from one into the next; output channels that are not a multiple of 16, and more
/// than the 64 of one block (80: a block of four vectors and one of one); patches that do
/// not fill the last block of steps (30 x 9 = 270); 5x5 kernels; a large image, whole and in
/// two blocks of rows; stride 2 on the input's phases, 3x3 and 4x4, small and large. The sums
/// are added to what `grad_weight` held.
#[test]
fn weight_gradient_on_the_micro_kernel_matches_the_definition() {
    if crate::engine::cpu::kernel::skipped_without_avx512() {
        return;
    }
    for (n, c_in, h, w, c_out, k, stride, pad) in [
        (3, 2, 5, 7, 13, 3, 1, 1),
        (2, 30, 6, 5, 9, 3, 1, 1),
        (4, 3, 1, 1, 8, 3, 1, 1),
        (2, 3, 9, 8, 80, 3, 1, 1),
        (2, 3, 6, 6, 32, 5, 1, 2),
        (1, 16, 40, 64, 5, 3, 1, 1),
        (1, 64, 70, 64, 5, 3, 1, 1),
        (3, 3, 8, 10, 20, 3, 2, 1),
        (2, 5, 6, 4, 9, 4, 2, 1),
        (1, 64, 140, 64, 5, 3, 2, 1),
    ] {
        let g = ConvGeometry::conv(c_in, h, w, c_out, k, stride, pad);
        assert_runs_implicit(&g);
        let x = ramp(n * g.in_len(), 0.1);
        let dy = ramp(n * g.out_len(), 0.07);
        let mut dw = vec![0.5; g.weight_len()];
        g.weight_grad_implicit(&dy, &x, &mut dw, &mut Scratch::default());
        let expected: Vec<f32> = naive_weight_grad(&g, &x, &dy)
            .iter()
            .map(|v| v + 0.5)
            .collect();
        let scale = expected.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        assert_close(&dw, &expected, 2e-5 * scale, &g);
    }
}

/// The 1x1 convolutions with few outputs (`kernel::pointwise`): forward with a bias and input
/// gradient against the definition, over blocks of 8 and 16 outputs, input gradients of more
/// than 16 channels (in passes of 16), planes that end in part of a vector, several images,
/// and outputs filled with NaN first so that every value must be written; with bf16 operands
/// (which the loops round as they read them: no rounded copy is made for these passes,
/// `ConvGeometry::kernels_round`), the definition on the operands rounded to bf16.
#[test]
fn pointwise_convolutions_match_the_definition() {
    if crate::engine::cpu::kernel::skipped_without_avx512() {
        return;
    }
    for ((n, c_in, h, w, c_out), bf16) in [
        (2, 16, 5, 7, 5),
        (1, 3, 4, 4, 1),
        (3, 17, 3, 11, 9),
        (1, 32, 16, 17, 16),
        (2, 1, 1, 1, 8),
    ]
    .into_iter()
    .flat_map(|shape| [(shape, false), (shape, true)])
    {
        let g = ConvGeometry::conv(c_in, h, w, c_out, 1, 1, 0).with_bf16(bf16);
        assert!(g.runs_pointwise(), "{g:?}");
        assert_eq!(g.kernels_round(Pass::Forward, g.groups(n)), bf16);
        assert_eq!(g.kernels_round(Pass::InputGrad, g.groups(n)), bf16);
        check_forward(&g, n, |g, x, wt, bias, out, _| {
            conv_forward(g, x, wt.values, bias, out)
        });
        let operand = |v: Vec<f32>| match bf16 {
            true => v.into_iter().map(crate::engine::cpu::bf16::round).collect(),
            false => v,
        };
        let wt = ramp(g.weight_len(), 0.05);
        let dy = ramp(n * g.out_len(), 0.07);
        let mut dx = vec![f32::NAN; n * g.in_len()];
        conv_input_grad(&g, &dy, &wt, &mut dx);
        let (wt, dy): (Vec<f32>, Vec<f32>) = (operand(wt), operand(dy));
        let plane = g.out_plane();
        for i in 0..n {
            let dy = &dy[i * g.out_len()..(i + 1) * g.out_len()];
            let expected: Vec<f32> = (0..c_in * plane)
                .map(|at| {
                    let (c, p) = (at / plane, at % plane);
                    (0..c_out)
                        .map(|o| wt[o * c_in + c] * dy[o * plane + p])
                        .sum()
                })
                .collect();
            assert_close(
                &dx[i * g.in_len()..(i + 1) * g.in_len()],
                &expected,
                1e-4,
                &g,
            );
        }
    }
}

/// Inputs stored in bf16 give what the same values expanded to fp32 give, bit for bit (forward
/// pass and weight gradient, on the paths a group of several images and a single image take,
/// fp32's kernels and the bf16 kernels); a bf16 output holds the fp32 output rounded, and the
/// pass after it sees exactly the stored values.
#[test]
fn bf16_storage_changes_only_the_rounding() {
    use crate::engine::cpu::bf16::{round, to_bits, to_f32};
    for (n, g) in [
        (5, ConvGeometry::conv(16, 7, 7, 32, 3, 1, 1)),
        (3, ConvGeometry::conv(3, 28, 28, 16, 3, 1, 1)),
        (2, ConvGeometry::conv(8, 33, 30, 8, 3, 2, 1)),
        (1, ConvGeometry::conv(5, 64, 64, 6, 3, 1, 1)),
        (4, ConvGeometry::conv(6, 9, 9, 4, 1, 1, 0)),
    ] {
        for kernels in [false, true] {
            let g = g.with_bf16(true).with_bf16_kernels(kernels);
            let bits = to_bits(&ramp(n * g.in_len(), 0.013));
            let x = to_f32(&bits);
            let w = to_f32(&to_bits(&ramp(g.weight_len(), 0.021)));
            let dy = to_f32(&to_bits(&ramp(n * g.out_len(), 0.007)));
            let mut from_floats = vec![f32::NAN; n * g.out_len()];
            conv_forward(&g, &x, &w, None, &mut from_floats);
            let mut from_bits = vec![f32::NAN; n * g.out_len()];
            conv_forward(&g, &bits, &w, None, &mut from_bits);
            assert_eq!(from_bits, from_floats, "{g:?}");
            let seen = std::sync::Mutex::new(vec![f32::NAN; n * g.out_len()]);
            let mut stored = vec![0u16; n * g.out_len()];
            conv_forward_then(&g, &bits, &w, None, &mut stored, |first, images| {
                let mut seen = seen.lock().unwrap();
                seen[first * g.out_len()..][..images.len()].copy_from_slice(images);
            });
            let rounded: Vec<f32> = from_floats.iter().map(|&v| round(v)).collect();
            assert_eq!(to_f32(&stored), rounded, "{g:?}");
            assert_eq!(seen.into_inner().unwrap(), rounded, "{g:?}");
            assert_eq!(
                conv_weight_grad(&g, &dy, &bits),
                conv_weight_grad(&g, &dy, &x),
                "{g:?}"
            );
        }
    }
}
