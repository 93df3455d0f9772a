//! bf16 operands for the products of `--precision bf16`, emulated: each operand rounded to
//! the nearest bf16 (ties to even, as `vcvtneps2bf16` and PyTorch's conversion round) and
//! kept in an f32, so the engine's fp32 kernels multiply exactly the bf16 values (a product of
//! two 8-bit significands is exact in f32's 24) and accumulate in fp32: the numbers of a bf16
//! kernel up to the order of its sums, on every CPU. Where the CPU has AVX512-BF16, stride-1
//! convolutions' forward passes take the bf16 micro-kernel instead (`conv::implicit`).

use std::borrow::Cow;

use rayon::prelude::*;

use super::kernel::vectorised;
use crate::engine::Precision;

/// `value` rounded to the nearest bf16 (ties to even); NaN stays NaN, infinities stay.
#[inline(always)]
pub fn round(value: f32) -> f32 {
    let bits = value.to_bits();
    if value.is_nan() {
        return value;
    }
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1));
    f32::from_bits(rounded & 0xffff_0000)
}

/// Values per parallel piece of [`round_all`].
const PIECE: usize = 1 << 15;

/// Every value of `values` rounded to bf16, in place.
pub fn round_all(values: &mut [f32]) {
    values
        .par_chunks_mut(PIECE)
        .for_each(|piece| vectorised!(piece.iter_mut().for_each(|v| *v = round(*v))));
}

/// A product's operand at `precision`: `values` as they are in fp32, a rounded copy in bf16.
pub fn operand(values: &[f32], precision: Precision) -> Cow<'_, [f32]> {
    match precision {
        Precision::Fp32 => Cow::Borrowed(values),
        Precision::Bf16 => {
            let mut copy = values.to_vec();
            round_all(&mut copy);
            Cow::Owned(copy)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-made cases: exact bf16 values stay; halfway cases go to the even neighbour; one bit
    /// over halfway goes up; the sign is kept; overflow past bf16's largest gives infinity.
    #[test]
    fn rounds_to_nearest_bf16_ties_to_even() {
        assert_eq!(round(1.0), 1.0);
        assert_eq!(round(-2.5), -2.5);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: even is 1.
        assert_eq!(round(1.0 + 2f32.powi(-8)), 1.0);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: even is 1 + 2^-6.
        assert_eq!(round(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
        assert_eq!(
            round(1.0 + 2f32.powi(-8) + 2f32.powi(-20)),
            1.0 + 2f32.powi(-7)
        );
        assert_eq!(
            round(-(1.0 + 2f32.powi(-8) + 2f32.powi(-20))),
            -(1.0 + 2f32.powi(-7))
        );
        assert_eq!(round(f32::MAX), f32::INFINITY);
        assert!(round(f32::NAN).is_nan());
        // By hand: 0.1 is 204.8 steps of bf16's 2^-11 in [1/16, 1/8), so 205 * 2^-11; 3.3 is
        // 211.2 steps of 2^-6 in [2, 4), so 211 * 2^-6.
        assert_eq!(round(0.1), 205.0 * 2f32.powi(-11));
        assert_eq!(round(3.3), 211.0 * 2f32.powi(-6));
    }

    /// The parallel, vectorised pass rounds as the scalar function does, and fp32 borrows.
    #[test]
    fn operands_round_every_value_at_bf16_only() {
        let values: Vec<f32> = (0..PIECE + 77)
            .map(|i| (i as f32 * 0.37).sin() * 1e3)
            .collect();
        let rounded = operand(&values, Precision::Bf16);
        assert!(
            values
                .iter()
                .zip(rounded.iter())
                .all(|(v, r)| round(*v) == *r)
        );
        assert!(matches!(
            operand(&values, Precision::Fp32),
            Cow::Borrowed(_)
        ));
    }
}
