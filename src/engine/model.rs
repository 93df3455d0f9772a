//! A model ready for inference on the engine chosen at run time.

use super::burn::{self, BurnModel};
use super::cpu::{Activation, CpuNet};
use super::{Compute, EngineError, EngineKind};
use crate::models::ModelSpec;

/// A model ready for inference (batch norm on its running statistics, no dropout).
#[derive(Clone, Debug)]
pub enum Model {
    Burn(BurnModel),
    Cpu(CpuNet),
}

impl Model {
    /// The network of `spec` with the parameters of a record (as checkpoints store them), on
    /// `compute`'s engine and device.
    pub fn from_record(
        spec: &ModelSpec,
        record: &[u8],
        compute: &Compute,
    ) -> Result<Self, EngineError> {
        Ok(match compute.engine {
            EngineKind::Burn => Model::Burn(BurnModel::from_record(spec, record, compute.device)?),
            EngineKind::Cpu => Model::Cpu(burn::cpu_from_record(spec, record)?),
        })
    }

    pub fn engine(&self) -> EngineKind {
        match self {
            Model::Burn(_) => EngineKind::Burn,
            Model::Cpu(_) => EngineKind::Cpu,
        }
    }

    /// The network's output for `images` `[n, c, h, w]`: logits `[n, classes]` as
    /// `[n, classes, 1, 1]`, or per-pixel logits `[n, classes, h, w]`.
    pub fn forward(&self, images: Vec<f32>, shape: [usize; 4]) -> (Vec<f32>, [usize; 4]) {
        match self {
            Model::Burn(model) => model.forward(images, shape),
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
            Model::Burn(model) => model.net.first_conv_weights(),
            Model::Cpu(net) => net.first_conv_weights(),
        }
    }
}
