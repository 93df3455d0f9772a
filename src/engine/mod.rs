//! The engines that compute: convlab's own CPU engine ([`cpu`]) and burn ([`burn`], the
//! reference, and the GPU path). This module is the one switch between them: [`Model`] for
//! inference and [`Trainer`] for a training step, both built from a
//! [`ModelSpec`](crate::models::ModelSpec), with the same parameter names and shapes on either
//! engine. burn is named only under [`burn`].
//!
//! The rest of the crate reaches the engines only through what this module exports: besides
//! the switch, the CPU engine's network (what a [`Model::Cpu`] holds), the softmax that turns
//! logits into probabilities, the counts of its products and the machine's peak that `bench`
//! reports, and the allocator setting `main` makes before any thread starts.

pub mod average;
pub mod burn;
pub mod cpu;
mod error;
mod model;
mod precision;
mod step;
mod trainer;

pub use cpu::conv::bf16_kernels_pay;
pub use cpu::loss::softmax_channels;
pub use cpu::matmul::{ProductWork, count_products, counted_products};
pub use cpu::memory::keep_freed_memory_for_reuse;
pub use cpu::peak::{VectorIsa, measure as measure_peak, measure_bf16 as measure_bf16_peak};
pub use cpu::{CpuNet, LossSpec};
pub use error::EngineError;
pub use model::{Model, Tta};
pub use precision::Precision;
pub use step::{InitSpec, OptimizerSpec, StepBatch, StepOutcome};
pub use trainer::Trainer;

use serde::{Deserialize, Serialize};

/// Where tensors live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// The CPU, multi-threaded.
    #[default]
    Cpu,
    /// A GPU through burn's wgpu backend (build with `--features wgpu`).
    Gpu,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 2] = [DeviceKind::Cpu, DeviceKind::Gpu];

    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Gpu => "gpu",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "The CPU, multi-threaded",
            DeviceKind::Gpu => "A GPU through burn's wgpu backend (build with `--features wgpu`)",
        }
    }
}

/// Which engine computes: convlab's own CPU engine or burn (on the CPU through its flex backend,
/// or on a GPU).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    pub const ALL: [EngineKind; 2] = [EngineKind::Cpu, EngineKind::Burn];

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Cpu => "cpu",
            EngineKind::Burn => "burn",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            EngineKind::Cpu => {
                "convlab's own CPU engine (im2col + GEMM, rayon threads): the default on the CPU"
            }
            EngineKind::Burn => {
                "burn 0.22.1: the reference, and the only engine on a GPU. Runs written before the CPU engine existed were trained on it"
            }
        }
    }
}

/// The engine `--engine` asks for, or the faster one for the device: convlab's own on the CPU,
/// burn on a GPU.
pub fn engine_for(
    requested: Option<EngineKind>,
    device: DeviceKind,
) -> Result<EngineKind, EngineError> {
    match (requested, device) {
        (Some(EngineKind::Cpu), DeviceKind::Gpu) => Err(EngineError::Choice(
            "cpu runs on the CPU only; use --engine burn (the default) with --device gpu".into(),
        )),
        (Some(engine), _) => Ok(engine),
        (None, DeviceKind::Cpu) => Ok(EngineKind::Cpu),
        (None, DeviceKind::Gpu) => Ok(EngineKind::Burn),
    }
}

/// The threads the CPU engine computes with (rayon's pool: `RAYON_NUM_THREADS`, else one per
/// core).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Makes the CPU engine compute with `count` threads, unless `RAYON_NUM_THREADS` says otherwise
/// or the threads have started already (then it does nothing).
pub fn use_threads(count: usize) {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(count)
            .build_global();
    }
}

/// Where and how a run computes: the engine and the device it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compute {
    pub engine: EngineKind,
    pub device: DeviceKind,
    /// The products' precision (plans written before it existed: fp32).
    #[serde(default)]
    pub precision: Precision,
}

impl Compute {
    /// `--engine` (or the device's default engine) on `--device` at `--precision`, or why not.
    pub fn new(
        engine: Option<EngineKind>,
        device: DeviceKind,
        precision: Precision,
    ) -> Result<Self, EngineError> {
        let engine = engine_for(engine, device)?;
        if engine == EngineKind::Burn && !precision.is_fp32() {
            return Err(EngineError::Choice(format!(
                "burn computes in fp32 only; --precision {} runs on convlab's CPU engine (--engine cpu)",
                precision.name()
            )));
        }
        burn::check_device(device)?;
        Ok(Compute {
            engine,
            device,
            precision,
        })
    }

    /// convlab's CPU engine (the default on the CPU).
    pub fn cpu_engine() -> Self {
        Compute {
            engine: EngineKind::Cpu,
            device: DeviceKind::Cpu,
            precision: Precision::Fp32,
        }
    }

    /// burn on its CPU backend (the reference).
    pub fn burn_cpu() -> Self {
        Compute {
            engine: EngineKind::Burn,
            device: DeviceKind::Cpu,
            precision: Precision::Fp32,
        }
    }

    /// The same engine and device at `precision`.
    pub fn at(self, precision: Precision) -> Self {
        Compute { precision, ..self }
    }
}
