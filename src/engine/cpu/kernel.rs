//! convlab's own kernels for CPUs with AVX-512, the inner loops of the convolutions
//! (`conv::implicit`, `conv::lanes`, `conv::phases`, `conv::pointwise`):
//! - [`block`], the micro-kernel: an `MR x NR` block of a product held in registers for a whole
//!   pass over the inner dimension, `a` packed as BLIS packs it (Van Zee & van de Geijn, 2015;
//!   [`pack_rows`]), each step of `b` read from wherever it starts ([`Steps`]: the input
//!   shifted, on a zero-padded grid). Alone it runs at the core's FMA peak: 172 of 173 GFLOP/s
//!   on an Intel Xeon, in passes of 64 steps.
//! - [`shifted_block`], for weight gradients: rows broadcast from shifted starts against rows of
//!   `b` laid out along the inner dimension.
//! - [`lanes_block`], for small planes' forward passes: 7 or 14 positions by up to four vectors
//!   of output channels (the channels in the lanes), the four-vector block in assembly.
//! - [`pointwise`], for 1x1 convolutions with few outputs: 16 positions at a time, every
//!   output's sum in a register.
//! - [`copy_runs`], [`copy_runs_to_every_other`] and [`transpose`]: the copies around them
//!   (padding, results with a bias, a stride-2 phase into its rows, turning channels into
//!   positions), in masked vectors and register tiles.
//!
//! Each checks its operands' bounds once per call and says so in a panic; the `gemm` crate
//! stays the path on CPUs without AVX-512.

use std::ops::Range;

/// Rows of the block the micro-kernel keeps in registers.
pub const MR: usize = 8;
/// Its columns: three vectors of 16. 8 x 3 accumulators leave 8 of the 32 registers for the
/// three vectors of `b` and the broadcast value of `a`.
pub const NR: usize = 48;

/// Whether this CPU runs the micro-kernel (the answer is cached by `std`).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `body` compiled for AVX-512 where this CPU has it, through [`vectorised!`]. The build
/// targets every x86-64 CPU, so a plain loop over values compiles to SSE2's four lanes, or
/// none; inlined here, the element-wise layers' loops (batch norm, ReLU, dropout, pooling,
/// the optimiser's update) take sixteen. Each lane does what the plain loop does, in the same
/// order (Rust never fuses a multiply and an add), so the results are the same bit for bit.
#[inline(always)]
pub fn run_vectorised<R>(body: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU has AVX-512F, the one feature `run` is compiled for.
        return unsafe { avx512::run(body) };
    }
    body()
}

/// `vectorised!(body)`: `body` in a closure inlined into [`run_vectorised`] (a closure that is
/// not inlined there is compiled for every x86-64 CPU, as before).
macro_rules! vectorised {
    ($body:expr $(,)?) => {
        $crate::engine::cpu::kernel::run_vectorised(
            #[inline(always)]
            || $body,
        )
    };
}
pub(crate) use vectorised;

/// The sums of `a`'s values and of `a * b` in 16 lanes, lane `k` over the values at `k` mod 16
/// in order, over whole runs of 16 (the rest is the caller's). With AVX-512 one vector each
/// (the product rounded before it is added, as a plain loop does it); the plain loop's
/// vectoriser paired each sum with its product instead and ran at a quarter of the speed.
pub fn lane_sums(a: &[f32], b: &[f32]) -> ([f32; 16], [f32; 16]) {
    let runs = a.len().min(b.len()) / 16;
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX-512F is available; both slices hold `16 * runs` values.
        return unsafe { avx512::lane_sums(a.as_ptr(), b.as_ptr(), runs) };
    }
    let (mut sums, mut dots) = ([0.0f32; 16], [0.0f32; 16]);
    for (ca, cb) in a.chunks_exact(16).zip(b.chunks_exact(16)).take(runs) {
        for k in 0..16 {
            sums[k] += ca[k];
            dots[k] += ca[k] * cb[k];
        }
    }
    (sums, dots)
}

/// For the tests of what runs only with AVX-512: whether this CPU has none (and so the test is
/// skipped, which it says).
#[cfg(test)]
pub(crate) fn skipped_without_avx512() -> bool {
    let skipped = !available();
    if skipped {
        eprintln!("skipped: this CPU has no AVX-512, so convlab's own kernels never run here");
    }
    skipped
}

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
    starts: Vec<usize>,
    reach: usize,
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
    assert!(
        (1..=4).contains(&vectors),
        "shifted_block: {vectors} vectors"
    );
    let rows = shifted_rows(vectors);
    assert_eq!(starts.len(), rows, "shifted_block: starts");
    let Some(end) = runs.iter().filter(|r| !r.is_empty()).map(|r| r.end).max() else {
        return;
    };
    assert!(
        starts.iter().all(|&s| s + end <= p.len()),
        "shifted_block: p too short"
    );
    assert!(
        (end - 1) * ldb + 16 * vectors <= b.len(),
        "shifted_block: b too short"
    );
    assert!(
        (rows - 1) * ldc + 16 * vectors <= c.len(),
        "shifted_block: c too short"
    );
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

/// Positions of [`lanes_block`]'s block: 7, which divides the width of the planes where it
/// runs (7, 14 and 28), so no position of a row's last block falls past the row's end; or
/// twice that with one or two vectors of channels.
pub const LANES: usize = 7;

/// Vectors of channels [`lanes_block`] takes at most: 28 accumulators, three vectors of weights
/// and the broadcast value fill the 32 registers (the fourth vector is read inside its FMAs).
pub const LANES_VECTORS: usize = 4;

/// `c[j * ldc + o] (+)= Σ_p p[start_p + j] · w[(p - range.start) * ldw + o]` for `j <
/// positions` and `o < 16 * vectors`, over steps `range` of `steps`: a block of a
/// convolution's output with the channels in the vector lanes (PyTorch's oneDNN lays its
/// outputs out this way), consecutive positions of the zero-padded input `p` from each step's
/// start and the weights laid out step by step. Where the micro-kernel's 48 positions run over
/// a small plane's borders, these fit its rows. Overwrites `c` unless `add`. Rows of `w` and
/// `c` that start on 64-byte boundaries keep each vector in one cache line.
///
/// # Panics
/// If [`available`] is false, the block is not [`LANES`] positions by 1 to [`LANES_VECTORS`]
/// vectors or twice as many positions by 1 or 2, or an operand is too short.
#[allow(clippy::too_many_arguments)]
pub fn lanes_block(
    (positions, vectors): (usize, usize),
    p: &[f32],
    steps: &Steps,
    range: Range<usize>,
    w: &[f32],
    ldw: usize,
    c: &mut [f32],
    ldc: usize,
    add: bool,
) {
    assert!(available(), "the micro-kernel needs AVX-512");
    assert!(
        (positions == LANES && (1..=LANES_VECTORS).contains(&vectors))
            || (positions == 2 * LANES && (1..=2).contains(&vectors)),
        "lanes_block: {positions} x {vectors} vectors"
    );
    let starts = &steps.starts[range];
    // `reach` is the furthest start plus the micro-kernel's `NR`; this block reads fewer.
    assert!(
        p.len() + NR >= steps.reach + positions,
        "lanes_block: p too short"
    );
    if let Some(last) = starts.len().checked_sub(1) {
        assert!(
            w.len() >= last * ldw + 16 * vectors,
            "lanes_block: w too short"
        );
    }
    assert!(
        c.len() >= (positions - 1) * ldc + 16 * vectors,
        "lanes_block: c too short"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is available and the asserts keep every access inside the slices.
    unsafe {
        let (p, w, c) = (p.as_ptr(), w.as_ptr(), c.as_mut_ptr());
        match (positions, vectors) {
            (LANES, 1) => avx512::lanes_block::<1, LANES>(starts, p, w, ldw, c, ldc, add),
            (LANES, 2) => avx512::lanes_block::<2, LANES>(starts, p, w, ldw, c, ldc, add),
            (LANES, 3) => avx512::lanes_block::<3, LANES>(starts, p, w, ldw, c, ldc, add),
            (LANES, _) => avx512::lanes_block_4(starts, p, w, ldw, c, ldc, add),
            (_, 1) => avx512::lanes_block::<1, 14>(starts, p, w, ldw, c, ldc, add),
            _ => avx512::lanes_block::<2, 14>(starts, p, w, ldw, c, ldc, add),
        }
    }
}

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
    /// Panics, naming `what`, unless `src` holds the runs, `dst` `extent` values from each
    /// run's start, and `add` (if any) a value per run; `rows` must not be 0.
    fn check(&self, src: &[f32], dst: &[f32], extent: usize, add: Option<&[f32]>, what: &str) {
        let last = self.rows - 1;
        assert!(
            last * self.src_stride + self.len <= src.len(),
            "{what}: src too short"
        );
        assert!(
            last * self.dst_stride + extent <= dst.len(),
            "{what}: dst too short"
        );
        assert!(
            add.is_none_or(|a| a.len() >= self.rows),
            "{what}: add too short"
        );
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
    runs.check(src, dst, len + zeros, add, "copy_runs");
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
    runs.check(src, dst, 2 * len - 1, add, "copy_runs_to_every_other");
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

/// Rows [`pointwise`] takes at most.
pub const POINTWISE_ROWS: usize = 16;

/// `dst[r * plane + p] = bias[r] + Σ_d weight[r * depth + d] · src[d * plane + p]`: a 1x1
/// convolution of one image with at most [`POINTWISE_ROWS`] outputs (a segmenter's classifier
/// head), 16 positions at a time with every output's sum in a register, so each input value
/// is read once and each output written once.
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
    let steps: Vec<f32> = (0..depth)
        .flat_map(|d| (0..block).map(move |r| if r < rows { weight[r * depth + d] } else { 0.0 }))
        .collect();
    let mut biases = [0.0f32; POINTWISE_ROWS];
    if let Some(b) = bias {
        biases[..rows].copy_from_slice(&b[..rows]);
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F is available and the asserts keep every access inside the slices.
    unsafe {
        let (w, s, d) = (steps.as_ptr(), src.as_ptr(), dst.as_mut_ptr());
        if block == 8 {
            avx512::pointwise::<8>(w, depth, s, &biases, d, rows, plane)
        } else {
            avx512::pointwise::<16>(w, depth, s, &biases, d, rows, plane)
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    use super::{MR, Runs};

    /// [`super::lane_sums`] over `runs` runs of 16.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn lane_sums(a: *const f32, b: *const f32, runs: usize) -> ([f32; 16], [f32; 16]) {
        let (mut sums, mut dots) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        for r in 0..runs {
            // SAFETY: the caller's slices hold `16 * runs` values.
            let (x, y) = unsafe {
                (
                    _mm512_loadu_ps(a.add(16 * r)),
                    _mm512_loadu_ps(b.add(16 * r)),
                )
            };
            sums = _mm512_add_ps(sums, x);
            dots = _mm512_add_ps(dots, _mm512_mul_ps(x, y));
        }
        let (mut s, mut d) = ([0.0f32; 16], [0.0f32; 16]);
        // SAFETY: each array holds 16 values.
        unsafe {
            _mm512_storeu_ps(s.as_mut_ptr(), sums);
            _mm512_storeu_ps(d.as_mut_ptr(), dots);
        }
        (s, d)
    }

    /// `body`, inlined into a function compiled for AVX-512F ([`super::run_vectorised`]).
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn run<R>(body: impl FnOnce() -> R) -> R {
        body()
    }

    /// Masks the first `n` of 16 lanes.
    fn first_lanes(n: usize) -> __mmask16 {
        if n >= 16 { 0xffff } else { (1u16 << n) - 1 }
    }

    /// [`super::pointwise`] with `R` rows of weights laid out step by step (`R` per step of
    /// the depth, zero past `rows`), `R` biases; only `rows` rows are stored.
    ///
    /// # Safety
    /// AVX-512F must be available; `w` must hold `depth * R` values, `src` `depth` rows of
    /// `plane`, `dst` `rows` rows of `plane`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pointwise<const R: usize>(
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
                    let x = _mm512_maskz_loadu_ps(lanes, src.add(d * plane + p));
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

    /// [`super::lanes_block`] with `V` vectors and `R` positions (all but 4 x [`LANES`]).
    ///
    /// # Safety
    /// AVX-512F must be available; `p` must hold `R` values from each start, `w` `16 V` values
    /// for each step, `ldw` apart, and `c` `R` rows of `16 V` values `ldc` apart.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn lanes_block<const V: usize, const R: usize>(
        starts: &[usize],
        p: *const f32,
        w: *const f32,
        ldw: usize,
        c: *mut f32,
        ldc: usize,
        add: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        if add {
            for (j, acc) in acc.iter_mut().enumerate() {
                for (v, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: row j < R, columns 16v..16v + 16 <= 16 V (the contract).
                    *acc = unsafe { _mm512_loadu_ps(c.add(j * ldc + 16 * v)) };
                }
            }
        }
        for (s, &start) in starts.iter().enumerate() {
            // SAFETY: step s of `w` and `R` values from its start in `p` (the contract).
            unsafe {
                let x = p.add(start);
                let weights = w.add(s * ldw);
                let wv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(weights.add(16 * v)));
                for (j, acc) in acc.iter_mut().enumerate() {
                    let value = _mm512_set1_ps(*x.add(j));
                    for (acc, &wv) in acc.iter_mut().zip(&wv) {
                        *acc = _mm512_fmadd_ps(value, wv, *acc);
                    }
                }
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            for (v, &sum) in acc.iter().enumerate() {
                // SAFETY: row j < R, columns 16v..16v + 16 <= 16 V (the contract).
                unsafe { _mm512_storeu_ps(c.add(j * ldc + 16 * v), sum) };
            }
        }
    }

    /// [`super::lanes_block`] with 4 vectors, written out in assembly: its 28
    /// accumulators, three vectors of weights and the broadcast value take all 32 registers
    /// (the fourth vector is read inside its FMAs). Given the same loop in intrinsics, LLVM
    /// moved accumulators between registers on every step (96 GFLOP/s on one core of an Intel
    /// Xeon), or with the broadcasts folded into the FMAs issued 33 loads per 28 FMAs (126);
    /// this block ran at 164 with its weights aligned (best of 8 runs).
    ///
    /// # Safety
    /// As [`lanes_block`].
    #[target_feature(enable = "avx512f")]
    pub unsafe fn lanes_block_4(
        starts: &[usize],
        p: *const f32,
        w: *const f32,
        ldw: usize,
        c: *mut f32,
        ldc: usize,
        add: bool,
    ) {
        // SAFETY: the accesses are those of `lanes_block` (the contract); every vector
        // register is declared clobbered.
        unsafe {
            std::arch::asm!(
                "mov {row}, {c}",
                "test {add}, {add}",
                "jz 3f",
                "vmovups zmm0, zmmword ptr [{row} + 0]",
                "vmovups zmm1, zmmword ptr [{row} + 64]",
                "vmovups zmm2, zmmword ptr [{row} + 128]",
                "vmovups zmm3, zmmword ptr [{row} + 192]",
                "add {row}, {ldc}",
                "vmovups zmm4, zmmword ptr [{row} + 0]",
                "vmovups zmm5, zmmword ptr [{row} + 64]",
                "vmovups zmm6, zmmword ptr [{row} + 128]",
                "vmovups zmm7, zmmword ptr [{row} + 192]",
                "add {row}, {ldc}",
                "vmovups zmm8, zmmword ptr [{row} + 0]",
                "vmovups zmm9, zmmword ptr [{row} + 64]",
                "vmovups zmm10, zmmword ptr [{row} + 128]",
                "vmovups zmm11, zmmword ptr [{row} + 192]",
                "add {row}, {ldc}",
                "vmovups zmm12, zmmword ptr [{row} + 0]",
                "vmovups zmm13, zmmword ptr [{row} + 64]",
                "vmovups zmm14, zmmword ptr [{row} + 128]",
                "vmovups zmm15, zmmword ptr [{row} + 192]",
                "add {row}, {ldc}",
                "vmovups zmm16, zmmword ptr [{row} + 0]",
                "vmovups zmm17, zmmword ptr [{row} + 64]",
                "vmovups zmm18, zmmword ptr [{row} + 128]",
                "vmovups zmm19, zmmword ptr [{row} + 192]",
                "add {row}, {ldc}",
                "vmovups zmm20, zmmword ptr [{row} + 0]",
                "vmovups zmm21, zmmword ptr [{row} + 64]",
                "vmovups zmm22, zmmword ptr [{row} + 128]",
                "vmovups zmm23, zmmword ptr [{row} + 192]",
                "add {row}, {ldc}",
                "vmovups zmm24, zmmword ptr [{row} + 0]",
                "vmovups zmm25, zmmword ptr [{row} + 64]",
                "vmovups zmm26, zmmword ptr [{row} + 128]",
                "vmovups zmm27, zmmword ptr [{row} + 192]",
                "jmp 4f",
                "3:",
                "vpxord zmm0, zmm0, zmm0",
                "vpxord zmm1, zmm1, zmm1",
                "vpxord zmm2, zmm2, zmm2",
                "vpxord zmm3, zmm3, zmm3",
                "vpxord zmm4, zmm4, zmm4",
                "vpxord zmm5, zmm5, zmm5",
                "vpxord zmm6, zmm6, zmm6",
                "vpxord zmm7, zmm7, zmm7",
                "vpxord zmm8, zmm8, zmm8",
                "vpxord zmm9, zmm9, zmm9",
                "vpxord zmm10, zmm10, zmm10",
                "vpxord zmm11, zmm11, zmm11",
                "vpxord zmm12, zmm12, zmm12",
                "vpxord zmm13, zmm13, zmm13",
                "vpxord zmm14, zmm14, zmm14",
                "vpxord zmm15, zmm15, zmm15",
                "vpxord zmm16, zmm16, zmm16",
                "vpxord zmm17, zmm17, zmm17",
                "vpxord zmm18, zmm18, zmm18",
                "vpxord zmm19, zmm19, zmm19",
                "vpxord zmm20, zmm20, zmm20",
                "vpxord zmm21, zmm21, zmm21",
                "vpxord zmm22, zmm22, zmm22",
                "vpxord zmm23, zmm23, zmm23",
                "vpxord zmm24, zmm24, zmm24",
                "vpxord zmm25, zmm25, zmm25",
                "vpxord zmm26, zmm26, zmm26",
                "vpxord zmm27, zmm27, zmm27",
                "4:",
                "test {steps}, {steps}",
                "jz 6f",
                "5:",
                "mov {x}, qword ptr [{starts}]",
                "lea {x}, [{p} + 4*{x}]",
                "vmovups zmm28, zmmword ptr [{w} + 0]",
                "vmovups zmm29, zmmword ptr [{w} + 64]",
                "vmovups zmm30, zmmword ptr [{w} + 128]",
                "vbroadcastss zmm31, dword ptr [{x} + 0]",
                "vfmadd231ps zmm0, zmm31, zmm28",
                "vfmadd231ps zmm1, zmm31, zmm29",
                "vfmadd231ps zmm2, zmm31, zmm30",
                "vfmadd231ps zmm3, zmm31, zmmword ptr [{w} + 192]",
                "vbroadcastss zmm31, dword ptr [{x} + 4]",
                "vfmadd231ps zmm4, zmm31, zmm28",
                "vfmadd231ps zmm5, zmm31, zmm29",
                "vfmadd231ps zmm6, zmm31, zmm30",
                "vfmadd231ps zmm7, zmm31, zmmword ptr [{w} + 192]",
                "vbroadcastss zmm31, dword ptr [{x} + 8]",
                "vfmadd231ps zmm8, zmm31, zmm28",
                "vfmadd231ps zmm9, zmm31, zmm29",
                "vfmadd231ps zmm10, zmm31, zmm30",
                "vfmadd231ps zmm11, zmm31, zmmword ptr [{w} + 192]",
                "vbroadcastss zmm31, dword ptr [{x} + 12]",
                "vfmadd231ps zmm12, zmm31, zmm28",
                "vfmadd231ps zmm13, zmm31, zmm29",
                "vfmadd231ps zmm14, zmm31, zmm30",
                "vfmadd231ps zmm15, zmm31, zmmword ptr [{w} + 192]",
                "vbroadcastss zmm31, dword ptr [{x} + 16]",
                "vfmadd231ps zmm16, zmm31, zmm28",
                "vfmadd231ps zmm17, zmm31, zmm29",
                "vfmadd231ps zmm18, zmm31, zmm30",
                "vfmadd231ps zmm19, zmm31, zmmword ptr [{w} + 192]",
                "vbroadcastss zmm31, dword ptr [{x} + 20]",
                "vfmadd231ps zmm20, zmm31, zmm28",
                "vfmadd231ps zmm21, zmm31, zmm29",
                "vfmadd231ps zmm22, zmm31, zmm30",
                "vfmadd231ps zmm23, zmm31, zmmword ptr [{w} + 192]",
                "vbroadcastss zmm31, dword ptr [{x} + 24]",
                "vfmadd231ps zmm24, zmm31, zmm28",
                "vfmadd231ps zmm25, zmm31, zmm29",
                "vfmadd231ps zmm26, zmm31, zmm30",
                "vfmadd231ps zmm27, zmm31, zmmword ptr [{w} + 192]",
                "add {starts}, 8",
                "add {w}, {ldw}",
                "dec {steps}",
                "jnz 5b",
                "6:",
                "mov {row}, {c}",
                "vmovups zmmword ptr [{row} + 0], zmm0",
                "vmovups zmmword ptr [{row} + 64], zmm1",
                "vmovups zmmword ptr [{row} + 128], zmm2",
                "vmovups zmmword ptr [{row} + 192], zmm3",
                "add {row}, {ldc}",
                "vmovups zmmword ptr [{row} + 0], zmm4",
                "vmovups zmmword ptr [{row} + 64], zmm5",
                "vmovups zmmword ptr [{row} + 128], zmm6",
                "vmovups zmmword ptr [{row} + 192], zmm7",
                "add {row}, {ldc}",
                "vmovups zmmword ptr [{row} + 0], zmm8",
                "vmovups zmmword ptr [{row} + 64], zmm9",
                "vmovups zmmword ptr [{row} + 128], zmm10",
                "vmovups zmmword ptr [{row} + 192], zmm11",
                "add {row}, {ldc}",
                "vmovups zmmword ptr [{row} + 0], zmm12",
                "vmovups zmmword ptr [{row} + 64], zmm13",
                "vmovups zmmword ptr [{row} + 128], zmm14",
                "vmovups zmmword ptr [{row} + 192], zmm15",
                "add {row}, {ldc}",
                "vmovups zmmword ptr [{row} + 0], zmm16",
                "vmovups zmmword ptr [{row} + 64], zmm17",
                "vmovups zmmword ptr [{row} + 128], zmm18",
                "vmovups zmmword ptr [{row} + 192], zmm19",
                "add {row}, {ldc}",
                "vmovups zmmword ptr [{row} + 0], zmm20",
                "vmovups zmmword ptr [{row} + 64], zmm21",
                "vmovups zmmword ptr [{row} + 128], zmm22",
                "vmovups zmmword ptr [{row} + 192], zmm23",
                "add {row}, {ldc}",
                "vmovups zmmword ptr [{row} + 0], zmm24",
                "vmovups zmmword ptr [{row} + 64], zmm25",
                "vmovups zmmword ptr [{row} + 128], zmm26",
                "vmovups zmmword ptr [{row} + 192], zmm27",
                // LLVM clears the vectors' upper halves on leaving a function that used them,
                // but cannot see inside this block: without it, the caller's SSE code ran with
                // them dirty (a 64 -> 64 channel forward pass at 14 x 14: 4.70 against 3.26 ms).
                "vzeroupper",
                c = in(reg) c,
                ldc = in(reg) ldc * 4,
                add = in(reg) add as usize,
                starts = inout(reg) starts.as_ptr() => _,
                steps = inout(reg) starts.len() => _,
                p = in(reg) p,
                w = inout(reg) w => _,
                ldw = in(reg) ldw * 4,
                row = out(reg) _,
                x = out(reg) _,
                out("zmm0") _,
                out("zmm1") _,
                out("zmm2") _,
                out("zmm3") _,
                out("zmm4") _,
                out("zmm5") _,
                out("zmm6") _,
                out("zmm7") _,
                out("zmm8") _,
                out("zmm9") _,
                out("zmm10") _,
                out("zmm11") _,
                out("zmm12") _,
                out("zmm13") _,
                out("zmm14") _,
                out("zmm15") _,
                out("zmm16") _,
                out("zmm17") _,
                out("zmm18") _,
                out("zmm19") _,
                out("zmm20") _,
                out("zmm21") _,
                out("zmm22") _,
                out("zmm23") _,
                out("zmm24") _,
                out("zmm25") _,
                out("zmm26") _,
                out("zmm27") _,
                out("zmm28") _,
                out("zmm29") _,
                out("zmm30") _,
                out("zmm31") _,
                options(nostack),
            )
        }
    }

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

    /// [`super::copy_runs`].
    ///
    /// # Safety
    /// AVX-512F must be available; `src` and `dst` must hold the runs, `add` (if any) `rows`
    /// values.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn copy_runs(dst: *mut f32, src: *const f32, runs: Runs, add: Option<&[f32]>) {
        let end = runs.len + runs.zeros;
        for r in 0..runs.rows {
            let add = _mm512_set1_ps(add.map_or(0.0, |a| a[r]));
            for start in (0..end).step_by(16) {
                let (read, write) = (
                    first_lanes(runs.len.saturating_sub(start)),
                    first_lanes(end - start),
                );
                // SAFETY: the masks keep reads inside run r of `src` and writes inside run r
                // of `dst` (the contract).
                unsafe {
                    let v = _mm512_maskz_loadu_ps(read, src.add(r * runs.src_stride + start));
                    let v = _mm512_maskz_add_ps(read, v, add);
                    _mm512_mask_storeu_ps(dst.add(r * runs.dst_stride + start), write, v);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, modulus: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919) % modulus) as f32 * scale - 2.0)
            .collect()
    }

    /// The micro-kernel against the plain product: odd depths, steps at odd and scrambled
    /// starts (as a padded input's shifted rows give them), a part of the steps, both modes.
    #[test]
    fn blocks_match_the_plain_product() {
        if skipped_without_avx512() {
            return;
        }
        for (depth, stride, ldc) in [(1, NR, NR), (7, 50, 49), (193, 3, 61)] {
            let a = values(depth * MR, 13, 1.0);
            let b = values(depth * stride + NR + 100, 11, 0.5);
            let mut steps = Steps::default();
            // Step p starts p * stride in, or scrambled over the first depth * stride values.
            steps.set((0..depth).map(|p| (p * stride * 31 + 5) % (depth * stride + 1)));
            for range in [0..depth, depth / 3..depth] {
                let mut c = values(MR * ldc, 17, 1.0);
                let before = c.clone();
                let a = &a[range.start * MR..];
                block(a, &b, &steps, range.clone(), &mut c, ldc, true);
                for (i, j) in (0..MR).flat_map(|i| (0..ldc).map(move |j| (i, j))) {
                    let mut expected = before[i * ldc + j] as f64;
                    if j < NR {
                        expected += range
                            .clone()
                            .map(|p| {
                                let at = (p * stride * 31 + 5) % (depth * stride + 1);
                                a[(p - range.start) * MR + i] as f64 * b[at + j] as f64
                            })
                            .sum::<f64>();
                    }
                    let got = c[i * ldc + j] as f64;
                    assert!(
                        (got - expected).abs() < 1e-3,
                        "depth {depth} steps {range:?} ({i}, {j}): {got} against {expected}"
                    );
                }
                block(a, &b, &steps, range.clone(), &mut c, ldc, false);
                let plain: f64 = range
                    .clone()
                    .map(|p| {
                        let at = (p * stride * 31 + 5) % (depth * stride + 1);
                        a[(p - range.start) * MR] as f64 * b[at] as f64
                    })
                    .sum();
                assert!((c[0] as f64 - plain).abs() < 1e-3);
            }
        }
    }

    /// The weight-gradient block against the plain product, added to what the block held, for
    /// each width of 1 to 4 vectors, odd lengths and starts; around the block nothing is written.
    #[test]
    fn shifted_blocks_match_the_plain_product() {
        if skipped_without_avx512() {
            return;
        }
        for vectors in 1..=4 {
            let (rows, cols) = (shifted_rows(vectors), 16 * vectors);
            // The last: rows of a padded grid, runs with gaps between them, one empty.
            let whole = |len: usize| std::iter::once(0..len).collect::<Vec<_>>();
            let cases = [
                (1, cols, cols, whole(1)),
                (7, cols + 3, cols + 1, whole(7)),
                (193, 70, 71, whole(193)),
                (193, 70, 71, vec![0..50, 60..61, 70..70, 100..193]),
            ];
            for (len, ldb, ldc, runs) in cases {
                let p = values(len + 300, 13, 0.25);
                let b = values(len * ldb, 11, 0.5);
                let starts: Vec<usize> = (0..rows).map(|i| (i * 37 + 3) % 300).collect();
                // The block's values are added to; everything around it must stay NaN.
                let mut c: Vec<f32> = (0..(rows + 1) * ldc)
                    .map(|at| match (at / ldc, at % ldc) {
                        (i, j) if i < rows && j < cols => (at % 7) as f32,
                        _ => f32::NAN,
                    })
                    .collect();
                shifted_block(vectors, &p, &starts, &b, ldb, &runs, &mut c, ldc);
                for (i, j) in (0..rows + 1).flat_map(|i| (0..ldc).map(move |j| (i, j))) {
                    let got = c[i * ldc + j];
                    if i == rows || j >= cols {
                        assert!(got.is_nan(), "({i}, {j}) written");
                        continue;
                    }
                    let expected: f64 = ((i * ldc + j) % 7) as f64
                        + runs
                            .iter()
                            .flat_map(Clone::clone)
                            .map(|q| p[starts[i] + q] as f64 * b[q * ldb + j] as f64)
                            .sum::<f64>();
                    assert!(
                        (got as f64 - expected).abs() < 1e-3,
                        "{vectors} vectors, runs {runs:?}, ({i}, {j}): {got} against {expected}"
                    );
                }
            }
        }
    }

    /// The block with channels in the lanes against the plain product, for every block shape:
    /// odd depths, scrambled step starts, a part of the steps, rows wider than the block, both
    /// modes, and nothing written around the block.
    #[test]
    fn lanes_blocks_match_the_plain_product() {
        if skipped_without_avx512() {
            return;
        }
        let blocks = (1..=LANES_VECTORS)
            .map(|v| (LANES, v))
            .chain([(2 * LANES, 1), (2 * LANES, 2)]);
        for (positions, vectors) in blocks {
            let cols = 16 * vectors;
            for (depth, ldw, ldc) in [(1, cols, cols), (7, cols + 3, cols + 1), (193, 70, 71)] {
                let p = values(depth * 5 + NR + 100, 13, 0.25);
                let w = values(depth * ldw, 11, 0.5);
                let mut steps = Steps::default();
                let start = |s: usize| (s * 31 + 5) % (depth * 5 + 1);
                steps.set((0..depth).map(start));
                for (range, add) in [(0..depth, true), (depth / 3..depth, false)] {
                    let mut c: Vec<f32> = (0..(positions + 1) * ldc)
                        .map(|at| match (at / ldc, at % ldc) {
                            (j, o) if j < positions && o < cols => (at % 7) as f32,
                            _ => f32::NAN,
                        })
                        .collect();
                    let w = &w[range.start * ldw..];
                    let block = (positions, vectors);
                    lanes_block(block, &p, &steps, range.clone(), w, ldw, &mut c, ldc, add);
                    for (j, o) in (0..positions + 1).flat_map(|j| (0..ldc).map(move |o| (j, o))) {
                        let got = c[j * ldc + o];
                        if j == positions || o >= cols {
                            assert!(got.is_nan(), "({j}, {o}) written");
                            continue;
                        }
                        let before = if add { ((j * ldc + o) % 7) as f64 } else { 0.0 };
                        let expected = before
                            + range
                                .clone()
                                .map(|s| {
                                    let step = (s - range.start) * ldw + o;
                                    p[start(s) + j] as f64 * w[step] as f64
                                })
                                .sum::<f64>();
                        assert!(
                            (got as f64 - expected).abs() < 1e-3,
                            "{positions} x {vectors}, depth {depth} steps {range:?} ({j}, {o}): \
                             {got} against {expected}"
                        );
                    }
                }
            }
        }
    }

    /// The transpose against its definition: whole tiles, partial ones at both edges, strides
    /// wider than the values, and nothing written outside them.
    #[test]
    fn transposes_match_the_definition() {
        for (rows, cols) in [(1, 1), (16, 16), (32, 28), (5, 37), (17, 3)] {
            let (src_stride, dst_stride) = (cols + 3, rows + 2);
            let src = values(rows * src_stride, 97, 1.0);
            let mut dst = vec![f32::NAN; cols * dst_stride];
            transpose(&src, src_stride, (rows, cols), &mut dst, dst_stride);
            for (c, r) in (0..cols).flat_map(|c| (0..dst_stride).map(move |r| (c, r))) {
                let got = dst[c * dst_stride + r];
                if r < rows {
                    assert_eq!(got, src[r * src_stride + c], "{rows} x {cols}: ({r}, {c})");
                } else {
                    assert!(got.is_nan(), "{rows} x {cols}: ({r}, {c}) written");
                }
            }
        }
    }

    /// Strided runs: lengths around the vector width, zeros after each, an added value per run,
    /// and nothing written outside the runs.
    #[test]
    fn runs_are_copied_with_their_additions_and_zeros() {
        for (len, zeros) in [(0, 3), (5, 0), (16, 1), (17, 2), (33, 15)] {
            let runs = Runs {
                rows: 3,
                len,
                src_stride: len + 4,
                dst_stride: len + zeros + 2,
                zeros,
            };
            let src = values(3 * (len + 4), 7, 1.0);
            let add = [0.5, -1.0, 2.0];
            let mut dst = vec![f32::NAN; 3 * runs.dst_stride];
            copy_runs(&mut dst, &src, runs, Some(&add));
            for (r, row) in dst.chunks(runs.dst_stride).enumerate() {
                for (x, &v) in row.iter().enumerate() {
                    match x {
                        x if x < len => assert_eq!(v, src[r * runs.src_stride + x] + add[r]),
                        x if x < len + zeros => assert_eq!(v, 0.0, "len {len} row {r} at {x}"),
                        _ => assert!(v.is_nan(), "len {len} row {r}: {x} written"),
                    }
                }
            }
        }
    }

    /// The lane sums bit for bit as the plain loop gives them (each lane in order, the product
    /// rounded before it is added), over lengths with and without a rest past the last run of
    /// 16 (which they leave out), and the element-wise loops under `vectorised!` as they are.
    #[test]
    fn lane_sums_and_vectorised_loops_match_the_plain_loops_bit_for_bit() {
        for n in [0, 5, 16, 17, 47, 48, 200] {
            let (a, b) = (values(n, 97, 0.013), values(n, 89, 0.029));
            let (mut sums, mut dots) = ([0.0f32; 16], [0.0f32; 16]);
            for i in 0..n / 16 * 16 {
                sums[i % 16] += a[i];
                dots[i % 16] += a[i] * b[i];
            }
            let (s, d) = lane_sums(&a, &b);
            assert_eq!(
                (s.map(f32::to_bits), d.map(f32::to_bits)),
                (sums.map(f32::to_bits), dots.map(f32::to_bits)),
                "{n}"
            );
        }
        let (a, b) = (values(1000, 97, 0.013), values(1000, 89, 0.029));
        let plain: Vec<f32> = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| (x * 0.7 + y) / (y * y + 1.0).sqrt())
            .collect();
        let mut out = vec![0.0; a.len()];
        vectorised!(for ((o, &x), &y) in out.iter_mut().zip(&a).zip(&b) {
            *o = (x * 0.7 + y) / (y * y + 1.0).sqrt();
        });
        assert_eq!(
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            plain.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    /// Every other value written, the gaps (the other phase's) untouched, for runs that end
    /// inside a vector, on one, and past several.
    #[test]
    fn runs_are_copied_to_every_other_value() {
        for len in [1, 7, 8, 9, 16, 21] {
            let runs = Runs {
                rows: 3,
                len,
                src_stride: len + 4,
                dst_stride: 2 * len + 3,
                zeros: 0,
            };
            let src = values(3 * (len + 4), 7, 1.0);
            let add = [0.5, -1.0, 2.0];
            let mut dst = vec![f32::NAN; 3 * runs.dst_stride];
            copy_runs_to_every_other(&mut dst, &src, runs, Some(&add));
            for (r, row) in dst.chunks(runs.dst_stride).enumerate() {
                for (x, &v) in row.iter().enumerate() {
                    if x % 2 == 0 && x / 2 < len {
                        assert_eq!(v, src[r * runs.src_stride + x / 2] + add[r], "len {len}");
                    } else {
                        assert!(v.is_nan(), "len {len} row {r}: {x} written");
                    }
                }
            }
        }
    }

    #[test]
    fn packed_rows_are_laid_out_step_by_step_with_zero_padding() {
        // 9 rows of depth 2: two panels, the second with one row and seven of zeros.
        let a: Vec<f32> = (0..18).map(|i| i as f32).collect();
        let mut packed = Vec::new();
        pack_rows(&a, 9, 2, &mut packed);
        assert_eq!(packed.len(), 2 * 2 * MR);
        assert_eq!(&packed[..MR], &[0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]);
        assert_eq!(
            &packed[MR..2 * MR],
            &[1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]
        );
        assert_eq!(
            &packed[2 * MR..3 * MR],
            &[16.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(
            &packed[3 * MR..],
            &[17.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
    }
}
