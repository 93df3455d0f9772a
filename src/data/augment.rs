//! Training-time augmentation on decoded `u8` images (CHW), seeded by the caller's RNG.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which training images an epoch flips, where the augmentation flips.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlipOrder {
    /// Each image with probability 1/2 in every epoch (torchvision's `RandomHorizontalFlip`).
    #[default]
    Random,
    /// Each image with probability 1/2 in the first epoch, then the other way in every epoch
    /// after it (Jordan, 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU"): every pair
    /// of epochs shows both orientations of every image, where random flips show some one
    /// orientation four epochs running.
    Alternating,
}

impl FlipOrder {
    pub const ALL: [FlipOrder; 2] = [FlipOrder::Random, FlipOrder::Alternating];

    pub fn name(self) -> &'static str {
        match self {
            FlipOrder::Random => "random",
            FlipOrder::Alternating => "alternating",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            FlipOrder::Random => "each image flipped with probability 1/2 in every epoch",
            FlipOrder::Alternating => {
                "each image flipped with probability 1/2 in the first epoch, then the other way every epoch"
            }
        }
    }

    pub fn is_random(&self) -> bool {
        *self == FlipOrder::Random
    }
}

/// The flips of one epoch of a run: its order, the run's seed and the epoch (1 for the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochFlips {
    pub order: FlipOrder,
    pub seed: u64,
    pub epoch: usize,
}

impl EpochFlips {
    /// Whether image `image` (its index in the training set) is flipped in this epoch: `None`
    /// where the augmentation draws it ([`FlipOrder::Random`]). Alternating flips draw the
    /// first epoch's from a hash of the seed and the image (so any batch, on any rank, in a
    /// resumed run too, knows them) and turn every epoch after.
    pub fn fixed(&self, image: usize) -> Option<bool> {
        match self.order {
            FlipOrder::Random => None,
            FlipOrder::Alternating => {
                let first = mix(self.seed ^ mix(image as u64)) & 1 == 1;
                Some(first ^ self.epoch.is_multiple_of(2))
            }
        }
    }
}

/// SplitMix64's finaliser: a well-spread hash of a 64-bit value.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Random translation (a crop of the image zero-padded by `pad` pixels) and horizontal flip:
/// torchvision's `RandomCrop(size, padding=pad)` + `RandomHorizontalFlip()`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CropFlip {
    pub pad: usize,
    pub flip: bool,
}

impl CropFlip {
    /// Writes the augmented `image` into `out` (same length), flipped as `fixed` says where
    /// it says (see [`EpochFlips::fixed`]), else at random.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &self,
        image: &[u8],
        out: &mut [u8],
        channels: usize,
        height: usize,
        width: usize,
        fixed: Option<bool>,
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
        let flip = self.flip && fixed.unwrap_or_else(|| rng.random_bool(0.5));
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

/// Random erasing (Zhong et al., 2020, "Random Erasing Data Augmentation"): with probability
/// `prob`, a rectangle of `area` (a share of the image, drawn uniformly) and aspect ratio
/// (height / width, drawn log-uniformly from `min_aspect..=1 / min_aspect`) is placed at random
/// and its pixels get random values in 0..=255, every channel; a rectangle that does not fit is
/// drawn again, up to 100 times, as the paper's algorithm does. torchvision's
/// `RandomErasing(p, scale, ratio, value="random")` on the image before normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RandomErasing {
    pub prob: f64,
    pub min_area: f64,
    pub max_area: f64,
    pub min_aspect: f64,
}

impl RandomErasing {
    /// The paper's setting for a probability `prob`: area 0.02-0.4, aspect from 0.3.
    pub fn zhong(prob: f64) -> Self {
        RandomErasing {
            prob,
            min_area: 0.02,
            max_area: 0.4,
            min_aspect: 0.3,
        }
    }

    /// The rectangle to erase in a `height` x `width` image (top, left, rows, columns), if any.
    pub fn draw(
        &self,
        height: usize,
        width: usize,
        rng: &mut impl Rng,
    ) -> Option<(usize, usize, usize, usize)> {
        if !rng.random_bool(self.prob) {
            return None;
        }
        let image = (height * width) as f64;
        let log_aspect = self.min_aspect.ln();
        for _ in 0..100 {
            let area = image * rng.random_range(self.min_area..=self.max_area);
            let aspect = rng.random_range(log_aspect..=-log_aspect).exp();
            let rows = (area * aspect).sqrt().round() as usize;
            let cols = (area / aspect).sqrt().round() as usize;
            if (1..height).contains(&rows) && (1..width).contains(&cols) {
                let top = rng.random_range(0..=height - rows);
                let left = rng.random_range(0..=width - cols);
                return Some((top, left, rows, cols));
            }
        }
        None
    }

    /// Erases a drawn rectangle of `image` (CHW) in place.
    pub fn apply(
        &self,
        image: &mut [u8],
        channels: usize,
        height: usize,
        width: usize,
        rng: &mut impl Rng,
    ) {
        let Some((top, left, rows, cols)) = self.draw(height, width, rng) else {
            return;
        };
        for c in 0..channels {
            for y in top..top + rows {
                let row = (c * height + y) * width;
                image[row + left..row + left + cols]
                    .iter_mut()
                    .for_each(|v| *v = rng.random());
            }
        }
    }
}

/// Random horizontal flip and random zoom: a square window of side `out / s`, with `s` drawn
/// from `1..=max_scale` and `out` the crop's side (the photo's where there is no crop), cut at a
/// random place and resized to `out` (photo bilinear, labels nearest-neighbour), as
/// torchvision's `RandomResizedCrop` with a fixed aspect ratio (of the whole photo, or with a
/// crop of a random part of it, as segmentation training on crops does); then, when
/// `color_jitter` is above 0, torchvision's `ColorJitter(j, j, j)` on the photo.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlipScaleCrop {
    pub flip: bool,
    pub max_scale: f32,
    /// Brightness, contrast and saturation factors drawn from `1 - j..=1 + j` (0: none, as in
    /// runs written before it existed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub color_jitter: f32,
    /// The side of the square the network trains on, a random part of the zoomed photo (none:
    /// the whole photo, as in runs written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<usize>,
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

impl FlipScaleCrop {
    /// The side of the photos and labels [`FlipScaleCrop::apply`] writes for `side` x `side`
    /// ones.
    pub fn out_side(&self, side: usize) -> usize {
        self.crop.unwrap_or(side)
    }

    /// Augments one `side` x `side` photo (CHW) and its labels into `photo_out` /
    /// `label_out` ([`FlipScaleCrop::out_side`] square), flipped as `fixed` says where it says
    /// (see [`EpochFlips::fixed`]).
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &self,
        side: usize,
        photo: &[u8],
        label: &[u8],
        photo_out: &mut [u8],
        label_out: &mut [u8],
        fixed: Option<bool>,
        rng: &mut impl Rng,
    ) {
        let flip = self.flip && fixed.unwrap_or_else(|| rng.random_bool(0.5));
        let scale = if self.max_scale > 1.0 {
            rng.random_range(1.0..=self.max_scale)
        } else {
            1.0
        };
        let out = self.out_side(side);
        let window = out as f32 / scale;
        let x0 = rng.random_range(0.0..=(side as f32 - window));
        let y0 = rng.random_range(0.0..=(side as f32 - window));
        let step = window / out as f32;
        resample(
            [side, out],
            [x0, y0],
            step,
            flip,
            photo,
            label,
            photo_out,
            label_out,
        );
        if self.color_jitter > 0.0 {
            let j = self.color_jitter;
            let mut factor = || rng.random_range(1.0 - j..=1.0 + j);
            let factors = [factor(), factor(), factor()];
            jitter_colors(&mut photo_out[..3 * out * out], factors);
        }
    }
}

/// Where an output row or column samples the source: its nearest pixel, and its two bilinear
/// neighbours with the weight of the second.
#[derive(Clone, Copy)]
struct Sample {
    nearest: usize,
    low: usize,
    high: usize,
    weight: f32,
}

impl Sample {
    /// Output index `o` of a window starting at `origin` with `step` source pixels per output
    /// pixel (pixel centres aligned, as `align_corners=False`).
    fn at(o: usize, origin: f32, step: f32, side: usize) -> Self {
        let s = origin + (o as f32 + 0.5) * step - 0.5;
        let clamped = s.clamp(0.0, (side - 1) as f32);
        let low = clamped.floor() as usize;
        Sample {
            nearest: clamp_index(s.round(), side),
            low,
            high: (low + 1).min(side - 1),
            weight: clamped - low as f32,
        }
    }
}

/// The window at `origin` (x, y) with `step`, mirrored when `flip`, resampled from `side` x
/// `side` to `out` x `out`: the photo (CHW, 3 channels) bilinearly, the labels
/// nearest-neighbour. Each column's and row's sampling is worked out once, not once per pixel.
#[allow(clippy::too_many_arguments)]
fn resample(
    [side, out]: [usize; 2],
    [x0, y0]: [f32; 2],
    step: f32,
    flip: bool,
    photo: &[u8],
    label: &[u8],
    photo_out: &mut [u8],
    label_out: &mut [u8],
) {
    let (plane, out_plane) = (side * side, out * out);
    let columns: Vec<Sample> = (0..out)
        .map(|x| Sample::at(if flip { out - 1 - x } else { x }, x0, step, side))
        .collect();
    for y in 0..out {
        let row = Sample::at(y, y0, step, side);
        let out_row = y * out..(y + 1) * out;
        for (o, col) in label_out[out_row.clone()].iter_mut().zip(&columns) {
            *o = label[row.nearest * side + col.nearest];
        }
        for c in 0..3 {
            let source = &photo[c * plane..(c + 1) * plane];
            let (upper, lower) = (
                &source[row.low * side..(row.low + 1) * side],
                &source[row.high * side..(row.high + 1) * side],
            );
            let dst = &mut photo_out[c * out_plane + out_row.start..c * out_plane + out_row.end];
            for (o, col) in dst.iter_mut().zip(&columns) {
                let top = upper[col.low] as f32 * (1.0 - col.weight)
                    + upper[col.high] as f32 * col.weight;
                let bottom = lower[col.low] as f32 * (1.0 - col.weight)
                    + lower[col.high] as f32 * col.weight;
                *o = round_to_u8(top * (1.0 - row.weight) + bottom * row.weight);
            }
        }
    }
}

/// torchvision's `adjust_brightness`, `adjust_contrast` and `adjust_saturation` by
/// `[brightness, contrast, saturation]`, in that order (torchvision draws the order), on a CHW
/// RGB photo: each blends the photo with black, its mean grey level, or each pixel's own grey
/// (ITU-R 601 weights), and clamps to 0..=255.
fn jitter_colors(photo: &mut [u8], [brightness, contrast, saturation]: [f32; 3]) {
    let plane = photo.len() / 3;
    let (red, rest) = photo.split_at_mut(plane);
    let (green, blue) = rest.split_at_mut(plane);
    let bright = |v: u8| (v as f32 * brightness).min(255.0);
    let grey = |r: f32, g: f32, b: f32| 0.299 * r + 0.587 * g + 0.114 * b;
    let blend =
        |v: f32, toward: f32, factor: f32| (factor * v + (1.0 - factor) * toward).clamp(0.0, 255.0);
    // Two passes over the photo, none over a copy: the mean grey after the brightness, then
    // each pixel through all three adjustments.
    let mean = (0..plane)
        .map(|i| grey(bright(red[i]), bright(green[i]), bright(blue[i])))
        .sum::<f32>()
        / plane as f32;
    for ((r, g), b) in red.iter_mut().zip(green.iter_mut()).zip(blue.iter_mut()) {
        let [r1, g1, b1] = [*r, *g, *b].map(|v| blend(bright(v), mean, contrast));
        let pixel_grey = grey(r1, g1, b1);
        *r = round_to_u8(blend(r1, pixel_grey, saturation));
        *g = round_to_u8(blend(g1, pixel_grey, saturation));
        *b = round_to_u8(blend(b1, pixel_grey, saturation));
    }
}

/// `v.round() as u8` (halves away from zero, saturating, NaN to 0) without the call to libm's
/// `roundf` that `f32::round` makes on a baseline x86-64 build: a batch of 8 facade photos
/// took 13.5 ms to augment with the call, 11.2 ms without (on the thread that prepares the next
/// batch while both cores train). Below 2^23 the fraction `v - trunc(v)` is exact, so the
/// comparison with 0.5 rounds as `roundf` does.
fn round_to_u8(v: f32) -> u8 {
    let whole = v as u32;
    let rounded = whole.saturating_add(u32::from(v - whole as f32 >= 0.5));
    rounded.min(255) as u8
}

fn clamp_index(v: f32, side: usize) -> usize {
    v.clamp(0.0, (side - 1) as f32) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::facade::SIDE;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn random_erasing_draws_the_papers_areas_and_aspects() {
        let erasing = RandomErasing::zhong(0.5);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut erased, mut areas, mut log_aspects) = (0, Vec::new(), Vec::new());
        let draws = 20_000;
        for _ in 0..draws {
            let Some((top, left, rows, cols)) = erasing.draw(28, 28, &mut rng) else {
                continue;
            };
            erased += 1;
            assert!(top + rows <= 28 && left + cols <= 28);
            let area = (rows * cols) as f64 / 784.0;
            let aspect = rows as f64 / cols as f64;
            // Rounding each side to whole pixels moves the area and aspect a little.
            assert!((0.015..=0.42).contains(&area), "area {area}");
            assert!((0.25..=1.0 / 0.25).contains(&aspect), "aspect {aspect}");
            areas.push(area);
            log_aspects.push(aspect.ln());
        }
        let share = erased as f64 / draws as f64;
        assert!((share - 0.5).abs() < 0.02, "erased {share}");
        // Uniform areas, less those that did not fit (tall or wide large ones): a mean a little
        // under the middle of 0.02-0.4; aspects symmetric about 1 in the logarithm.
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            (0.17..0.21).contains(&mean(&areas)),
            "mean area {}",
            mean(&areas)
        );
        assert!(
            mean(&log_aspects).abs() < 0.03,
            "mean log aspect {}",
            mean(&log_aspects)
        );
        assert!(areas.iter().any(|&a| a > 0.35) && areas.iter().any(|&a| a < 0.03));
    }

    #[test]
    fn random_erasing_changes_only_its_rectangle_in_every_channel() {
        let erasing = RandomErasing::zhong(1.0);
        let (channels, height, width) = (3, 20, 24);
        let original = vec![7u8; channels * height * width];
        let mut image = original.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let drawn = erasing.draw(height, width, &mut ChaCha8Rng::seed_from_u64(5));
        erasing.apply(&mut image, channels, height, width, &mut rng);
        let (top, left, rows, cols) = drawn.expect("probability 1 erases");
        for c in 0..channels {
            for y in 0..height {
                for x in 0..width {
                    let at = (c * height + y) * width + x;
                    let inside = (top..top + rows).contains(&y) && (left..left + cols).contains(&x);
                    if !inside {
                        assert_eq!(image[at], 7, "outside the rectangle at {c},{y},{x}");
                    }
                }
            }
        }
        let changed = image.iter().zip(&original).filter(|(a, b)| a != b).count();
        // Random values: about 255 in 256 of the rectangle's pixels differ from 7.
        assert!(changed as f64 > 0.9 * (channels * rows * cols) as f64);
    }

    #[test]
    fn no_pad_no_flip_is_identity_and_flip_mirrors() {
        let image: Vec<u8> = (0..12).collect();
        let mut out = vec![0; 12];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        CropFlip {
            pad: 0,
            flip: false,
        }
        .apply(&image, &mut out, 1, 3, 4, None, &mut rng);
        assert_eq!(out, image);
        // With flips on, over many draws both the image and its mirror appear, nothing else.
        let mirror: Vec<u8> = vec![3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8];
        let (mut saw_id, mut saw_mirror) = (false, false);
        for _ in 0..50 {
            CropFlip { pad: 0, flip: true }.apply(&image, &mut out, 1, 3, 4, None, &mut rng);
            saw_id |= out == image;
            saw_mirror |= out == mirror;
            assert!(out == image || out == mirror);
        }
        assert!(saw_id && saw_mirror);
    }

    /// Alternating flips: about half the images flipped in the first epoch (a binomial draw
    /// of 2000 at p = 1/2 lies within 1000 +- 100 with probability 1 - 1e-5), each image the
    /// other way in every later epoch, another seed another half; random flips fix nothing.
    /// A fixed flip mirrors the image and a fixed no-flip keeps it, with `flip` on.
    #[test]
    fn alternating_flips_turn_every_epoch_from_a_seeded_half() {
        let at = |seed, epoch| EpochFlips {
            order: FlipOrder::Alternating,
            seed,
            epoch,
        };
        let first: Vec<bool> = (0..2000).map(|i| at(42, 1).fixed(i).unwrap()).collect();
        let flipped = first.iter().filter(|&&f| f).count();
        assert!((900..=1100).contains(&flipped), "{flipped} of 2000 flipped");
        for epoch in 2..=5 {
            for (i, &f) in first.iter().enumerate() {
                assert_eq!(at(42, epoch).fixed(i), Some(f ^ (epoch % 2 == 0)));
            }
        }
        let other: Vec<bool> = (0..2000).map(|i| at(7, 1).fixed(i).unwrap()).collect();
        let same = first.iter().zip(&other).filter(|(a, b)| a == b).count();
        assert!((900..=1100).contains(&same), "{same} of 2000 alike");
        let random = EpochFlips {
            order: FlipOrder::Random,
            ..at(42, 1)
        };
        assert_eq!(random.fixed(3), None);

        let image = [1u8, 2, 3, 4, 5, 6];
        let mut out = [0u8; 6];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let aug = CropFlip { pad: 0, flip: true };
        aug.apply(&image, &mut out, 1, 2, 3, Some(true), &mut rng);
        assert_eq!(out, [3, 2, 1, 6, 5, 4]);
        aug.apply(&image, &mut out, 1, 2, 3, Some(false), &mut rng);
        assert_eq!(out, image);
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
            .apply(&image, &mut out, 1, 4, 4, None, &mut rng);
            assert!(out.iter().all(|&v| v == 0 || image.contains(&v)));
            // A shift of at most one pixel keeps the 2x2 centre's values in the image.
            assert!(out.iter().filter(|&&v| v != 0).count() >= 9);
        }
    }

    /// A photo whose red channel encodes the label (label * 50) stays aligned with its labels
    /// under every augmentation: wherever the label is c, the red value is near c * 50.
    #[test]
    fn augmentation_keeps_photo_and_labels_aligned() {
        let plane = SIDE * SIDE;
        let label: Vec<u8> = (0..plane)
            .map(|i| (((i / SIDE) / 64 + (i % SIDE) / 96) % 5) as u8)
            .collect();
        let mut photo = vec![0u8; 3 * plane];
        for i in 0..plane {
            photo[i] = label[i] * 50;
            photo[plane + i] = 7;
        }
        for crop in [None, Some(SIDE / 2)] {
            let aug = FlipScaleCrop {
                flip: true,
                max_scale: 1.6,
                color_jitter: 0.0,
                crop,
            };
            let out = aug.out_side(SIDE);
            assert_eq!(out, crop.unwrap_or(SIDE));
            let out_plane = out * out;
            let mut rng = ChaCha8Rng::seed_from_u64(5);
            let (mut p, mut l) = (vec![0u8; 3 * out_plane], vec![0u8; out_plane]);
            let mut changed = false;
            for _ in 0..8 {
                aug.apply(SIDE, &photo, &label, &mut p, &mut l, None, &mut rng);
                changed |= l[..] != label[..out_plane];
                let mismatched = (0..out_plane)
                    .filter(|&i| (p[i] as i32 - l[i] as i32 * 50).abs() > 25)
                    .count();
                // Only pixels on class borders may blend (bilinear photo vs nearest labels).
                assert!(
                    mismatched < out_plane / 50,
                    "{mismatched} misaligned pixels"
                );
                assert!(p[out_plane..2 * out_plane].iter().all(|&g| g == 7));
            }
            assert!(changed, "augmentation must change something");
        }
    }

    /// A crop is a random part of the zoomed photo: at zoom 1 (no scaling) its labels are a
    /// window of the photo's, whole, lying inside the photo, at every place the draws can put
    /// it (the corners included), and its photo is the same window's (each value between the
    /// two source pixels the origin falls between).
    #[test]
    fn a_crop_at_zoom_one_copies_a_window_of_the_photo() {
        let side = 12;
        let plane = side * side;
        // Each label is its own position, so a copied window shows where it came from; each
        // photo row's values are its row's number, times ten.
        let label: Vec<u8> = (0..plane).map(|i| i as u8).collect();
        let photo: Vec<u8> = (0..3 * plane)
            .map(|i| ((i % plane) / side * 10) as u8)
            .collect();
        let aug = FlipScaleCrop {
            flip: false,
            max_scale: 1.0,
            color_jitter: 0.0,
            crop: Some(5),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut origins = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let (mut p, mut l) = (vec![0u8; 3 * 25], vec![0u8; 25]);
            aug.apply(side, &photo, &label, &mut p, &mut l, None, &mut rng);
            let (y0, x0) = (l[0] as usize / side, l[0] as usize % side);
            assert!(y0 + 5 <= side && x0 + 5 <= side, "window at {y0}, {x0}");
            for (i, &t) in l.iter().enumerate() {
                assert_eq!(t as usize, (y0 + i / 5) * side + x0 + i % 5, "pixel {i}");
                let row = (y0 + i / 5) as i32 * 10;
                assert!(
                    (p[i] as i32 - row).abs() <= 5,
                    "pixel {i}: {} in row {row}",
                    p[i]
                );
            }
            origins.insert((y0, x0));
        }
        let last = side - 5;
        for corner in [(0, 0), (0, last), (last, 0), (last, last)] {
            assert!(origins.contains(&corner), "{corner:?} never drawn");
        }
    }

    /// The inline rounding agrees with `f32::round` and `as u8` on every value a photo's
    /// blends can give (a sweep of 0..=256 in steps of 1/4096, the halves and their
    /// neighbours) and on what they cannot: negatives, huge values, infinities and NaN.
    #[test]
    fn round_to_u8_rounds_as_libm_does() {
        let mut values: Vec<f32> = (0..=256 * 4096).map(|i| i as f32 / 4096.0).collect();
        for k in 0..=256 {
            let half = k as f32 + 0.5;
            values.extend([half, half.next_down(), half.next_up()]);
        }
        values.extend([
            0.5f32.next_down(),
            -0.0,
            -0.4,
            -0.5,
            -3.0,
            255.49,
            255.5,
            1e9,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ]);
        for v in values {
            assert_eq!(round_to_u8(v), v.round() as u8, "{v}");
        }
    }

    /// Factors of 1 change nothing; brightness 0.5 halves each value; saturation 0 leaves
    /// every pixel grey; contrast 0 leaves the mean grey everywhere.
    #[test]
    fn color_jitter_matches_torchvision_adjustments() {
        let photo: Vec<u8> = vec![200, 100, 0, 50, 10, 250, 60, 30, 90, 20, 240, 120];
        let jittered = |factors| {
            let mut p = photo.clone();
            jitter_colors(&mut p, factors);
            p
        };
        assert_eq!(jittered([1.0, 1.0, 1.0]), photo);
        assert_eq!(
            jittered([0.5, 1.0, 1.0]),
            [100, 50, 0, 25, 5, 125, 30, 15, 45, 10, 120, 60]
        );
        let grey = jittered([1.0, 1.0, 0.0]);
        for i in 0..4 {
            assert!(
                grey[i] == grey[4 + i] && grey[4 + i] == grey[8 + i],
                "{grey:?}"
            );
        }
        // Pixel 0 is (200, 10, 90): grey 0.299 * 200 + 0.587 * 10 + 0.114 * 90 = 75.93.
        assert_eq!(grey[0], 76);
        let flat = jittered([1.0, 0.0, 1.0]);
        assert!(flat.iter().all(|&v| v == flat[0]), "{flat:?}");
    }

    /// The per-pixel loop `resample` replaced: every coordinate worked out for every pixel.
    #[allow(clippy::too_many_arguments)]
    fn resample_per_pixel(
        [side, out]: [usize; 2],
        [x0, y0]: [f32; 2],
        step: f32,
        flip: bool,
        photo: &[u8],
        label: &[u8],
        photo_out: &mut [u8],
        label_out: &mut [u8],
    ) {
        let plane = side * side;
        for y in 0..out {
            let sy = y0 + (y as f32 + 0.5) * step - 0.5;
            for x in 0..out {
                let xo = if flip { out - 1 - x } else { x };
                let sx = x0 + (xo as f32 + 0.5) * step - 0.5;
                let (ny, nx) = (clamp_index(sy.round(), side), clamp_index(sx.round(), side));
                label_out[y * out + x] = label[ny * side + nx];
                let (fy, fx) = (
                    sy.clamp(0.0, (side - 1) as f32),
                    sx.clamp(0.0, (side - 1) as f32),
                );
                let (iy, ix) = (fy.floor() as usize, fx.floor() as usize);
                let (iy1, ix1) = ((iy + 1).min(side - 1), (ix + 1).min(side - 1));
                let (wy, wx) = (fy - iy as f32, fx - ix as f32);
                for c in 0..3 {
                    let p = &photo[c * plane..(c + 1) * plane];
                    let top =
                        p[iy * side + ix] as f32 * (1.0 - wx) + p[iy * side + ix1] as f32 * wx;
                    let bottom =
                        p[iy1 * side + ix] as f32 * (1.0 - wx) + p[iy1 * side + ix1] as f32 * wx;
                    photo_out[c * out * out + y * out + x] =
                        (top * (1.0 - wy) + bottom * wy).round() as u8;
                }
            }
        }
    }

    /// Bit for bit what the per-pixel loop gave, so runs trained before stay repeatable; with
    /// crops smaller than the photo too.
    #[test]
    fn resampling_by_rows_and_columns_equals_the_per_pixel_loop() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for side in [1usize, 7, 32, 61] {
            let plane = side * side;
            let photo: Vec<u8> = (0..3 * plane).map(|_| rng.random()).collect();
            let label: Vec<u8> = (0..plane).map(|_| rng.random_range(0..5)).collect();
            for out in [side, side.div_ceil(2), side * 2 / 3] {
                if out == 0 {
                    continue;
                }
                for trial in 0..12 {
                    let scale: f32 = if trial == 0 {
                        1.0
                    } else {
                        rng.random_range(1.0..=1.7)
                    };
                    let window = out as f32 / scale;
                    let x0 = rng.random_range(0.0..=(side as f32 - window));
                    let y0 = rng.random_range(0.0..=(side as f32 - window));
                    let flip = trial % 2 == 1;
                    type Resample =
                        fn([usize; 2], [f32; 2], f32, bool, &[u8], &[u8], &mut [u8], &mut [u8]);
                    let [fast, slow] = [resample as Resample, resample_per_pixel].map(|f| {
                        let mut out_photo = vec![0u8; 3 * out * out];
                        let mut out_label = vec![0u8; out * out];
                        let step = window / out as f32;
                        let origin = [x0, y0];
                        let (photo, label) = (&photo[..], &label[..]);
                        f(
                            [side, out],
                            origin,
                            step,
                            flip,
                            photo,
                            label,
                            &mut out_photo,
                            &mut out_label,
                        );
                        (out_photo, out_label)
                    });
                    assert!(fast == slow, "side {side}, out {out}, trial {trial}");
                }
            }
        }
    }
}
