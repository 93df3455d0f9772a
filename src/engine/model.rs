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
    /// Each of `Flip`'s two views as it is and moved by one pixel left, right, up and down (the
    /// uncovered row or column zero, as training's padded crops have it): ten views. A
    /// segmenter's output is moved and flipped back (its lost edge repeated).
    #[serde(rename = "flip-shift")]
    FlipShift,
}

/// The one-pixel moves of [`Tta::FlipShift`], `(dx, dy)`, the unmoved view first.
const SHIFTS: [(isize, isize); 5] = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)];

impl Tta {
    pub const ALL: [Tta; 3] = [Tta::None, Tta::Flip, Tta::FlipShift];

    pub fn is_none(&self) -> bool {
        *self == Tta::None
    }

    pub fn name(self) -> &'static str {
        match self {
            Tta::None => "none",
            Tta::Flip => "flip",
            Tta::FlipShift => "flip-shift",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            Tta::None => "The image as it is",
            Tta::Flip => "Average the outputs for the image and its mirror image",
            Tta::FlipShift => {
                "Average the outputs for the image and its mirror image, each as it is and moved by one pixel in the four directions (ten views)"
            }
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
            EngineKind::Cpu => {
                Model::Cpu(burn::cpu_from_record(spec, record)?.with_precision(compute.precision))
            }
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
            Tta::Flip => self.average_views(&images, shape, &[(false, 0, 0), (true, 0, 0)]),
            Tta::FlipShift => {
                let views: Vec<_> = [false, true]
                    .into_iter()
                    .flat_map(|flip| SHIFTS.map(|(dx, dy)| (flip, dx, dy)))
                    .collect();
                self.average_views(&images, shape, &views)
            }
        }
    }

    /// The mean of the outputs for `views` of `images`, each `(mirrored, dx, dy)`: the image
    /// mirrored, then moved; a spatial output is moved back and mirrored back before it is
    /// added (a classifier's `[n, classes, 1, 1]` needs neither).
    fn average_views(
        &self,
        images: &[f32],
        shape: [usize; 4],
        views: &[(bool, isize, isize)],
    ) -> (Vec<f32>, [usize; 4]) {
        let mut sum: Option<(Vec<f32>, [usize; 4])> = None;
        for &(mirrored, dx, dy) in views {
            let mut view = images.to_vec();
            if mirrored {
                view = mirror_rows(&view, shape[3]);
            }
            if (dx, dy) != (0, 0) {
                view = moved(&view, shape, dx, dy, Edge::Zero);
            }
            let (mut out, out_shape) = self.forward(view, shape);
            if out_shape[2] > 1 || out_shape[3] > 1 {
                if (dx, dy) != (0, 0) {
                    out = moved(&out, out_shape, -dx, -dy, Edge::Repeat);
                }
                if mirrored {
                    out = mirror_rows(&out, out_shape[3]);
                }
            }
            match sum.as_mut() {
                None => sum = Some((out, out_shape)),
                Some((total, _)) => total.iter_mut().zip(&out).for_each(|(t, o)| *t += o),
            }
        }
        let (mut total, out_shape) = sum.expect("at least one view");
        let scale = 1.0 / views.len() as f32;
        total.iter_mut().for_each(|t| *t *= scale);
        (total, out_shape)
    }

    /// The first convolution's weights `[out, in, k, k]` as a flat vector.
    pub fn first_conv_weights(&self) -> Option<Vec<f32>> {
        match self {
            Model::Burn(model) => model.net.first_conv_weights(),
            Model::Cpu(net) => net.first_conv_weights(),
        }
    }
}

/// What fills the row or column a move uncovers.
#[derive(Clone, Copy)]
enum Edge {
    Zero,
    /// The nearest value: the edge repeated.
    Repeat,
}

/// Every plane of `values [n, c, h, w]` moved by `dx` columns right and `dy` rows down.
fn moved(values: &[f32], shape: [usize; 4], dx: isize, dy: isize, edge: Edge) -> Vec<f32> {
    let [_, _, h, w] = shape;
    let mut out = vec![0.0; values.len()];
    let source = |i: usize, d: isize, len: usize| {
        let from = i as isize - d;
        match edge {
            Edge::Zero => (0..len as isize).contains(&from).then_some(from as usize),
            Edge::Repeat => Some(from.clamp(0, len as isize - 1) as usize),
        }
    };
    for (plane, to) in values.chunks(h * w).zip(out.chunks_mut(h * w)) {
        for y in 0..h {
            let Some(sy) = source(y, dy, h) else { continue };
            for x in 0..w {
                if let Some(sx) = source(x, dx, w) {
                    to[y * w + x] = plane[sy * w + sx];
                }
            }
        }
    }
    out
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

    /// One plane of 2 x 3 moved one column right (zero fill) and one row up (edge repeated).
    #[test]
    fn moving_fills_the_uncovered_edge() {
        let plane = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let shape = [1, 1, 2, 3];
        assert_eq!(
            moved(&plane, shape, 1, 0, Edge::Zero),
            [0.0, 1.0, 2.0, 0.0, 4.0, 5.0]
        );
        assert_eq!(
            moved(&plane, shape, 0, -1, Edge::Repeat),
            [4.0, 5.0, 6.0, 4.0, 5.0, 6.0]
        );
        assert_eq!(
            moved(&plane, shape, 0, 1, Edge::Zero),
            [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]
        );
    }

    /// `flip-shift` on a classifier: the mean of the ten views' logits, each computed here
    /// by hand (mirror, then zero-filled move).
    #[test]
    fn flip_shift_averages_ten_views() {
        let model = cpu_model(&ClassifierKind::Base.spec());
        let shape = [2, 1, 28, 28];
        let image: Vec<f32> = (0..2 * 28 * 28)
            .map(|i| ((i * 53 % 97) as f32 / 48.0) - 1.0)
            .collect();
        let (got, _) = model.forward_with(image.clone(), shape, Tta::FlipShift);
        let mut want = vec![0.0f32; got.len()];
        for mirrored in [false, true] {
            let base = if mirrored {
                mirror_rows(&image, 28)
            } else {
                image.clone()
            };
            for (dx, dy) in SHIFTS {
                let (out, _) = model.forward(moved(&base, shape, dx, dy, Edge::Zero), shape);
                want.iter_mut().zip(&out).for_each(|(w, o)| *w += o / 10.0);
            }
        }
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        let (flip, _) = model.forward_with(image, shape, Tta::Flip);
        assert!(flip.iter().zip(&got).any(|(a, b)| (a - b).abs() > 1e-4));
    }

    #[test]
    fn mirroring_reverses_each_row() {
        assert_eq!(
            mirror_rows(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3),
            [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]
        );
    }

    /// A segmenter averaged over flips (and moves, which come in mirror pairs) gives the same
    /// map for an image and its mirror image, mirrored; a classifier the same logits.
    #[test]
    fn flip_averaging_is_mirror_symmetric() {
        let check = |model: Model, shape: [usize; 4], tta: Tta| {
            let len = shape.iter().product();
            let image: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
                .collect();
            let (plain, _) = model.forward(image.clone(), shape);
            let (out, out_shape) = model.forward_with(image.clone(), shape, tta);
            let (mirror_out, _) = model.forward_with(mirror_rows(&image, shape[3]), shape, tta);
            let back = mirror_rows(&mirror_out, out_shape[3]);
            for (a, b) in out.iter().zip(&back) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
            assert!(plain.iter().zip(&out).any(|(a, b)| (a - b).abs() > 1e-6));
        };
        for tta in [Tta::Flip, Tta::FlipShift] {
            check(cpu_model(&ClassifierKind::Base.spec()), [2, 1, 28, 28], tta);
            check(
                cpu_model(&SegmenterKind::Fcn.for_data(32, 5)),
                [1, 3, 32, 32],
                tta,
            );
        }
    }
}
