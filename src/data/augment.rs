//! Training-time augmentation on decoded `u8` images (CHW), seeded by the caller's RNG.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Random translation (a crop of the image zero-padded by `pad` pixels) and horizontal flip:
/// torchvision's `RandomCrop(size, padding=pad)` + `RandomHorizontalFlip()`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CropFlip {
    pub pad: usize,
    pub flip: bool,
}

impl CropFlip {
    /// Writes the augmented `image` into `out` (same length).
    pub fn apply(
        &self,
        image: &[u8],
        out: &mut [u8],
        channels: usize,
        height: usize,
        width: usize,
        rng: &mut impl Rng,
    ) {
        let pad = self.pad as i32;
        let dy = if pad > 0 {
            rng.random_range(-pad..=pad)
        } else {
            0
        };
        let dx = if pad > 0 {
            rng.random_range(-pad..=pad)
        } else {
            0
        };
        let flip = self.flip && rng.random_bool(0.5);
        let (h, w) = (height as i32, width as i32);
        for c in 0..channels {
            let plane = &image[c * height * width..(c + 1) * height * width];
            let dst = &mut out[c * height * width..(c + 1) * height * width];
            for y in 0..h {
                for x in 0..w {
                    let sx0 = if flip { w - 1 - x } else { x };
                    let (sy, sx) = (y + dy, sx0 + dx);
                    let inside = (0..h).contains(&sy) && (0..w).contains(&sx);
                    dst[(y * w + x) as usize] = if inside {
                        plane[(sy * w + sx) as usize]
                    } else {
                        0
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn no_pad_no_flip_is_identity_and_flip_mirrors() {
        let image: Vec<u8> = (0..12).collect();
        let mut out = vec![0; 12];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        CropFlip {
            pad: 0,
            flip: false,
        }
        .apply(&image, &mut out, 1, 3, 4, &mut rng);
        assert_eq!(out, image);
        // With flips on, over many draws both the image and its mirror appear, nothing else.
        let mirror: Vec<u8> = vec![3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8];
        let (mut saw_id, mut saw_mirror) = (false, false);
        for _ in 0..50 {
            CropFlip { pad: 0, flip: true }.apply(&image, &mut out, 1, 3, 4, &mut rng);
            saw_id |= out == image;
            saw_mirror |= out == mirror;
            assert!(out == image || out == mirror);
        }
        assert!(saw_id && saw_mirror);
    }

    #[test]
    fn crop_shifts_content_and_keeps_pixel_values() {
        let image: Vec<u8> = (1..=16).collect();
        let mut out = vec![0; 16];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            CropFlip {
                pad: 1,
                flip: false,
            }
            .apply(&image, &mut out, 1, 4, 4, &mut rng);
            assert!(out.iter().all(|&v| v == 0 || image.contains(&v)));
            // A shift of at most one pixel keeps the 2x2 centre's values in the image.
            assert!(out.iter().filter(|&&v| v != 0).count() >= 9);
        }
    }
}
