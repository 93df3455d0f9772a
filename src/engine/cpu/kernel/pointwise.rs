//! `pointwise`: a 1x1 convolution with few outputs, every output's sum in a register.

use super::available;

/// Rows [`pointwise`] takes at most.
pub const POINTWISE_ROWS: usize = 16;

/// `dst[r * plane + p] = bias[r] + Σ_d weight[r * depth + d] · src[d * plane + p]`: a 1x1
/// convolution of one image with at most [`POINTWISE_ROWS`] outputs (a segmenter's classifier
/// head), 16 positions at a time with every output's sum in a register, so each input value
/// is read once and each output written once. With `bf16`, the products are of `weight` and
/// `src` rounded to bf16 (ties to even, as `engine::cpu::bf16::round`), each value rounded as
/// it is read: exact products summed in fp32, with no rounded copy of the plane.
///
/// # Panics
/// If [`available`] is false, there are more rows than [`POINTWISE_ROWS`], or an operand is
/// too short.
pub fn pointwise(
    weight: &[f32],
    depth: usize,
    src: &[f32],
    bias: Option<&[f32]>,
    dst: &mut [f32],
    plane: usize,
    bf16: bool,
) {
    assert!(available(), "the micro-kernel needs AVX-512");
    let rows = weight.len() / depth.max(1);
    assert!(rows <= POINTWISE_ROWS, "pointwise: {rows} rows");
    assert!(src.len() >= depth * plane, "pointwise: src too short");
    assert!(dst.len() >= rows * plane, "pointwise: dst too short");
    assert!(
        bias.is_none_or(|b| b.len() >= rows),
        "pointwise: bias too short"
    );
    // The weights step by step, with zero rows up to the block's 8 or 16: their sums are
    // computed and never stored.
    let block = if rows <= 8 { 8 } else { POINTWISE_ROWS };
    let operand = |v: f32| {
        if bf16 {
            crate::engine::cpu::bf16::round(v)
        } else {
            v
        }
    };
    let steps: Vec<f32> = (0..depth)
        .flat_map(|d| {
            (0..block).map(move |r| match r < rows {
                true => operand(weight[r * depth + d]),
                false => 0.0,
            })
        })
        .collect();
    let mut biases = [0.0f32; POINTWISE_ROWS];
    if let Some(b) = bias {
        biases[..rows].copy_from_slice(&b[..rows]);
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is available and the asserts keep every access inside the slices.
    unsafe {
        let (w, s, d) = (steps.as_ptr(), src.as_ptr(), dst.as_mut_ptr());
        match (block, bf16) {
            (8, false) => avx512::pointwise::<8, false>(w, depth, s, &biases, d, rows, plane),
            (8, true) => avx512::pointwise::<8, true>(w, depth, s, &biases, d, rows, plane),
            (_, false) => avx512::pointwise::<16, false>(w, depth, s, &biases, d, rows, plane),
            (_, true) => avx512::pointwise::<16, true>(w, depth, s, &biases, d, rows, plane),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::super::bf16_block::avx512::round_lanes;
    use super::super::first_lanes;

    /// [`super::pointwise`] with `R` rows of weights laid out step by step (`R` per step of
    /// the depth, zero past `rows`), `R` biases; only `rows` rows are stored; each value of
    /// `src` rounded to bf16 as it is read when `BF16`.
    ///
    /// # Safety
    /// AVX-512F must be available; `w` must hold `depth * R` values, `src` `depth` rows of
    /// `plane`, `dst` `rows` rows of `plane`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pointwise<const R: usize, const BF16: bool>(
        w: *const f32,
        depth: usize,
        src: *const f32,
        bias: &[f32],
        dst: *mut f32,
        rows: usize,
        plane: usize,
    ) {
        for p in (0..plane).step_by(16) {
            let lanes = first_lanes(plane - p);
            let mut acc: [__m512; R] = std::array::from_fn(|r| _mm512_set1_ps(bias[r]));
            for d in 0..depth {
                // SAFETY: step d < depth of `src` and `w`; the mask keeps the read in the row.
                unsafe {
                    let mut x = _mm512_maskz_loadu_ps(lanes, src.add(d * plane + p));
                    if BF16 {
                        x = round_lanes(x);
                    }
                    for (r, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm512_fmadd_ps(_mm512_set1_ps(*w.add(d * R + r)), x, *acc);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate().take(rows) {
                // SAFETY: row r < rows of `dst`, the mask keeps the write in the row.
                unsafe { _mm512_mask_storeu_ps(dst.add(r * plane + p), lanes, *acc) };
            }
        }
    }
}
