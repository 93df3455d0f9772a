//! Segmentation metrics over all pixels of a split: per-class average precision exactly as
//! scikit-learn's `average_precision_score`, IoU, pixel accuracy.

use serde::{Deserialize, Serialize};

use super::Confusion;

/// Average precision of `scores` for the pixels where `positive` is true, as scikit-learn's
/// `average_precision_score(positive, scores)`: the sum over distinct score thresholds, from
/// high to low, of (recall step) x precision. Tied scores form one threshold. Exact (no
/// binning).
///
/// With no positive pixel the value is undefined: scikit-learn 1.9 warns and returns 0.0; this
/// returns NaN so that an absent class is neither mistaken for a measured failure nor drags
/// the mean down ([`mean_defined`] skips it).
pub fn average_precision(scores: &[f32], positive: &[bool]) -> f64 {
    assert_eq!(scores.len(), positive.len(), "one label per score");
    let mut keys: Vec<u64> = scores
        .iter()
        .zip(positive)
        .map(|(&score, &is_positive)| ranking_key(score, is_positive))
        .collect();
    average_precision_of_keys(&mut keys)
}

/// A pixel's score and label as one integer whose unsigned order is the order of falling
/// scores (`f32::total_cmp`, reversed), the label in the lowest bit.
pub fn ranking_key(score: f32, positive: bool) -> u64 {
    let bits = score.to_bits();
    let rising = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    };
    (u64::from(!rising) << 1) | u64::from(positive)
}

/// The score of a [`ranking_key`].
fn score_of(key: u64) -> f32 {
    let rising = !((key >> 1) as u32);
    let bits = if rising >> 31 == 1 {
        rising & !(1 << 31)
    } else {
        !rising
    };
    f32::from_bits(bits)
}

/// [`average_precision`] of pixels given as [`ranking_key`]s, which it sorts in place.
pub fn average_precision_of_keys(keys: &mut [u64]) -> f64 {
    let total_positive = keys.iter().filter(|&&key| key & 1 == 1).count();
    if total_positive == 0 {
        return f64::NAN;
    }
    sort_by_score(keys);
    let (mut tp, mut fp) = (0u64, 0u64);
    let (mut ap, mut previous_recall) = (0.0f64, 0.0f64);
    for (i, &key) in keys.iter().enumerate() {
        if key & 1 == 1 {
            tp += 1;
        } else {
            fp += 1;
        }
        let score = score_of(key);
        let last_of_threshold = keys.get(i + 1).is_none_or(|&next| score_of(next) != score);
        if last_of_threshold {
            let recall = tp as f64 / total_positive as f64;
            let precision = tp as f64 / (tp + fp) as f64;
            ap += (recall - previous_recall) * precision;
            previous_recall = recall;
        }
    }
    ap
}

/// Sorts keys by their score bits (the label bit left out: ties form one threshold whatever
/// their order), a byte at a time from the lowest, skipping bytes every key shares. A radix
/// sort because a split's AP sorts each class's every pixel (6-7 M for Mini Facade's splits):
/// with a comparison sort, on one thread while the other core waited, a `unet` epoch's
/// validation took 1.82 s, with this one 1.27 s (2-core AMD EPYC, Zen 4).
fn sort_by_score(keys: &mut [u64]) {
    const BYTES: usize = 4;
    let byte = |key: u64, pass: usize| ((key >> (1 + 8 * pass)) & 0xff) as usize;
    let mut counts = [[0usize; 256]; BYTES];
    for &key in keys.iter() {
        for (pass, pass_counts) in counts.iter_mut().enumerate() {
            pass_counts[byte(key, pass)] += 1;
        }
    }
    let len = keys.len();
    let mut scratch = vec![0u64; len];
    let (mut from, mut to): (&mut [u64], &mut [u64]) = (keys, &mut scratch);
    let mut moved = false;
    for (pass, pass_counts) in counts.iter().enumerate() {
        if pass_counts.contains(&len) {
            continue;
        }
        let mut next = [0usize; 256];
        let mut start = 0;
        for (slot, &count) in next.iter_mut().zip(pass_counts) {
            *slot = start;
            start += count;
        }
        for &key in from.iter() {
            let slot = &mut next[byte(key, pass)];
            to[*slot] = key;
            *slot += 1;
        }
        std::mem::swap(&mut from, &mut to);
        moved = !moved;
    }
    if moved {
        to.copy_from_slice(from);
    }
}

/// Intersection over union of each class from a confusion matrix (NaN where a class is in
/// neither the truth nor the prediction).
pub fn iou(confusion: &Confusion) -> Vec<f64> {
    let n = confusion.counts.len();
    (0..n)
        .map(|c| {
            let tp = confusion.counts[c][c];
            let false_neg: u64 = confusion.counts[c].iter().sum::<u64>() - tp;
            let false_pos: u64 = (0..n).map(|r| confusion.counts[r][c]).sum::<u64>() - tp;
            let union = tp + false_neg + false_pos;
            if union == 0 {
                f64::NAN
            } else {
                tp as f64 / union as f64
            }
        })
        .collect()
}

/// The mean of the values that are not NaN (NaN when none is).
pub fn mean_defined(values: &[f64]) -> f64 {
    let defined: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if defined.is_empty() {
        f64::NAN
    } else {
        defined.iter().sum::<f64>() / defined.len() as f64
    }
}

/// The evaluation of one split over all its pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentationReport {
    pub ap: Vec<f64>,
    pub map: f64,
    pub iou: Vec<f64>,
    pub miou: f64,
    pub pixel_accuracy: f64,
    pub loss: f64,
    pub confusion: Vec<Vec<u64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ap(labels: &[u8], scores: &[f32]) -> f64 {
        let positive: Vec<bool> = labels.iter().map(|&l| l == 1).collect();
        average_precision(scores, &positive)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_checked_cases() {
        // Thresholds 0.8 (P 1, R 1/2), 0.4 (P 1/2, R 1/2), 0.35 (P 2/3, R 1): 1/2 + 1/2 * 2/3.
        assert!(close(ap(&[0, 0, 1, 1], &[0.1, 0.4, 0.35, 0.8]), 5.0 / 6.0));
        // All scores tied: one threshold, P = 1/2 at R = 1.
        assert!(close(ap(&[0, 1, 0, 1], &[0.5; 4]), 0.5));
        // A tie between a positive and a negative counts as one step (P 2/3 at R 2/3):
        // 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5.
        assert!(close(
            ap(&[1, 0, 1, 0, 1], &[0.9, 0.8, 0.8, 0.3, 0.1]),
            0.3333333333333333 + 0.2222222222222222 + 0.2
        ));
        assert!(close(ap(&[1, 1, 1], &[0.1, 0.2, 0.3]), 1.0));
        assert!(
            ap(&[0, 0, 0], &[0.1, 0.2, 0.3]).is_nan(),
            "no positives: undefined"
        );
    }

    /// Expected values from scikit-learn 1.9.1 (numpy 2.4.6), produced with:
    /// ```python
    /// i = np.arange(2000); score = ((i * 37) % 101) / 100.0
    /// y = (((i * 13) % 7) < 3) | ((score > 0.6) & (i % 5 == 0))
    /// average_precision_score(y, score.astype(np.float32))   # 0.5178319079597563
    /// state = 12345; s2 = []
    /// for k in range(1000):
    ///     state = (state * 1103515245 + 12345) % 2**31; s2.append(state / 2**31)
    /// y2 = np.arange(1000) % 3 == 0
    /// average_precision_score(y2, (0.5 * y2 + np.array(s2, np.float32)).astype(np.float32))
    /// # 0.8362863050703777
    /// ```
    #[test]
    fn matches_scikit_learn_on_larger_cases() {
        let score: Vec<f32> = (0..2000u64)
            .map(|i| (((i * 37) % 101) as f64 / 100.0) as f32)
            .collect();
        let positive: Vec<bool> = (0..2000u64)
            .map(|i| ((i * 13) % 7) < 3 || ((((i * 37) % 101) as f64 / 100.0) > 0.6 && i % 5 == 0))
            .collect();
        let got = average_precision(&score, &positive);
        assert!((got - 0.5178319079597563).abs() < 1e-12, "{got}");

        let mut state: u64 = 12345;
        let (mut scores, mut positive) = (Vec::new(), Vec::new());
        for k in 0..1000u64 {
            state = (state * 1103515245 + 12345) % (1 << 31);
            let noise = (state as f64 / (1u64 << 31) as f64) as f32;
            let is_positive = k % 3 == 0;
            scores.push(if is_positive { 0.5 + noise } else { noise });
            positive.push(is_positive);
        }
        let got = average_precision(&scores, &positive);
        assert!((got - 0.8362863050703777).abs() < 1e-12, "{got}");
    }

    /// The radix sort ranks as a comparison sort by `f32::total_cmp` does: the same AP as the
    /// sum over a comparison-sorted copy, on scores with many ties, both zeros, negatives,
    /// infinities, NaN, subnormals, and values that share their upper bytes (passes skipped).
    #[test]
    fn keys_rank_pixels_as_total_order_does() {
        fn by_comparison(scores: &[f32], positive: &[bool]) -> f64 {
            let mut pairs: Vec<(f32, bool)> = scores
                .iter()
                .copied()
                .zip(positive.iter().copied())
                .collect();
            pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
            let total = positive.iter().filter(|&&p| p).count() as f64;
            let (mut tp, mut fp, mut ap, mut previous) = (0.0, 0.0, 0.0, 0.0);
            for (i, &(score, is_positive)) in pairs.iter().enumerate() {
                if is_positive {
                    tp += 1.0
                } else {
                    fp += 1.0
                }
                if pairs.get(i + 1).is_none_or(|next| next.0 != score) {
                    ap += (tp / total - previous) * tp / (tp + fp);
                    previous = tp / total;
                }
            }
            ap
        }
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        let special = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-40,
            -1e-40,
        ];
        for case in 0..4 {
            let n = [10, 1000, 50_000, 3][case];
            let (mut scores, mut positive) = (Vec::new(), Vec::new());
            for i in 0..n {
                let r = next();
                scores.push(match case {
                    0 => special[r as usize % special.len()],
                    1 => (r % 17) as f32 / 16.0 - 0.5,
                    2 => f32::from_bits(0x3f00_0000 | (r & 0xffff)),
                    _ => [f32::NAN, 0.25, f32::NAN][i],
                });
                positive.push(next() % 3 == 0 || i == 0);
            }
            let (got, want) = (
                average_precision(&scores, &positive),
                by_comparison(&scores, &positive),
            );
            assert!(close(got, want), "case {case}: {got} against {want}");
            for &s in &scores {
                assert_eq!(score_of(ranking_key(s, true)).to_bits(), s.to_bits());
            }
        }
    }

    #[test]
    fn iou_and_pixel_accuracy_on_a_hand_example() {
        // truth 0 0 1 1 2 2, predicted 0 1 1 1 2 0
        let mut c = Confusion::new(4);
        for (t, p) in [(0, 0), (0, 1), (1, 1), (1, 1), (2, 2), (2, 0)] {
            c.add(t, p);
        }
        let iou = iou(&c);
        // class 0: tp 1, fn 1, fp 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 1, fn 1 -> 1/2
        assert!(close(iou[0], 1.0 / 3.0) && close(iou[1], 2.0 / 3.0) && close(iou[2], 0.5));
        assert!(
            iou[3].is_nan(),
            "class 3 is absent from truth and prediction"
        );
        assert!(close(
            mean_defined(&iou),
            (1.0 / 3.0 + 2.0 / 3.0 + 0.5) / 3.0
        ));
        assert!(close(c.accuracy(), 4.0 / 6.0));
    }
}
