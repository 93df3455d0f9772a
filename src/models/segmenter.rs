//! Mini Facade segmenters: fully convolutional, `[N, 3, 256, 256]` photos to
//! `[N, 5, 256, 256]` per-pixel class logits.

use serde::{Deserialize, Serialize};

use super::{LayerSpec, ModelSpec};
use crate::data::facade::{NUM_CLASSES, SIDE};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmenterKind {
    /// The write-up's network: no max-pooling; strided 3x3 convs down (3->32->64->128->256),
    /// three 4x4 stride-2 transposed convs up (256->128->64->32), each with batch norm + ReLU,
    /// then conv 3x3 32->32 and conv 1x1 32->5 (these last two without).
    Fcn,
}

impl SegmenterKind {
    pub fn spec(self) -> ModelSpec {
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
                layers.push(LayerSpec::conv(32, NUM_CLASSES, 1, 0));
            }
        }
        ModelSpec {
            name: self.name().into(),
            input: [3, SIDE, SIDE],
            layers,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SegmenterKind::Fcn => "fcn",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Net;
    use burn::prelude::*;

    #[test]
    fn fcn_keeps_the_input_size_and_gives_five_maps() {
        let spec = SegmenterKind::Fcn.spec();
        let rows = spec.summary().unwrap();
        assert_eq!(
            rows.last().unwrap().output_shape,
            vec![NUM_CLASSES, SIDE, SIDE]
        );
        let device = Device::flex();
        let net = Net::init(&spec, &device).valid();
        let out = net.forward_segment(Tensor::zeros([2, 3, SIDE, SIDE], &device));
        assert_eq!(out.dims(), [2, NUM_CLASSES, SIDE, SIDE]);
    }
}
