//! Softmax cross-entropy per image or per pixel, its gradient, and the hits it scores.

use rayon::prelude::*;

use super::kernel::vectorised;
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

/// `exp(x)` for `x <= 0` (a logit less its pixel's largest) in plain arithmetic that the
/// compiler vectorises (`kernel::vectorised!`), where `f64::exp` is a library call per value:
/// the exponentials of `unet`'s pixel loss, five per pixel, were 3-4% of its training step.
/// `x = n ln 2 + r` with `|r| <= ln 2 / 2` (Cody and Waite's two-part `ln 2`), `exp(r)` by
/// its Taylor polynomial of degree 7 (relative error under 6e-9 before rounding), times
/// `2^n` built in the exponent bits. Below `-87.3` (where f32 leaves its normal range) it
/// returns `exp(-87.3)`, about 1.2e-38: nothing a softmax of f32 values tells from zero.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // A comparison rather than `max`, so a NaN stays a NaN (and so does the loss).
    let x = if x < -87.3 { -87.3 } else { x };
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for k in [720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        p = p * r + 1.0 / k;
    }
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// What [`exponentials`] leaves besides the exponentials: each pixel's largest logit, the
/// first class that has it (the arg-max) and the sum of its exponentials.
struct PixelTerms {
    max: Vec<f32>,
    best: Vec<u32>,
    sum: Vec<f32>,
}

/// Replaces an image's logits `[classes, plane]` by `exp(logit - the pixel's largest)`, class
/// plane by class plane (a classifier's image is one pixel, `plane` 1), and returns the
/// pixel's terms: the softmax is each exponential over the sum.
fn exponentials(values: &mut [f32], classes: usize, plane: usize) -> PixelTerms {
    let mut max = values[..plane].to_vec();
    let mut best = vec![0u32; plane];
    for c in 1..classes {
        let row = &values[c * plane..][..plane];
        vectorised!(for p in 0..plane {
            let larger = row[p] > max[p];
            max[p] = if larger { row[p] } else { max[p] };
            best[p] = if larger { c as u32 } else { best[p] };
        });
    }
    let mut sum = vec![0.0f32; plane];
    for row in values.chunks_exact_mut(plane).take(classes) {
        vectorised!(for p in 0..plane {
            let e = exp_nonpositive(row[p] - max[p]);
            row[p] = e;
            sum[p] += e;
        });
    }
    PixelTerms { max, best, sum }
}

/// One image's (`[classes, plane]`) share of the loss: writes `weight(target) / divisor *
/// (softmax - target)` into `grad` (zero at ignored pixels) and returns the weighted losses'
/// sum and the hits. The target is `(1 - smoothing) one_hot + smoothing / classes`; the loss
/// `-Σ_c target_c log p_c` is `log Σ exp - Σ_c target_c (logit_c - max)`.
#[allow(clippy::too_many_arguments)]
fn image_terms(
    logits: &[f32],
    targets: &[u8],
    classes: usize,
    smoothing: f32,
    weights: Option<&[f32]>,
    divisor: f64,
    grad: &mut [f32],
) -> (f64, usize) {
    let plane = targets.len();
    grad.copy_from_slice(logits);
    let PixelTerms { max, best, sum } = exponentials(grad, classes, plane);
    let off_target = smoothing / classes as f32;
    let mut scale = vec![0.0f32; plane];
    let (mut loss, mut hits) = (0.0, 0);
    for (p, &label) in targets.iter().enumerate() {
        if label == IGNORE_LABEL {
            continue;
        }
        let w = target_weight(weights, label);
        scale[p] = (w / divisor) as f32;
        let centred = |c: usize| (logits[c * plane + p] - max[p]) as f64;
        let mut cross = (1.0 - smoothing as f64) * centred(label as usize);
        if smoothing > 0.0 {
            cross += off_target as f64 * (0..classes).map(centred).sum::<f64>();
        }
        loss += w * ((sum[p] as f64).ln() - cross);
        hits += (best[p] == label as u32) as usize;
    }
    for (c, row) in grad.chunks_exact_mut(plane).take(classes).enumerate() {
        let on_target = 1.0 - smoothing + off_target;
        vectorised!(for p in 0..plane {
            let target = if targets[p] as usize == c {
                on_target
            } else {
                off_target
            };
            row[p] = scale[p] * (row[p] / sum[p] - target);
        });
    }
    (loss, hits)
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
    let count = targets.iter().filter(|&&t| t != IGNORE_LABEL).count();
    let mut grad = vec![0.0; logits.len()];
    // Per-image sums collected in order and then added: the same total whatever the schedule.
    let per_image: Vec<(f64, usize)> = grad
        .par_chunks_mut(classes * plane)
        .zip(logits.par_chunks(classes * plane))
        .zip(targets.par_chunks(plane))
        .map(|((g, l), t)| image_terms(l, t, classes, smoothing, weights, divisor, g))
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
        let sum = exponentials(image, classes, plane).sum;
        for row in image.chunks_exact_mut(plane) {
            vectorised!(for p in 0..plane {
                row[p] /= sum[p];
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorisable exponential against `f64::exp` over its whole range, in steps of about
    /// 1e-4 and at the ends: within 3e-7 relative (measured: at most 9.7e-8, about one unit in
    /// the last place), the clamp's value below -87.3, and NaN kept.
    #[test]
    fn exponentials_are_within_f32_rounding_of_exp() {
        let worst = (0..=873_000)
            .map(|i| -(i as f32) * 1e-4)
            .chain([0.0, -1e-30, -87.29, -87.3])
            .map(|x| {
                let exact = (x as f64).exp();
                (exp_nonpositive(x) as f64 - exact).abs() / exact
            })
            .fold(0.0, f64::max);
        assert!(worst < 3e-7, "{worst}");
        assert_eq!(exp_nonpositive(-200.0), exp_nonpositive(-87.3));
        assert!(exp_nonpositive(-200.0) < 1.3e-38);
        assert!(exp_nonpositive(f32::NAN).is_nan());
    }

    /// Every pixel's loss, gradient and hit against the definition in f64 (softmax by
    /// `f64::exp`, `-Σ target log p`, gradient `w / divisor (p - target)`): random logits over
    /// 7 classes and 37 pixels (not a whole number of vectors) with class weights, ignored
    /// pixels, ties for the largest logit (the first class counts as the prediction, as
    /// PyTorch's `argmax`), large spreads (exponentials that underflow), and label smoothing.
    #[test]
    fn image_terms_match_the_definition_in_f64() {
        let (classes, plane) = (7, 37);
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f32 / (1u64 << 31) as f32
        };
        let mut logits: Vec<f32> = (0..classes * plane).map(|_| next() * 8.0 - 4.0).collect();
        for p in (0..plane).step_by(5) {
            logits[2 * plane + p] = logits[4 * plane + p].max(logits[p]) + 1.0;
            logits[5 * plane + p] = logits[2 * plane + p];
        }
        logits[3 * plane + 1] = 120.0;
        let targets: Vec<u8> = (0..plane)
            .map(|p| match p % 9 {
                4 => IGNORE_LABEL,
                _ => ((next() * classes as f32) as u8).min(classes as u8 - 1),
            })
            .collect();
        let weights = [0.5, 1.0, 2.0, 0.7, 1.3, 3.0, 0.9];
        for (smoothing, weights) in [(0.0, Some(&weights[..])), (0.2, None)] {
            let divisor = 3.5;
            let mut grad = vec![f32::NAN; classes * plane];
            let (loss, hits) = image_terms(
                &logits, &targets, classes, smoothing, weights, divisor, &mut grad,
            );
            let (mut expected_loss, mut expected_hits) = (0.0, 0);
            for p in 0..plane {
                let at = |c: usize| logits[c * plane + p] as f64;
                let label = targets[p];
                if label == IGNORE_LABEL {
                    assert!((0..classes).all(|c| grad[c * plane + p] == 0.0));
                    continue;
                }
                let w = weights.map_or(1.0, |w| w[label as usize] as f64);
                let max = (0..classes).map(at).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (0..classes).map(|c| (at(c) - max).exp()).sum();
                let best = (0..classes).find(|&c| at(c) == max).unwrap();
                expected_hits += (best == label as usize) as usize;
                for c in 0..classes {
                    let target = smoothing as f64 / classes as f64
                        + if c == label as usize {
                            1.0 - smoothing as f64
                        } else {
                            0.0
                        };
                    let prob = (at(c) - max).exp() / sum;
                    expected_loss -= w * target * prob.ln();
                    let g = w / divisor * (prob - target);
                    let ours = grad[c * plane + p] as f64;
                    assert!(
                        (ours - g).abs() <= 1e-6 * (1.0 + g.abs()),
                        "{p} {c}: {ours} {g}"
                    );
                }
            }
            assert_eq!(hits, expected_hits);
            assert!(
                (loss - expected_loss).abs() <= 1e-6 * expected_loss,
                "{loss} {expected_loss}"
            );
        }
    }

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
