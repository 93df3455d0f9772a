//! A model on the engine chosen at run time: convlab's CPU engine ([`CpuNet`]) or burn
//! ([`Net`]), both built from one [`ModelSpec`] with the same parameter names and shapes, and
//! the conversions between them (so a checkpoint written by one is read by the other).

use std::collections::HashMap;

use burn::module::{Param, RunningState};
use burn::prelude::*;

use super::{Layer, ModelSpec, Net};
use crate::cpu::{Activation, CpuNet};
use crate::device::EngineKind;

/// A model ready for inference (batch norm on its running statistics, no dropout).
#[derive(Clone, Debug)]
pub enum Model {
    Burn { net: Net, device: Device },
    Cpu(CpuNet),
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 tensor")
}

fn tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// burn's tensors of `net`, by the names [`CpuNet`] uses.
pub fn burn_tensors(net: &Net) -> HashMap<String, Vec<f32>> {
    let mut out = HashMap::new();
    let mut put = |i: usize, name: &str, v: Vec<f32>| {
        out.insert(format!("layers.{i}.{name}"), v);
    };
    for (i, layer) in net.layers.iter().enumerate() {
        match layer {
            Layer::Conv(l) => {
                put(i, "weight", values(l.weight.val()));
                if let Some(b) = &l.bias {
                    put(i, "bias", values(b.val()));
                }
            }
            Layer::ConvTranspose(l) => {
                put(i, "weight", values(l.weight.val()));
                if let Some(b) = &l.bias {
                    put(i, "bias", values(b.val()));
                }
            }
            Layer::BatchNorm(l) => {
                put(i, "gamma", values(l.gamma.val()));
                put(i, "beta", values(l.beta.val()));
                put(i, "running_mean", values(l.running_mean.value_sync()));
                put(i, "running_var", values(l.running_var.value_sync()));
            }
            Layer::Linear(l) => {
                put(i, "weight", values(l.weight.val()));
                if let Some(b) = &l.bias {
                    put(i, "bias", values(b.val()));
                }
            }
            _ => {}
        }
    }
    out
}

/// The CPU-engine copy of a burn network of `spec`.
pub fn cpu_from_burn(spec: &ModelSpec, net: &Net) -> CpuNet {
    CpuNet::from_tensors(spec, &mut burn_tensors(net)).expect("a Net of this spec has every tensor")
}

/// The burn copy of a CPU-engine network, on `device`.
pub fn burn_from_cpu(cpu: &CpuNet, device: &Device) -> Net {
    let mut net = Net::init(&cpu.spec, device);
    let by_name: HashMap<String, (Vec<usize>, &[f32])> = cpu
        .tensors()
        .into_iter()
        .map(|(n, s, v)| (n, (s, v)))
        .collect();
    let get = |i: usize, name: &str| {
        let (shape, v) = &by_name[&format!("layers.{i}.{name}")];
        (v.to_vec(), shape.clone())
    };
    let param4 = |(v, s): (Vec<f32>, Vec<usize>)| {
        Param::from_tensor(tensor(v, [s[0], s[1], s[2], s[3]], device))
    };
    let param2 =
        |(v, s): (Vec<f32>, Vec<usize>)| Param::from_tensor(tensor(v, [s[0], s[1]], device));
    let param1 = |(v, s): (Vec<f32>, Vec<usize>)| Param::from_tensor(tensor(v, [s[0]], device));
    let state1 = |(v, s): (Vec<f32>, Vec<usize>)| RunningState::new(tensor(v, [s[0]], device));
    for (i, layer) in net.layers.iter_mut().enumerate() {
        match layer {
            Layer::Conv(l) => {
                l.weight = param4(get(i, "weight"));
                if l.bias.is_some() {
                    l.bias = Some(param1(get(i, "bias")));
                }
            }
            Layer::ConvTranspose(l) => {
                l.weight = param4(get(i, "weight"));
                l.bias = Some(param1(get(i, "bias")));
            }
            Layer::BatchNorm(l) => {
                l.gamma = param1(get(i, "gamma"));
                l.beta = param1(get(i, "beta"));
                l.running_mean = state1(get(i, "running_mean"));
                l.running_var = state1(get(i, "running_var"));
            }
            Layer::Linear(l) => {
                l.weight = param2(get(i, "weight"));
                l.bias = Some(param1(get(i, "bias")));
            }
            _ => {}
        }
    }
    net
}

/// A freshly initialised CPU-engine network: burn's initialisers (PyTorch's defaults) seeded
/// by `seed`, so both engines start from the same weights.
pub fn init_cpu(spec: &ModelSpec, seed: u64) -> CpuNet {
    let device = Device::flex();
    device.seed(seed);
    cpu_from_burn(spec, &Net::init(spec, &device))
}

impl Model {
    pub fn engine(&self) -> EngineKind {
        match self {
            Model::Burn { .. } => EngineKind::Burn,
            Model::Cpu(_) => EngineKind::Cpu,
        }
    }

    /// The network's output for `images` `[n, c, h, w]`: logits `[n, classes]` as
    /// `[n, classes, 1, 1]`, or per-pixel logits `[n, classes, h, w]`.
    pub fn forward(&self, images: Vec<f32>, shape: [usize; 4]) -> (Vec<f32>, [usize; 4]) {
        match self {
            Model::Burn { net, device } => {
                let out = net.forward_maps(tensor(images, shape, device));
                let dims = out.dims();
                (values(out), dims)
            }
            Model::Cpu(net) => {
                let out = net.forward(Activation::new(images, shape));
                let shape = out.shape;
                (
                    std::sync::Arc::try_unwrap(out.data).unwrap_or_else(|shared| (*shared).clone()),
                    shape,
                )
            }
        }
    }

    /// The first convolution's weights `[out, in, k, k]` as a flat vector.
    pub fn first_conv_weights(&self) -> Option<Vec<f32>> {
        match self {
            Model::Burn { net, .. } => net.first_conv_weights(),
            Model::Cpu(net) => net.first_conv_weights(),
        }
    }
}
