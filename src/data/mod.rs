//! Data: reading data sets from disk into memory once (as `u8`), the label-map codec, the seeded
//! split, augmentation, normalisation and batching into `f32` batches.

#[cfg(feature = "full")]
pub mod augment;
#[cfg(feature = "full")]
pub mod batch;
pub mod classes;
mod error;
pub mod facade;
#[cfg(feature = "full")]
pub mod fashion_mnist;
pub mod idx;
#[cfg(feature = "full")]
pub mod image_folder;
pub mod label_map;
pub mod locate;
#[cfg(feature = "full")]
pub mod mask_folder;
mod normalization;
#[cfg(feature = "full")]
pub mod sets;
#[cfg(feature = "full")]
pub mod split;

pub use classes::ClassSpec;
pub use error::DataError;
pub use normalization::Normalization;

/// A task's samples as the splits see them: counted, and copied out by index.
pub trait Samples: Clone {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A new set holding the samples at `indices`, in that order.
    fn select(&self, indices: &[usize]) -> Self;
    /// The bytes that make the samples what they are (images and labels), to tell whether two
    /// copies are the same.
    fn contents(&self) -> [&[u8]; 2];
}

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

/// Label value of a pixel that counts in neither the loss nor the metrics (VOC's and
/// Cityscapes' convention).
pub const IGNORE_LABEL: u8 = 255;

/// Square RGB photos with a class index per pixel ([`IGNORE_LABEL`] where unlabelled), kept as
/// decoded bytes.
#[derive(Clone, Debug)]
pub struct SegmentedImages {
    /// Each photo's name (its file stem).
    pub names: Vec<String>,
    /// Every photo and label map is `side x side`.
    pub side: usize,
    /// `count * 3 * side * side` bytes, image-major, channel-major (CHW).
    pub images: Vec<u8>,
    /// `count * side * side` class indices.
    pub labels: Vec<u8>,
}

impl SegmentedImages {
    pub fn empty(side: usize) -> Self {
        SegmentedImages {
            names: Vec::new(),
            side,
            images: Vec::new(),
            labels: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn plane(&self) -> usize {
        self.side * self.side
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = 3 * self.plane();
        &self.images[i * n..(i + 1) * n]
    }

    pub fn label(&self, i: usize) -> &[u8] {
        let n = self.plane();
        &self.labels[i * n..(i + 1) * n]
    }

    /// Appends one photo (CHW RGB) and its label map.
    pub fn push(&mut self, name: String, photo: &[u8], label: &[u8]) {
        debug_assert_eq!((photo.len(), label.len()), (3 * self.plane(), self.plane()));
        self.names.push(name);
        self.images.extend_from_slice(photo);
        self.labels.extend_from_slice(label);
    }

    /// A new set holding the photos at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> SegmentedImages {
        let mut out = SegmentedImages::empty(self.side);
        for &i in indices {
            out.push(self.names[i].clone(), self.image(i), self.label(i));
        }
        out
    }
}

impl Samples for LabelledImages {
    fn len(&self) -> usize {
        LabelledImages::len(self)
    }

    fn select(&self, indices: &[usize]) -> Self {
        LabelledImages::select(self, indices)
    }

    fn contents(&self) -> [&[u8]; 2] {
        [&self.pixels, &self.labels]
    }
}

impl Samples for SegmentedImages {
    fn len(&self) -> usize {
        SegmentedImages::len(self)
    }

    fn select(&self, indices: &[usize]) -> Self {
        SegmentedImages::select(self, indices)
    }

    fn contents(&self) -> [&[u8]; 2] {
        [&self.images, &self.labels]
    }
}
