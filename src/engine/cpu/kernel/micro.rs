//! The micro-kernel (`block`): an `MR x NR` block of a product held in registers, `a` packed
//! by `pack_rows`, each step of `b` read from wherever `Steps` says it starts; and
//! `shifted_block`, its counterpart for weight gradients.

use std::ops::Range;

use super::available;

/// Rows of the block the micro-kernel keeps in registers.
pub const MR: usize = 8;
/// Its columns: three vectors of 16. 8 x 3 accumulators leave 8 of the 32 registers for the
/// three vectors of `b` and the broadcast value of `a`.
pub const NR: usize = 48;

/// `rows x depth` row-major values as panels of [`MR`] rows, each laid out step by step (`MR`
/// values per step of the depth), the last panel padded with zero rows.
pub fn pack_rows(a: &[f32], rows: usize, depth: usize, packed: &mut Vec<f32>) {
    let panels = rows.div_ceil(MR);
    packed.resize(panels * depth * MR, 0.0);
    for (ip, panel) in packed.chunks_exact_mut(depth * MR).enumerate() {
        for i in 0..MR {
            let row = ip * MR + i;
            let steps = panel[i..].iter_mut().step_by(MR);
            if row < rows {
                steps
                    .zip(&a[row * depth..(row + 1) * depth])
                    .for_each(|(d, &v)| *d = v);
            } else {
                steps.for_each(|d| *d = 0.0);
            }
        }
    }
}

/// Where each step of `b` starts for [`block`], and how far the furthest step reaches, so
/// that a call checks its bounds once rather than step by step.
#[derive(Default)]
pub struct Steps {
    pub(super) starts: Vec<usize>,
    pub(super) reach: usize,
}

impl Steps {
    pub fn set(&mut self, starts: impl IntoIterator<Item = usize>) {
        self.starts.clear();
        self.starts.extend(starts);
        self.reach = self.starts.iter().max().map_or(0, |&s| s + NR);
    }
}

/// `c[MR, NR] (+)= a · b` over steps `range` of `steps`: step `p` of `a` is its `MR` values
/// from `(p - range.start) * MR`, of `b` its `NR` values from `steps`' start `p` (anywhere in
/// `b`: the convolutions read their steps straight from a zero-padded input, each step the
/// input shifted); `c`'s rows are `ldc` apart. Overwrites `c` unless `add`.
///
/// # Panics
/// If [`available`] is false, or an operand is too short for the steps it is asked for.
pub fn block(
    a: &[f32],
    b: &[f32],
    steps: &Steps,
    range: Range<usize>,
    c: &mut [f32],
    ldc: usize,
    add: bool,
) {
    assert!(available(), "the micro-kernel needs AVX-512");
    let starts = &steps.starts[range];
    assert!(a.len() >= starts.len() * MR, "micro-kernel: a too short");
    assert!(b.len() >= steps.reach, "micro-kernel: b too short");
    assert!(c.len() >= (MR - 1) * ldc + NR, "micro-kernel: c too short");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is available and the asserts keep every access inside the slices.
    unsafe {
        avx512::block(starts, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), ldc, add)
    }
}

/// Accumulators of [`shifted_block`]; every block's rows divide it (a caller rounds up to it).
pub const SHIFTED_ACCUMULATORS: usize = 24;

/// Rows of [`shifted_block`]'s block for `vectors` vectors of columns (1 to 4): 24
/// accumulators, with the vectors of `b` and the broadcast value in the vector registers left.
/// With 12 rows or more the rows' starts outgrow the general registers and are reloaded from
/// the stack; 12 rows were still faster than 8 on an Intel Xeon (weight gradients of 32
/// channels: 3.9 against 4.1 ms for a batch at 28 x 28).
pub fn shifted_rows(vectors: usize) -> usize {
    SHIFTED_ACCUMULATORS / vectors
}

/// The shape of a [`shifted_block`] (or its bf16 twin's, whose `p` holds two values per index).
pub(super) struct ShiftedShape {
    pub(super) vectors: usize,
    pub(super) values_per_index: usize,
    pub(super) ldb: usize,
    pub(super) ldc: usize,
}

impl ShiftedShape {
    /// Whether there is anything to sum over `ranges` (indices into `b`'s rows), once the
    /// block's asserts hold for operands of lengths `(p, b, c)`.
    ///
    /// # Panics
    /// If `vectors` is not 1 to 4, `starts` is not [`shifted_rows`] long, or an operand is too
    /// short.
    pub(super) fn holds(
        &self,
        starts: &[usize],
        ranges: &[Range<usize>],
        (p, b, c): (usize, usize, usize),
    ) -> bool {
        let vectors = self.vectors;
        assert!(
            (1..=4).contains(&vectors),
            "shifted block: {vectors} vectors"
        );
        let rows = shifted_rows(vectors);
        assert_eq!(starts.len(), rows, "shifted block: starts");
        let Some(end) = ranges.iter().filter(|r| !r.is_empty()).map(|r| r.end).max() else {
            return false;
        };
        let reach = self.values_per_index * end;
        assert!(
            starts.iter().all(|&s| s + reach <= p),
            "shifted block: p too short"
        );
        assert!(
            (end - 1) * self.ldb + 16 * vectors <= b,
            "shifted block: b too short"
        );
        assert!(
            (rows - 1) * self.ldc + 16 * vectors <= c,
            "shifted block: c too short"
        );
        true
    }
}

/// `c[i * ldc + o] += Σ_q p[starts[i] + q] · b[q * ldb + o]` for `i < starts.len()` and `o <
/// 16 * vectors`, `q` over the ranges `runs`: a block of a product whose inner dimension runs
/// along memory in `p` at a different start for each row, as a convolution's weight gradient
/// has it (each row a step of the patch, the input shifted; `b` the output gradient, position
/// by position; the runs its rows, skipping the zero-padded grid's borders).
/// `starts.len()` must be [`shifted_rows`]`(vectors)`.
///
/// # Panics
/// If [`available`] is false, `vectors` is not 1 to 4, `starts` has another length, or an
/// operand is too short.
#[allow(clippy::too_many_arguments)]
pub fn shifted_block(
    vectors: usize,
    p: &[f32],
    starts: &[usize],
    b: &[f32],
    ldb: usize,
    runs: &[Range<usize>],
    c: &mut [f32],
    ldc: usize,
) {
    assert!(available(), "the micro-kernel needs AVX-512");
    let shape = ShiftedShape {
        vectors,
        values_per_index: 1,
        ldb,
        ldc,
    };
    if !shape.holds(starts, runs, (p.len(), b.len(), c.len())) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is available and the asserts keep every access inside the slices.
    unsafe {
        let (p, b, c) = (p.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        match vectors {
            1 => avx512::shifted_block::<1, 24>(p, starts, b, ldb, runs, c, ldc),
            2 => avx512::shifted_block::<2, 12>(p, starts, b, ldb, runs, c, ldc),
            3 => avx512::shifted_block::<3, 8>(p, starts, b, ldb, runs, c, ldc),
            _ => avx512::shifted_block::<4, 6>(p, starts, b, ldb, runs, c, ldc),
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::MR;

    /// [`super::shifted_block`] with `V` vectors and `R` rows.
    ///
    /// # Safety
    /// AVX-512F must be available; `starts` must hold `R` starts, `p` the runs' values from
    /// each, `b` their rows of `16 V` values `ldb` apart, `c` `R` rows of `16 V` values `ldc`
    /// apart.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn shifted_block<const V: usize, const R: usize>(
        p: *const f32,
        starts: &[usize],
        b: *const f32,
        ldb: usize,
        runs: &[Range<usize>],
        c: *mut f32,
        ldc: usize,
    ) {
        let starts: [*const f32; R] = std::array::from_fn(|i| {
            // SAFETY: each start is inside `p` (the contract).
            unsafe { p.add(starts[i]) }
        });
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for q in runs.iter().flat_map(Clone::clone) {
            // SAFETY: q is in a run: row q of `b` and value q after each start (the contract).
            unsafe {
                let row: [__m512; V] =
                    std::array::from_fn(|v| _mm512_loadu_ps(b.add(q * ldb + 16 * v)));
                for (acc, &start) in acc.iter_mut().zip(&starts) {
                    let value = _mm512_set1_ps(*start.add(q));
                    for (acc, &row) in acc.iter_mut().zip(&row) {
                        *acc = _mm512_fmadd_ps(value, row, *acc);
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

    /// # Safety
    /// AVX-512F must be available; `a` must hold `rows.len() * MR` values, `b` `NR` from each
    /// of `rows`, and `c` an `MR x NR` block with rows `ldc` apart.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn block(
        rows: &[usize],
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        add: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 3]; MR];
        for (p, &at) in rows.iter().enumerate() {
            // SAFETY: step p of `a` and row `at` of `b` are inside them (the contract).
            unsafe {
                let row = b.add(at);
                let b0 = _mm512_loadu_ps(row);
                let b1 = _mm512_loadu_ps(row.add(16));
                let b2 = _mm512_loadu_ps(row.add(32));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let ai = _mm512_set1_ps(*a.add(p * MR + i));
                    acc[0] = _mm512_fmadd_ps(ai, b0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(ai, b1, acc[1]);
                    acc[2] = _mm512_fmadd_ps(ai, b2, acc[2]);
                }
            }
        }
        // SAFETY: `c` holds the block (the contract).
        unsafe { store_block(&acc, c, ldc, add) }
    }

    /// The `MR x NR` sums of a micro-kernel to `c` (rows `ldc` apart), added to what it holds
    /// when `add`.
    ///
    /// # Safety
    /// AVX-512F must be available and `c` must hold an `MR x NR` block with rows `ldc` apart.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(in crate::engine::cpu::kernel) unsafe fn store_block(
        acc: &[[__m512; 3]; MR],
        c: *mut f32,
        ldc: usize,
        add: bool,
    ) {
        for (i, acc) in acc.iter().enumerate() {
            for (v, &sum) in acc.iter().enumerate() {
                // SAFETY: row i < MR and columns 16v..16v + 16 <= NR of the block.
                unsafe {
                    let out = c.add(i * ldc + 16 * v);
                    let value = if add {
                        _mm512_add_ps(_mm512_loadu_ps(out), sum)
                    } else {
                        sum
                    };
                    _mm512_storeu_ps(out, value);
                }
            }
        }
    }
}
