//! The domain's enums as command-line values: each names and describes itself in its own
//! module; here they become `clap` values, so that clap stays in the CLI.

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::bench::Measure;
use crate::data::augment::FlipOrder;
use crate::distributed::Launch;
use crate::engine::{DeviceKind, EngineKind, Precision, Tta};
use crate::export::ExportFormat;
use crate::models::{ClassifierKind, ModelKind, SegmenterKind};
use crate::run::config::ClassWeighting;
use crate::run::schedule::Schedule;

/// Implements [`ValueEnum`] from a type's `ALL`, `name()` and, where it has one, `about()`.
macro_rules! value_enum {
    ($type:ty) => {
        impl ValueEnum for $type {
            fn value_variants<'a>() -> &'a [Self] {
                &<$type>::ALL
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.name()).help(self.about()))
            }
        }
    };
    ($type:ty, model) => {
        impl ValueEnum for $type {
            fn value_variants<'a>() -> &'a [Self] {
                <$type as ModelKind>::ALL
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.name()).help(self.about()))
            }
        }
    };
    ($type:ty, without_help) => {
        impl ValueEnum for $type {
            fn value_variants<'a>() -> &'a [Self] {
                &<$type>::ALL
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.name()))
            }
        }
    };
}

value_enum!(DeviceKind);
value_enum!(EngineKind);
value_enum!(Tta);
value_enum!(Precision);
value_enum!(ClassifierKind, model);
value_enum!(SegmenterKind, model);
value_enum!(Schedule);
value_enum!(ClassWeighting);
value_enum!(FlipOrder);
value_enum!(ExportFormat);
value_enum!(Measure, without_help);
value_enum!(Launch);
