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

use super::copy::Runs;
use super::micro::{MR, NR, ShiftedShape, Steps};

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
#[inline(always)]
pub fn bf16_bits(value: f32) -> u16 {
    <u16 as crate::engine::cpu::bf16::Storage>::store(value)
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
    out.resize(channels.div_ceil(2) * plane, 0);
    let runs = Runs {
        rows: channels,
        len: plane,
        src_stride: plane,
        dst_stride: plane,
        zeros: 0,
    };
    pair_runs(out, planes, runs);
}

/// `runs` of `src` rounded to bf16 and paired: row `k` of `dst` (`runs.dst_stride` lanes
/// apart) holds run `2k` in the low halves and run `2k + 1` in the high ones (zero where
/// `2k + 1` is past the last run), then `runs.zeros` zero lanes. A grid's channels, or an
/// output gradient's positions, paired as they are copied: one pass, where a copy and then an
/// interleaving of the copy took two and a scalar loop.
///
/// # Panics
/// If `src` or `dst` is too short for the runs.
pub fn pair_runs(dst: &mut [u32], src: &[f32], runs: Runs) {
    if runs.rows == 0 {
        return;
    }
    runs.check(
        src,
        (dst, runs.rows.div_ceil(2)),
        runs.len + runs.zeros,
        None,
        "pair_runs",
    );
    #[cfg(target_arch = "x86_64")]
    if super::available() {
        // SAFETY: AVX-512F is available and the check keeps every run inside the slices.
        unsafe { avx512::pair_runs(dst.as_mut_ptr(), src.as_ptr(), runs) };
        return;
    }
    for k in 0..runs.rows.div_ceil(2) {
        let to = &mut dst[k * runs.dst_stride..][..runs.len + runs.zeros];
        let (values, zeros) = to.split_at_mut(runs.len);
        let lo = &src[2 * k * runs.src_stride..][..runs.len];
        match 2 * k + 1 < runs.rows {
            true => {
                let hi = &src[(2 * k + 1) * runs.src_stride..][..runs.len];
                let pairs = lo.iter().zip(hi).map(|(&l, &h)| pair(l, h));
                values.iter_mut().zip(pairs).for_each(|(d, p)| *d = p);
            }
            false => values
                .iter_mut()
                .zip(lo)
                .for_each(|(d, &l)| *d = pair(l, 0.0)),
        }
        zeros.fill(0);
    }
}

/// `runs` of `src` as bf16 bits (rounded to nearest even) into `dst`, each run followed by
/// `runs.zeros` zeros: [`super::copy_runs`] to bf16.
///
/// # Panics
/// If `src` or `dst` is too short for the runs.
pub fn bf16_runs(dst: &mut [u16], src: &[f32], runs: Runs) {
    if runs.rows == 0 {
        return;
    }
    runs.check(
        src,
        (dst, runs.rows),
        runs.len + runs.zeros,
        None,
        "bf16_runs",
    );
    #[cfg(target_arch = "x86_64")]
    if super::available() {
        // SAFETY: AVX-512F is available and the check keeps every run inside the slices.
        unsafe { avx512::bf16_runs(dst.as_mut_ptr(), src.as_ptr(), runs) };
        return;
    }
    for r in 0..runs.rows {
        let to = &mut dst[r * runs.dst_stride..][..runs.len + runs.zeros];
        let (values, zeros) = to.split_at_mut(runs.len);
        let from = &src[r * runs.src_stride..][..runs.len];
        values
            .iter_mut()
            .zip(from)
            .for_each(|(d, &v)| *d = bf16_bits(v));
        zeros.fill(0);
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

/// Every value of `values` as bf16 bits (rounded to nearest even), and one zero past the end
/// (so that a pair read at the last value stays inside): a padded grid as
/// [`shifted_block_bf16`] reads it.
pub fn to_bf16(values: &[f32], out: &mut Vec<u16>) {
    out.clear();
    out.resize(values.len() + 1, 0);
    let runs = Runs {
        rows: 1,
        len: values.len(),
        src_stride: 0,
        dst_stride: 0,
        zeros: 1,
    };
    bf16_runs(out, values, runs);
}

/// Rows `q` and `q + 1` of `rows` (`count` rows of `width` values, `ld` apart; past `count`
/// a row is zero) as one row of `width` lanes, row `q` low: `out[k * width + o]` pairs rows
/// `2k` and `2k + 1`, for `k < count.div_ceil(2)`.
pub fn pair_rows(rows: &[f32], ld: usize, width: usize, count: usize, out: &mut Vec<u32>) {
    out.clear();
    out.resize(count.div_ceil(2) * width, 0);
    let runs = Runs {
        rows: count,
        len: width,
        src_stride: ld,
        dst_stride: width,
        zeros: 0,
    };
    pair_runs(out, rows, runs);
}

/// [`super::shifted_block`] on pairs of positions: `c[i * ldc + o] += Σ_k p[starts[i] + 2k] ·
/// b[k].lo + p[starts[i] + 2k + 1] · b[k].hi` over `k` in the ranges `pairs`, each product of
/// bf16 values and two of them per `vdpbf16ps`: `p` a grid in bf16 bits ([`to_bf16`]), read
/// two positions at a time from any start, `b` the output gradient's positions in pairs
/// ([`pair_rows`]), `ldb` lanes apart. A weight gradient's sum runs over positions, so its
/// pairs are pairs of positions.
///
/// # Panics
/// If [`available_bf16`] is false, `vectors` is not 1 to 4, `starts` is not
/// `shifted_rows(vectors)` long, or an operand is too short.
#[allow(clippy::too_many_arguments)]
pub fn shifted_block_bf16(
    vectors: usize,
    p: &[u16],
    starts: &[usize],
    b: &[u32],
    ldb: usize,
    pairs: &[Range<usize>],
    c: &mut [f32],
    ldc: usize,
) {
    assert!(
        available_bf16(),
        "the bf16 shifted kernel needs AVX512-BF16"
    );
    let shape = ShiftedShape {
        vectors,
        values_per_index: 2,
        ldb,
        ldc,
    };
    if !shape.holds(starts, pairs, (p.len(), b.len(), c.len())) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX512-BF16 is available and the asserts keep every access inside the slices.
    unsafe {
        let (p, b, c) = (p.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        match vectors {
            1 => avx512::shifted_block::<1, 24>(p, starts, b, ldb, pairs, c, ldc),
            2 => avx512::shifted_block::<2, 12>(p, starts, b, ldb, pairs, c, ldc),
            3 => avx512::shifted_block::<3, 8>(p, starts, b, ldb, pairs, c, ldc),
            _ => avx512::shifted_block::<4, 6>(p, starts, b, ldb, pairs, c, ldc),
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use std::arch::x86_64::*;

    use super::{MR, Runs};

    /// Each lane's bits rounded to the nearest bf16 (ties to even) in the high half, as
    /// `engine::cpu::bf16::round` rounds (a NaN keeps its bits); the low half is left over.
    #[target_feature(enable = "avx512f")]
    fn rounded(v: __m512) -> __m512i {
        let bits = _mm512_castps_si512(v);
        let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
        let up = _mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
        _mm512_mask_mov_epi32(up, _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v), bits)
    }

    /// Each lane rounded to the nearest bf16, as an f32: `engine::cpu::bf16::round` on every
    /// lane (a NaN stays as it is, all its bits).
    #[target_feature(enable = "avx512f")]
    pub(in crate::engine::cpu::kernel) fn round_lanes(v: __m512) -> __m512 {
        let high = _mm512_set1_epi32(0xffff_0000_u32 as i32);
        let bf16 = _mm512_castsi512_ps(_mm512_and_si512(rounded(v), high));
        _mm512_mask_mov_ps(bf16, _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v), v)
    }

    /// [`super::pair_runs`].
    ///
    /// # Safety
    /// AVX-512F must be available; `src` must hold the runs, `dst` `rows.div_ceil(2)` rows of
    /// `len + zeros` lanes.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pair_runs(dst: *mut u32, src: *const f32, runs: Runs) {
        let high = _mm512_set1_epi32(0xffff_0000_u32 as i32);
        runs.for_each_vector(runs.rows.div_ceil(2), |k, start, read, write| {
            let hi_read = if 2 * k + 1 < runs.rows { read } else { 0 };
            // SAFETY: the masks keep reads inside runs 2k and 2k + 1 of `src` and writes
            // inside row k of `dst` (the contract).
            unsafe {
                let lo = _mm512_maskz_loadu_ps(read, src.add(2 * k * runs.src_stride + start));
                let hi =
                    _mm512_maskz_loadu_ps(hi_read, src.add((2 * k + 1) * runs.src_stride + start));
                let pair = _mm512_or_si512(
                    _mm512_srli_epi32::<16>(rounded(lo)),
                    _mm512_and_si512(rounded(hi), high),
                );
                let to = dst.add(k * runs.dst_stride + start) as *mut i32;
                _mm512_mask_storeu_epi32(to, write, pair);
            }
        });
    }

    /// [`super::bf16_runs`].
    ///
    /// # Safety
    /// AVX-512F must be available; `src` must hold the runs, `dst` `rows` rows of
    /// `len + zeros` values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn bf16_runs(dst: *mut u16, src: *const f32, runs: Runs) {
        runs.for_each_vector(runs.rows, |r, start, read, write| {
            // SAFETY: the masks keep the read inside run r of `src` and the write inside row r
            // of `dst` (the contract).
            unsafe {
                let v = _mm512_maskz_loadu_ps(read, src.add(r * runs.src_stride + start));
                let bits = _mm512_srli_epi32::<16>(rounded(v));
                let to = dst.add(r * runs.dst_stride + start) as *mut _;
                _mm512_mask_cvtepi32_storeu_epi16(to, write, bits);
            }
        });
    }

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

    /// [`super::shifted_block_bf16`] with `V` vectors and `R` rows.
    ///
    /// # Safety
    /// AVX512-BF16 must be available; `starts` must hold `R` starts, `p` two values at `2k`
    /// after each for every pair `k` of `pairs`, `b` those pairs' rows of `16 V` lanes `ldb`
    /// apart, `c` `R` rows of `16 V` values `ldc` apart.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn shifted_block<const V: usize, const R: usize>(
        p: *const u16,
        starts: &[usize],
        b: *const u32,
        ldb: usize,
        pairs: &[std::ops::Range<usize>],
        c: *mut f32,
        ldc: usize,
    ) {
        let starts: [*const u16; R] = std::array::from_fn(|i| {
            // SAFETY: each start is inside `p` (the contract).
            unsafe { p.add(starts[i]) }
        });
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for k in pairs.iter().flat_map(Clone::clone) {
            // SAFETY: k is in a range: row k of `b` and two values at 2k after each start (the
            // contract; the pair is read unaligned).
            unsafe {
                let row: [__m512bh; V] = std::array::from_fn(|v| {
                    let lanes = b.add(k * ldb + 16 * v) as *const __m512i;
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(lanes))
                });
                for (acc, &start) in acc.iter_mut().zip(&starts) {
                    let two = (start.add(2 * k) as *const u32).read_unaligned();
                    let value =
                        std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(two as i32));
                    for (acc, &row) in acc.iter_mut().zip(&row) {
                        *acc = _mm512_dpbf16_ps(*acc, value, row);
                    }
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            for (v, &sum) in acc.iter().enumerate() {
                // SAFETY: row i < R, columns 16v..16v + 16 <= 16 V (the contract).
                unsafe {
                    let out = c.add(i * ldc + 16 * v);
                    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_loadu_ps(out), sum));
                }
            }
        }
    }
}
