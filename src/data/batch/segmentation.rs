//! Segmentation batches: photo and label map augmented together (flip, random scale and crop),
//! photos normalised to `f32`, labels kept as class indices.

use rand::Rng;

use crate::data::Normalization;
use crate::data::SegmentedImages;
use crate::data::augment::{EpochFlips, FlipOrder, FlipScaleCrop};

/// Photos `[batch, 3, side, side]` and labels `[batch, side, side]`: the set's side, or the
/// augmentation's crop.
#[derive(Clone, Debug)]
pub struct SegmentationBatch {
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
    pub count: usize,
    pub side: usize,
}

#[derive(Clone, Copy, Debug)]
pub struct SegmentationBatcher {
    pub normalization: Normalization,
    pub augment: Option<FlipScaleCrop>,
    /// Which photos an epoch flips, and the run's seed that draws them.
    pub flips: FlipOrder,
    pub seed: u64,
}

impl SegmentationBatcher {
    /// A batcher that normalises and nothing else (evaluation's).
    pub fn plain(normalization: Normalization) -> Self {
        SegmentationBatcher {
            normalization,
            augment: None,
            flips: FlipOrder::Random,
            seed: 0,
        }
    }

    /// The photos and labels at `indices`, augmented as this batcher says for epoch
    /// `epoch` (1 for the first).
    pub fn batch(
        &self,
        set: &SegmentedImages,
        indices: &[usize],
        epoch: usize,
        rng: &mut impl Rng,
    ) -> SegmentationBatch {
        let side = self.augment.map_or(set.side, |aug| aug.out_side(set.side));
        let plane = side * side;
        let flips = EpochFlips {
            order: self.flips,
            seed: self.seed,
            epoch,
        };
        let mut images = Vec::with_capacity(indices.len() * 3 * plane);
        let mut labels = Vec::with_capacity(indices.len() * plane);
        let (mut photo_buf, mut label_buf) = (vec![0u8; 3 * plane], vec![0u8; plane]);
        for &i in indices {
            let (photo, label) = match &self.augment {
                Some(aug) => {
                    aug.apply(
                        set.side,
                        set.image(i),
                        set.label(i),
                        &mut photo_buf,
                        &mut label_buf,
                        flips.fixed(i),
                        rng,
                    );
                    (&photo_buf[..], &label_buf[..])
                }
                None => (set.image(i), set.label(i)),
            };
            self.normalization.extend(&mut images, photo, 3, plane);
            labels.extend_from_slice(label);
        }
        SegmentationBatch {
            images,
            labels,
            count: indices.len(),
            side,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A batcher with a crop hands out crops of that side (photos and labels); without
    /// augmentation, whole photos.
    #[test]
    fn batches_are_the_crops_side() {
        let side = 16;
        let mut set = SegmentedImages::empty(side);
        for i in 0..3u8 {
            set.push(
                format!("p{i}"),
                &vec![i * 40; 3 * side * side],
                &vec![i; side * side],
            );
        }
        let crop = FlipScaleCrop {
            flip: true,
            max_scale: 1.5,
            color_jitter: 0.1,
            crop: Some(8),
        };
        let plain = SegmentationBatcher::plain(Normalization::FACADE);
        let cropped = SegmentationBatcher {
            augment: Some(crop),
            ..plain
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (batcher, want) in [(cropped, 8), (plain, side)] {
            let batch = batcher.batch(&set, &[2, 0], 1, &mut rng);
            assert_eq!((batch.side, batch.count), (want, 2));
            assert_eq!(batch.images.len(), 2 * 3 * want * want);
            assert_eq!(batch.labels.len(), 2 * want * want);
            assert!(batch.labels[..want * want].iter().all(|&l| l == 2));
            assert!(batch.labels[want * want..].iter().all(|&l| l == 0));
        }
    }
}
