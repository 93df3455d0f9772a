//! Models: every architecture is described once as a [`ModelSpec`] (a list of layers), from which
//! the burn network ([`Net`]) is built; shapes and parameter counts come from the same list.

mod classifier;
mod net;
mod segmenter;
mod spec;

pub use classifier::ClassifierKind;
pub use net::{Layer, Net};
pub use segmenter::SegmenterKind;
pub use spec::{LayerSpec, LayerSummary, ModelSpec};
