//! bf16 operands for the products of `--precision bf16`, emulated: each operand rounded to
//! the nearest bf16 (ties to even, as `vcvtneps2bf16` and PyTorch's conversion round) and
//! kept in an f32, so the engine's fp32 kernels multiply exactly the bf16 values (a product of
//! two 8-bit significands is exact in f32's 24) and accumulate in fp32: the numbers of a bf16
//! kernel up to the order of its sums, on every CPU. Where the CPU has AVX512-BF16, stride-1
//! convolutions' forward passes take the bf16 micro-kernel instead (`conv::implicit`).
//!
//! Also how values are stored between layers ([`Storage`]): fp32, or bf16's 16 bits, which a
//! bf16 training pass keeps where the layers that read them take either (half the memory
//! traffic of the passes that only move values: batch norm, the grids the kernels read).

use std::borrow::Cow;

use rayon::prelude::*;

use super::kernel::vectorised;
use super::memory;
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
    values.par_chunks_mut(PIECE).for_each(round_here);
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

/// How a layer's values are stored: `f32`, or `u16` holding a bf16 (the high half of the
/// f32 it rounds to, so loading it back is a shift). Loops generic over it compile to the
/// plain fp32 loop for `f32`.
pub trait Storage: Copy + Default + Send + Sync + 'static {
    fn load(self) -> f32;
    /// `value` as stored: itself, or rounded to the nearest bf16 (ties to even).
    fn store(value: f32) -> Self;
    /// The values themselves where they are fp32 (nothing to expand).
    fn as_f32(values: &[Self]) -> Option<&[f32]>;
    fn as_f32_mut(values: &mut [Self]) -> Option<&mut [f32]>;
    /// The values as a bf16 product's operand: a rounded copy of fp32 values, bf16 ones as
    /// they are.
    fn rounded(values: &[Self]) -> Cow<'_, [Self]>;
}

impl Storage for f32 {
    #[inline(always)]
    fn load(self) -> f32 {
        self
    }

    #[inline(always)]
    fn store(value: f32) -> Self {
        value
    }

    fn as_f32(values: &[Self]) -> Option<&[f32]> {
        Some(values)
    }

    fn as_f32_mut(values: &mut [Self]) -> Option<&mut [f32]> {
        Some(values)
    }

    fn rounded(values: &[Self]) -> Cow<'_, [Self]> {
        operand(values, Precision::Bf16)
    }
}

impl Storage for u16 {
    #[inline(always)]
    fn load(self) -> f32 {
        f32::from_bits(u32::from(self) << 16)
    }

    #[inline(always)]
    fn store(value: f32) -> Self {
        (round(value).to_bits() >> 16) as u16
    }

    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }

    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }

    fn rounded(values: &[Self]) -> Cow<'_, [Self]> {
        Cow::Borrowed(values)
    }
}

/// Every value of `values` rounded to bf16, in place, on this thread.
pub fn round_here(values: &mut [f32]) {
    vectorised!(values.iter_mut().for_each(|v| *v = round(*v)))
}

/// `values` in fp32, on this thread: themselves, or expanded into `buffer`.
pub fn in_f32<'a, S: Storage>(values: &'a [S], buffer: &'a mut Vec<f32>) -> &'a [f32] {
    if let Some(values) = S::as_f32(values) {
        return values;
    }
    buffer.resize(values.len(), 0.0);
    load_into(values, buffer);
    buffer
}

/// `values` loaded into `out` (of the same length) in fp32, on this thread.
pub fn load_into<S: Storage>(values: &[S], out: &mut [f32]) {
    vectorised!(out.iter_mut().zip(values).for_each(|(f, v)| *f = v.load()));
}

/// `values` stored into `out` (of the same length), on this thread.
pub fn store_into<S: Storage>(values: &[f32], out: &mut [S]) {
    vectorised!(
        out.iter_mut()
            .zip(values)
            .for_each(|(o, &v)| *o = S::store(v))
    );
}

/// Every value of `values` in bf16 bits (rounded to nearest even), on all threads.
pub fn to_bits(values: &[f32]) -> Vec<u16> {
    let mut bits = memory::zeroed(values.len());
    bits.par_chunks_mut(PIECE)
        .zip(values.par_chunks(PIECE))
        .for_each(|(b, v)| store_into(v, b));
    bits
}

/// Every stored value in fp32, on all threads.
pub fn to_f32<S: Storage>(values: &[S]) -> Vec<f32> {
    let mut floats = memory::zeroed(values.len());
    floats
        .par_chunks_mut(PIECE)
        .zip(values.par_chunks(PIECE))
        .for_each(|(f, v)| load_into(v, f));
    floats
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

    /// bf16 storage keeps exactly the rounded value (stored and loaded back it is `round`'s),
    /// on all threads and through a buffer; fp32 storage keeps the value itself.
    #[test]
    fn bf16_storage_holds_the_rounded_values() {
        let values: Vec<f32> = (0..PIECE + 77)
            .map(|i| (i as f32 * 0.37).sin() * 1e3)
            .chain([0.0, -0.0, f32::INFINITY, 1.0 + 2f32.powi(-8)])
            .collect();
        let bits = to_bits(&values);
        let back = to_f32(&bits);
        assert!(values.iter().zip(&back).all(|(v, b)| round(*v) == *b));
        assert_eq!(back[back.len() - 1], 1.0);
        assert_eq!(back[back.len() - 3].to_bits(), (-0.0f32).to_bits());
        let mut buffer = Vec::new();
        assert_eq!(in_f32(&bits, &mut buffer), &back[..]);
        assert!(std::ptr::eq(in_f32(&values, &mut buffer), &values[..]));
        assert_eq!(to_f32(&values), values);
    }
}
