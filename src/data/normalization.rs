//! The pixel scaling both engines see: `(x / 255 - mean) / std`, with each data set's constants.

use serde::{Deserialize, Serialize};

/// Per-channel `(x / 255 - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: f32,
    pub std: f32,
}

impl Normalization {
    /// Mean and standard deviation of the Fashion-MNIST training pixels.
    pub const FASHION_MNIST: Normalization = Normalization {
        mean: 0.2860,
        std: 0.3530,
    };

    /// Mini Facade's photos are scaled to about zero mean and unit spread (the same for every
    /// channel).
    pub const FACADE: Normalization = Normalization {
        mean: 0.5,
        std: 0.25,
    };

    pub fn apply(&self, byte: u8) -> f32 {
        (byte as f32 / 255.0 - self.mean) / self.std
    }
}
