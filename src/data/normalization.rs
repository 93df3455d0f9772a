//! The pixel scaling both engines see: `(x / 255 - mean[c]) / std[c]` per channel, with each
//! preset's constants or the statistics of a folder's training split.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Per-channel `(x / 255 - mean) / std` (a grey image uses channel 0).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    #[serde(with = "per_channel")]
    pub mean: [f32; 3],
    #[serde(with = "per_channel")]
    pub std: [f32; 3],
}

impl Normalization {
    /// Mean and standard deviation of the Fashion-MNIST training pixels.
    pub const FASHION_MNIST: Normalization = Normalization::same(0.2860, 0.3530);

    /// Mini Facade's photos are scaled to about zero mean and unit spread (the same for every
    /// channel).
    pub const FACADE: Normalization = Normalization::same(0.5, 0.25);

    pub const fn same(mean: f32, std: f32) -> Self {
        Normalization {
            mean: [mean; 3],
            std: [std; 3],
        }
    }

    /// The mean and standard deviation of each channel of `images` (each CHW, `channels`
    /// planes of `plane` bytes), as fractions of 255; a flat channel gets a spread of 1.
    pub fn of_images<'a>(
        images: impl Iterator<Item = &'a [u8]>,
        channels: usize,
        plane: usize,
    ) -> Self {
        let mut sums = [(0u64, 0u64); 3];
        let mut count = 0usize;
        for image in images {
            count += plane;
            for (c, values) in image.chunks(plane).enumerate() {
                let (sum, squares) = &mut sums[c];
                for &v in values {
                    *sum += v as u64;
                    *squares += (v as u64) * (v as u64);
                }
            }
        }
        let count = count.max(1) as f64;
        let mut out = Normalization::same(0.0, 1.0);
        for c in 0..3 {
            // A grey set's statistics stand for every channel (the files say one number).
            let (sum, squares) = sums[c.min(channels - 1)];
            let mean = sum as f64 / count / 255.0;
            let var = (squares as f64 / count / (255.0 * 255.0) - mean * mean).max(0.0);
            out.mean[c] = mean as f32;
            out.std[c] = if var > 1e-12 { var.sqrt() as f32 } else { 1.0 };
        }
        out
    }

    pub fn apply(&self, channel: usize, byte: u8) -> f32 {
        (byte as f32 / 255.0 - self.mean[channel]) / self.std[channel]
    }

    /// Appends `images` (each CHW: `channels` planes of `plane` bytes) normalised to `out`.
    pub fn extend(&self, out: &mut Vec<f32>, images: &[u8], channels: usize, plane: usize) {
        for (i, values) in images.chunks(plane).enumerate() {
            let c = i % channels;
            out.extend(values.iter().map(|&b| self.apply(c, b)));
        }
    }
}

/// Three equal values are written as one number (as every `config.json` before per-channel
/// statistics did, and as the presets still are); one number or a list of one reads as all
/// three.
mod per_channel {
    use super::*;

    pub fn serialize<S: Serializer>(values: &[f32; 3], s: S) -> Result<S::Ok, S::Error> {
        if values.iter().all(|&v| v == values[0]) {
            values[0].serialize(s)
        } else {
            values.serialize(s)
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(f32),
        Many(Vec<f32>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[f32; 3], D::Error> {
        match OneOrMany::deserialize(d)? {
            OneOrMany::One(v) => Ok([v; 3]),
            OneOrMany::Many(v) if v.len() == 1 => Ok([v[0]; 3]),
            OneOrMany::Many(v) if v.len() == 3 => Ok([v[0], v[1], v[2]]),
            OneOrMany::Many(v) => Err(serde::de::Error::custom(format!(
                "expected one number or three (one per channel), found {}",
                v.len()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_written_as_before_and_channels_apart_as_a_list() {
        let text = serde_json::to_string(&Normalization::FASHION_MNIST).unwrap();
        assert_eq!(text, r#"{"mean":0.286,"std":0.353}"#);
        let colour = Normalization {
            mean: [0.1, 0.2, 0.3],
            std: [1.0, 1.0, 0.5],
        };
        let text = serde_json::to_string(&colour).unwrap();
        assert_eq!(text, r#"{"mean":[0.1,0.2,0.3],"std":[1.0,1.0,0.5]}"#);
        assert_eq!(
            serde_json::from_str::<Normalization>(&text).unwrap(),
            colour
        );
        assert!(serde_json::from_str::<Normalization>(r#"{"mean":[1,2],"std":1}"#).is_err());
    }

    #[test]
    fn statistics_of_two_channels_by_hand() {
        // Channel 0: 0 and 255 (mean 0.5, std 0.5); channel 1: 51 twice (mean 0.2, flat).
        let images = [0u8, 255, 51, 51];
        let n = Normalization::of_images(images.chunks(4), 2, 2);
        assert_eq!((n.mean[0], n.std[0]), (0.5, 0.5));
        assert!((n.mean[1] - 0.2).abs() < 1e-6 && n.std[1] == 1.0);
        assert_eq!(n.apply(0, 255), 1.0);
    }
}
