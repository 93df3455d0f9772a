//! Turning decoded images into normalised `f32` batches, which either engine takes as they are.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::LabelledImages;
use super::augment::CropFlip;

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

    pub fn apply(&self, byte: u8) -> f32 {
        (byte as f32 / 255.0 - self.mean) / self.std
    }
}

/// A batch: `[batch, channels, height, width]` values and labels.
#[derive(Clone, Debug)]
pub struct ImageBatch {
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
    pub shape: [usize; 4],
}

#[derive(Clone, Copy, Debug)]
pub struct ImageBatcher {
    pub normalization: Normalization,
    pub augment: Option<CropFlip>,
}

impl ImageBatcher {
    pub fn batch(&self, set: &LabelledImages, indices: &[usize], rng: &mut impl Rng) -> ImageBatch {
        let n = set.image_len();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut scratch = vec![0u8; n];
        for &i in indices {
            let source = match &self.augment {
                Some(aug) => {
                    aug.apply(
                        set.image(i),
                        &mut scratch,
                        set.channels,
                        set.height,
                        set.width,
                        rng,
                    );
                    &scratch[..]
                }
                None => set.image(i),
            };
            images.extend(source.iter().map(|&b| self.normalization.apply(b)));
        }
        ImageBatch {
            images,
            labels: indices.iter().map(|&i| set.labels[i]).collect(),
            shape: [indices.len(), set.channels, set.height, set.width],
        }
    }
}
