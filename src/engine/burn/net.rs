//! The burn network built from a [`ModelSpec`].

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Identity, LeakyRelu, LeakyReluConfig,
    Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::prelude::*;

use crate::models::{LayerSpec, ModelSpec};

#[derive(Module, Debug)]
pub enum Layer {
    Conv(Conv2d),
    ConvTranspose(ConvTranspose2d),
    BatchNorm(BatchNorm),
    Relu(Relu),
    LeakyRelu(LeakyRelu),
    MaxPool(MaxPool2d),
    Dropout(Dropout),
    Flatten(Identity),
    Linear(Linear),
    SaveSkip(Identity),
    ConcatSkip(Identity),
    AddSkip(Identity),
    GlobalAvgPool(Identity),
}

/// A sequential network. Parameters are named `layers.<index>.<weight|bias|...>`.
#[derive(Module, Debug)]
pub struct Net {
    pub layers: Vec<Layer>,
}

/// Activations change rank at `Flatten`.
enum Activation {
    Maps(Tensor<4>),
    Features(Tensor<2>),
}

impl Layer {
    fn init(spec: &LayerSpec, device: &Device) -> Layer {
        match *spec {
            LayerSpec::Conv {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                bias,
            } => Layer::Conv(
                Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
                    .with_stride([stride, stride])
                    .with_padding(PaddingConfig2d::Explicit(
                        padding, padding, padding, padding,
                    ))
                    .with_bias(bias)
                    .init(device),
            ),
            LayerSpec::ConvTranspose {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
            } => Layer::ConvTranspose(
                ConvTranspose2dConfig::new([in_channels, out_channels], [kernel, kernel])
                    .with_stride([stride, stride])
                    .with_padding([padding, padding])
                    .init(device),
            ),
            LayerSpec::BatchNorm { channels } => {
                Layer::BatchNorm(BatchNormConfig::new(channels).init(device))
            }
            LayerSpec::Relu => Layer::Relu(Relu::new()),
            LayerSpec::LeakyRelu { slope } => {
                Layer::LeakyRelu(LeakyReluConfig::new().with_negative_slope(slope).init())
            }
            LayerSpec::MaxPool2 => Layer::MaxPool(MaxPool2dConfig::new([2, 2]).init()),
            LayerSpec::Dropout { prob } => Layer::Dropout(DropoutConfig::new(prob).init()),
            LayerSpec::Flatten => Layer::Flatten(Identity),
            LayerSpec::Linear { inputs, outputs } => {
                Layer::Linear(LinearConfig::new(inputs, outputs).init(device))
            }
            LayerSpec::SaveSkip => Layer::SaveSkip(Identity),
            LayerSpec::ConcatSkip => Layer::ConcatSkip(Identity),
            LayerSpec::AddSkip => Layer::AddSkip(Identity),
            LayerSpec::GlobalAvgPool => Layer::GlobalAvgPool(Identity),
        }
    }

    fn forward(&self, x: Activation, saved: &mut Vec<Tensor<4>>) -> Activation {
        use Activation::{Features, Maps};
        match (self, x) {
            (Layer::SaveSkip(_), Maps(x)) => {
                saved.push(x.clone());
                Maps(x)
            }
            (Layer::ConcatSkip(_), Maps(x)) => {
                let skip = saved.pop().expect("ModelSpec::summary pairs every concat");
                Maps(Tensor::cat(vec![x, skip], 1))
            }
            (Layer::AddSkip(_), Maps(x)) => {
                let skip = saved.pop().expect("ModelSpec::summary pairs every add");
                Maps(x + skip)
            }
            (Layer::GlobalAvgPool(_), Maps(x)) => Maps(x.mean_dim(2).mean_dim(3)),
            (Layer::Conv(l), Maps(x)) => Maps(l.forward(x)),
            (Layer::ConvTranspose(l), Maps(x)) => Maps(l.forward(x)),
            (Layer::BatchNorm(l), Maps(x)) => Maps(l.forward(x)),
            (Layer::BatchNorm(l), Features(x)) => Features(l.forward(x)),
            (Layer::Relu(l), Maps(x)) => Maps(l.forward(x)),
            (Layer::Relu(l), Features(x)) => Features(l.forward(x)),
            (Layer::LeakyRelu(l), Maps(x)) => Maps(l.forward(x)),
            (Layer::LeakyRelu(l), Features(x)) => Features(l.forward(x)),
            (Layer::MaxPool(l), Maps(x)) => Maps(l.forward(x)),
            (Layer::Dropout(l), Maps(x)) => Maps(l.forward(x)),
            (Layer::Dropout(l), Features(x)) => Features(l.forward(x)),
            (Layer::Flatten(_), Maps(x)) => Features(x.flatten(1, 3)),
            (Layer::Flatten(_), Features(x)) => Features(x),
            (Layer::Linear(l), Features(x)) => Features(l.forward(x)),
            (layer, _) => unreachable!("ModelSpec::summary rejects {layer:?} at this position"),
        }
    }
}

impl Net {
    /// Builds the network; `spec` must have passed [`ModelSpec::summary`].
    pub fn init(spec: &ModelSpec, device: &Device) -> Net {
        Net {
            layers: spec.layers.iter().map(|l| Layer::init(l, device)).collect(),
        }
    }

    fn forward(&self, images: Tensor<4>) -> Activation {
        let mut saved = Vec::new();
        self.layers
            .iter()
            .fold(Activation::Maps(images), |x, layer| {
                layer.forward(x, &mut saved)
            })
    }

    /// The output as maps: per-pixel logits, or logits `[batch, classes]` as `[batch, classes, 1, 1]`.
    pub fn forward_maps(&self, images: Tensor<4>) -> Tensor<4> {
        match self.forward(images) {
            Activation::Maps(maps) => maps,
            Activation::Features(logits) => {
                let [n, f] = logits.dims();
                logits.reshape([n, f, 1, 1])
            }
        }
    }

    /// The first convolution's weights `[out, in, k, k]` as a flat vector.
    pub fn first_conv_weights(&self) -> Option<Vec<f32>> {
        self.layers.iter().find_map(|l| match l {
            Layer::Conv(conv) => conv.weight.val().into_data().try_to_vec::<f32>().ok(),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ClassifierKind, ModelKind, SegmenterKind};

    #[test]
    fn segmenters_map_photos_to_five_maps_of_their_size() {
        let device = Device::flex();
        for kind in SegmenterKind::ALL {
            let spec = kind.spec();
            let [_, side, _] = spec.input;
            let net = Net::init(&spec, &device).valid();
            let out = net.forward_maps(Tensor::zeros([2, 3, side, side], &device));
            assert_eq!(out.dims(), [2, 5, side, side], "{}", spec.name);
        }
    }

    #[test]
    fn classifiers_map_images_to_ten_logits() {
        let device = Device::flex();
        for kind in ClassifierKind::ALL {
            let spec = kind.spec();
            let net = Net::init(&spec, &device);
            // burn also counts batch norm's running mean and variance; the spec counts what trains.
            let running_stats: usize = spec
                .layers
                .iter()
                .map(|l| match l {
                    LayerSpec::BatchNorm { channels } => 2 * channels,
                    _ => 0,
                })
                .sum();
            assert_eq!(
                net.num_params(),
                spec.num_params() + running_stats,
                "{}",
                spec.name
            );
            for batch in [1, 3] {
                let logits = net
                    .valid()
                    .forward_maps(Tensor::zeros([batch, 1, 28, 28], &device));
                assert_eq!(logits.dims(), [batch, 10, 1, 1], "{}", spec.name);
            }
        }
    }
}
