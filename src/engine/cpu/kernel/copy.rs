//! The copies around the kernels (padding, results with a bias, a stride-2 phase into its
//! rows) as masked vectors (`copy_runs`, `copy_runs_to_every_other`), and `transpose` in
//! register tiles.

use super::available;

/// `dst[c * dst_stride + r] = src[r * src_stride + c]` for `r < rows`, `c < cols`: a
/// transpose (a weight gradient's output gradient, channel by channel, turned position by
/// position), in tiles of 16 x 16 transposed in registers where AVX-512 is there: element by
/// element, every store went to another cache line.
///
/// # Panics
/// If `src` or `dst` is too short.
pub fn transpose(
    src: &[f32],
    src_stride: usize,
    (rows, cols): (usize, usize),
    dst: &mut [f32],
    dst_stride: usize,
) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(
        (rows - 1) * src_stride + cols <= src.len(),
        "transpose: src too short"
    );
    assert!(
        (cols - 1) * dst_stride + rows <= dst.len(),
        "transpose: dst too short"
    );
    #[cfg(target_arch = "x86_64")]
    if available() {
        for r0 in (0..rows).step_by(16) {
            for c0 in (0..cols).step_by(16) {
                let tile = ((rows - r0).min(16), (cols - c0).min(16));
                // SAFETY: AVX-512F is available; the tile's rows and columns are inside both
                // slices (the asserts above).
                unsafe {
                    avx512::transpose_tile(
                        src.as_ptr().add(r0 * src_stride + c0),
                        src_stride,
                        tile,
                        dst.as_mut_ptr().add(c0 * dst_stride + r0),
                        dst_stride,
                    )
                };
            }
        }
        return;
    }
    for r in 0..rows {
        for c in 0..cols {
            dst[c * dst_stride + r] = src[r * src_stride + c];
        }
    }
}

/// A strided copy: `rows` runs of `len` values, `src_stride` apart in the source and
/// `dst_stride` apart in the destination, each destination run followed by `zeros` zeros.
#[derive(Clone, Copy, Debug)]
pub struct Runs {
    pub rows: usize,
    pub len: usize,
    pub src_stride: usize,
    pub dst_stride: usize,
    pub zeros: usize,
}

impl Runs {
    /// Panics, naming `what`, unless `src` holds the runs, `dst` (of `dst_rows` rows)
    /// `extent` values from each row's start, and `add` (if any) a value per run; `rows` must
    /// not be 0.
    pub(super) fn check<T>(
        &self,
        src: &[f32],
        (dst, dst_rows): (&[T], usize),
        extent: usize,
        add: Option<&[f32]>,
        what: &str,
    ) {
        let last = self.rows - 1;
        assert!(
            last * self.src_stride + self.len <= src.len(),
            "{what}: src too short"
        );
        assert!(
            (dst_rows - 1) * self.dst_stride + extent <= dst.len(),
            "{what}: dst too short"
        );
        assert!(
            add.is_none_or(|a| a.len() >= self.rows),
            "{what}: add too short"
        );
    }
}

#[cfg(target_arch = "x86_64")]
impl Runs {
    /// `f(row, first value, lanes read, lanes written)` for each vector of 16 that writes
    /// `rows` rows of `len + zeros` values, the lanes read those of the row's `len` values.
    /// Plain loops inlined into the caller (the runs are often a vector or two long, where
    /// an iterator's bookkeeping would be a share of the copy).
    #[inline(always)]
    pub(super) fn for_each_vector(
        &self,
        rows: usize,
        mut f: impl FnMut(usize, usize, std::arch::x86_64::__mmask16, std::arch::x86_64::__mmask16),
    ) {
        let (len, end) = (self.len, self.len + self.zeros);
        for r in 0..rows {
            for start in (0..end).step_by(16) {
                let read = super::first_lanes(len.saturating_sub(start));
                f(r, start, read, super::first_lanes(end - start));
            }
        }
    }
}

/// Copies `runs` from `src` to `dst`, adding `add[r]` to run `r` (a bias as results leave the
/// kernel's block). The runs are rows of small planes, a few dozen values, where a scalar tail
/// or a `memmove` call per run costs as much as the copy, so with AVX-512 each goes as vectors
/// of 16 with a masked last one, all runs in one call.
///
/// # Panics
/// If `src`, `dst` or `add` is too short for the runs.
pub fn copy_runs(dst: &mut [f32], src: &[f32], runs: Runs, add: Option<&[f32]>) {
    let Runs {
        rows,
        len,
        src_stride,
        dst_stride,
        zeros,
    } = runs;
    if rows == 0 {
        return;
    }
    runs.check(src, (dst, rows), len + zeros, add, "copy_runs");
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX-512F is available and the asserts keep every run inside the slices.
        unsafe { avx512::copy_runs(dst.as_mut_ptr(), src.as_ptr(), runs, add) };
        return;
    }
    for r in 0..rows {
        let add = add.map_or(0.0, |a| a[r]);
        let to = &mut dst[r * dst_stride..r * dst_stride + len + zeros];
        let (values, tail) = to.split_at_mut(len);
        values
            .iter_mut()
            .zip(&src[r * src_stride..])
            .for_each(|(d, &s)| *d = s + add);
        tail.fill(0.0);
    }
}

/// Copies `runs` from `src` to every other value of `dst` (value `j` of run `r` to
/// `dst[r * dst_stride + 2 j]`), adding `add[r]` to run `r`, leaving the values between them
/// as they are: one sub-pixel phase of a stride-2 input gradient into its rows, where the
/// other phase fills the gaps. With AVX-512, eight values at a time spread over a vector and
/// stored under a mask; the scalar loop, a store per value, was a fifth of a transposed
/// convolution's forward pass. `runs.zeros` must be 0.
///
/// # Panics
/// If `src`, `dst` or `add` is too short for the runs, or `runs.zeros` is not 0.
pub fn copy_runs_to_every_other(dst: &mut [f32], src: &[f32], runs: Runs, add: Option<&[f32]>) {
    let Runs {
        rows,
        len,
        src_stride,
        dst_stride,
        zeros,
    } = runs;
    assert_eq!(zeros, 0, "copy_runs_to_every_other: zeros");
    if rows == 0 || len == 0 {
        return;
    }
    runs.check(
        src,
        (dst, rows),
        2 * len - 1,
        add,
        "copy_runs_to_every_other",
    );
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX-512F is available and the asserts keep every run inside the slices.
        unsafe { avx512::copy_runs_to_every_other(dst.as_mut_ptr(), src.as_ptr(), runs, add) };
        return;
    }
    for r in 0..rows {
        let add = add.map_or(0.0, |a| a[r]);
        let to = dst[r * dst_stride..].iter_mut().step_by(2);
        to.zip(&src[r * src_stride..r * src_stride + len])
            .for_each(|(d, &s)| *d = s + add);
    }
}

/// Copies every other value of `runs` from `src` (value `2 j` of run `r`, `src[r *
/// src_stride + 2 j]`, to `dst[r * dst_stride + j]`), each run followed by `runs.zeros` zeros:
/// one sub-pixel phase of a row, as a stride-2 convolution's grid holds it. With AVX-512, 16
/// values from two vectors at a time; the scalar loop, a load and a store per value, was about
/// 4% of a `unet` training step's profile.
///
/// # Panics
/// If `src` or `dst` is too short for the runs.
pub fn copy_runs_from_every_other(dst: &mut [f32], src: &[f32], runs: Runs) {
    if runs.rows == 0 {
        return;
    }
    // The source runs span `2 len - 1` values.
    let span = Runs {
        len: (2 * runs.len).saturating_sub(1),
        ..runs
    };
    let (rows, extent) = (runs.rows, runs.len + runs.zeros);
    span.check(src, (dst, rows), extent, None, "copy_runs_from_every_other");
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX-512F is available and the check keeps every run inside the slices.
        unsafe { avx512::copy_runs_from_every_other(dst.as_mut_ptr(), src.as_ptr(), runs) };
        return;
    }
    for r in 0..rows {
        let to = &mut dst[r * runs.dst_stride..][..extent];
        let (values, tail) = to.split_at_mut(runs.len);
        let from = src[r * runs.src_stride..].iter().step_by(2);
        values.iter_mut().zip(from).for_each(|(d, &v)| *d = v);
        tail.fill(0.0);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::super::first_lanes;
    use super::Runs;

    /// One tile of [`super::transpose`]: `rows x cols` (each at most 16) from `src` to `dst`.
    ///
    /// # Safety
    /// AVX-512F must be available; `src` must hold `rows` rows of `cols` values `src_stride`
    /// apart, `dst` `cols` rows of `rows` values `dst_stride` apart.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn transpose_tile(
        src: *const f32,
        src_stride: usize,
        (rows, cols): (usize, usize),
        dst: *mut f32,
        dst_stride: usize,
    ) {
        let lanes = |n: usize| -> __mmask16 { if n >= 16 { 0xffff } else { (1u16 << n) - 1 } };
        let (read, write) = (lanes(cols), lanes(rows));
        let mut r: [__m512; 16] = std::array::from_fn(|i| {
            if i < rows {
                // SAFETY: row i < rows, the mask keeps the read to `cols` values.
                unsafe { _mm512_maskz_loadu_ps(read, src.add(i * src_stride)) }
            } else {
                _mm512_setzero_ps()
            }
        });
        // Pairs of rows interleaved, then pairs of pairs, then 128-bit lanes twice: the
        // classic 16 x 16 transpose in 64 shuffles.
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for i in 0..4 {
            let (a, b, c, d) = (t[4 * i], t[4 * i + 1], t[4 * i + 2], t[4 * i + 3]);
            r[4 * i] = _mm512_shuffle_ps::<0x44>(a, c);
            r[4 * i + 1] = _mm512_shuffle_ps::<0xEE>(a, c);
            r[4 * i + 2] = _mm512_shuffle_ps::<0x44>(b, d);
            r[4 * i + 3] = _mm512_shuffle_ps::<0xEE>(b, d);
        }
        for half in 0..2 {
            for j in 0..4 {
                let (a, b) = (r[8 * half + j], r[8 * half + 4 + j]);
                t[8 * half + j] = _mm512_shuffle_f32x4::<0x88>(a, b);
                t[8 * half + 4 + j] = _mm512_shuffle_f32x4::<0xDD>(a, b);
            }
        }
        for j in 0..8 {
            r[j] = _mm512_shuffle_f32x4::<0x88>(t[j], t[8 + j]);
            r[8 + j] = _mm512_shuffle_f32x4::<0xDD>(t[j], t[8 + j]);
        }
        for (c, &column) in r.iter().enumerate().take(cols) {
            // SAFETY: column c < cols, the mask keeps the write to `rows` values.
            unsafe { _mm512_mask_storeu_ps(dst.add(c * dst_stride), write, column) };
        }
    }

    /// [`super::copy_runs_to_every_other`].
    ///
    /// # Safety
    /// AVX-512F must be available; `src` must hold the runs, `dst` every other value from each
    /// run's start, `add` (if any) `rows` values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn copy_runs_to_every_other(
        dst: *mut f32,
        src: *const f32,
        runs: Runs,
        add: Option<&[f32]>,
    ) {
        for r in 0..runs.rows {
            let add = _mm512_set1_ps(add.map_or(0.0, |a| a[r]));
            for start in (0..runs.len).step_by(8) {
                let values = (runs.len - start).min(8);
                // The even lanes of the values' 2 n - 1 destinations.
                let write = 0x5555 & first_lanes(2 * values - 1);
                // SAFETY: the read mask keeps to run r of `src`, the write mask to the values
                // of run r in `dst` (the contract).
                unsafe {
                    let v = _mm512_maskz_loadu_ps(
                        first_lanes(values),
                        src.add(r * runs.src_stride + start),
                    );
                    let spread = _mm512_maskz_expand_ps(0x5555, _mm512_add_ps(v, add));
                    _mm512_mask_storeu_ps(dst.add(r * runs.dst_stride + 2 * start), write, spread);
                }
            }
        }
    }

    /// [`super::copy_runs_from_every_other`].
    ///
    /// # Safety
    /// AVX-512F must be available; `src` must hold `2 len - 1` values from each run's start,
    /// `dst` `len + zeros` from each of its rows.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn copy_runs_from_every_other(dst: *mut f32, src: *const f32, runs: Runs) {
        let (end, span) = (runs.len + runs.zeros, (2 * runs.len).saturating_sub(1));
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for r in 0..runs.rows {
            for start in (0..end).step_by(16) {
                // The 32 source values from value 2 start on, those of the run only; the even
                // ones past the run's end are zero, so the zeros after it come with them.
                let left = span.saturating_sub(2 * start);
                let (low, high) = (first_lanes(left), first_lanes(left.saturating_sub(16)));
                // SAFETY: the read masks keep to the run's values in `src`, the write mask to
                // row r of `dst` (the contract).
                unsafe {
                    let from = src.add(r * runs.src_stride + 2 * start);
                    let a = _mm512_maskz_loadu_ps(low, from);
                    let b = _mm512_maskz_loadu_ps(high, from.add(16));
                    let v = _mm512_permutex2var_ps(a, evens, b);
                    let to = dst.add(r * runs.dst_stride + start);
                    _mm512_mask_storeu_ps(to, first_lanes(end - start), v);
                }
            }
        }
    }

    /// [`super::copy_runs`].
    ///
    /// # Safety
    /// AVX-512F must be available; `src` and `dst` must hold the runs, `add` (if any) `rows`
    /// values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn copy_runs(dst: *mut f32, src: *const f32, runs: Runs, add: Option<&[f32]>) {
        runs.for_each_vector(runs.rows, |r, start, read, write| {
            let add = _mm512_set1_ps(add.map_or(0.0, |a| a[r]));
            // SAFETY: the masks keep reads inside run r of `src` and writes inside run r of
            // `dst` (the contract).
            unsafe {
                let v = _mm512_maskz_loadu_ps(read, src.add(r * runs.src_stride + start));
                let v = _mm512_maskz_add_ps(read, v, add);
                _mm512_mask_storeu_ps(dst.add(r * runs.dst_stride + start), write, v);
            }
        });
    }
}
