//! Models: every architecture is described once as a [`ModelSpec`] (a list of layers), from which
//! each engine builds its network (`engine::burn::Net`, `engine::cpu::CpuNet`); shapes and
//! parameter counts come from the same list. No engine is named here.

mod classifier;
mod error;
mod segmenter;
mod spec;

pub use classifier::ClassifierKind;
pub use error::SpecError;
pub use segmenter::SegmenterKind;
pub use spec::{LayerSpec, LayerSummary, ModelSpec};
