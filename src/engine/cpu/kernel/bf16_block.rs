//! The micro-kernel of `--precision bf16` on CPUs with AVX512-BF16 (`vdpbf16ps`): the
//! counterpart of [`super::block`] whose steps come in pairs, each pair two bf16 values in one
//! 32-bit lane (`a`: a row's two weights; `b`: a position's two inputs), so that one
//! instruction adds two products to each fp32 sum: twice the products of an fp32 FMA per
//! instruction. A convolution's pairs are pairs of input channels at the same tap, so the
//! input is laid out once as planes of channel pairs ([`interleave_planes`]) and each pair of
//! steps is read from it shifted, as the fp32 kernel reads single steps.
//!
//! `vdpbf16ps` rounds each addition to nearest even and flushes subnormals: the sums of
//! `--precision bf16`'s emulated path (exact bf16 products added in fp32) up to their order and
//! the last bits.

use std::ops::Range;

use super::micro::{MR, NR, Steps};

/// Whether this CPU runs [`block_bf16`].
pub fn available_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `value` as bf16 bits, rounded to nearest even (as `engine::cpu::bf16::round`).
pub fn bf16_bits(value: f32) -> u16 {
    (crate::engine::cpu::bf16::round(value).to_bits() >> 16) as u16
}

/// Two values as one lane: `lo` in the low half, `hi` in the high half.
fn pair(lo: f32, hi: f32) -> u32 {
    bf16_bits(lo) as u32 | (bf16_bits(hi) as u32) << 16
}

/// `rows x (2 * pairs)` row-major values as panels of [`MR`] rows, pair by pair (`MR` lanes
/// per pair: value `2q` of the row low, `2q + 1` high), the last panel padded with zero rows:
/// [`super::pack_rows`] for pairs of steps.
pub fn pack_row_pairs(a: &[f32], rows: usize, pairs: usize, packed: &mut Vec<u32>) {
    let panels = rows.div_ceil(MR);
    packed.clear();
    packed.resize(panels * pairs * MR, 0);
    for (ip, panel) in packed.chunks_exact_mut(pairs * MR).enumerate() {
        for i in (0..MR).filter(|i| ip * MR + i < rows) {
            let row = &a[(ip * MR + i) * 2 * pairs..][..2 * pairs];
            for q in 0..pairs {
                panel[q * MR + i] = pair(row[2 * q], row[2 * q + 1]);
            }
        }
    }
}

/// `channels` planes of `plane` values as `channels / 2` (rounded up; a missing last channel
/// is zero) planes of lanes, each lane a position's values in channels `2k` (low) and `2k + 1`.
pub fn interleave_planes(planes: &[f32], channels: usize, plane: usize, out: &mut Vec<u32>) {
    out.clear();
    out.reserve(channels.div_ceil(2) * plane);
    for k in 0..channels.div_ceil(2) {
        let lo = &planes[2 * k * plane..][..plane];
        match planes.get((2 * k + 1) * plane..(2 * k + 2) * plane) {
            Some(hi) => out.extend(lo.iter().zip(hi).map(|(&l, &h)| pair(l, h))),
            None => out.extend(lo.iter().map(|&l| pair(l, 0.0))),
        }
    }
}

/// `c[MR, NR] (+)= a · b` over pairs of steps `range` of `steps`: pair `q` of `a` is its `MR`
/// lanes from `(q - range.start) * MR`, of `b` its `NR` lanes from `steps`' start `q`; `c`'s
/// rows are `ldc` apart. Overwrites `c` unless `add`. [`super::block`] on pairs of steps.
///
/// # Panics
/// If [`available_bf16`] is false, or an operand is too short for the steps it is asked for.
pub fn block_bf16(
    a: &[u32],
    b: &[u32],
    steps: &Steps,
    range: Range<usize>,
    c: &mut [f32],
    ldc: usize,
    add: bool,
) {
    assert!(available_bf16(), "the bf16 micro-kernel needs AVX512-BF16");
    let starts = &steps.starts[range];
    assert!(
        a.len() >= starts.len() * MR,
        "bf16 micro-kernel: a too short"
    );
    assert!(b.len() >= steps.reach, "bf16 micro-kernel: b too short");
    assert!(
        c.len() >= (MR - 1) * ldc + NR,
        "bf16 micro-kernel: c too short"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX512-BF16 is available and the asserts keep every access inside the slices.
    unsafe {
        avx512::block(starts, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), ldc, add)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::MR;

    /// # Safety
    /// AVX512-BF16 must be available; `a` must hold `rows.len() * MR` lanes, `b` `NR` from
    /// each of `rows`, and `c` an `MR x NR` block with rows `ldc` apart.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn block(
        rows: &[usize],
        a: *const u32,
        b: *const u32,
        c: *mut f32,
        ldc: usize,
        add: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 3]; MR];
        for (q, &at) in rows.iter().enumerate() {
            // SAFETY: pair q of `a` and row `at` of `b` are inside them (the contract).
            unsafe {
                let row = b.add(at) as *const __m512i;
                let b: [__m512bh; 3] = std::array::from_fn(|v| {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(row.add(v)))
                });
                for (i, acc) in acc.iter_mut().enumerate() {
                    let ai = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                        *a.add(q * MR + i) as i32,
                    ));
                    acc[0] = _mm512_dpbf16_ps(acc[0], ai, b[0]);
                    acc[1] = _mm512_dpbf16_ps(acc[1], ai, b[1]);
                    acc[2] = _mm512_dpbf16_ps(acc[2], ai, b[2]);
                }
            }
        }
        // SAFETY: `c` holds the block (the contract).
        unsafe { super::super::micro::avx512::store_block(&acc, c, ldc, add) }
    }
}
