//! Segmenters: fully convolutional, `[N, 3, side, side]` photos to `[N, classes, side, side]`
//! per-pixel class logits (Mini Facade: 256 pixels, five classes).

use serde::{Deserialize, Serialize};

use super::{LayerSpec, ModelKind, ModelSpec};
use crate::data::facade::{NUM_CLASSES, SIDE};

/// The segmenters convlab knows (see [`SegmenterKind::about`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmenterKind {
    Fcn,
    Unet,
}

/// Channels of the U-Net's stages, from 128x128 down to 8x8.
const UNET_CHANNELS: [usize; 5] = [16, 32, 64, 128, 256];

impl SegmenterKind {
    /// The network for Mini Facade (256x256 photos, five classes).
    pub fn spec(self) -> ModelSpec {
        self.for_data(SIDE, NUM_CLASSES)
    }

    /// The network for `side x side` photos and `classes` classes; `side` must be a multiple
    /// of [`SegmenterKind::side_multiple`].
    pub fn for_data(self, side: usize, classes: usize) -> ModelSpec {
        let mut layers = Vec::new();
        match self {
            SegmenterKind::Fcn => {
                layers.extend(LayerSpec::conv_bn_relu(3, 32, 1));
                for (i, o) in [(32, 64), (64, 128), (128, 256)] {
                    layers.extend(LayerSpec::conv_bn_relu(i, o, 2));
                }
                for (i, o) in [(256, 128), (128, 64), (64, 32)] {
                    layers.extend(LayerSpec::up_bn_relu(i, o));
                }
                layers.push(LayerSpec::conv(32, 32, 3, 1));
                layers.push(LayerSpec::conv(32, classes, 1, 0));
            }
            SegmenterKind::Unet => {
                let mut previous = 3;
                for (stage, &channels) in UNET_CHANNELS.iter().enumerate() {
                    layers.extend(LayerSpec::conv_bn_relu(previous, channels, 2));
                    layers.extend(LayerSpec::conv_bn_relu(channels, channels, 1));
                    if stage + 1 < UNET_CHANNELS.len() {
                        layers.push(LayerSpec::SaveSkip);
                    }
                    previous = channels;
                }
                for pair in UNET_CHANNELS.windows(2).rev() {
                    let (shallow, deep) = (pair[0], pair[1]);
                    layers.extend(LayerSpec::up_bn_relu(deep, shallow));
                    layers.push(LayerSpec::ConcatSkip);
                    layers.extend(LayerSpec::conv_bn_relu(2 * shallow, shallow, 1));
                }
                let top = UNET_CHANNELS[0];
                layers.extend(LayerSpec::up_bn_relu(top, top));
                layers.push(LayerSpec::conv(top, classes, 1, 0));
            }
        }
        ModelSpec {
            name: self.name().into(),
            input: [3, side, side],
            layers,
        }
    }

    /// The photo side must be a multiple of this: each stride-2 stage halves it on the way
    /// down and each transposed conv doubles it on the way up, so the skips and the output
    /// meet the input's size only then.
    pub fn side_multiple(self) -> usize {
        match self {
            SegmenterKind::Fcn => 8,
            SegmenterKind::Unet => 1 << UNET_CHANNELS.len(),
        }
    }
}

impl ModelKind for SegmenterKind {
    const DEFAULT: SegmenterKind = SegmenterKind::Fcn;
    const ALL: &'static [SegmenterKind] = &[SegmenterKind::Fcn, SegmenterKind::Unet];

    fn name(self) -> &'static str {
        match self {
            SegmenterKind::Fcn => "fcn",
            SegmenterKind::Unet => "unet",
        }
    }

    /// What the network is, for help texts.
    fn about(self) -> &'static str {
        match self {
            SegmenterKind::Fcn => {
                "The write-up's network: no max-pooling; strided 3x3 convs down (3->32->64->128->256), three 4x4 stride-2 transposed convs up (256->128->64->32), each with batch norm + ReLU, then conv 3x3 32->32 and conv 1x1 32->5 (these last two without)"
            }
            SegmenterKind::Unet => {
                "convlab's own: a U-Net that goes down at once. Five strided stages (16, 32, 64, 128, 256 channels at 128, 64, 32, 16 and 8 pixels), each two 3x3 conv + batch norm + ReLU; back up with 4x4 stride-2 transposed convs, each joined to the encoder's maps of that size (skip connections) and mixed by a 3x3 conv + batch norm + ReLU; a last transposed conv to 256x256 and a 1x1 conv to the five classes. Only two cheap layers run at full resolution, so it costs about a quarter of `fcn`'s multiply-adds"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segmenters_keep_the_input_size_and_give_five_maps() {
        for kind in SegmenterKind::ALL {
            let rows = kind.spec().summary().unwrap();
            assert_eq!(
                rows.last().unwrap().output_shape,
                vec![NUM_CLASSES, SIDE, SIDE]
            );
        }
    }

    #[test]
    fn segmenters_follow_the_side_and_classes_they_are_built_for() {
        for kind in SegmenterKind::ALL {
            let side = 2 * kind.side_multiple();
            let rows = kind.for_data(side, 3).summary().unwrap();
            assert_eq!(rows.last().unwrap().output_shape, vec![3, side, side]);
        }
    }

    #[test]
    fn unet_joins_each_encoder_stage_to_the_decoder_stage_of_its_size() {
        let rows = SegmenterKind::Unet.spec().summary().unwrap();
        let joined: Vec<&Vec<usize>> = rows
            .iter()
            .filter(|r| r.layer == "Concat skip")
            .map(|r| &r.output_shape)
            .collect();
        assert_eq!(
            joined,
            [
                &vec![256, 16, 16],
                &vec![128, 32, 32],
                &vec![64, 64, 64],
                &vec![32, 128, 128]
            ]
        );
    }
}
