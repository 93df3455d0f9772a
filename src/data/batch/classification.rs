//! Classification batches: images (optionally cropped and flipped) normalised to `f32`, one
//! label each.

use rand::Rng;

use crate::data::LabelledImages;
use crate::data::Normalization;
use crate::data::augment::CropFlip;

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
