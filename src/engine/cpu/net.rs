//! A network of [`LayerSpec`]s on the CPU engine: parameters named and shaped as burn's `Net`
//! names and shapes them, a training forward pass that records what its backward pass needs
//! (a [`Tape`]), the backward pass, and the evaluation forward pass. Inside a pass a layer's
//! values are fp32 or, where a bf16 training pass stores them so, bf16 ([`Values`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::bf16::{self, operand};
use super::conv::{self, ConvGeometry};
use super::layers::{self, BatchStats, RunningBatchNorm};
use super::{kernel, memory};
use crate::distributed::World;
use crate::engine::{EngineError, Precision};
use crate::models::{LayerSpec, ModelSpec};

/// Values `[n, c, h, w]` (features are `[n, f, 1, 1]`), shared between the layer that made them
/// and the tape that keeps them, copied only when an in-place layer must change kept values.
#[derive(Clone, Debug)]
pub struct Activation {
    pub data: Arc<Vec<f32>>,
    pub shape: [usize; 4],
}

impl Activation {
    pub fn new(data: Vec<f32>, shape: [usize; 4]) -> Self {
        assert_eq!(
            data.len(),
            shape.iter().product::<usize>(),
            "activation size"
        );
        Activation {
            data: Arc::new(data),
            shape,
        }
    }
}

/// A layer's values inside a pass, as the layer that wrote them stored them: fp32, or bf16
/// bits where a bf16 pass keeps them so between layers ([`CpuNet::stores_bf16`]).
#[derive(Clone, Debug)]
enum Values {
    F32(Arc<Vec<f32>>),
    Bf16(Arc<Vec<u16>>),
}

/// `$body` with `$name` bound to the slice of `$values` (a `&Values`), whatever its storage:
/// the layers that read either storage are generic over it ([`bf16::Storage`]).
macro_rules! stored {
    ($values:expr, |$name:ident| $body:expr) => {
        match $values {
            Values::F32(values) => {
                let $name = &values[..];
                $body
            }
            Values::Bf16(values) => {
                let $name = &values[..];
                $body
            }
        }
    };
}

/// A new buffer of `$len` values, in bf16 bits where `$bf16` holds and in fp32 otherwise,
/// written by `$body` through `$name` (a `&mut` slice of either storage), as [`Values`].
macro_rules! written {
    ($bf16:expr, $len:expr, |$name:ident| $body:expr) => {
        if $bf16 {
            let mut values = memory::zeroed::<u16>($len);
            let $name = &mut values[..];
            $body;
            Values::Bf16(Arc::new(values))
        } else {
            let mut values = memory::zeroed::<f32>($len);
            let $name = &mut values[..];
            $body;
            Values::F32(Arc::new(values))
        }
    };
}

/// An [`Activation`] inside a pass: its values in either storage.
#[derive(Clone, Debug)]
struct Maps {
    values: Values,
    shape: [usize; 4],
}

impl Maps {
    fn new(data: Vec<f32>, shape: [usize; 4]) -> Self {
        Activation::new(data, shape).into()
    }

    fn len(&self) -> usize {
        self.shape.iter().product()
    }

    fn plane(&self) -> usize {
        self.shape[2] * self.shape[3]
    }

    /// The values in fp32: borrowed, or expanded from bf16.
    fn floats(&self) -> Cow<'_, [f32]> {
        match &self.values {
            Values::F32(values) => Cow::Borrowed(values),
            Values::Bf16(bits) => Cow::Owned(bf16::to_f32(bits)),
        }
    }

    /// The values in fp32 to change in place: the buffer itself where no other layer shares
    /// it, else a copy (expanded from bf16).
    fn into_floats(self) -> Vec<f32> {
        match self.values {
            Values::F32(values) => Arc::try_unwrap(values).unwrap_or_else(|shared| shared.to_vec()),
            Values::Bf16(bits) => bf16::to_f32(&bits),
        }
    }

    /// `change` run on the values in fp32, in place (on a copy where another layer shares
    /// them or they were stored in bf16): the changed values, in fp32, and what it returned.
    fn in_place<R>(self, change: impl FnOnce(&mut [f32]) -> R) -> (Self, R) {
        let shape = self.shape;
        let mut values = self.into_floats();
        let result = change(&mut values);
        (Maps::new(values, shape), result)
    }

    /// The same values stored in bf16 (rounded, where they were fp32).
    fn into_bf16(self) -> Self {
        let values = match self.values {
            Values::F32(values) => Values::Bf16(Arc::new(bf16::to_bits(&values))),
            bits => bits,
        };
        Maps { values, ..self }
    }
}

impl From<Activation> for Maps {
    fn from(x: Activation) -> Self {
        Maps {
            values: Values::F32(x.data),
            shape: x.shape,
        }
    }
}

impl From<Maps> for Activation {
    fn from(x: Maps) -> Self {
        let shape = x.shape;
        match x.values {
            Values::F32(data) => Activation { data, shape },
            Values::Bf16(_) => Activation::new(x.into_floats(), shape),
        }
    }
}

/// One layer's parameters, in burn's layouts: conv `[out, in, k, k]`, transposed conv
/// `[in, out, k, k]`, linear `[inputs, outputs]`.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerParams {
    None,
    Conv {
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
    BatchNorm {
        gamma: Vec<f32>,
        beta: Vec<f32>,
        running_mean: Vec<f32>,
        running_var: Vec<f32>,
    },
    Linear {
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct CpuNet {
    pub spec: ModelSpec,
    pub layers: Vec<LayerParams>,
    /// The precision of the convolutions' and linear layers' operands (see
    /// `engine::Precision`); the parameters are fp32 either way.
    pub precision: Precision,
    /// Whether bf16 convolutions run the bf16 kernels (`vdpbf16ps`) and round their own
    /// operands, rather than fp32 kernels on operands rounded here (the same numbers up to the
    /// order of the sums): [`CpuNet::with_precision`] chooses them where they outrun fp32
    /// ([`conv::bf16_kernels_pay`]).
    pub bf16_kernels: bool,
}

/// What a layer hands the layer after it besides its output.
#[derive(Default)]
struct Handover {
    /// A convolution that pooled its output itself: the pooling's argmax and the full shape.
    pooled: Option<(Vec<u8>, [usize; 4])>,
    /// A convolution's output's batch statistics, for the batch norm after it.
    stats: Option<BatchStats>,
}

/// What a layer's backward pass needs from its forward pass.
enum Saved {
    Nothing,
    Input(Maps),
    Output(Maps),
    BatchNorm(Maps, BatchStats),
    Pool {
        argmax: Vec<u8>,
        input_shape: [usize; 4],
    },
    Mask(Vec<f32>),
    Concat {
        first: usize,
        shape: [usize; 4],
    },
    /// The input's shape, for a layer whose gradient needs only that.
    Shape([usize; 4]),
}

/// A training forward pass's record, consumed by [`CpuNet::backward`].
pub struct Tape {
    saved: Vec<Saved>,
    /// The ranks whose batch norm sums the backward pass adds, as the forward pass did.
    world: Option<World>,
}

/// Which part of a global batch a training pass computes: where its first image is in the
/// batch (dropout draws by place) and the ranks that compute the rest, whose batch norm sums
/// it adds (synchronised batch norm). The default is the whole batch in one process.
#[derive(Clone, Debug, Default)]
pub struct Shard {
    pub first_image: usize,
    pub world: Option<World>,
}

/// A forward pass for training (its dropout seed and its share of the batch) or evaluation.
#[derive(Clone, Copy)]
enum Mode<'a> {
    Train { seed: u64, shard: &'a Shard },
    Eval,
}

/// The whole batch in one process: what evaluation computes on.
static WHOLE_BATCH: Shard = Shard {
    first_image: 0,
    world: None,
};

/// The tensors of one layer: (name suffix, shape).
fn layer_tensors(spec: &LayerSpec) -> Vec<(&'static str, Vec<usize>)> {
    match *spec {
        LayerSpec::Conv {
            in_channels,
            out_channels,
            kernel,
            bias,
            ..
        } => {
            let mut t = vec![("weight", vec![out_channels, in_channels, kernel, kernel])];
            if bias {
                t.push(("bias", vec![out_channels]));
            }
            t
        }
        LayerSpec::ConvTranspose {
            in_channels,
            out_channels,
            kernel,
            ..
        } => {
            vec![
                ("weight", vec![in_channels, out_channels, kernel, kernel]),
                ("bias", vec![out_channels]),
            ]
        }
        LayerSpec::BatchNorm { channels } => ["gamma", "beta", "running_mean", "running_var"]
            .map(|n| (n, vec![channels]))
            .to_vec(),
        LayerSpec::Linear { inputs, outputs } => {
            vec![("weight", vec![inputs, outputs]), ("bias", vec![outputs])]
        }
        _ => Vec::new(),
    }
}

impl CpuNet {
    /// The network of `spec` (which must have passed [`ModelSpec::summary`]) with tensors looked
    /// up by name (`layers.<i>.<weight|bias|gamma|beta|running_mean|running_var>`).
    pub fn from_tensors(
        spec: &ModelSpec,
        tensors: &mut HashMap<String, Vec<f32>>,
    ) -> Result<Self, EngineError> {
        let mut take = |i: usize, name: &str, shape: &[usize]| {
            let key = format!("layers.{i}.{name}");
            let values = tensors
                .remove(&key)
                .ok_or_else(|| EngineError::Parameters(format!("tensor {key} is missing")))?;
            let expected: usize = shape.iter().product();
            if values.len() != expected {
                return Err(EngineError::Parameters(format!(
                    "tensor {key} has {} values, expected {expected} ({shape:?})",
                    values.len()
                )));
            }
            Ok(values)
        };
        let mut layers = Vec::with_capacity(spec.layers.len());
        for (i, layer) in spec.layers.iter().enumerate() {
            let shapes = layer_tensors(layer);
            let mut get = |n: usize| take(i, shapes[n].0, &shapes[n].1);
            layers.push(match layer {
                LayerSpec::Conv { bias, .. } => LayerParams::Conv {
                    weight: get(0)?,
                    bias: if *bias { Some(get(1)?) } else { None },
                },
                LayerSpec::ConvTranspose { .. } => LayerParams::Conv {
                    weight: get(0)?,
                    bias: Some(get(1)?),
                },
                LayerSpec::BatchNorm { .. } => LayerParams::BatchNorm {
                    gamma: get(0)?,
                    beta: get(1)?,
                    running_mean: get(2)?,
                    running_var: get(3)?,
                },
                LayerSpec::Linear { .. } => LayerParams::Linear {
                    weight: get(0)?,
                    bias: get(1)?,
                },
                _ => LayerParams::None,
            });
        }
        Ok(CpuNet {
            spec: spec.clone(),
            layers,
            precision: Precision::Fp32,
            bf16_kernels: false,
        })
    }

    /// The same network computing its products at `precision`, in bf16 on the bf16 kernels
    /// where this CPU runs them faster than fp32's.
    pub fn with_precision(self, precision: Precision) -> Self {
        let net = CpuNet { precision, ..self };
        net.with_bf16_kernels(conv::bf16_kernels_pay())
    }

    /// The same network with each convolution's first `min(out, in)` filters the identity:
    /// filter `d` takes input channel `d` at its kernel's centre tap (`k / 2`, `k / 2`) with
    /// weight 1 and nothing else, as PyTorch's `nn.init.dirac_(w[:w.size(1)])` leaves them
    /// (the identity init of the fast CIFAR-10 recipes, Jordan's airbench). The other filters,
    /// the biases, transposed convolutions and linear layers keep their values.
    pub fn with_identity_convs(mut self) -> Self {
        for (spec, params) in self.spec.layers.iter().zip(&mut self.layers) {
            let (
                &LayerSpec::Conv {
                    in_channels,
                    out_channels,
                    kernel,
                    ..
                },
                LayerParams::Conv { weight, .. },
            ) = (spec, params)
            else {
                continue;
            };
            let taps = kernel * kernel;
            let centre = (kernel / 2) * kernel + kernel / 2;
            for (d, filter) in weight
                .chunks_exact_mut(in_channels * taps)
                .take(in_channels.min(out_channels))
                .enumerate()
            {
                filter.fill(0.0);
                filter[d * taps + centre] = 1.0;
            }
        }
        self
    }

    /// The same network with its bf16 convolutions on the bf16 kernels when `use_them` and the
    /// CPU has AVX512-BF16 (whether or not they are the faster: tests cover both routes).
    pub fn with_bf16_kernels(self, use_them: bool) -> Self {
        let bf16_kernels =
            use_them && self.precision == Precision::Bf16 && kernel::available_bf16();
        CpuNet {
            bf16_kernels,
            ..self
        }
    }

    /// The geometry of convolution layer `i` on inputs of `shape`: the convolution itself, or
    /// for a transposed convolution the convolution it transposes.
    fn conv_geometry(&self, i: usize, [_, c, h, w]: [usize; 4]) -> ConvGeometry {
        let layer = self.op(i);
        let (LayerSpec::Conv {
            out_channels,
            kernel,
            stride,
            padding,
            ..
        }
        | LayerSpec::ConvTranspose {
            out_channels,
            kernel,
            stride,
            padding,
            ..
        }) = *layer
        else {
            unreachable!("{layer:?} is not a convolution")
        };
        let geometry = match layer {
            LayerSpec::Conv { .. } => ConvGeometry::conv,
            _ => ConvGeometry::transposing,
        };
        geometry(c, h, w, out_channels, kernel, stride, padding)
            .with_bf16(self.precision == Precision::Bf16)
            .with_bf16_kernels(self.bf16_kernels)
    }

    /// Every tensor with its name and shape (the trainable ones and batch norm's statistics).
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let mut out = Vec::new();
        for (i, (spec, params)) in self.spec.layers.iter().zip(&self.layers).enumerate() {
            let values: Vec<&[f32]> = match params {
                LayerParams::None => vec![],
                LayerParams::Conv { weight, bias } => std::iter::once(weight)
                    .chain(bias)
                    .map(|v| &v[..])
                    .collect(),
                LayerParams::BatchNorm {
                    gamma,
                    beta,
                    running_mean,
                    running_var,
                } => vec![gamma, beta, running_mean, running_var],
                LayerParams::Linear { weight, bias } => vec![weight, bias],
            };
            for ((name, shape), v) in layer_tensors(spec).into_iter().zip(values) {
                out.push((format!("layers.{i}.{name}"), shape, v));
            }
        }
        out
    }

    /// Every tensor's values, in the order of [`CpuNet::tensors`].
    pub fn values_mut(&mut self) -> Vec<&mut [f32]> {
        self.tensors_mut(true)
    }

    /// The trainable tensors, in the order [`CpuNet::backward`] returns their gradients.
    pub fn trainable_mut(&mut self) -> Vec<&mut [f32]> {
        self.tensors_mut(false)
    }

    /// The tensors in [`CpuNet::tensors`]' order, batch norm's running statistics only with
    /// `statistics`.
    fn tensors_mut(&mut self, statistics: bool) -> Vec<&mut [f32]> {
        let mut out: Vec<&mut [f32]> = Vec::new();
        for params in &mut self.layers {
            match params {
                LayerParams::None => {}
                LayerParams::Conv { weight, bias } => {
                    out.push(weight);
                    if let Some(b) = bias {
                        out.push(b);
                    }
                }
                LayerParams::BatchNorm {
                    gamma,
                    beta,
                    running_mean,
                    running_var,
                } => {
                    out.extend([&mut gamma[..], &mut beta[..]]);
                    if statistics {
                        out.extend([&mut running_mean[..], &mut running_var[..]]);
                    }
                }
                LayerParams::Linear { weight, bias } => {
                    out.extend([&mut weight[..], &mut bias[..]])
                }
            }
        }
        out
    }

    pub fn trainable_lens(&mut self) -> Vec<usize> {
        self.trainable_mut().iter().map(|t| t.len()).collect()
    }

    /// The evaluation forward pass: batch norm with its running statistics, no dropout.
    pub fn forward(&self, input: Activation) -> Activation {
        let mut skips = Vec::new();
        let mut handover = Handover::default();
        let mut x = Maps::from(input);
        for i in 0..self.layers.len() {
            x = self
                .layer_forward(i, x, Mode::Eval, &mut skips, &mut handover)
                .0;
        }
        x.into()
    }

    /// The training forward pass: batch statistics (running ones updated, as burn and PyTorch
    /// do), dropout drawn from `seed`; returns the output and the tape for the backward pass.
    pub fn forward_train(&mut self, input: Activation, seed: u64) -> (Activation, Tape) {
        self.forward_train_shard(input, seed, &Shard::default())
    }

    /// [`CpuNet::forward_train`] on `shard`'s images of a batch that other ranks share.
    pub fn forward_train_shard(
        &mut self,
        input: Activation,
        seed: u64,
        shard: &Shard,
    ) -> (Activation, Tape) {
        let mut skips = Vec::new();
        let mut handover = Handover::default();
        let mut saved = Vec::with_capacity(self.layers.len());
        let mut x = Maps::from(input);
        for i in 0..self.layers.len() {
            let mode = Mode::Train {
                seed: seed.wrapping_add(i as u64),
                shard,
            };
            let (out, keep) = self.layer_forward(i, x, mode, &mut skips, &mut handover);
            if let (
                LayerParams::BatchNorm {
                    running_mean,
                    running_var,
                    ..
                },
                Saved::BatchNorm(_, stats),
            ) = (&mut self.layers[i], &keep)
            {
                layers::update_running(running_mean, &stats.mean);
                layers::update_running(running_var, &stats.variance);
            }
            saved.push(keep);
            x = out;
        }
        (
            x.into(),
            Tape {
                saved,
                world: shard.world.clone(),
            },
        )
    }

    /// A product's input and weights at the net's precision: in bf16, rounded (the input's
    /// rounded values are what the layer keeps for its weight gradient, as autocast keeps the
    /// bf16 input it computed with). Only for linear layers, and for convolutions where they
    /// do not round their own ([`CpuNet::bf16_kernels`]; [`CpuNet::conv_operands`]).
    fn operands<'w>(&self, x: Maps, weight: &'w [f32]) -> (Maps, Cow<'w, [f32]>) {
        if self.precision.is_fp32() {
            return (x, Cow::Borrowed(weight));
        }
        // The input's values are copied only where another layer shares them.
        let (x, _) = x.in_place(bf16::round_all);
        (x, operand(weight, self.precision))
    }

    /// A convolution's input and weights: as they are where the convolutions round their own
    /// bf16 operands, else rounded once here, as a linear layer's.
    fn conv_operands<'w>(&self, x: Maps, weight: &'w [f32]) -> (Maps, Cow<'w, [f32]>) {
        match self.bf16_kernels {
            true => (x, Cow::Borrowed(weight)),
            false => self.operands(x, weight),
        }
    }

    /// The input of a convolution that does not pool: where the net rounds the convolutions'
    /// bf16 operands, stored in bf16 (half the size of a rounded fp32 copy; the kernels expand
    /// it a group at a time, and the weight gradient reads it back so); as it is elsewhere.
    fn conv_input(&self, x: Maps) -> Maps {
        match self.precision.is_fp32() || self.bf16_kernels {
            true => x,
            false => x.into_bf16(),
        }
    }

    /// Whether a training pass in bf16 stores the output of layer `i` in bf16: a
    /// convolution's where a batch norm follows it; a batch norm's (and its activation's)
    /// where a convolution that does not pool reads it next, directly, after saving it for a
    /// skip, or through a concatenation; a concatenation's where such a convolution follows.
    /// Those layers read either storage, and the convolutions round what they read to bf16
    /// anyway (batch norm takes the convolution's output as autocast hands it on, in bf16);
    /// a layer that reads only fp32 (pooling, transposed convolutions, residual additions,
    /// linear layers) gets fp32, so nothing is converted twice.
    fn stores_bf16(&self, i: usize, train: bool) -> bool {
        if !train || self.precision.is_fp32() || i + 1 == self.layers.len() {
            return false;
        }
        let conv_reads = |j: usize| {
            j < self.layers.len()
                && matches!(self.op(j), LayerSpec::Conv { .. })
                && !self.pool_follows(j)
        };
        match self.op(i) {
            LayerSpec::Conv { .. } => self.batch_norm_in_conv(i + 1),
            LayerSpec::BatchNorm { .. } => {
                let j = i + 1 + usize::from(self.activation_after(i).is_some());
                let passes_on = |j: usize| {
                    j < self.layers.len()
                        && matches!(self.op(j), LayerSpec::SaveSkip | LayerSpec::ConcatSkip)
                };
                conv_reads(j) || (passes_on(j) && conv_reads(j + 1))
            }
            LayerSpec::ConcatSkip => conv_reads(i + 1),
            _ => false,
        }
    }

    /// A convolution's weights for its backward pass, as [`CpuNet::conv_operands`] gives them.
    fn conv_weight<'w>(&self, weight: &'w [f32]) -> Cow<'w, [f32]> {
        match self.bf16_kernels {
            true => Cow::Borrowed(weight),
            false => operand(weight, self.precision),
        }
    }

    /// A convolution's output gradient for its products, once the bias's gradient has been
    /// summed from it: rounded in place where the convolutions do not round their own.
    fn conv_output_grad(&self, mut grad: Vec<f32>) -> Vec<f32> {
        if !self.precision.is_fp32() && !self.bf16_kernels {
            bf16::round_all(&mut grad);
        }
        grad
    }

    fn layer_forward(
        &self,
        i: usize,
        x: Maps,
        mode: Mode,
        skips: &mut Vec<Maps>,
        handover: &mut Handover,
    ) -> (Maps, Saved) {
        let [n, c, h, w] = x.shape;
        let (train, seed, shard) = match mode {
            Mode::Train { seed, shard } => (true, seed, shard),
            Mode::Eval => (false, 0, &WHOLE_BATCH),
        };
        let keep_input = |x: &Maps| {
            if train {
                Saved::Input(x.clone())
            } else {
                Saved::Nothing
            }
        };
        match (self.op(i), &self.layers[i]) {
            (&LayerSpec::Conv { out_channels, .. }, LayerParams::Conv { weight, bias }) => {
                let g = self.conv_geometry(i, x.shape);
                let full = [n, out_channels, g.h_out, g.w_out];
                if self.pool_follows(i) {
                    let (x, weight) = self.conv_operands(x, weight);
                    let size = n * out_channels * (g.h_out / 2) * (g.w_out / 2);
                    let (mut out, mut argmax) = (vec![0.0; size], vec![0u8; size]);
                    conv::conv_pool_forward(
                        &g,
                        &x.floats(),
                        &weight,
                        bias.as_deref(),
                        &mut out,
                        &mut argmax,
                    );
                    handover.pooled = Some((argmax, full));
                    let shape = [n, out_channels, g.h_out / 2, g.w_out / 2];
                    return (Maps::new(out, shape), keep_input(&x));
                }
                let (x, weight) = (self.conv_input(x), self.conv_weight(weight));
                let (weight, bias) = (&weight[..], bias.as_deref());
                let len = n * g.out_len();
                let bf16 = self.stores_bf16(i, train);
                let plane = g.out_plane();
                let fused = |_: &RunningBatchNorm| self.batch_norm_in_conv(i + 1);
                let out = match self.running_batch_norm(i + 1).filter(fused) {
                    Some(_) if train => {
                        let planes = Mutex::new(vec![(0.0, 0.0); n * out_channels]);
                        let sum = |first: usize, images: &mut [f32]| {
                            let sums = layers::sums_of_planes(images, plane);
                            let mut planes = planes.lock().unwrap_or_else(|e| e.into_inner());
                            planes[first * out_channels..][..sums.len()].copy_from_slice(&sums);
                        };
                        let out = stored!(&x.values, |xs| written!(bf16, len, |out| {
                            conv::conv_forward_then(&g, xs, weight, bias, out, sum)
                        }));
                        let planes = planes.into_inner().unwrap_or_else(|e| e.into_inner());
                        let world = shard.world.as_ref();
                        let stats = layers::stats_of_planes(&planes, out_channels, plane, world);
                        handover.stats = Some(stats);
                        out
                    }
                    Some(running) => {
                        let normalize =
                            |_, images: &mut [f32]| running.apply_to_images(images, plane);
                        stored!(&x.values, |xs| written!(false, len, |out| {
                            conv::conv_forward_then(&g, xs, weight, bias, out, normalize)
                        }))
                    }
                    None => stored!(&x.values, |xs| written!(false, len, |out| {
                        conv::conv_forward(&g, xs, weight, bias, out)
                    })),
                };
                let out = Maps {
                    values: out,
                    shape: full,
                };
                (out, keep_input(&x))
            }
            (
                &LayerSpec::ConvTranspose { out_channels, .. },
                LayerParams::Conv { weight, bias },
            ) => {
                let (x, weight) = self.conv_operands(x, weight);
                let g = self.conv_geometry(i, x.shape);
                let mut out = memory::zeroed(n * g.in_len());
                conv::conv_transpose_forward(&g, &x.floats(), &weight, bias.as_deref(), &mut out);
                (Maps::new(out, [n, out_channels, g.h, g.w]), keep_input(&x))
            }
            (LayerSpec::BatchNorm { .. }, LayerParams::BatchNorm { gamma, beta, .. }) => {
                let activation = self.activation_after(i);
                let plane = x.plane();
                if !train && self.batch_norm_in_conv(i) {
                    return (x, Saved::Nothing);
                }
                if let Some(running) = self.running_batch_norm(i).filter(|_| !train) {
                    // Evaluation keeps nothing, so the input's buffer takes the output.
                    let (x, _) = x.in_place(|values| running.apply_in_place(values, plane));
                    return (x, Saved::Nothing);
                }
                let batch = (handover.stats.take()).unwrap_or_else(|| {
                    layers::channel_stats(&x.floats(), c, plane, shard.world.as_ref())
                });
                let (mean, variance) = (&batch.mean, &batch.variance);
                let out = stored!(&x.values, |xs| {
                    written!(self.stores_bf16(i, train), x.len(), |out| {
                        layers::batch_norm_apply(
                            xs, out, plane, mean, variance, gamma, beta, activation,
                        )
                    })
                });
                let out = Maps {
                    values: out,
                    shape: x.shape,
                };
                (out, Saved::BatchNorm(x, batch))
            }
            (LayerSpec::Relu | LayerSpec::LeakyRelu { .. }, _) => {
                let mut x = x;
                if !self.follows_batch_norm(i) {
                    let slope = slope(self.op(i));
                    x = x
                        .in_place(|values| layers::leaky_relu_in_place(values, slope))
                        .0;
                }
                let saved = if train {
                    Saved::Output(x.clone())
                } else {
                    Saved::Nothing
                };
                (x, saved)
            }
            (LayerSpec::MaxPool2, _) if i > 0 && self.pool_follows(i - 1) => {
                let (argmax, input_shape) = handover.pooled.take().expect("the convolution pooled");
                let saved = if train {
                    Saved::Pool {
                        argmax,
                        input_shape,
                    }
                } else {
                    Saved::Nothing
                };
                (x, saved)
            }
            (LayerSpec::MaxPool2, _) => {
                let (out, argmax) = layers::max_pool2(&x.floats(), h, w);
                let saved = if train {
                    Saved::Pool {
                        argmax,
                        input_shape: x.shape,
                    }
                } else {
                    Saved::Nothing
                };
                (Maps::new(out, [n, c, h / 2, w / 2]), saved)
            }
            (&LayerSpec::Dropout { prob }, _) if train && prob > 0.0 => {
                let first = (shard.first_image * x.len() / n.max(1)) as u64;
                let (x, mask) =
                    x.in_place(|values| layers::dropout_in_place(values, prob, seed, first));
                (x, Saved::Mask(mask))
            }
            (LayerSpec::Dropout { .. }, _) => (x, Saved::Nothing),
            (LayerSpec::Flatten, _) => {
                let shape = [n, c * h * w, 1, 1];
                (Maps { shape, ..x }, Saved::Nothing)
            }
            (&LayerSpec::Linear { outputs, .. }, LayerParams::Linear { weight, bias }) => {
                let (x, weight) = self.operands(x, weight);
                let out = layers::linear_forward(&x.floats(), &weight, bias, n);
                (Maps::new(out, [n, outputs, 1, 1]), keep_input(&x))
            }
            (LayerSpec::SaveSkip, _) => {
                skips.push(x.clone());
                (x, Saved::Nothing)
            }
            (LayerSpec::ConcatSkip, _) => {
                let skip = skips.pop().expect("ModelSpec::summary pairs every concat");
                let shape = [n, c + skip.shape[1], h, w];
                let len = x.len() + skip.len();
                let out = stored!(&x.values, |xs| {
                    stored!(&skip.values, |skips| {
                        written!(self.stores_bf16(i, train), len, |out| {
                            layers::concat_channels(xs, skips, n, out)
                        })
                    })
                });
                let out = Maps { values: out, shape };
                (out, Saved::Concat { first: c, shape })
            }
            (LayerSpec::AddSkip, _) => {
                let skip = skips.pop().expect("ModelSpec::summary pairs every add");
                let (x, _) = x.in_place(|values| layers::add_in_place(values, &skip.floats()));
                (x, Saved::Nothing)
            }
            (LayerSpec::GlobalAvgPool, _) => {
                let out = layers::global_avg_pool(&x.floats(), h * w);
                (Maps::new(out, [n, c, 1, 1]), Saved::Shape(x.shape))
            }
            (layer, params) => unreachable!("layer {layer:?} built with {params:?}"),
        }
    }

    /// Gradients of the trainable tensors (in [`CpuNet::trainable_mut`]'s order) given the
    /// gradient of the loss with respect to the output of [`CpuNet::forward_train`].
    pub fn backward(&self, tape: Tape, grad_output: Vec<f32>) -> Vec<Vec<f32>> {
        self.backward_to_input(tape, grad_output, false).0
    }

    /// [`CpuNet::backward`], also returning the gradient with respect to the input when
    /// `input_grad` is set (training never needs it).
    pub fn backward_to_input(
        &self,
        tape: Tape,
        grad_output: Vec<f32>,
        input_grad: bool,
    ) -> (Vec<Vec<f32>>, Option<Vec<f32>>) {
        let mut grad = grad_output;
        let mut grads_reversed: Vec<Vec<f32>> = Vec::new();
        let mut skip_grads: Vec<Vec<f32>> = Vec::new();
        let Tape { mut saved, world } = tape;
        // The output and slope of an activation whose mask the batch norm before it applies.
        let mut pending_activation: Option<(Maps, f32)> = None;
        // The argmax of a max-pool whose gradient the convolution before it expands.
        let mut pending_pool: Option<Vec<u8>> = None;
        for i in (0..self.layers.len()).rev() {
            let need_input_grad = i > 0 || input_grad;
            let keep = saved.pop().expect("one record per layer");
            match (self.op(i), &self.layers[i], keep) {
                (
                    &LayerSpec::Conv { out_channels, .. },
                    LayerParams::Conv { weight, bias },
                    Saved::Input(x),
                ) => {
                    let (n, g) = (x.shape[0], self.conv_geometry(i, x.shape));
                    let weight = self.conv_weight(weight);
                    if let Some(argmax) = pending_pool.take() {
                        let mut dx = need_input_grad.then(|| memory::zeroed(n * g.in_len()));
                        // The pooled output gradient goes in fp32 (the bias's sums are its).
                        let (dw, db) = conv::conv_pool_backward(
                            &g,
                            &grad,
                            &argmax,
                            &x.floats(),
                            &weight,
                            dx.as_deref_mut(),
                        );
                        if bias.is_some() {
                            grads_reversed.push(db);
                        }
                        grads_reversed.push(dw);
                        if let Some(dx) = dx {
                            grad = dx;
                        }
                        continue;
                    }
                    if bias.is_some() {
                        grads_reversed.push(layers::channel_sums(
                            &grad,
                            out_channels,
                            g.out_plane(),
                        ));
                    }
                    let dy = self.conv_output_grad(std::mem::take(&mut grad));
                    grads_reversed.push(stored!(&x.values, |xs| {
                        conv::conv_weight_grad(&g, &dy, xs)
                    }));
                    if need_input_grad {
                        let mut dx = memory::zeroed(n * g.in_len());
                        conv::conv_input_grad(&g, &dy, &weight, &mut dx);
                        grad = dx;
                    }
                }
                (
                    &LayerSpec::ConvTranspose { out_channels, .. },
                    LayerParams::Conv { weight, .. },
                    Saved::Input(x),
                ) => {
                    let (n, g) = (x.shape[0], self.conv_geometry(i, x.shape));
                    grads_reversed.push(layers::channel_sums(&grad, out_channels, g.h * g.w));
                    let dy = self.conv_output_grad(std::mem::take(&mut grad));
                    grads_reversed.push(conv::conv_transpose_weight_grad(&g, &dy, &x.floats()));
                    if need_input_grad {
                        let mut dx = memory::zeroed(n * g.out_len());
                        let weight = self.conv_weight(weight);
                        conv::conv_transpose_input_grad(&g, &dy, &weight, &mut dx);
                        grad = dx;
                    }
                }
                (
                    LayerSpec::BatchNorm { .. },
                    LayerParams::BatchNorm { gamma, .. },
                    Saved::BatchNorm(x, stats),
                ) => {
                    let (grad_out, plane, world) =
                        (std::mem::take(&mut grad), x.plane(), world.as_ref());
                    let (dx, dg, db) = stored!(&x.values, |xs| match &pending_activation.take() {
                        None => layers::batch_norm_backward::<_, f32>(
                            xs, grad_out, plane, &stats, gamma, None, world,
                        ),
                        Some((y, slope)) => stored!(&y.values, |ys| {
                            let mask = Some((ys, *slope));
                            layers::batch_norm_backward(
                                xs, grad_out, plane, &stats, gamma, mask, world,
                            )
                        }),
                    });
                    grads_reversed.push(db);
                    grads_reversed.push(dg);
                    grad = dx;
                }
                (layer @ (LayerSpec::Relu | LayerSpec::LeakyRelu { .. }), _, Saved::Output(y)) => {
                    if self.follows_batch_norm(i) {
                        pending_activation = Some((y, slope(layer)));
                    } else {
                        layers::leaky_relu_backward(&y.floats(), &mut grad, slope(layer));
                    }
                }
                (
                    LayerSpec::MaxPool2,
                    _,
                    Saved::Pool {
                        argmax,
                        input_shape,
                    },
                ) => {
                    if i > 0 && self.pool_follows(i - 1) {
                        pending_pool = Some(argmax);
                    } else {
                        grad = layers::max_pool2_backward(
                            &grad,
                            &argmax,
                            input_shape[2],
                            input_shape[3],
                        );
                    }
                }
                (LayerSpec::Dropout { .. }, _, Saved::Mask(mask)) => {
                    grad.par_iter_mut()
                        .zip(mask.par_iter())
                        .for_each(|(g, m)| *g *= m);
                }
                (
                    &LayerSpec::Linear { outputs, .. },
                    LayerParams::Linear { weight, .. },
                    Saved::Input(x),
                ) => {
                    let (weight, dy) = (
                        operand(weight, self.precision),
                        operand(&grad, self.precision),
                    );
                    let (dx, dw) = layers::linear_backward(&x.floats(), &weight, &dy, x.shape[0]);
                    // The bias is no product's operand: its gradient sums the fp32 one.
                    let db = layers::linear_bias_grad(&grad, outputs);
                    grads_reversed.push(db);
                    grads_reversed.push(dw);
                    grad = dx;
                }
                (LayerSpec::SaveSkip, _, _) => {
                    let skip = skip_grads.pop().expect("one gradient per saved skip");
                    grad.par_iter_mut()
                        .zip(skip.par_iter())
                        .for_each(|(g, s)| *g += s);
                }
                (
                    LayerSpec::ConcatSkip,
                    _,
                    Saved::Concat {
                        first,
                        shape: [n, _, h, w],
                    },
                ) => {
                    let (dx, dskip) = layers::split_channels(&grad, n, first * h * w);
                    skip_grads.push(dskip);
                    grad = dx;
                }
                // Both the sum's inputs receive its gradient: the skip's waits on the stack
                // for the layer that saved it.
                (LayerSpec::AddSkip, _, Saved::Nothing) => skip_grads.push(grad.clone()),
                (LayerSpec::GlobalAvgPool, _, Saved::Shape([_, _, h, w])) => {
                    grad = layers::global_avg_pool_backward(&grad, h * w);
                }
                (LayerSpec::Dropout { .. } | LayerSpec::Flatten, _, Saved::Nothing) => {}
                (layer, _, _) => {
                    unreachable!("layer {i} ({layer:?}) has no record for its backward pass")
                }
            }
        }
        grads_reversed.reverse();
        (grads_reversed, input_grad.then_some(grad))
    }

    /// The layer run at position `i`. An activation followed by a 2x2 max-pool runs in the
    /// other order, pool first: max-pooling commutes with a non-decreasing activation (same
    /// values and gradients), and the activation then touches a quarter of the values.
    fn op(&self, i: usize) -> &LayerSpec {
        let layers = &self.spec.layers;
        let commutes = |l: &LayerSpec| match *l {
            LayerSpec::Relu => true,
            LayerSpec::LeakyRelu { slope } => slope >= 0.0,
            _ => false,
        };
        match &layers[i] {
            l if commutes(l) && layers.get(i + 1) == Some(&LayerSpec::MaxPool2) => &layers[i + 1],
            LayerSpec::MaxPool2 if i > 0 && commutes(&layers[i - 1]) => &layers[i - 1],
            l => l,
        }
    }

    /// The slope of the activation a batch norm at `i` applies as it writes its output (one
    /// pass over the values instead of two), if one follows it.
    fn activation_after(&self, i: usize) -> Option<f32> {
        let next = (i + 1 < self.layers.len()).then(|| self.op(i + 1));
        match (self.op(i), next) {
            (
                LayerSpec::BatchNorm { .. },
                Some(l @ (LayerSpec::Relu | LayerSpec::LeakyRelu { .. })),
            ) => Some(slope(l)),
            _ => None,
        }
    }

    /// Whether the convolution at `i` pools its output itself (a 2x2 max-pool runs next).
    fn pool_follows(&self, i: usize) -> bool {
        matches!(self.op(i), LayerSpec::Conv { .. })
            && i + 1 < self.layers.len()
            && self.op(i + 1) == &LayerSpec::MaxPool2
    }

    /// The batch norm at `i` as evaluation applies it, with the activation after it.
    fn running_batch_norm(&self, i: usize) -> Option<RunningBatchNorm<'_>> {
        match self.layers.get(i)? {
            LayerParams::BatchNorm {
                gamma,
                beta,
                running_mean,
                running_var,
            } => Some(RunningBatchNorm {
                mean: running_mean,
                variance: running_var,
                gamma,
                beta,
                activation: self.activation_after(i),
            }),
            _ => None,
        }
    }

    /// Whether the convolution before the batch norm at `i` runs part of it on each group of
    /// images as it leaves the kernels, while the group is in cache: in evaluation the whole
    /// batch norm and the activation after it, in training the sums behind its statistics
    /// (bit for bit what a pass of their own gives). In `res`'s inference, batch norm's own
    /// passes had taken 8-10% of the time (a per-layer timer, not committed).
    fn batch_norm_in_conv(&self, i: usize) -> bool {
        i > 0
            && matches!(self.op(i), LayerSpec::BatchNorm { .. })
            && matches!(self.op(i - 1), LayerSpec::Conv { .. })
    }

    /// Whether the activation at `i` was applied by the batch norm before it.
    fn follows_batch_norm(&self, i: usize) -> bool {
        i > 0 && self.activation_after(i - 1).is_some()
    }

    /// The first convolution's weights `[out, in, k, k]`.
    pub fn first_conv_weights(&self) -> Option<Vec<f32>> {
        self.spec
            .layers
            .iter()
            .zip(&self.layers)
            .find_map(|(spec, params)| match (spec, params) {
                (LayerSpec::Conv { .. }, LayerParams::Conv { weight, .. }) => Some(weight.clone()),
                _ => None,
            })
    }
}

fn slope(layer: &LayerSpec) -> f32 {
    match *layer {
        LayerSpec::LeakyRelu { slope } => slope as f32,
        _ => 0.0,
    }
}
