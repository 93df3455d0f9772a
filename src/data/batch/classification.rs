//! Classification batches: images (optionally cropped and flipped, then randomly erased)
//! normalised to `f32`, one label each.

use rand::Rng;

use crate::data::LabelledImages;
use crate::data::Normalization;
use crate::data::augment::{CropFlip, EpochFlips, FlipOrder, RandomErasing};

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
    /// Which images an epoch flips, and the run's seed that draws them.
    pub flips: FlipOrder,
    pub seed: u64,
}

impl ClassificationBatcher {
    /// A batcher that normalises and nothing else (evaluation's).
    pub fn plain(normalization: Normalization) -> Self {
        ClassificationBatcher {
            normalization,
            augment: None,
            erasing: None,
            flips: FlipOrder::Random,
            seed: 0,
        }
    }

    /// The images at `indices`, augmented as this batcher says for
    /// epoch `epoch` (1 for the first).
    pub fn batch(
        &self,
        set: &LabelledImages,
        indices: &[usize],
        epoch: usize,
        rng: &mut impl Rng,
    ) -> ClassificationBatch {
        let n = set.image_len();
        let mut images = Vec::with_capacity(indices.len() * n);
        let flips = EpochFlips {
            order: self.flips,
            seed: self.seed,
            epoch,
        };
        let mut scratch = vec![0u8; n];
        for &i in indices {
            let source = match (&self.augment, &self.erasing) {
                (None, None) => set.image(i),
                (augment, erasing) => {
                    let (c, h, w) = (set.channels, set.height, set.width);
                    match augment {
                        Some(aug) => {
                            let fixed = flips.fixed(i);
                            aug.apply(set.image(i), &mut scratch, c, h, w, fixed, rng)
                        }
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

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// With alternating flips and no crop, each image of a batch comes mirrored in one of two
    /// consecutive epochs and as it is in the other, whatever the RNG.
    #[test]
    fn alternating_flips_mirror_each_image_in_one_of_two_epochs() {
        let (n, h, w) = (64, 2, 3);
        let images: Vec<u8> = (0..n * h * w).map(|v| (v % 251) as u8).collect();
        let set = LabelledImages {
            pixels: images,
            labels: vec![0; n],
            channels: 1,
            height: h,
            width: w,
        };
        let batcher = ClassificationBatcher {
            augment: Some(CropFlip { pad: 0, flip: true }),
            flips: FlipOrder::Alternating,
            seed: 9,
            ..ClassificationBatcher::plain(Normalization {
                mean: [0.0; 3],
                std: [1.0; 3],
            })
        };
        let indices: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let odd = batcher.batch(&set, &indices, 3, &mut rng).images;
        let even = batcher.batch(&set, &indices, 4, &mut rng).images;
        let mut flipped = 0;
        for i in 0..n {
            let original: Vec<f32> = set.image(i).iter().map(|&v| v as f32 / 255.0).collect();
            let mirrored: Vec<f32> = original
                .chunks(w)
                .flat_map(|row| row.iter().rev().copied())
                .collect();
            let (a, b) = (&odd[i * h * w..][..h * w], &even[i * h * w..][..h * w]);
            assert!(
                (a == original && b == mirrored) || (a == mirrored && b == original),
                "image {i}"
            );
            flipped += usize::from(a == mirrored);
        }
        assert!((16..=48).contains(&flipped), "{flipped} of {n} flipped");
    }
}
