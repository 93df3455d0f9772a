//! burn 0.22.1, the reference engine and the GPU path: the network built from a
//! [`ModelSpec`](crate::models::ModelSpec) ([`Net`]), its loss and optimiser, and the conversion
//! of parameters to and from the CPU engine by name. The only module that names burn.

mod convert;
mod net;
mod trainer;

pub use convert::{
    burn_from_cpu, burn_tensors, cpu_from_burn, cpu_from_record, init_cpu, model_record,
};
pub use net::{Layer, Net};
pub use trainer::BurnTrainer;

use burn::prelude::*;

use super::{DeviceKind, EngineError};

/// A burn network ready for inference on `device`.
#[derive(Clone, Debug)]
pub struct BurnModel {
    pub net: Net,
    pub device: Device,
}

/// The burn device for `kind`.
pub fn device(kind: DeviceKind) -> Result<Device, EngineError> {
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        DeviceKind::Gpu => gpu(),
    }
}

/// Whether `kind` can be used by this build, before any work starts.
pub fn check_device(kind: DeviceKind) -> Result<(), EngineError> {
    device(kind).map(|_| ())
}

#[cfg(feature = "wgpu")]
fn gpu() -> Result<Device, EngineError> {
    Ok(Device::wgpu(Default::default()))
}

#[cfg(not(feature = "wgpu"))]
fn gpu() -> Result<Device, EngineError> {
    Err(EngineError::Device(
        "this build has no GPU support; rebuild with `cargo build --release --features wgpu`"
            .into(),
    ))
}

impl BurnModel {
    /// The network of `spec` with the parameters of a record written by [`model_record`], on
    /// `kind`'s device, for inference.
    pub fn from_record(
        spec: &crate::models::ModelSpec,
        record: &[u8],
        kind: DeviceKind,
    ) -> Result<Self, EngineError> {
        let device = device(kind)?;
        let net = convert::net_from_record(Net::init(spec, &device), record)?;
        Ok(BurnModel {
            net: net.valid(),
            device,
        })
    }

    /// The network's output for `images` `[n, c, h, w]` (see [`Net::forward_maps`]).
    pub fn forward(&self, images: Vec<f32>, shape: [usize; 4]) -> (Vec<f32>, [usize; 4]) {
        let out = self
            .net
            .forward_maps(convert::tensor(images, shape, &self.device));
        let dims = out.dims();
        (convert::values(out), dims)
    }
}
