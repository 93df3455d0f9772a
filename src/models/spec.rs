use serde::{Deserialize, Serialize};

use super::SpecError;

/// One layer of a sequential network.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum LayerSpec {
    Conv {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    },
    /// Transposed convolution (learned up-sampling), PyTorch's `ConvTranspose2d`.
    ConvTranspose {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    BatchNorm {
        channels: usize,
    },
    Relu,
    LeakyRelu {
        slope: f64,
    },
    /// 2x2 max-pooling with stride 2.
    MaxPool2,
    Dropout {
        prob: f64,
    },
    Flatten,
    Linear {
        inputs: usize,
        outputs: usize,
    },
    /// Keeps the current activation for a later [`LayerSpec::ConcatSkip`] (a U-Net's skip
    /// connection) or [`LayerSpec::AddSkip`] (a residual one); the activation itself passes on
    /// unchanged.
    SaveSkip,
    /// Joins the most recently saved activation (taken off the stack) behind the current one
    /// along the channels: PyTorch's `torch.cat([x, skip], dim=1)`.
    ConcatSkip,
    /// Adds the most recently saved activation (taken off the stack) to the current one, of
    /// the same shape: a residual connection, PyTorch's `x + skip`.
    AddSkip,
    /// The mean of each channel's plane, `[c, h, w]` to `[c, 1, 1]`: PyTorch's
    /// `AdaptiveAvgPool2d(1)`.
    GlobalAvgPool,
}

/// An architecture: a name, the input shape (channels, height, width) and its layers in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub name: String,
    pub input: [usize; 3],
    pub layers: Vec<LayerSpec>,
}

/// A row of the architecture table: layer, output shape (without the batch), parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSummary {
    pub layer: String,
    pub output_shape: Vec<usize>,
    pub params: usize,
}

impl LayerSpec {
    pub fn conv(in_channels: usize, out_channels: usize, kernel: usize, padding: usize) -> Self {
        LayerSpec::Conv {
            in_channels,
            out_channels,
            kernel,
            stride: 1,
            padding,
            bias: true,
        }
    }

    /// A 3x3 convolution (padding 1) with `stride`, batch norm and ReLU.
    pub fn conv_bn_relu(in_channels: usize, out_channels: usize, stride: usize) -> [Self; 3] {
        [
            LayerSpec::Conv {
                in_channels,
                out_channels,
                kernel: 3,
                stride,
                padding: 1,
                bias: false,
            },
            LayerSpec::BatchNorm {
                channels: out_channels,
            },
            LayerSpec::Relu,
        ]
    }

    /// A 4x4 stride-2 transposed convolution (doubles the size), batch norm and ReLU.
    pub fn up_bn_relu(in_channels: usize, out_channels: usize) -> [Self; 3] {
        [
            LayerSpec::ConvTranspose {
                in_channels,
                out_channels,
                kernel: 4,
                stride: 2,
                padding: 1,
            },
            LayerSpec::BatchNorm {
                channels: out_channels,
            },
            LayerSpec::Relu,
        ]
    }

    /// A convolution followed by batch norm: the bias would be cancelled by the norm's mean.
    pub fn conv_bn(in_channels: usize, out_channels: usize) -> [Self; 2] {
        [
            LayerSpec::Conv {
                in_channels,
                out_channels,
                kernel: 3,
                stride: 1,
                padding: 1,
                bias: false,
            },
            LayerSpec::BatchNorm {
                channels: out_channels,
            },
        ]
    }

    fn describe(&self) -> String {
        match self {
            // Both kinds of convolution by the same words, but for their names.
            LayerSpec::Conv {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                ..
            }
            | LayerSpec::ConvTranspose {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
            } => {
                let name = match self {
                    LayerSpec::Conv { .. } => "Conv",
                    _ => "ConvTranspose",
                };
                format!(
                    "{name} {kernel}x{kernel} {in_channels}->{out_channels} (stride {stride}, pad {padding})"
                )
            }
            LayerSpec::BatchNorm { channels } => format!("BatchNorm ({channels})"),
            LayerSpec::Relu => "ReLU".into(),
            LayerSpec::LeakyRelu { slope } => format!("LeakyReLU ({slope})"),
            LayerSpec::MaxPool2 => "MaxPool 2x2".into(),
            LayerSpec::Dropout { prob } => format!("Dropout ({prob})"),
            LayerSpec::Flatten => "Flatten".into(),
            LayerSpec::Linear { inputs, outputs } => format!("Linear {inputs}->{outputs}"),
            LayerSpec::SaveSkip => "Save skip".into(),
            LayerSpec::ConcatSkip => "Concat skip".into(),
            LayerSpec::AddSkip => "Add skip".into(),
            LayerSpec::GlobalAvgPool => "Global average pool".into(),
        }
    }

    fn params(&self) -> usize {
        match *self {
            LayerSpec::Conv {
                in_channels,
                out_channels,
                kernel,
                bias,
                ..
            } => in_channels * out_channels * kernel * kernel + if bias { out_channels } else { 0 },
            LayerSpec::ConvTranspose {
                in_channels,
                out_channels,
                kernel,
                ..
            } => in_channels * out_channels * kernel * kernel + out_channels,
            LayerSpec::BatchNorm { channels } => 2 * channels,
            LayerSpec::Linear { inputs, outputs } => inputs * outputs + outputs,
            _ => 0,
        }
    }

    /// The output shape for `input`, or why the layer cannot take it; `saved` holds the shapes
    /// of the activations kept for skip connections.
    fn output_shape(
        &self,
        input: &[usize],
        saved: &mut Vec<Vec<usize>>,
    ) -> Result<Vec<usize>, String> {
        match (*self, input) {
            (LayerSpec::SaveSkip, _) => {
                saved.push(input.to_vec());
                Ok(input.to_vec())
            }
            (LayerSpec::ConcatSkip, &[c, h, w]) => match saved.pop() {
                Some(skip) if skip[1..] == [h, w] => Ok(vec![c + skip[0], h, w]),
                Some(skip) => Err(format!(
                    "Concat skip cannot join {skip:?} to input of shape {input:?}"
                )),
                None => Err("Concat skip has no saved activation".into()),
            },
            (LayerSpec::AddSkip, _) => match saved.pop() {
                Some(skip) if skip == input => Ok(input.to_vec()),
                Some(skip) => Err(format!(
                    "Add skip cannot add {skip:?} to input of shape {input:?}"
                )),
                None => Err("Add skip has no saved activation".into()),
            },
            (LayerSpec::GlobalAvgPool, &[c, _, _]) => Ok(vec![c, 1, 1]),
            (
                LayerSpec::Conv {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    ..
                },
                &[c, h, w],
            ) if c == in_channels && h + 2 * padding >= kernel && w + 2 * padding >= kernel => {
                Ok(vec![
                    out_channels,
                    (h + 2 * padding - kernel) / stride + 1,
                    (w + 2 * padding - kernel) / stride + 1,
                ])
            }
            (
                LayerSpec::ConvTranspose {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    padding,
                },
                &[c, h, w],
            ) if c == in_channels && (h - 1) * stride + kernel > 2 * padding => Ok(vec![
                out_channels,
                (h - 1) * stride + kernel - 2 * padding,
                (w - 1) * stride + kernel - 2 * padding,
            ]),
            (LayerSpec::BatchNorm { channels }, [c, ..]) if *c == channels => Ok(input.to_vec()),
            (LayerSpec::MaxPool2, &[c, h, w]) if h >= 2 && w >= 2 => Ok(vec![c, h / 2, w / 2]),
            (LayerSpec::Flatten, _) => Ok(vec![input.iter().product()]),
            (LayerSpec::Linear { inputs, outputs }, &[n]) if n == inputs => Ok(vec![outputs]),
            (LayerSpec::Relu | LayerSpec::LeakyRelu { .. } | LayerSpec::Dropout { .. }, _) => {
                Ok(input.to_vec())
            }
            _ => Err(format!(
                "{} cannot take input of shape {input:?}",
                self.describe()
            )),
        }
    }
}

impl ModelSpec {
    /// One row per layer with its output shape and parameter count; an error names the first
    /// layer whose input does not fit.
    pub fn summary(&self) -> Result<Vec<LayerSummary>, SpecError> {
        let mut shape = self.input.to_vec();
        let mut saved = Vec::new();
        let mut rows = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            shape = layer
                .output_shape(&shape, &mut saved)
                .map_err(|reason| SpecError {
                    model: self.name.clone(),
                    layer: i,
                    reason,
                })?;
            rows.push(LayerSummary {
                layer: layer.describe(),
                output_shape: shape.clone(),
                params: layer.params(),
            });
        }
        Ok(rows)
    }

    pub fn num_params(&self) -> usize {
        self.layers.iter().map(LayerSpec::params).sum()
    }

    /// The first convolution's input and output channels and kernel size, for filter pictures.
    pub fn first_conv(&self) -> Option<(usize, usize, usize)> {
        self.layers.iter().find_map(|l| match *l {
            LayerSpec::Conv {
                in_channels,
                out_channels,
                kernel,
                ..
            } => Some((in_channels, out_channels, kernel)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layers: Vec<LayerSpec>) -> ModelSpec {
        ModelSpec {
            name: "t".into(),
            input: [3, 8, 8],
            layers,
        }
    }

    #[test]
    fn a_skip_adds_its_channels_where_the_sizes_agree() {
        let mut layers = vec![LayerSpec::SaveSkip];
        layers.extend(LayerSpec::conv_bn_relu(3, 4, 1));
        layers.push(LayerSpec::ConcatSkip);
        let rows = spec(layers).summary().unwrap();
        assert_eq!(rows.last().unwrap().output_shape, vec![7, 8, 8]);
    }

    #[test]
    fn a_residual_adds_a_skip_of_its_own_shape_and_pooling_keeps_the_channels() {
        let mut layers = vec![LayerSpec::SaveSkip];
        layers.extend(LayerSpec::conv_bn_relu(3, 3, 1));
        layers.extend([
            LayerSpec::AddSkip,
            LayerSpec::GlobalAvgPool,
            LayerSpec::Flatten,
        ]);
        let rows = spec(layers).summary().unwrap();
        assert_eq!(rows[4].output_shape, vec![3, 8, 8]);
        assert_eq!(rows.last().unwrap().output_shape, vec![3]);
        let mut wider = vec![LayerSpec::SaveSkip];
        wider.extend(LayerSpec::conv_bn_relu(3, 4, 1));
        wider.push(LayerSpec::AddSkip);
        let err = spec(wider).summary().unwrap_err().to_string();
        assert!(err.contains("Add skip cannot add [3, 8, 8]"), "{err}");
    }

    #[test]
    fn a_skip_of_another_size_or_none_saved_is_refused() {
        let mut layers = vec![LayerSpec::SaveSkip];
        layers.extend(LayerSpec::conv_bn_relu(3, 4, 2));
        layers.push(LayerSpec::ConcatSkip);
        let err = spec(layers).summary().unwrap_err().to_string();
        assert!(
            err.contains("layer 4") && err.contains("[3, 8, 8]"),
            "{err}"
        );
        let err = spec(vec![LayerSpec::ConcatSkip])
            .summary()
            .unwrap_err()
            .to_string();
        assert!(err.contains("no saved activation"), "{err}");
    }
}
