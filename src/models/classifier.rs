//! Image classifiers, built for the data: input channels, size and class count are parameters
//! (Fashion-MNIST's 1x28x28 and ten classes are one case).

use serde::{Deserialize, Serialize};

use super::{LayerSpec, ModelKind, ModelSpec};
use crate::data::fashion_mnist::{NUM_CLASSES, SIDE};

/// The classifiers convlab knows (see [`ClassifierKind::about`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassifierKind {
    Base,
    Wide,
    Own,
    Res,
    Wres,
}

/// The layers of `base` and `wide`, which differ only in widths and activation: two 3x3
/// convolutions (`first`, then `second` channels), each with `activation` and a 2x2 max-pool,
/// a dense layer of `hidden` with `activation`, and the classes; `pooled` is the positions
/// left after the two poolings.
fn two_convs_then_dense(
    channels: usize,
    [first, second, hidden]: [usize; 3],
    activation: LayerSpec,
    pooled: usize,
    classes: usize,
) -> Vec<LayerSpec> {
    use LayerSpec::*;
    vec![
        LayerSpec::conv(channels, first, 3, 1),
        activation,
        MaxPool2,
        LayerSpec::conv(first, second, 3, 1),
        activation,
        MaxPool2,
        Flatten,
        Linear {
            inputs: second * pooled,
            outputs: hidden,
        },
        activation,
        Linear {
            inputs: hidden,
            outputs: classes,
        },
    ]
}

/// The stage widths of `res` and of `wres`, its twice-as-wide sibling.
const RES_WIDTHS: [usize; 3] = [32, 64, 128];
const WRES_WIDTHS: [usize; 3] = [64, 128, 256];

/// The layers of `res` and `wres`: two 3x3 conv + batch norm + ReLU of `first` channels and a
/// 2x2 max-pool; a residual block (two such convs) and a conv to `second`; a max-pool, a
/// residual block and a conv to `third`; global average pooling and one linear layer.
fn residual_stages(
    channels: usize,
    [first, second, third]: [usize; 3],
    classes: usize,
) -> Vec<LayerSpec> {
    use LayerSpec::*;
    let residual = |channels: usize| {
        let mut block = vec![SaveSkip];
        for _ in 0..2 {
            block.extend(LayerSpec::conv_bn_relu(channels, channels, 1));
        }
        block.push(AddSkip);
        block
    };
    let mut layers = Vec::new();
    layers.extend(LayerSpec::conv_bn_relu(channels, first, 1));
    layers.extend(LayerSpec::conv_bn_relu(first, first, 1));
    layers.push(MaxPool2);
    layers.extend(residual(first));
    layers.extend(LayerSpec::conv_bn_relu(first, second, 1));
    layers.push(MaxPool2);
    layers.extend(residual(second));
    layers.extend(LayerSpec::conv_bn_relu(second, third, 1));
    layers.extend([
        GlobalAvgPool,
        Flatten,
        Linear {
            inputs: third,
            outputs: classes,
        },
    ]);
    layers
}

impl ClassifierKind {
    /// The network for Fashion-MNIST (1x28x28, ten classes).
    pub fn spec(self) -> ModelSpec {
        self.for_data([1, SIDE, SIDE], NUM_CLASSES)
    }

    /// The network for images of `input` (channels, height, width) and `classes` classes.
    /// Every classifier halves the size twice before its dense layers.
    pub fn for_data(self, input: [usize; 3], classes: usize) -> ModelSpec {
        use LayerSpec::*;
        let [channels, height, width] = input;
        let pooled = (height / 4) * (width / 4);
        let layers = match self {
            ClassifierKind::Base => {
                two_convs_then_dense(channels, [32, 32, 128], Relu, pooled, classes)
            }
            ClassifierKind::Wide => two_convs_then_dense(
                channels,
                [64, 128, 256],
                LeakyRelu { slope: 0.01 },
                pooled,
                classes,
            ),
            ClassifierKind::Own => {
                let mut layers = Vec::new();
                for (i, o) in [(channels, 32), (32, 32)] {
                    layers.extend(LayerSpec::conv_bn(i, o));
                    layers.push(Relu);
                }
                layers.push(MaxPool2);
                for (i, o) in [(32, 64), (64, 64)] {
                    layers.extend(LayerSpec::conv_bn(i, o));
                    layers.push(Relu);
                }
                layers.push(MaxPool2);
                layers.extend([
                    Dropout { prob: 0.2 },
                    Flatten,
                    Linear {
                        inputs: 64 * pooled,
                        outputs: 256,
                    },
                    Relu,
                    Dropout { prob: 0.4 },
                    Linear {
                        inputs: 256,
                        outputs: classes,
                    },
                ]);
                layers
            }
            ClassifierKind::Res => residual_stages(channels, RES_WIDTHS, classes),
            ClassifierKind::Wres => residual_stages(channels, WRES_WIDTHS, classes),
        };
        ModelSpec {
            name: self.name().into(),
            input,
            layers,
        }
    }

    /// The smallest side the network takes (two 2x2 poolings).
    pub const MIN_SIDE: usize = 4;
}

impl ModelKind for ClassifierKind {
    const DEFAULT: ClassifierKind = ClassifierKind::Base;
    const ALL: &'static [ClassifierKind] = &[
        ClassifierKind::Base,
        ClassifierKind::Wide,
        ClassifierKind::Own,
        ClassifierKind::Res,
        ClassifierKind::Wres,
    ];

    fn name(self) -> &'static str {
        match self {
            ClassifierKind::Base => "base",
            ClassifierKind::Wide => "wide",
            ClassifierKind::Own => "own",
            ClassifierKind::Res => "res",
            ClassifierKind::Wres => "wres",
        }
    }

    /// What the network is, for help texts.
    fn about(self) -> &'static str {
        match self {
            ClassifierKind::Base => {
                "The classic network: 2 conv (32, 32) + ReLU + max-pool, FC 1568->128->10"
            }
            ClassifierKind::Wide => {
                "The write-up's improved network: 64/128 channels, Leaky ReLU, FC 6272->256->10"
            }
            ClassifierKind::Own => {
                "convlab's own: VGG-style pairs of 3x3 conv + batch norm, dropout (trained with augmentation, label smoothing and a cosine schedule)"
            }
            ClassifierKind::Res => {
                "a small ResNet-9-style network: 3x3 conv + batch norm + ReLU stages of 32, 64 and 128 channels, each of the first two followed by a residual block of two such convs, global average pooling and one linear layer"
            }
            ClassifierKind::Wres => {
                "`res` twice as wide (64, 128 and 256 channels): four times its multiply-adds, for budgets that afford fewer, larger epochs"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_classifier_spec_is_consistent_and_ends_in_ten_logits() {
        for kind in ClassifierKind::ALL {
            let rows = kind.spec().summary().unwrap();
            assert_eq!(rows.last().unwrap().output_shape, vec![NUM_CLASSES]);
        }
        // Hand count for base: 320 + 9248 + 200832 + 1290.
        assert_eq!(ClassifierKind::Base.spec().num_params(), 211_690);
    }

    #[test]
    fn classifiers_follow_the_data_they_are_built_for() {
        for kind in ClassifierKind::ALL {
            let spec = kind.for_data([3, 32, 36], 4);
            let rows = spec.summary().unwrap();
            assert_eq!(rows.last().unwrap().output_shape, vec![4]);
            assert_eq!(spec.first_conv().unwrap().0, 3);
        }
        // base at 3x32x36, 4 classes: 896 + 9248 + (32*8*9*128 + 128) + (128*4 + 4).
        assert_eq!(
            ClassifierKind::Base.for_data([3, 32, 36], 4).num_params(),
            896 + 9248 + 295_040 + 516
        );
    }
}
