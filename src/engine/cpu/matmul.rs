//! Matrix products through the `gemm` crate, which picks its AVX-512, AVX2 or SSE kernels at
//! run time, so one binary runs on every x86-64 CPU.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use gemm::Parallelism;

/// A read-only matrix view: element (i, j) is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix whose rows are `row_stride` apart.
    pub fn rows(data: &'a [f32], row_stride: usize) -> Self {
        View {
            data,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major matrix whose rows are `row_stride` apart.
    pub fn transposed(data: &'a [f32], row_stride: usize) -> Self {
        View {
            data,
            row_stride: 1,
            col_stride: row_stride,
        }
    }

    /// The transpose, without moving data.
    fn t(self) -> View<'a> {
        View {
            data: self.data,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }
}

/// How a product may use the threads: one thread when the caller already runs one product per
/// thread, all of rayon's otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    One,
    All,
}

/// The work of the products run while counting is on (see [`count_products`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProductWork {
    /// Floating-point operations (2 per multiply-add).
    pub flops: f64,
    /// Seconds the products held threads, summed over the threads (a product on all threads
    /// counts its time once per thread).
    pub thread_seconds: f64,
}

static COUNTING: AtomicBool = AtomicBool::new(false);
static FLOPS: AtomicU64 = AtomicU64::new(0);
static THREAD_NANOS: AtomicU64 = AtomicU64::new(0);

/// Starts (from zero) or stops counting every product's work, for the benchmark's share of a
/// step spent in products and their achieved GFLOP/s.
pub fn count_products(on: bool) {
    FLOPS.store(0, Ordering::Relaxed);
    THREAD_NANOS.store(0, Ordering::Relaxed);
    COUNTING.store(on, Ordering::Relaxed);
}

/// What the products did since [`count_products`] turned counting on.
pub fn counted_products() -> ProductWork {
    ProductWork {
        flops: FLOPS.load(Ordering::Relaxed) as f64,
        thread_seconds: THREAD_NANOS.load(Ordering::Relaxed) as f64 * 1e-9,
    }
}

/// While counting is on, one product's flops and the time it held the threads, added when it
/// ends (whichever way [`matmul`] returns). The convolutions that run on convlab's own
/// micro-kernel rather than through [`matmul`] count theirs with one too.
pub struct CountedProduct {
    flops: u64,
    threads: Threads,
    start: Option<Instant>,
}

impl CountedProduct {
    /// Starts timing a product of `flops` floating-point operations on `threads`.
    pub fn start(flops: u64, threads: Threads) -> Self {
        let start = COUNTING.load(Ordering::Relaxed).then(Instant::now);
        CountedProduct {
            flops,
            threads,
            start,
        }
    }
}

impl Drop for CountedProduct {
    fn drop(&mut self) {
        let Some(start) = self.start else { return };
        let held = match self.threads {
            Threads::One => 1,
            Threads::All => rayon::current_num_threads() as u64,
        };
        FLOPS.fetch_add(self.flops, Ordering::Relaxed);
        THREAD_NANOS.fetch_add(start.elapsed().as_nanos() as u64 * held, Ordering::Relaxed);
    }
}

/// `dst[m, n] (+)= a[m, k] · b[k, n]`; `dst` is row-major with rows `dst_row_stride` apart and
/// is added to when `accumulate` is set, overwritten otherwise.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_row_stride: usize,
    accumulate: bool,
    a: View,
    b: View,
    threads: Threads,
) {
    let _counted = CountedProduct::start(2 * (m * n * k) as u64, threads);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        (m - 1) * dst_row_stride + n <= dst.len(),
        "matmul: destination too small"
    );
    assert!(a.fits(m, k) && b.fits(k, n), "matmul: operand too small");
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                dst[row * dst_row_stride..row * dst_row_stride + n].fill(0.0);
            }
        }
        return;
    }
    // gemm's kernels run 2-3x slower on a product with few rows (a convolution's 16-32 output
    // channels) than on its transpose (measured: 67 vs 132 GFLOP/s for 32 x 6272 x 288 on one
    // AVX-512 core), so such a product is computed transposed and transposed back.
    if m < 64 && n >= 2 * m {
        TRANSPOSED.with(|scratch| {
            // A product on this thread that is already using the buffer (rayon may run other
            // work while a threaded product waits) takes a fresh one.
            let mut fresh = Vec::new();
            let mut held = scratch.try_borrow_mut();
            let t = match held.as_deref_mut() {
                Ok(t) => t,
                Err(_) => &mut fresh,
            };
            t.resize(n * m, 0.0);
            product(n, m, k, t, m, false, b.t(), a.t(), threads);
            // Back in tiles of 64 columns, whose rows of `t` stay in the L1 cache.
            for j0 in (0..n).step_by(64) {
                let j1 = (j0 + 64).min(n);
                for (i, row) in dst.chunks_mut(dst_row_stride).take(m).enumerate() {
                    let row = &mut row[j0..j1];
                    for (d, j) in row.iter_mut().zip(j0..j1) {
                        let v = t[j * m + i];
                        *d = if accumulate { *d + v } else { v };
                    }
                }
            }
        });
        return;
    }
    product(m, n, k, dst, dst_row_stride, accumulate, a, b, threads);
}

thread_local! {
    static TRANSPOSED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`matmul`] as the `gemm` crate computes it.
#[allow(clippy::too_many_arguments)]
fn product(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_row_stride: usize,
    accumulate: bool,
    a: View,
    b: View,
    threads: Threads,
) {
    let parallelism = match threads {
        Threads::One => Parallelism::None,
        Threads::All => Parallelism::Rayon(0),
    };
    // SAFETY: `matmul`'s asserts keep every index the product touches inside the slices (the
    // transposed route's buffer holds exactly n x m), and `dst` is borrowed mutably, so it
    // aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_with_transposes_and_accumulation_match_a_hand_computation() {
        // a = [[1, 2, 3], [4, 5, 6]], b = [[1, 0], [0, 1], [1, 1]] -> a·b = [[4, 5], [10, 11]].
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        // Overwritten on one thread, then added to on all of them.
        let mut dst = vec![1.0; 4];
        for (add, threads, expected) in [
            (false, Threads::One, [4.0, 5.0, 10.0, 11.0]),
            (true, Threads::All, [8.0, 10.0, 20.0, 22.0]),
        ] {
            let (lhs, rhs) = (View::rows(&a, 3), View::rows(&b, 2));
            matmul(2, 2, 3, &mut dst, 2, add, lhs, rhs, threads);
            assert_eq!(dst, expected);
        }
        // aᵀ·a through a transposed view: [[17, 22, 27], [22, 29, 36], [27, 36, 45]].
        let mut gram = vec![0.0; 9];
        let at = View::transposed(&a, 3);
        matmul(
            3,
            3,
            2,
            &mut gram,
            3,
            false,
            at,
            View::rows(&a, 3),
            Threads::One,
        );
        assert_eq!(gram, [17.0, 22.0, 27.0, 22.0, 29.0, 36.0, 27.0, 36.0, 45.0]);
    }
}
