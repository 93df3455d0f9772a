//! A model ready for inference on the engine chosen at run time.

use super::burn::{self, BurnModel};
use super::cpu::{Activation, CpuNet};
use serde::{Deserialize, Serialize};

use super::{Compute, EngineError, EngineKind};
use crate::models::ModelSpec;

/// Test-time augmentation: the views of each image whose outputs are averaged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tta {
    /// The image as it is.
    #[default]
    None,
    /// The image and its mirror image (flipped left to right); a segmenter's output for the
    /// mirror is flipped back before averaging.
    Flip,
}

impl Tta {
    pub const ALL: [Tta; 2] = [Tta::None, Tta::Flip];

    pub fn is_none(&self) -> bool {
        *self == Tta::None
    }

    pub fn name(self) -> &'static str {
        match self {
            Tta::None => "none",
            Tta::Flip => "flip",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            Tta::None => "The image as it is",
            Tta::Flip => "Average the outputs for the image and its mirror image",
        }
    }
}

/// A model ready for inference (batch norm on its running statistics, no dropout).
#[derive(Clone, Debug)]
pub enum Model {
    Burn(BurnModel),
    Cpu(CpuNet),
}

impl Model {
    /// The network of `spec` with the parameters of a record (as checkpoints store them), on
    /// `compute`'s engine and device.
    pub fn from_record(
        spec: &ModelSpec,
        record: &[u8],
        compute: &Compute,
    ) -> Result<Self, EngineError> {
        Ok(match compute.engine {
            EngineKind::Burn => Model::Burn(BurnModel::from_record(spec, record, compute.device)?),
            EngineKind::Cpu => Model::Cpu(burn::cpu_from_record(spec, record)?),
        })
    }

    pub fn engine(&self) -> EngineKind {
        match self {
            Model::Burn(_) => EngineKind::Burn,
            Model::Cpu(_) => EngineKind::Cpu,
        }
    }

    /// The network's output for `images` `[n, c, h, w]`: logits `[n, classes]` as
    /// `[n, classes, 1, 1]`, or per-pixel logits `[n, classes, h, w]`.
    pub fn forward(&self, images: Vec<f32>, shape: [usize; 4]) -> (Vec<f32>, [usize; 4]) {
        match self {
            Model::Burn(model) => model.forward(images, shape),
            Model::Cpu(net) => {
                let out = net.forward(Activation::new(images, shape));
                let shape = out.shape;
                (
                    std::sync::Arc::try_unwrap(out.data).unwrap_or_else(|shared| (*shared).clone()),
                    shape,
                )
            }
        }
    }

    /// [`forward`](Self::forward) averaged over the views of `tta`. The outputs (logits) are
    /// averaged, as `ttach`'s default `mean` merge does.
    pub fn forward_with(
        &self,
        images: Vec<f32>,
        shape: [usize; 4],
        tta: Tta,
    ) -> (Vec<f32>, [usize; 4]) {
        match tta {
            Tta::None => self.forward(images, shape),
            Tta::Flip => {
                let mirrored = mirror_rows(&images, shape[3]);
                let (mut out, out_shape) = self.forward(images, shape);
                let (back, _) = self.forward(mirrored, shape);
                let back = mirror_rows(&back, out_shape[3]);
                for (o, b) in out.iter_mut().zip(&back) {
                    *o = 0.5 * (*o + b);
                }
                (out, out_shape)
            }
        }
    }

    /// The first convolution's weights `[out, in, k, k]` as a flat vector.
    pub fn first_conv_weights(&self) -> Option<Vec<f32>> {
        match self {
            Model::Burn(model) => model.net.first_conv_weights(),
            Model::Cpu(net) => net.first_conv_weights(),
        }
    }
}

/// Each row of `width` values reversed: the mirror image of every plane of an `[.., w]` tensor.
fn mirror_rows(values: &[f32], width: usize) -> Vec<f32> {
    let mut out = values.to_vec();
    out.chunks_mut(width.max(1)).for_each(<[f32]>::reverse);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ClassifierKind, SegmenterKind};

    fn cpu_model(spec: &ModelSpec) -> Model {
        Model::Cpu(burn::init_cpu(spec, 7))
    }

    #[test]
    fn mirroring_reverses_each_row() {
        assert_eq!(
            mirror_rows(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3),
            [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]
        );
    }

    /// A segmenter averaged over flips gives the same map for an image and its mirror image,
    /// mirrored; a classifier the same logits.
    #[test]
    fn flip_averaging_is_mirror_symmetric() {
        let check = |model: Model, shape: [usize; 4]| {
            let len = shape.iter().product();
            let image: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
                .collect();
            let (plain, _) = model.forward(image.clone(), shape);
            let (out, out_shape) = model.forward_with(image.clone(), shape, Tta::Flip);
            let (mirror_out, _) =
                model.forward_with(mirror_rows(&image, shape[3]), shape, Tta::Flip);
            let back = mirror_rows(&mirror_out, out_shape[3]);
            for (a, b) in out.iter().zip(&back) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
            assert!(plain.iter().zip(&out).any(|(a, b)| (a - b).abs() > 1e-6));
        };
        check(cpu_model(&ClassifierKind::Base.spec()), [2, 1, 28, 28]);
        check(
            cpu_model(&SegmenterKind::Fcn.for_data(32, 5)),
            [1, 3, 32, 32],
        );
    }
}
