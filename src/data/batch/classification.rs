//! Classification batches: images (optionally cropped and flipped, then randomly erased)
//! normalised to `f32`, one label each.

use rand::Rng;

use crate::data::LabelledImages;
use crate::data::Normalization;
use crate::data::augment::{CropFlip, RandomErasing};

/// A batch: `[batch, channels, height, width]` values and labels.
#[derive(Clone, Debug)]
pub struct ClassificationBatch {
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
    pub shape: [usize; 4],
}

#[derive(Clone, Copy, Debug)]
pub struct ClassificationBatcher {
    pub normalization: Normalization,
    pub augment: Option<CropFlip>,
    pub erasing: Option<RandomErasing>,
}

impl ClassificationBatcher {
    pub fn batch(
        &self,
        set: &LabelledImages,
        indices: &[usize],
        rng: &mut impl Rng,
    ) -> ClassificationBatch {
        let n = set.image_len();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut scratch = vec![0u8; n];
        for &i in indices {
            let source = match (&self.augment, &self.erasing) {
                (None, None) => set.image(i),
                (augment, erasing) => {
                    let (c, h, w) = (set.channels, set.height, set.width);
                    match augment {
                        Some(aug) => aug.apply(set.image(i), &mut scratch, c, h, w, rng),
                        None => scratch.copy_from_slice(set.image(i)),
                    }
                    if let Some(erasing) = erasing {
                        erasing.apply(&mut scratch, c, h, w, rng);
                    }
                    &scratch[..]
                }
            };
            self.normalization
                .extend(&mut images, source, set.channels, set.height * set.width);
        }
        ClassificationBatch {
            images,
            labels: indices.iter().map(|&i| set.labels[i]).collect(),
            shape: [indices.len(), set.channels, set.height, set.width],
        }
    }
}
