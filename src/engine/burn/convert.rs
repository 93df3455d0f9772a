//! Parameters between burn's [`Net`] and the CPU engine's [`CpuNet`], by name
//! (`layers.<i>.<weight|bias|gamma|beta|running_mean|running_var>`, burn's shapes), and burn's
//! record of a model: the bytes a checkpoint stores, whichever engine trained it.

use std::collections::HashMap;

use burn::module::{Param, RunningState};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;

use super::{Layer, Net};
use crate::engine::EngineError;
use crate::engine::cpu::CpuNet;
use crate::models::ModelSpec;

pub(super) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 tensor")
}

pub(super) fn tensor<const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
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

/// burn's record of `net`: what a checkpoint stores as the model.
pub fn model_record(net: &Net) -> Result<Vec<u8>, EngineError> {
    let bytes = net
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| EngineError::Record(e.to_string()))?;
    Ok(bytes.to_vec())
}

/// `net` with the parameters of `record` (written by [`model_record`] for the same spec).
pub(super) fn net_from_record(net: Net, record: &[u8]) -> Result<Net, EngineError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(record.to_vec()))
        .map_err(|e| EngineError::Record(e.to_string()))?;
    net.try_load_record(record)
        .map_err(|e| EngineError::Record(e.to_string()))
}

/// The CPU-engine network of `spec` with the parameters of `record`.
pub fn cpu_from_record(spec: &ModelSpec, record: &[u8]) -> Result<CpuNet, EngineError> {
    let net = net_from_record(Net::init(spec, &Device::flex()), record)?;
    Ok(cpu_from_burn(spec, &net))
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
