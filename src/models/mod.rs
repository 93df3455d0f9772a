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

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What every task's family of networks offers (`ClassifierKind`, `SegmenterKind`): a name
/// as the command line and `config.json` spell it, and the list of them.
pub trait ModelKind:
    Copy + Debug + PartialEq + Send + Sync + Serialize + DeserializeOwned + 'static
{
    const ALL: &'static [Self];
    /// The one `train` uses when none is named.
    const DEFAULT: Self;

    fn name(self) -> &'static str;

    /// One line on what the network is, for `--help` and the report.
    fn about(self) -> &'static str;

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.name() == name)
    }
}
