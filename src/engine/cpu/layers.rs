//! The layers other than convolutions, forward and backward, on `[n, c, plane]` buffers.

use rayon::prelude::*;

use super::bf16::{self, Storage};
use super::kernel::{self, vectorised};
use super::matmul::{Threads, View, matmul};
use super::memory;
use crate::distributed::World;

/// Batch norm's epsilon and running-statistics momentum (burn's and PyTorch's defaults).
pub const BN_EPSILON: f64 = 1e-5;
pub const BN_MOMENTUM: f32 = 0.1;

/// Values per piece of work of the element-wise layers: rayon splits a parallel iterator down
/// to single items when threads steal, and a 14x14 plane per task cost more in scheduling than
/// in arithmetic.
const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// The minimum planes per task for an element-wise pass over planes of `plane` values.
fn planes_per_task(plane: usize) -> usize {
    (ELEMENTWISE_CHUNK / plane).max(1)
}

/// The batch statistics a training-mode batch norm used, kept for its backward pass.
pub struct BatchStats {
    pub mean: Vec<f32>,
    /// The biased variance (what burn feeds its running statistics).
    pub variance: Vec<f32>,
    /// How many values each channel's statistics are over (on every rank, when synchronised).
    pub count: f64,
}

/// Mean and biased variance per channel of `x [n, channels, plane]`, in one pass (sums of
/// values and squares per plane, added in f64 in a fixed order).
pub fn channel_stats(
    x: &[f32],
    channels: usize,
    plane: usize,
    world: Option<&World>,
) -> BatchStats {
    stats_of_planes(
        &sums_of_planes_on_all_threads(x, plane),
        channels,
        plane,
        world,
    )
}

/// [`sums_of_planes`] on all threads, in tasks of several small planes.
fn sums_of_planes_on_all_threads(values: &[f32], plane: usize) -> Vec<(f64, f64)> {
    values
        .par_chunks(plane)
        .with_min_len(planes_per_task(plane))
        .map(|p| sum_and_dot(p, p))
        .collect()
}

/// The sum of each plane's values and of their squares, in order, on this thread: a
/// convolution takes them for the batch norm after it from each group of images it has just
/// written, while the group is in cache. [`stats_of_planes`] turns them into what
/// [`channel_stats`] gives, bit for bit.
pub fn sums_of_planes(values: &[f32], plane: usize) -> Vec<(f64, f64)> {
    values.chunks(plane).map(|p| sum_and_dot(p, p)).collect()
}

/// Mean and biased variance per channel from the sums of every plane of `[n, channels,
/// plane]` values ([`sums_of_planes`]), added in a fixed order. With a `world`, over the
/// values of every rank (synchronised batch norm, PyTorch's `SyncBatchNorm`): each channel's
/// two sums and the count are added across ranks first.
pub fn stats_of_planes(
    planes: &[(f64, f64)],
    channels: usize,
    plane: usize,
    world: Option<&World>,
) -> BatchStats {
    let mut sums: Vec<f64> = (0..channels)
        .flat_map(|c| <[f64; 2]>::from(sum_per_channel(planes, c, channels)))
        .chain([(planes.len() / channels * plane) as f64])
        .collect();
    if let Some(world) = world {
        world.sum_f64(&mut sums);
    }
    let count = sums[2 * channels];
    let (mean, variance) = sums[..2 * channels]
        .chunks(2)
        .map(|pair| {
            let (sum, squares) = (pair[0], pair[1]);
            let mean = sum / count;
            (mean as f32, (squares / count - mean * mean).max(0.0) as f32)
        })
        .unzip();
    BatchStats {
        mean,
        variance,
        count,
    }
}

/// Per-channel sums of `[n, channels, plane]` values (a convolution's bias gradient), as
/// [`channel_stats`] takes them: planes summed on all threads (one thread took 6 ms for
/// `unet`'s last transposed convolution), added in a fixed order.
pub fn channel_sums(values: &[f32], channels: usize, plane: usize) -> Vec<f32> {
    let planes = sums_of_planes_on_all_threads(values, plane);
    (0..channels)
        .map(|c| sum_per_channel(&planes, c, channels).0 as f32)
        .collect()
}

/// The sums of `a` and of `a * b` (slices of one length), in 16 running sums each
/// (`kernel::lane_sums`: a single sum waits on its previous addition at every element), added
/// in f64 with the values past the last run of 16.
fn sum_and_dot(a: &[f32], b: &[f32]) -> (f64, f64) {
    let whole = a.len() / 16 * 16;
    let (sums, dots) = kernel::lane_sums(a, b);
    let tail = a[whole..]
        .iter()
        .zip(&b[whole..])
        .map(|(&x, &y)| (x, x * y));
    sums.iter()
        .zip(&dots)
        .map(|(&s, &d)| (s, d))
        .chain(tail)
        .fold((0.0, 0.0), |(s, d), (x, y)| (s + x as f64, d + y as f64))
}

/// Channel `c`'s total of per-plane pairs laid out `[n, channels]`.
fn sum_per_channel(planes: &[(f64, f64)], c: usize, channels: usize) -> (f64, f64) {
    planes
        .iter()
        .skip(c)
        .step_by(channels)
        .fold((0.0, 0.0), |(s, d), &(x, y)| (s + x, d + y))
}

/// `y = (x - mean) / sqrt(var + eps) * gamma + beta` per channel, followed by a (leaky) ReLU
/// of that slope when `activation` is given (one pass instead of two); `x` and `y` in either
/// [`Storage`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_apply<X: Storage, Y: Storage>(
    x: &[X],
    out: &mut [Y],
    plane: usize,
    mean: &[f32],
    variance: &[f32],
    gamma: &[f32],
    beta: &[f32],
    activation: Option<f32>,
) {
    let channels = mean.len();
    let map = |c| BatchNormMap::new(c, mean, variance, gamma, beta, activation);
    out.par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .enumerate()
        .with_min_len(planes_per_task(plane))
        .for_each(|(i, (o, xs))| {
            let map = map(i % channels);
            vectorised!(
                o.iter_mut()
                    .zip(xs)
                    .for_each(|(o, &x)| *o = Y::store(map.apply(x.load())))
            );
        });
}

/// Evaluation's batch norm: the running statistics, the learned scale and shift, and the slope
/// of the (leaky) ReLU applied as the values are written, if one follows.
pub struct RunningBatchNorm<'a> {
    pub mean: &'a [f32],
    pub variance: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub activation: Option<f32>,
}

impl RunningBatchNorm<'_> {
    fn map(&self, c: usize) -> BatchNormMap {
        let Self {
            mean,
            variance,
            gamma,
            beta,
            activation,
        } = *self;
        BatchNormMap::new(c, mean, variance, gamma, beta, activation)
    }

    /// Over `[n, channels, plane]` values in place, on all threads: the input is not kept, so
    /// no new buffer is cleared and written.
    pub fn apply_in_place(&self, values: &mut [f32], plane: usize) {
        let channels = self.mean.len();
        values
            .par_chunks_mut(plane)
            .enumerate()
            .with_min_len(planes_per_task(plane))
            .for_each(|(i, v)| self.map(i % channels).apply_in_place(v));
    }

    /// [`RunningBatchNorm::apply_in_place`] on this thread, for whole images: a convolution
    /// runs it on each group of images it has just written, while they are still in cache,
    /// rather than the batch norm reading the whole batch back in a pass of its own.
    pub fn apply_to_images(&self, values: &mut [f32], plane: usize) {
        let maps: Vec<_> = (0..self.mean.len()).map(|c| self.map(c)).collect();
        for (v, map) in values.chunks_mut(plane).zip(maps.iter().cycle()) {
            map.apply_in_place(v);
        }
    }
}

/// Batch norm of one channel as the affine map it is once its statistics are known, and the
/// activation applied after it.
struct BatchNormMap {
    scale: f32,
    shift: f32,
    activation: Option<f32>,
}

impl BatchNormMap {
    fn new(
        c: usize,
        mean: &[f32],
        variance: &[f32],
        gamma: &[f32],
        beta: &[f32],
        activation: Option<f32>,
    ) -> Self {
        let scale = gamma[c] / (variance[c] as f64 + BN_EPSILON).sqrt() as f32;
        BatchNormMap {
            scale,
            shift: beta[c] - mean[c] * scale,
            activation,
        }
    }

    #[inline(always)]
    fn apply(&self, x: f32) -> f32 {
        let y = x * self.scale + self.shift;
        self.activation.map_or(y, |slope| leaky(y, slope))
    }

    /// [`BatchNormMap::apply`] with the activation chosen once per plane rather than per value,
    /// so the loop vectorises.
    fn apply_in_place(&self, values: &mut [f32]) {
        let (scale, shift) = (self.scale, self.shift);
        vectorised!(match self.activation {
            Some(slope) => values
                .iter_mut()
                .for_each(|v| *v = leaky(*v * scale + shift, slope)),
            None => values.iter_mut().for_each(|v| *v = *v * scale + shift),
        })
    }
}

/// Gradients of a training-mode batch norm: `(grad_x, grad_gamma, grad_beta)`, `grad_x` written
/// over `grad_out`'s buffer. When a (leaky) ReLU followed it, `activation` holds that layer's
/// output and slope and `grad_out` is the gradient after the ReLU: its mask is applied here
/// rather than in a pass of its own. The input and the ReLU's output in either [`Storage`].
pub fn batch_norm_backward<X: Storage, Y: Storage>(
    x: &[X],
    mut grad_out: Vec<f32>,
    plane: usize,
    stats: &BatchStats,
    gamma: &[f32],
    activation: Option<(&[Y], f32)>,
    world: Option<&World>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let channels = gamma.len();
    let count = stats.count;
    let inv_std: Vec<f64> = stats
        .variance
        .iter()
        .map(|&v| 1.0 / (v as f64 + BN_EPSILON).sqrt())
        .collect();
    let planes: Vec<(f64, f64)> = grad_out
        .par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .enumerate()
        .with_min_len(planes_per_task(plane))
        .map_init(Vec::new, |expanded, (p, (g, xs))| {
            vectorised!({
                if let Some((output, slope)) = activation {
                    let ys = &output[p * plane..(p + 1) * plane];
                    for (g, &y) in g.iter_mut().zip(ys) {
                        *g *= if y.load() <= 0.0 { slope } else { 1.0 };
                    }
                }
                sum_and_dot(g, bf16::in_f32(xs, expanded))
            })
        })
        .collect();
    // sum g (x - mean) inv = (sum g x - mean sum g) inv
    let gamma_beta = |(sum_g, sum_gx): (f64, f64), c: usize| {
        let dg = (sum_gx - stats.mean[c] as f64 * sum_g) * inv_std[c];
        (dg as f32, sum_g as f32)
    };
    let sums: Vec<(f64, f64)> = (0..channels)
        .map(|c| sum_per_channel(&planes, c, channels))
        .collect();
    // This rank's gradients of gamma and beta: the parameters' gradients are added across
    // ranks with all the others.
    let (grad_gamma, grad_beta): (Vec<f32>, Vec<f32>) = sums
        .iter()
        .enumerate()
        .map(|(c, &pair)| gamma_beta(pair, c))
        .unzip();
    // The input's gradient needs the sums over the whole batch, every rank's.
    let (total_gamma, total_beta) = match world {
        None => (grad_gamma.clone(), grad_beta.clone()),
        Some(world) => {
            let mut flat: Vec<f64> = sums.iter().flat_map(|&p| <[f64; 2]>::from(p)).collect();
            world.sum_f64(&mut flat);
            (0..channels)
                .map(|c| gamma_beta((flat[2 * c], flat[2 * c + 1]), c))
                .unzip()
        }
    };
    grad_out
        .par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .enumerate()
        .with_min_len(planes_per_task(plane))
        .for_each(|(p, (g, xs))| {
            let c = p % channels;
            let (mean, inv) = (stats.mean[c], inv_std[c] as f32);
            let k = gamma[c] * inv;
            let mean_db = (total_beta[c] as f64 / count) as f32;
            let mean_dg = (total_gamma[c] as f64 / count) as f32;
            vectorised!({
                for (g, &x) in g.iter_mut().zip(xs) {
                    *g = k * (*g - mean_db - (x.load() - mean) * inv * mean_dg);
                }
            })
        });
    (grad_out, grad_gamma, grad_beta)
}

/// `running = (1 - momentum) running + momentum batch`.
pub fn update_running(running: &mut [f32], batch: &[f32]) {
    running
        .iter_mut()
        .zip(batch)
        .for_each(|(r, &b)| *r = (1.0 - BN_MOMENTUM) * *r + BN_MOMENTUM * b);
}

/// Leaky ReLU in place (`slope` 0 is ReLU). Written as a selection, not a conditional
/// store, so the loop vectorises: the branch on each value's sign mispredicted half the time
/// (0.69 ms for 1.6 M values on an Intel Xeon).
pub fn leaky_relu_in_place(x: &mut [f32], slope: f32) {
    x.par_chunks_mut(ELEMENTWISE_CHUNK)
        .for_each(|chunk| vectorised!(chunk.iter_mut().for_each(|v| *v = leaky(*v, slope))));
}

/// `y` through a leaky ReLU of slope `slope` (0 is ReLU), as a selection.
#[inline(always)]
fn leaky(y: f32, slope: f32) -> f32 {
    if y < 0.0 { y * slope } else { y }
}

/// The gradient through a (leaky) ReLU, from its output (positive exactly where its input was,
/// for a non-negative slope), in place on `grad`.
pub fn leaky_relu_backward(output: &[f32], grad: &mut [f32], slope: f32) {
    grad.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(output.par_chunks(ELEMENTWISE_CHUNK))
        .for_each(|(g, y)| {
            vectorised!({
                g.iter_mut()
                    .zip(y)
                    .for_each(|(g, &y)| *g = if y <= 0.0 { *g * slope } else { *g })
            })
        });
}

/// 2x2 max-pooling with stride 2 of `[planes, h, w]` (odd edges dropped, as PyTorch's default);
/// also returns which of the four each output took (0..4, row-major), for the backward pass.
pub fn max_pool2(x: &[f32], h: usize, w: usize) -> (Vec<f32>, Vec<u8>) {
    let pooled = (h / 2) * (w / 2);
    let planes = x.len() / (h * w);
    let mut out = vec![0.0; planes * pooled];
    let mut argmax = vec![0u8; out.len()];
    out.par_chunks_mut(pooled)
        .zip(argmax.par_chunks_mut(pooled))
        .zip(x.par_chunks(h * w))
        .for_each(|((o, a), plane)| max_pool2_planes(plane, h, w, o, a));
    (out, argmax)
}

/// [`max_pool2`] on one thread, into `out` and `argmax`. Branch-free selections, so the loop
/// vectorises; ties go to the first of the four, as in PyTorch.
pub fn max_pool2_planes(x: &[f32], h: usize, w: usize, out: &mut [f32], argmax: &mut [u8]) {
    vectorised!(max_pool2_planes_here(x, h, w, out, argmax))
}

#[inline(always)]
fn max_pool2_planes_here(x: &[f32], h: usize, w: usize, out: &mut [f32], argmax: &mut [u8]) {
    let (ho, wo) = (h / 2, w / 2);
    for ((plane, o), a) in x
        .chunks(h * w)
        .zip(out.chunks_mut(ho * wo))
        .zip(argmax.chunks_mut(ho * wo))
    {
        for y in 0..ho {
            let top = &plane[2 * y * w..2 * y * w + 2 * wo];
            let bottom = &plane[(2 * y + 1) * w..(2 * y + 1) * w + 2 * wo];
            let (o, a) = (&mut o[y * wo..(y + 1) * wo], &mut a[y * wo..(y + 1) * wo]);
            for (((o, a), t), b) in o
                .iter_mut()
                .zip(a.iter_mut())
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                let (upper, upper_at) = if t[1] > t[0] {
                    (t[1], 1u8)
                } else {
                    (t[0], 0u8)
                };
                let (lower, lower_at) = if b[1] > b[0] {
                    (b[1], 3u8)
                } else {
                    (b[0], 2u8)
                };
                (*o, *a) = if lower > upper {
                    (lower, lower_at)
                } else {
                    (upper, upper_at)
                };
            }
        }
    }
}

/// The gradient of [`max_pool2`]: each pooled gradient goes to the value that was the maximum.
pub fn max_pool2_backward(grad_out: &[f32], argmax: &[u8], h: usize, w: usize) -> Vec<f32> {
    let (ho, wo) = (h / 2, w / 2);
    let mut grad_in = vec![0.0; grad_out.len() / (ho * wo) * h * w];
    grad_in
        .par_chunks_mut(h * w)
        .zip(grad_out.par_chunks(ho * wo).zip(argmax.par_chunks(ho * wo)))
        .for_each(|(gi, (go, a))| max_pool2_backward_planes(go, a, h, w, gi));
    grad_in
}

/// [`max_pool2_backward`] on one thread, into `grad_in` (overwritten).
pub fn max_pool2_backward_planes(
    grad_out: &[f32],
    argmax: &[u8],
    h: usize,
    w: usize,
    grad_in: &mut [f32],
) {
    let (ho, wo) = (h / 2, w / 2);
    grad_in.fill(0.0);
    for ((gi, go), a) in grad_in
        .chunks_mut(h * w)
        .zip(grad_out.chunks(ho * wo))
        .zip(argmax.chunks(ho * wo))
    {
        for y in 0..ho {
            for x in 0..wo {
                let i = y * wo + x;
                let (dy, dx) = ((a[i] / 2) as usize, (a[i] % 2) as usize);
                gi[(2 * y + dy) * w + 2 * x + dx] = go[i];
            }
        }
    }
}

/// `y [n, outputs] = x [n, inputs] · weight [inputs, outputs] + bias` (burn's weight layout).
///
/// Each thread computes its own run of output columns as a single-threaded product: with the
/// `gemm` crate's threads the product of a batch of 64 (`wide`'s 6272 -> 256) took 2.0 ms on an
/// Intel Xeon, as two halves side by side 1.1 ms.
pub fn linear_forward(x: &[f32], weight: &[f32], bias: &[f32], n: usize) -> Vec<f32> {
    let (outputs, inputs) = (bias.len(), weight.len() / bias.len());
    // Products too small to be worth a thread each (a classifier's last layer) stay whole.
    let threads = if n * inputs * outputs < 1 << 22 {
        1
    } else {
        rayon::current_num_threads()
    };
    let per_thread = outputs.div_ceil(threads);
    let starts: Vec<usize> = (0..outputs).step_by(per_thread).collect();
    let columns: Vec<Vec<f32>> = starts
        .par_iter()
        .map(|&first| {
            let bias = &bias[first..(first + per_thread).min(outputs)];
            let mut part: Vec<f32> = bias.iter().copied().cycle().take(n * bias.len()).collect();
            matmul(
                n,
                bias.len(),
                inputs,
                &mut part,
                bias.len(),
                true,
                View::rows(x, inputs),
                View::rows(&weight[first..], outputs),
                Threads::One,
            );
            part
        })
        .collect();
    let mut y = Vec::with_capacity(n * outputs);
    for row in 0..n {
        for part in &columns {
            let width = part.len() / n;
            y.extend_from_slice(&part[row * width..(row + 1) * width]);
        }
    }
    y
}

/// The products' gradients of a linear layer: `(grad_x, grad_weight)` (the bias's is
/// [`linear_bias_grad`]).
pub fn linear_backward(
    x: &[f32],
    weight: &[f32],
    grad_out: &[f32],
    n: usize,
) -> (Vec<f32>, Vec<f32>) {
    let inputs = x.len() / n;
    let outputs = weight.len() / inputs;
    let mut grad_x = vec![0.0; x.len()];
    matmul(
        n,
        inputs,
        outputs,
        &mut grad_x,
        inputs,
        false,
        View::rows(grad_out, outputs),
        View::transposed(weight, outputs),
        Threads::All,
    );
    let mut grad_w = vec![0.0; weight.len()];
    matmul(
        inputs,
        outputs,
        n,
        &mut grad_w,
        outputs,
        false,
        View::transposed(x, inputs),
        View::rows(grad_out, outputs),
        Threads::All,
    );
    (grad_x, grad_w)
}

/// The bias gradient of a linear layer: `grad_out [n, outputs]` summed over the batch.
pub fn linear_bias_grad(grad_out: &[f32], outputs: usize) -> Vec<f32> {
    let mut grad_b = vec![0.0; outputs];
    for row in grad_out.chunks(outputs) {
        grad_b.iter_mut().zip(row).for_each(|(b, g)| *b += g);
    }
    grad_b
}

/// Inverted dropout in place: each value kept with probability `1 - prob` and scaled by
/// `1 / (1 - prob)`, drawn from `seed`; returns the mask (scale or zero per value). `first`
/// is the place of `x`'s first value in the whole batch: a rank's share of a data-parallel
/// batch draws what the whole batch draws at those places.
///
/// Value `i`'s draw is a hash of `seed` and `i` (SplitMix64's output function), so chunks are
/// drawn on all threads and the mask does not depend on how they are scheduled. A sequential
/// ChaCha8 stream took 18 ms for 1.6 M values on an Intel Xeon, this 3 ms (2 ms compiled for
/// AVX-512).
pub fn dropout_in_place(x: &mut [f32], prob: f64, seed: u64, first: u64) -> Vec<f32> {
    let scale = (1.0 / (1.0 - prob)) as f32;
    // A value is dropped when its 32-bit draw falls below prob * 2^32.
    let threshold = (prob * 4_294_967_296.0).round().min(u32::MAX as f64) as u64;
    let key = splitmix64(seed);
    let mut mask = vec![0.0f32; x.len()];
    mask.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(x.par_chunks_mut(ELEMENTWISE_CHUNK))
        .enumerate()
        .for_each(move |(chunk, (m, v))| {
            let first = first + (chunk * ELEMENTWISE_CHUNK) as u64;
            vectorised!({
                for (i, m) in m.iter_mut().enumerate() {
                    let draw = splitmix64(key ^ (first + i as u64)) >> 32;
                    // Arithmetic, not a branch: a branch taken at random mispredicts.
                    *m = scale * f32::from(u8::from(draw >= threshold));
                }
                v.iter_mut().zip(m.iter()).for_each(|(v, m)| *v *= m);
            })
        });
    mask
}

/// SplitMix64's output function (Steele, Lea and Flood, 2014): a bijective mix of 64 bits
/// whose outputs over consecutive inputs pass BigCrush.
#[inline(always)]
fn splitmix64(z: u64) -> u64 {
    let z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `[n, a, plane] ++ [n, b, plane] -> [n, a + b, plane]` along the channels into `out`, image
/// by image on all threads (one thread took 2.8 ms for `unet`'s last concatenation, 17 MB);
/// each side and the result in either [`Storage`].
pub fn concat_channels<X: Storage, S: Storage, Y: Storage>(
    x: &[X],
    skip: &[S],
    n: usize,
    out: &mut [Y],
) {
    let (a, b) = (x.len() / n, skip.len() / n);
    out.par_chunks_mut(a + b)
        .zip(x.par_chunks(a).zip(skip.par_chunks(b)))
        .for_each(|(image, (x, skip))| {
            let (first, rest) = image.split_at_mut(a);
            vectorised!({
                first
                    .iter_mut()
                    .zip(x)
                    .for_each(|(o, v)| *o = Y::store(v.load()));
                rest.iter_mut()
                    .zip(skip)
                    .for_each(|(o, v)| *o = Y::store(v.load()));
            })
        });
}

/// Splits a concat's gradient back into the current activation's and the skip's.
pub fn split_channels(grad: &[f32], n: usize, first_len: usize) -> (Vec<f32>, Vec<f32>) {
    let per_image = grad.len() / n;
    let mut first = memory::zeroed(n * first_len);
    let mut rest = memory::zeroed(grad.len() - n * first_len);
    first
        .par_chunks_mut(first_len)
        .zip(rest.par_chunks_mut(per_image - first_len))
        .zip(grad.par_chunks(per_image))
        .for_each(|((first, rest), image)| {
            first.copy_from_slice(&image[..first_len]);
            rest.copy_from_slice(&image[first_len..]);
        });
    (first, rest)
}

/// `x += skip`, element by element (a residual connection).
pub fn add_in_place(x: &mut [f32], skip: &[f32]) {
    x.par_iter_mut()
        .zip(skip.par_iter())
        .for_each(|(a, &b)| *a += b);
}

/// The mean of each plane of `plane` values: `[n, c, h, w]` to `[n, c]`.
pub fn global_avg_pool(x: &[f32], plane: usize) -> Vec<f32> {
    x.par_chunks(plane)
        .map(|values| values.iter().sum::<f32>() / plane as f32)
        .collect()
}

/// The gradient of [`global_avg_pool`]: each plane's gradient spread evenly over its values.
pub fn global_avg_pool_backward(grad: &[f32], plane: usize) -> Vec<f32> {
    let mut out = vec![0.0; grad.len() * plane];
    out.par_chunks_mut(plane)
        .zip(grad.par_iter())
        .for_each(|(values, &g)| values.fill(g / plane as f32));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_norm_of_a_hand_computed_channel() {
        // One channel, values 1, 2, 3, 4: mean 2.5, biased variance 1.25.
        let x = [1.0, 2.0, 3.0, 4.0];
        let stats = channel_stats(&x, 1, 2, None);
        assert_eq!((stats.mean[0], stats.variance[0]), (2.5, 1.25));
        let mut y = [0.0; 4];
        batch_norm_apply(
            &x,
            &mut y,
            2,
            &stats.mean,
            &stats.variance,
            &[2.0],
            &[1.0],
            None,
        );
        let s = 2.0 / (1.25f32 + 1e-5).sqrt();
        for (yv, xv) in y.iter().zip(x) {
            assert!((yv - ((xv - 2.5) * s + 1.0)).abs() < 1e-5);
        }
        // With the loss sum(y * [1, 0, 0, 0]): dbeta = 1, dgamma = x_hat[0].
        let (_, dg, db) = batch_norm_backward::<_, f32>(
            &x,
            vec![1.0, 0.0, 0.0, 0.0],
            2,
            &stats,
            &[2.0],
            None,
            None,
        );
        assert!(
            (db[0] - 1.0).abs() < 1e-6 && (dg[0] - (-1.5 / (1.25f32 + 1e-5).sqrt())).abs() < 1e-5
        );
    }

    /// Batch norm reads and writes bf16 storage as the fp32 values it holds: bit for bit
    /// what fp32 storage of the same values gives, its output rounded where stored in bf16;
    /// the gradients (the mask from a bf16 ReLU output included) equal fp32's.
    #[test]
    fn batch_norm_on_bf16_storage_matches_fp32_storage_of_the_same_values() {
        use crate::engine::cpu::bf16::{round, to_bits, to_f32};
        let (channels, plane) = (3, 53);
        let bits = to_bits(
            &(0..4 * channels * plane)
                .map(|i| ((i * 7919 % 101) as f32 - 50.0) * 0.031)
                .collect::<Vec<_>>(),
        );
        let x = to_f32(&bits);
        let stats = channel_stats(&x, channels, plane, None);
        let gamma = [1.2, 0.7, -0.4];
        /// Batch norm with ReLU of `x` into a new buffer of `Y`.
        fn normalised<X: Storage, Y: Storage>(x: &[X], stats: &BatchStats, plane: usize) -> Vec<Y> {
            let (gamma, beta) = ([1.2, 0.7, -0.4], [0.0, 0.2, -0.1]);
            let mut out = vec![Y::default(); x.len()];
            let (mean, variance) = (&stats.mean, &stats.variance);
            batch_norm_apply(x, &mut out, plane, mean, variance, &gamma, &beta, Some(0.0));
            out
        }
        let y: Vec<f32> = normalised(&x, &stats, plane);
        assert_eq!(normalised::<u16, f32>(&bits, &stats, plane), y);
        let y_bits: Vec<u16> = normalised(&bits, &stats, plane);
        let y_rounded: Vec<f32> = y.iter().map(|&v| round(v)).collect();
        assert_eq!(to_f32(&y_bits), y_rounded);
        let grad: Vec<f32> = (0..x.len()).map(|i| (i as f32 * 0.7).cos()).collect();
        let mask = Some((&y_rounded[..], 0.0));
        let floats = batch_norm_backward(&x, grad.clone(), plane, &stats, &gamma, mask, None);
        let mask = Some((&y_bits[..], 0.0));
        let stored = batch_norm_backward(&bits, grad, plane, &stats, &gamma, mask, None);
        assert_eq!(floats, stored);
    }

    /// A concatenation of bf16 and fp32 values: image by image, each side's values in order,
    /// stored as the result's storage (bf16: rounded).
    #[test]
    fn concatenation_reads_and_writes_either_storage() {
        use crate::engine::cpu::bf16::{round, to_bits, to_f32};
        let x: Vec<f32> = (0..2 * 3).map(|i| i as f32 + 0.5).collect();
        let skip = to_bits(&[0.1, 0.2, 0.3, 0.4]);
        let mut floats = vec![0.0f32; 10];
        concat_channels(&x, &skip, 2, &mut floats);
        let s = to_f32(&skip);
        assert_eq!(
            floats,
            [0.5, 1.5, 2.5, s[0], s[1], 3.5, 4.5, 5.5, s[2], s[3]]
        );
        let mut bits = vec![0u16; 10];
        concat_channels(&x, &skip, 2, &mut bits);
        let rounded: Vec<f32> = floats.iter().map(|&v| round(v)).collect();
        assert_eq!(to_f32(&bits), rounded);
    }

    #[test]
    fn max_pool_routes_the_gradient_to_the_maximum() {
        let x = [1.0, 5.0, 0.0, 2.0, 3.0, 4.0, 9.0, 1.0, 0.0];
        let (y, arg) = max_pool2(&x, 3, 3);
        assert_eq!(y, [5.0]);
        assert_eq!(
            max_pool2_backward(&[2.0], &arg, 3, 3),
            [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
    }

    /// Evaluation's batch norm in place, on all threads and image by image, gives what the
    /// training path's (checked against burn in `tests/cpu_engine.rs`) writes to a new buffer,
    /// with and without the activation.
    #[test]
    fn running_batch_norm_in_place_matches_batch_norm_into_a_new_buffer() {
        let (channels, plane) = (3, 37);
        let x: Vec<f32> = (0..2 * channels * plane)
            .map(|i| ((i * 7919 % 101) as f32 - 50.0) * 0.03)
            .collect();
        let (mean, variance) = ([0.1, -0.2, 0.3], [0.5, 1.5, 0.05]);
        let (gamma, beta) = ([1.2, 0.7, -0.4], [0.0, 0.2, -0.1]);
        for activation in [None, Some(0.0), Some(0.01)] {
            let mut out = vec![f32::NAN; x.len()];
            batch_norm_apply(
                &x, &mut out, plane, &mean, &variance, &gamma, &beta, activation,
            );
            let running = RunningBatchNorm {
                mean: &mean,
                variance: &variance,
                gamma: &gamma,
                beta: &beta,
                activation,
            };
            let mut in_place = x.clone();
            running.apply_in_place(&mut in_place, plane);
            assert_eq!(in_place, out, "{activation:?}");
            let mut by_images = x.clone();
            running.apply_to_images(&mut by_images, plane);
            assert_eq!(by_images, out, "{activation:?}");
            // Channel 1 of image 1, its first value, by hand.
            let (v, c) = (x[4 * plane], 1);
            let y = (v - mean[c]) / (variance[c] + 1e-5f32).sqrt() * gamma[c] + beta[c];
            let y = match activation {
                Some(slope) if y < 0.0 => y * slope,
                _ => y,
            };
            assert!((out[4 * plane] - y).abs() < 1e-5, "{activation:?}");
        }
    }

    #[test]
    fn dropout_of_a_batch_in_two_shares_draws_what_the_whole_batch_draws() {
        let values = 3 * ELEMENTWISE_CHUNK + 77;
        let whole = dropout_in_place(&mut vec![1.0; values], 0.3, 11, 0);
        let cut = ELEMENTWISE_CHUNK + 5;
        let mut halves = dropout_in_place(&mut vec![1.0; cut], 0.3, 11, 0);
        halves.extend(dropout_in_place(
            &mut vec![1.0; values - cut],
            0.3,
            11,
            cut as u64,
        ));
        assert_eq!(halves, whole);
    }

    #[test]
    fn dropout_keeps_about_one_minus_p_and_preserves_the_mean() {
        let mut x = vec![1.0; 100_000];
        let mask = dropout_in_place(&mut x, 0.4, 7, 0);
        let kept = mask.iter().filter(|&&m| m > 0.0).count() as f64 / 1e5;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / 1e5;
        assert!(
            (kept - 0.6).abs() < 0.01 && (mean - 1.0).abs() < 0.02,
            "{kept} {mean}"
        );
    }
}
