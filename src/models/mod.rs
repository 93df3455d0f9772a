//! Models: every architecture is described once as a [`ModelSpec`] (a list of layers), from which
//! the burn network ([`Net`]) and the CPU engine's ([`crate::cpu::CpuNet`]) are built; shapes and
//! parameter counts come from the same list. [`Model`] is either, chosen at run time.

mod classifier;
mod net;
mod runtime;
mod segmenter;
mod spec;

pub use classifier::ClassifierKind;
pub use net::{Layer, Net};
pub use runtime::{Model, burn_from_cpu, burn_tensors, cpu_from_burn, init_cpu};
pub use segmenter::SegmenterKind;
pub use spec::{LayerSpec, LayerSummary, ModelSpec};
