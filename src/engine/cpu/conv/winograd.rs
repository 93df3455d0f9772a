//! 3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, 2016):
//! each 2x2 block of outputs comes from a 4x4 block of inputs with 16 multiplications per
//! channel pair instead of 36. The work becomes 16 matrix products `[c_out, c_in] · [c_in,
//! tiles]` between transforms of the inputs and of the outputs, a tile at a time in registers.
//! Used for the forward pass and the weight gradient; the input gradient of a stride-1
//! convolution is itself run as a forward convolution (see `conv/mod.rs`), so it gains too.
//! PyTorch's CPU convolutions (oneDNN) use the same method.

use super::geometry::ConvGeometry;
use crate::engine::cpu::matmul::{Threads, View, matmul};

/// Values of a transformed 4x4 tile: one matrix product each.
const POINTS: usize = 16;

/// The distance between consecutive points' matrices for `len` values each. A tile's 16
/// values go to (or come from) 16 matrices at once; were those a power of two apart (64
/// channels x 1,024 tiles is), all 16 would fall into the same cache set, more than its ways,
/// and every access would miss: the transforms ran 2-3x slower on an Intel Xeon. One cache
/// line more between them spreads them over 16 sets.
fn point_stride(len: usize) -> usize {
    len + 16
}

/// Whether the convolution is one this method computes and gains on: with few channels the
/// transforms cost more than the products save. Measured with `convlab bench --measure steps`
/// on an Intel Xeon (AVX-512): from 64x64 channels (`own`, `res`) up to 64x128 (`wide`, `res`)
/// the step was 1-13% faster without it, and `unet`'s 128x128 and wider layers gain.
pub fn applies(g: &ConvGeometry) -> bool {
    g.k == 3 && g.stride == 1 && g.pad == 1 && g.c_in * g.c_out >= 128 * 128
}

/// `out [n, c_out, h, w]` of the convolution of whole `images [n, c_in, h, w]`; `inputs` and
/// `products` are scratch buffers.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    g: &ConvGeometry,
    images: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    inputs: &mut Vec<f32>,
    products: &mut Vec<f32>,
    threads: Threads,
) {
    debug_assert!(applies(g));
    let tiles = Tiles::of(g, images.len() / g.in_len());
    let kernels = transform_weights(g, weight);
    transform_inputs(g, &tiles, images, inputs);
    let (outputs_stride, inputs_stride) = (
        point_stride(g.c_out * tiles.count),
        point_stride(g.c_in * tiles.count),
    );
    let kernels_stride = point_stride(g.c_out * g.c_in);
    products.resize(POINTS * outputs_stride, 0.0);
    for point in 0..POINTS {
        matmul(
            g.c_out,
            tiles.count,
            g.c_in,
            &mut products[point * outputs_stride..],
            tiles.count,
            false,
            View::rows(&kernels[point * kernels_stride..], g.c_in),
            View::rows(&inputs[point * inputs_stride..], tiles.count),
            threads,
        );
    }
    transform_outputs(g, &tiles, products, bias, out);
}

/// Adds the weight gradient `[c_out, c_in, 3, 3]` of whole `images` given their output
/// gradient to `grad_weight`: the products in the transformed space are `dM · Vᵀ`, with `dM`
/// the output gradient through `A` and `V` the transformed inputs, and `Gᵀ · G` brings each
/// 4x4 result back to a 3x3 kernel.
#[allow(clippy::too_many_arguments)]
pub fn weight_grad(
    g: &ConvGeometry,
    grad_out: &[f32],
    images: &[f32],
    grad_weight: &mut [f32],
    inputs: &mut Vec<f32>,
    products: &mut Vec<f32>,
    threads: Threads,
) {
    debug_assert!(applies(g));
    let tiles = Tiles::of(g, images.len() / g.in_len());
    let pairs = g.c_out * g.c_in;
    transform_inputs(g, &tiles, images, inputs);
    transform_output_grads(g, &tiles, grad_out, products);
    let (outputs_stride, inputs_stride, pairs_stride) = (
        point_stride(g.c_out * tiles.count),
        point_stride(g.c_in * tiles.count),
        point_stride(pairs),
    );
    let mut kernel_grads = vec![0.0; POINTS * pairs_stride];
    for point in 0..POINTS {
        matmul(
            g.c_out,
            g.c_in,
            tiles.count,
            &mut kernel_grads[point * pairs_stride..],
            g.c_in,
            false,
            View::rows(&products[point * outputs_stride..], tiles.count),
            View::transposed(&inputs[point * inputs_stride..], tiles.count),
            threads,
        );
    }
    let gather = |u: [f32; 4]| {
        [
            u[0] + 0.5 * (u[1] + u[2]),
            0.5 * (u[1] - u[2]),
            0.5 * (u[1] + u[2]) + u[3],
        ]
    };
    for (pair, kernel) in grad_weight.chunks_mut(9).enumerate() {
        let rows: [[f32; 3]; 4] = std::array::from_fn(|a| {
            gather(std::array::from_fn(|b| {
                kernel_grads[(a * 4 + b) * pairs_stride + pair]
            }))
        });
        for kx in 0..3 {
            let column = gather(std::array::from_fn(|a| rows[a][kx]));
            for ky in 0..3 {
                kernel[ky * 3 + kx] += column[ky];
            }
        }
    }
}

/// 2x2 output tiles: `rows x cols` per image, `count` in all.
struct Tiles {
    rows: usize,
    cols: usize,
    count: usize,
}

impl Tiles {
    fn of(g: &ConvGeometry, images: usize) -> Self {
        let (rows, cols) = (g.h_out.div_ceil(2), g.w_out.div_ceil(2));
        Tiles {
            rows,
            cols,
            count: images * rows * cols,
        }
    }

    /// Where the tiles of row `r` of image `i` start among all tiles.
    fn start(&self, i: usize, r: usize) -> usize {
        (i * self.rows + r) * self.cols
    }
}

/// `G g Gᵀ` for every kernel, laid out `[point][c_out][c_in]`, points
/// [`point_stride`] apart.
fn transform_weights(g: &ConvGeometry, weight: &[f32]) -> Vec<f32> {
    let stride = point_stride(g.c_out * g.c_in);
    let mut kernels = vec![0.0; POINTS * stride];
    let spread = |a: f32, b: f32, c: f32| [a, (a + b + c) * 0.5, (a - b + c) * 0.5, c];
    for (pair, k) in weight.chunks(9).enumerate() {
        let columns: [[f32; 4]; 3] = std::array::from_fn(|j| spread(k[j], k[3 + j], k[6 + j]));
        for row in 0..4 {
            let values = spread(columns[0][row], columns[1][row], columns[2][row]);
            for (col, v) in values.into_iter().enumerate() {
                kernels[(row * 4 + col) * stride + pair] = v;
            }
        }
    }
    kernels
}

/// `Bᵀ d B` for every 4x4 input tile `d` (zero outside the image), laid out
/// `[point][c_in][tile]`, points [`point_stride`] apart.
fn transform_inputs(g: &ConvGeometry, tiles: &Tiles, images: &[f32], inputs: &mut Vec<f32>) {
    let (h, w, count) = (g.h, g.w, tiles.count);
    let point_stride = point_stride(g.c_in * count);
    inputs.resize(POINTS * point_stride, 0.0);
    // The plane with a border of zeros: one row and column before, enough after for whole tiles.
    let padded_w = 2 * tiles.cols + 2;
    let mut padded = vec![0.0f32; (2 * tiles.rows + 2) * padded_w];
    for (i, image) in images.chunks(g.in_len()).enumerate() {
        for (c, plane) in image.chunks(h * w).enumerate() {
            for (y, row) in plane.chunks(w).enumerate() {
                padded[(y + 1) * padded_w + 1..][..w].copy_from_slice(row);
            }
            for r in 0..tiles.rows {
                let start = c * count + tiles.start(i, r);
                let band = &padded[2 * r * padded_w..(2 * r + 4) * padded_w];
                for t in 0..tiles.cols {
                    let d: [[f32; 4]; 4] = std::array::from_fn(|a| {
                        std::array::from_fn(|b| band[a * padded_w + 2 * t + b])
                    });
                    let v = mix_inputs(d);
                    for (p, value) in v.into_iter().flatten().enumerate() {
                        inputs[p * point_stride + start + t] = value;
                    }
                }
            }
        }
    }
}

/// `Bᵀ d B`: each row then each column becomes `(d0 - d2, d1 + d2, d2 - d1, d1 - d3)`.
#[inline(always)]
fn mix_inputs(d: [[f32; 4]; 4]) -> [[f32; 4]; 4] {
    let mix = |x: [f32; 4]| [x[0] - x[2], x[1] + x[2], x[2] - x[1], x[1] - x[3]];
    let down: [[f32; 4]; 4] = std::array::from_fn(|b| mix([d[0][b], d[1][b], d[2][b], d[3][b]]));
    // down[b][a] is row a, column b after Bᵀ; now B along each row.
    std::array::from_fn(|a| mix([down[0][a], down[1][a], down[2][a], down[3][a]]))
}

/// `Aᵀ m A` for every tile of products `m`, plus the bias, written into `out [n, c_out, h, w]`.
fn transform_outputs(
    g: &ConvGeometry,
    tiles: &Tiles,
    products: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (h, w, count) = (g.h_out, g.w_out, tiles.count);
    let point_stride = point_stride(g.c_out * count);
    for (i, image) in out.chunks_mut(g.out_len()).enumerate() {
        for (o, plane) in image.chunks_mut(h * w).enumerate() {
            let b = bias.map_or(0.0, |b| b[o]);
            for r in 0..tiles.rows {
                let start = o * count + tiles.start(i, r);
                for t in 0..tiles.cols {
                    let m: [[f32; 4]; 4] = std::array::from_fn(|a| {
                        std::array::from_fn(|col| {
                            products[(a * 4 + col) * point_stride + start + t]
                        })
                    });
                    let y = mix_outputs(m);
                    for (a, values) in y.iter().enumerate() {
                        let row = 2 * r + a;
                        if row >= h {
                            break;
                        }
                        let x = 2 * t;
                        plane[row * w + x] = values[0] + b;
                        if x + 1 < w {
                            plane[row * w + x + 1] = values[1] + b;
                        }
                    }
                }
            }
        }
    }
}

/// `Aᵀ m A`: each column then each row becomes `(m0 + m1 + m2, m1 - m2 - m3)`.
#[inline(always)]
fn mix_outputs(m: [[f32; 4]; 4]) -> [[f32; 2]; 2] {
    let mix = |x: [f32; 4]| [x[0] + x[1] + x[2], x[1] - x[2] - x[3]];
    let down: [[f32; 2]; 4] =
        std::array::from_fn(|col| mix([m[0][col], m[1][col], m[2][col], m[3][col]]));
    std::array::from_fn(|a| mix([down[0][a], down[1][a], down[2][a], down[3][a]]))
}

/// `A dY Aᵀ` for every 2x2 tile `dY` of the output gradient (zero outside the output), laid
/// out `[point][c_out][tile]`: the gradient reaching the products.
fn transform_output_grads(
    g: &ConvGeometry,
    tiles: &Tiles,
    grad_out: &[f32],
    products: &mut Vec<f32>,
) {
    let (h, w, count) = (g.h_out, g.w_out, tiles.count);
    let point_stride = point_stride(g.c_out * count);
    products.resize(POINTS * point_stride, 0.0);
    let spread = |x: [f32; 2]| [x[0], x[0] + x[1], x[0] - x[1], -x[1]];
    let value = |plane: &[f32], y: usize, x: usize| {
        if y < h && x < w {
            plane[y * w + x]
        } else {
            0.0
        }
    };
    for (i, image) in grad_out.chunks(g.out_len()).enumerate() {
        for (o, plane) in image.chunks(h * w).enumerate() {
            for r in 0..tiles.rows {
                let start = o * count + tiles.start(i, r);
                for t in 0..tiles.cols {
                    let (y, x) = (2 * r, 2 * t);
                    let rows = [
                        spread([value(plane, y, x), value(plane, y, x + 1)]),
                        spread([value(plane, y + 1, x), value(plane, y + 1, x + 1)]),
                    ];
                    for b in 0..4 {
                        let column = spread([rows[0][b], rows[1][b]]);
                        for (a, v) in column.into_iter().enumerate() {
                            products[(a * 4 + b) * point_stride + start + t] = v;
                        }
                    }
                }
            }
        }
    }
}
