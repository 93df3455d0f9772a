//! Data: reading data sets from disk into memory once (as `u8`), the label-map codec, the seeded
//! split, augmentation, normalisation and batching into `f32` batches.

#[cfg(feature = "full")]
pub mod augment;
#[cfg(feature = "full")]
pub mod batch;
mod error;
pub mod facade;
#[cfg(feature = "full")]
pub mod fashion_mnist;
pub mod idx;
pub mod label_map;
pub mod locate;
mod normalization;
#[cfg(feature = "full")]
pub mod split;
#[cfg(feature = "full")]
pub mod synthetic;

pub use error::DataError;
pub use normalization::Normalization;

/// Grey or colour images of one size with one class label each, kept as decoded bytes.
#[derive(Clone, Debug)]
pub struct LabelledImages {
    /// `count * channels * height * width` bytes, image-major, channel-major (CHW).
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl LabelledImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[index * n..(index + 1) * n]
    }

    /// A new set holding the images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> LabelledImages {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        LabelledImages {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }
}
