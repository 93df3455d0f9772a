//! Softmax cross-entropy per image or per pixel, its gradient, and the hits it scores.

use rayon::prelude::*;

use crate::data::IGNORE_LABEL;

/// The training loss of a task; both engines compute it from this description.
#[derive(Clone, Debug, PartialEq)]
pub enum LossSpec {
    /// Mean over images of logits `[n, classes]`, with optional label smoothing `alpha`: the
    /// target is `(1 - alpha) one_hot + alpha / classes` (PyTorch's `label_smoothing`).
    Image { smoothing: Option<f32> },
    /// Over every pixel of logits `[n, classes, h, w]` but those labelled
    /// [`IGNORE_LABEL`]; with class weights, PyTorch's weighted mean `sum(w[y] nll) / sum(w[y])`
    /// (its `ignore_index`).
    Pixel { weights: Option<Vec<f32>> },
}

/// A batch's loss, the gradient of the loss with respect to the logits, and the hits.
pub struct LossOutput {
    pub loss: f32,
    pub grad: Vec<f32>,
    /// Predictions (arg-max) equal to the target.
    pub hits: usize,
    /// The targets that count (ignored pixels left out).
    pub count: usize,
}

/// Per row of `classes` logits read with `stride` (1 per image, the plane per pixel): writes
/// `scale * (softmax - target)` into `grad` and returns (loss contribution, whether the arg-max hit).
fn row(
    logits: &[f32],
    stride: usize,
    classes: usize,
    label: usize,
    smoothing: f32,
    scale: f64,
    grad: &mut [f32],
) -> (f64, bool) {
    let at = |c: usize| logits[c * stride] as f64;
    let (mut best, mut max) = (0, f64::NEG_INFINITY);
    for c in 0..classes {
        if at(c) > max {
            (best, max) = (c, at(c));
        }
    }
    // Each class's exponential, kept in the gradient until the softmax divides it: one
    // exponential per class (`exp(log_p)` again was a second: about 2% of a `unet` step's
    // profile).
    let mut sum = 0.0;
    for c in 0..classes {
        let e = (at(c) - max).exp();
        grad[c * stride] = e as f32;
        sum += e;
    }
    let log_sum = sum.ln();
    let off_target = smoothing as f64 / classes as f64;
    let mut loss = 0.0;
    for c in 0..classes {
        let target = off_target
            + if c == label {
                1.0 - smoothing as f64
            } else {
                0.0
            };
        let log_p = at(c) - max - log_sum;
        loss -= target * log_p;
        let p = grad[c * stride] as f64 / sum;
        grad[c * stride] = (scale * (p - target)) as f32;
    }
    (loss, best == label)
}

/// The loss of `logits` (`[n, classes, plane]`, plane 1 for images) against `targets`
/// (`n * plane` class indices).
pub fn cross_entropy(
    spec: &LossSpec,
    logits: &[f32],
    n: usize,
    classes: usize,
    targets: &[u8],
) -> LossOutput {
    // A batch with every pixel ignored contributes nothing (not a division by zero).
    let total_weight = loss_weight(spec, targets).max(f64::MIN_POSITIVE);
    let sums = weighted_sum(spec, logits, n, classes, targets, total_weight);
    LossOutput {
        loss: (sums.loss / total_weight) as f32,
        grad: sums.grad,
        hits: sums.hits,
        count: sums.count,
    }
}

/// One rank's share of a batch's loss, as the ranks of a data-parallel run add it before
/// dividing: the sum of the weighted losses and its gradient, and the sum of the weights (the
/// whole batch's loss is the first over the third, each added across ranks: ignored pixels
/// and class weights differ between shares).
pub struct LossSums {
    pub loss: f64,
    pub weight: f64,
    pub grad: Vec<f32>,
    pub hits: usize,
    pub count: usize,
}

/// The undivided loss of a share of a batch (see [`LossSums`]).
pub fn cross_entropy_sums(
    spec: &LossSpec,
    logits: &[f32],
    n: usize,
    classes: usize,
    targets: &[u8],
) -> LossSums {
    LossSums {
        weight: loss_weight(spec, targets),
        ..weighted_sum(spec, logits, n, classes, targets, 1.0)
    }
}

/// The smoothing and class weights of a loss.
fn loss_terms(spec: &LossSpec) -> (f32, Option<&[f32]>) {
    match spec {
        LossSpec::Image { smoothing } => (smoothing.unwrap_or(0.0), None),
        LossSpec::Pixel { weights } => (0.0, weights.as_deref()),
    }
}

/// A target's weight in the loss: its class's, 1 without class weights, 0 when ignored.
fn target_weight(weights: Option<&[f32]>, target: u8) -> f64 {
    match target {
        IGNORE_LABEL => 0.0,
        t => weights.map_or(1.0, |w| w[t as usize] as f64),
    }
}

/// The sum of the targets' weights (what the mean loss divides by).
fn loss_weight(spec: &LossSpec, targets: &[u8]) -> f64 {
    let (_, weights) = loss_terms(spec);
    targets.iter().map(|&t| target_weight(weights, t)).sum()
}

/// The weighted losses summed, and their gradient, both divided by `divisor`, with the hits
/// and the targets that count (`weight` of the result is left 0).
fn weighted_sum(
    spec: &LossSpec,
    logits: &[f32],
    n: usize,
    classes: usize,
    targets: &[u8],
    divisor: f64,
) -> LossSums {
    let plane = logits.len() / (n * classes);
    assert_eq!(targets.len(), n * plane, "one target per prediction");
    let (smoothing, weights) = loss_terms(spec);
    let weight_of = |t: u8| target_weight(weights, t);
    let count = targets.iter().filter(|&&t| t != IGNORE_LABEL).count();
    let mut grad = vec![0.0; logits.len()];
    // Per-image sums collected in order and then added: the same total whatever the schedule.
    let per_image: Vec<(f64, usize)> = grad
        .par_chunks_mut(classes * plane)
        .zip(logits.par_chunks(classes * plane))
        .zip(targets.par_chunks(plane))
        .map(|((g, l), t)| {
            let (mut loss, mut hits) = (0.0, 0);
            for (p, &label) in t.iter().enumerate() {
                if label == IGNORE_LABEL {
                    continue;
                }
                let w = weight_of(label);
                let (nll, hit) = row(
                    &l[p..],
                    plane,
                    classes,
                    label as usize,
                    smoothing,
                    w / divisor,
                    &mut g[p..],
                );
                loss += w * nll;
                hits += hit as usize;
            }
            (loss, hits)
        })
        .collect();
    let loss: f64 = per_image.iter().map(|(l, _)| l).sum();
    let hits: usize = per_image.iter().map(|(_, h)| h).sum();
    LossSums {
        loss,
        weight: 0.0,
        grad,
        hits,
        count,
    }
}

/// Softmax over the classes of `[n, classes, plane]` logits, in place.
pub fn softmax_channels(values: &mut [f32], classes: usize, plane: usize) {
    values.par_chunks_mut(classes * plane).for_each(|image| {
        for p in 0..plane {
            let max = (0..classes)
                .map(|c| image[c * plane + p])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for c in 0..classes {
                let e = (image[c * plane + p] - max).exp();
                image[c * plane + p] = e;
                sum += e;
            }
            for c in 0..classes {
                image[c * plane + p] /= sum;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_over_the_channels_of_each_pixel() {
        // Two pixels: logits (0, ln 3) and (5, 5).
        let mut v = [0.0, 5.0, 3f32.ln(), 5.0];
        softmax_channels(&mut v, 2, 2);
        let expected = [0.25, 0.5, 0.75, 0.5];
        assert!(
            v.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-6),
            "{v:?}"
        );
    }

    #[test]
    fn image_loss_and_gradient_by_hand() {
        // Logits [0, ln 3] for label 1: p = [1/4, 3/4], loss = ln(4/3).
        let out = cross_entropy(
            &LossSpec::Image { smoothing: None },
            &[0.0, 3f32.ln()],
            1,
            2,
            &[1],
        );
        assert!((out.loss - (4.0f32 / 3.0).ln()).abs() < 1e-6);
        assert!((out.grad[0] - 0.25).abs() < 1e-6 && (out.grad[1] + 0.25).abs() < 1e-6);
        assert_eq!((out.hits, out.count), (1, 1));
        // Smoothing 0.1 over 2 classes: target [0.05, 0.95].
        let out = cross_entropy(
            &LossSpec::Image {
                smoothing: Some(0.1),
            },
            &[0.0, 3f32.ln()],
            1,
            2,
            &[1],
        );
        let expected = -(0.05 * 0.25f32.ln() + 0.95 * 0.75f32.ln());
        assert!((out.loss - expected).abs() < 1e-6);
    }

    #[test]
    fn weighted_pixel_loss_is_pytorchs_weighted_mean() {
        // The two pixels of segment.rs's test: logits (0, 0) and (0, ln 3), labels 0 and 1.
        // torch.nn.functional.cross_entropy(logits, targets, weight=torch.tensor([1., 3.]))
        // gives (1 ln 2 + 3 ln 4/3) / 4 = 0.3890.
        let logits = [0.0, 0.0, 0.0, 3f32.ln()]; // [1, 2 classes, 1x2]
        let out = cross_entropy(
            &LossSpec::Pixel {
                weights: Some(vec![1.0, 3.0]),
            },
            &logits,
            1,
            2,
            &[0, 1],
        );
        assert!((out.loss - 0.3890).abs() < 1e-4, "{}", out.loss);
        let plain = cross_entropy(&LossSpec::Pixel { weights: None }, &logits, 1, 2, &[0, 1]);
        // An ignored pixel adds no loss, no gradient and no count: the loss is the other's.
        let one_ignored = cross_entropy(
            &LossSpec::Pixel { weights: None },
            &logits,
            1,
            2,
            &[0, IGNORE_LABEL],
        );
        let alone = cross_entropy(
            &LossSpec::Pixel { weights: None },
            &[logits[0], logits[2]],
            1,
            2,
            &[0],
        );
        assert_eq!(one_ignored.loss, alone.loss);
        assert_eq!(one_ignored.count, 1);
        assert_eq!((one_ignored.grad[1], one_ignored.grad[3]), (0.0, 0.0));
        assert!((plain.loss - (2f32.ln() + (4.0f32 / 3.0).ln()) / 2.0).abs() < 1e-6);
    }
}
