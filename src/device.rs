//! Choosing where tensors live, at run time: burn's pure-Rust CPU backend by default, a GPU
//! through the `wgpu` feature.

use burn::tensor::Device;

use crate::train::TrainError;

#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// burn's pure-Rust CPU backend (flex), multi-threaded.
    #[default]
    Cpu,
    /// A GPU through burn's wgpu backend (build with `--features wgpu`).
    Gpu,
}

/// Which engine computes: convlab's own CPU engine or burn (on the CPU through its flex backend,
/// or on a GPU).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// convlab's own CPU engine (im2col + GEMM, rayon threads): the default on the CPU.
    Cpu,
    /// burn 0.22.1: the reference, and the only engine on a GPU. Runs written before the CPU
    /// engine existed were trained on it.
    #[default]
    Burn,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Cpu => "cpu",
            EngineKind::Burn => "burn",
        }
    }
}

/// The engine `--engine` asks for, or the faster one for the device: convlab's own on the CPU,
/// burn on a GPU.
pub fn engine_for(requested: Option<EngineKind>, device: DeviceKind) -> Result<EngineKind, String> {
    match (requested, device) {
        (Some(EngineKind::Cpu), DeviceKind::Gpu) => Err(
            "cpu runs on the CPU only; use --engine burn (the default) with --device gpu".into(),
        ),
        (Some(engine), _) => Ok(engine),
        (None, DeviceKind::Cpu) => Ok(EngineKind::Cpu),
        (None, DeviceKind::Gpu) => Ok(EngineKind::Burn),
    }
}

/// Where and how a run computes: the engine and, for burn, its device.
#[derive(Clone, Debug)]
pub struct Compute {
    pub engine: EngineKind,
    pub device: Device,
}

impl Compute {
    /// `--engine` (or the device's default engine) on `--device`, or why not.
    pub fn new(engine: Option<EngineKind>, kind: DeviceKind) -> Result<Self, TrainError> {
        Ok(Compute {
            engine: engine_for(engine, kind).map_err(|e| TrainError::invalid("--engine", e))?,
            device: device(kind).map_err(TrainError::Device)?,
        })
    }

    /// convlab's CPU engine (the default on the CPU).
    pub fn cpu_engine() -> Self {
        Compute {
            engine: EngineKind::Cpu,
            device: Device::flex(),
        }
    }

    /// burn on its CPU backend (the reference).
    pub fn burn_cpu() -> Self {
        Compute {
            engine: EngineKind::Burn,
            device: Device::flex(),
        }
    }
}

/// The inference device for `kind`, or a message saying why it is not available.
pub fn device(kind: DeviceKind) -> Result<Device, String> {
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        DeviceKind::Gpu => gpu(),
    }
}

#[cfg(feature = "wgpu")]
fn gpu() -> Result<Device, String> {
    Ok(Device::wgpu(Default::default()))
}

#[cfg(not(feature = "wgpu"))]
fn gpu() -> Result<Device, String> {
    Err(
        "this build has no GPU support; rebuild with `cargo build --release --features wgpu`"
            .into(),
    )
}
