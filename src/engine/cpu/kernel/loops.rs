//! Plain loops compiled for AVX-512 where the CPU has it (`vectorised!`, `run_vectorised`),
//! for the element-wise layers and the optimiser, and the per-lane sums behind batch norm's
//! statistics (`lane_sums`): the same results bit for bit as the plain loops.

use super::available;

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

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

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
}
