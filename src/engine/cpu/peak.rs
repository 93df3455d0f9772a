//! The machine's measured fp32 peak: fused multiply-adds on independent registers, on every
//! thread at once, with the widest vectors the CPU has (AVX-512, else AVX2 + FMA, else plain
//! scalar code). It is the physical limit the engine's matrix products are measured against.
//! Beside it the bf16 peak where the CPU has AVX512-BF16 (`vdpbf16ps`: two bf16 products
//! added to each fp32 lane), the limit of `--precision bf16`'s products.

use std::time::Instant;

/// The widest instruction set [`measure`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VectorIsa {
    Avx512,
    Avx2Fma,
    Scalar,
}

impl VectorIsa {
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return VectorIsa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return VectorIsa::Avx2Fma;
            }
        }
        VectorIsa::Scalar
    }

    /// fp32 values per vector register.
    pub fn lanes(self) -> usize {
        match self {
            VectorIsa::Avx512 => 16,
            VectorIsa::Avx2Fma => 8,
            VectorIsa::Scalar => 1,
        }
    }
}

/// Independent accumulators per thread: enough to hide an FMA's latency (4 cycles) on two
/// FMA units.
const CHAINS: usize = 12;

/// fp32 GFLOP/s of `threads` threads each running `rounds` rounds of [`CHAINS`] vector FMAs
/// (2 flops per lane), the best of `repeats` timings.
pub fn measure(threads: usize, rounds: usize, repeats: usize) -> (f64, VectorIsa) {
    let isa = VectorIsa::detect();
    let flops = (threads * rounds * CHAINS * isa.lanes() * 2) as f64;
    (
        best_rate(threads, repeats, flops, || fma_rounds(isa, rounds)),
        isa,
    )
}

/// GFLOP/s of `flops` done by `chains` on each of `threads` threads at once, the best of
/// `repeats` timings.
fn best_rate(threads: usize, repeats: usize, flops: f64, chains: impl Fn() -> f32 + Sync) -> f64 {
    let mut best = 0.0f64;
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| std::hint::black_box(chains()));
            }
        });
        best = best.max(flops / start.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// GFLOP/s of bf16 products (`vdpbf16ps`, 4 flops per fp32 lane) on `threads` threads, as
/// [`measure`] times fp32; none where the CPU has no AVX512-BF16.
pub fn measure_bf16(threads: usize, rounds: usize, repeats: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16") {
        let flops = (threads * rounds * CHAINS * 16 * 4) as f64;
        // SAFETY: the CPU has AVX512-BF16 (checked above).
        let chains = || unsafe { x86::avx512_bf16(rounds) };
        return Some(best_rate(threads, repeats, flops, chains));
    }
    let _ = (threads, rounds, repeats);
    None
}

/// How many times fp32's rate the bf16 products must run at for `--precision bf16` to take
/// the bf16 kernels: they pair their operands and lay them out anew, so an instruction no
/// faster than fp32's FMAs loses. The machines measured are far on either side (AMD Zen 4:
/// 2.0; an Intel Xeon without AMX: 0.5).
const BF16_PAYS_AT: f64 = 1.5;

/// Whether this CPU's `vdpbf16ps` outruns its fp32 FMAs by [`BF16_PAYS_AT`]: one thread, the
/// best of five alternating timings of each (about 0.5 ms each), measured once per process so that
/// every network of a run takes the same kernels. False without AVX512-BF16.
pub fn bf16_outpaces_fp32() -> bool {
    static PAYS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PAYS.get_or_init(|| {
        let (mut fp32, mut bf16) = (0.0f64, None::<f64>);
        for _ in 0..5 {
            fp32 = fp32.max(measure(1, 200_000, 1).0);
            bf16 = measure_bf16(1, 100_000, 1).map(|r| bf16.unwrap_or(0.0).max(r));
        }
        bf16.is_some_and(|bf16| bf16 >= BF16_PAYS_AT * fp32)
    })
}

fn fma_rounds(isa: VectorIsa, rounds: usize) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `detect` found the instructions these functions are compiled for.
        VectorIsa::Avx512 => unsafe { x86::avx512(rounds) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        VectorIsa::Avx2Fma => unsafe { x86::avx2(rounds) },
        _ => scalar(rounds),
    }
}

fn scalar(rounds: usize) -> f32 {
    let mut acc = [0.0f32; CHAINS];
    let (a, b) = (std::hint::black_box(0.999_999), std::hint::black_box(1e-7));
    for _ in 0..rounds {
        for v in &mut acc {
            *v = v.mul_add(a, b);
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::CHAINS;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) fn avx512(rounds: usize) -> f32 {
        let a = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm512_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..rounds {
            for v in &mut acc {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        total(acc)
    }

    /// The sum of every lane of the chains.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn total(acc: [__m512; CHAINS]) -> f32 {
        let mut sum = _mm512_setzero_ps();
        for v in acc {
            sum = _mm512_add_ps(sum, v);
        }
        _mm512_reduce_add_ps(sum)
    }

    /// [`CHAINS`] independent `vdpbf16ps` chains: each lane adds two bf16 products.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) fn avx512_bf16(rounds: usize) -> f32 {
        let a = _mm512_cvtne2ps_pbh(
            _mm512_set1_ps(std::hint::black_box(0.999)),
            _mm512_set1_ps(std::hint::black_box(1e-3)),
        );
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..rounds {
            for v in &mut acc {
                *v = _mm512_dpbf16_ps(*v, a, a);
            }
        }
        total(acc)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn avx2(rounds: usize) -> f32 {
        let a = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm256_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        for _ in 0..rounds {
            for v in &mut acc {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut lanes = [0.0f32; 8];
        for v in acc {
            let mut l = [0.0f32; 8];
            // SAFETY: `l` holds 8 floats.
            unsafe { _mm256_storeu_ps(l.as_mut_ptr(), v) };
            lanes.iter_mut().zip(l).for_each(|(s, x)| *s += x);
        }
        lanes.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path computes the same recurrence: x <- x * a + b from 0, summed over the chains.
    #[test]
    fn every_instruction_set_computes_the_same_sums() {
        let want = scalar(1000);
        assert!(want > 0.0);
        let isa = VectorIsa::detect();
        let got = fma_rounds(isa, 1000);
        let lanes = isa.lanes() as f32;
        assert!((got / lanes - want).abs() <= 1e-4 * want, "{got} vs {want}");
        let (gflops, _) = measure(1, 10_000, 1);
        assert!(gflops.is_finite() && gflops > 0.0);
    }

    /// Each lane of the bf16 chains adds 0.999 * 0.999 + 0.001 * 0.001 per round, as bf16: 1
    /// (0.999 is 255.74 steps of 2^-8 in [1/2, 1)) and 131 * 2^-17 = 0.00099945068359375.
    #[test]
    fn the_bf16_chains_add_two_products_per_lane() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            let (hi, lo) = (1.0f64, 0.000_999_450_683_593_75f64);
            let want = (CHAINS * 16 * 10) as f64 * (hi * hi + lo * lo);
            // SAFETY: the CPU has AVX512-BF16.
            let got = unsafe { x86::avx512_bf16(10) } as f64;
            assert!((got - want).abs() < 1e-4 * want, "{got} vs {want}");
            assert!(measure_bf16(1, 10_000, 1).is_some_and(|g| g > 0.0));
            return;
        }
        eprintln!("skipped: this CPU has no AVX512-BF16");
        assert!(measure_bf16(1, 10, 1).is_none());
    }

    /// The kernels' choice follows the rates: taken where bf16's clearly outruns fp32's (Zen
    /// 4: 2x), refused where it is slower (Intel's Xeons without AMX: 0.5x) or absent; in
    /// between the measurement decides and the test does not.
    #[test]
    fn bf16_kernels_are_chosen_where_they_outrun_fp32() {
        let Some(bf16) = measure_bf16(1, 100_000, 5) else {
            assert!(!bf16_outpaces_fp32());
            return;
        };
        let ratio = bf16 / measure(1, 200_000, 5).0;
        match ratio {
            r if r >= 1.8 => assert!(bf16_outpaces_fp32(), "bf16 runs {r:.2}x fp32"),
            r if r <= 1.2 => assert!(!bf16_outpaces_fp32(), "bf16 runs {r:.2}x fp32"),
            r => eprintln!("skipped: bf16 runs {r:.2}x fp32, near the threshold"),
        }
    }
}
