//! The bf16 micro-kernel (`vdpbf16ps`, pairs of steps) beside the fp32 one on the product of a
//! convolution of `res`: 64 input channels by 3x3 taps (576 steps, 288 pairs), 64 outputs (8
//! panels of 8 rows), a 30 x 30 padded grid (19 blocks of 48 positions), passes of 64 steps
//! (32 pairs) as the convolutions run them; one thread, the operands in L2 as in a convolution.
//!
//! `cargo bench --bench bf16_kernel` prints each kernel's GFLOP/s (median of 15 interleaved
//! timings of 20 products each) beside the one-thread fp32 and bf16 peaks and the ratio.

use std::time::Instant;

use convlab::engine::cpu::kernel::{
    MR, NR, Steps, available, available_bf16, block, block_bf16, interleave_planes, pack_row_pairs,
    pack_rows,
};
use convlab::engine::{measure_bf16_peak, measure_peak};

const CHANNELS: usize = 64;
const OUTPUTS: usize = 64;
const SIDE: usize = 30;
const KC: usize = 64;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if !available() || !available_bf16() {
        eprintln!("bf16_kernel: this CPU lacks AVX-512 or AVX512-BF16: nothing to compare");
        return;
    }
    let plane = SIDE * SIDE + NR + 2 * SIDE + 2;
    let x: Vec<f32> = (0..CHANNELS * plane)
        .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
        .collect();
    let depth = CHANNELS * 9;
    let w: Vec<f32> = (0..OUTPUTS * depth)
        .map(|i| ((i * 104_729) % 89) as f32 / 89.0 - 0.5)
        .collect();
    let taps: Vec<usize> = (0..9).map(|t| (t / 3) * SIDE + t % 3).collect();
    // fp32: step (c, tap) reads plane c shifted by the tap; bf16: pair (c/2, tap).
    let blocks = (SIDE * SIDE).div_ceil(NR);
    let steps: Vec<Steps> = (0..blocks)
        .map(|b| {
            let mut steps = Steps::default();
            let taps = &taps;
            steps
                .set((0..CHANNELS).flat_map(|c| taps.iter().map(move |&t| c * plane + t + b * NR)));
            steps
        })
        .collect();
    let pair_steps: Vec<Steps> = (0..blocks)
        .map(|b| {
            let mut steps = Steps::default();
            let taps = &taps;
            steps.set(
                (0..CHANNELS / 2).flat_map(|k| taps.iter().map(move |&t| k * plane + t + b * NR)),
            );
            steps
        })
        .collect();
    let mut packed = Vec::new();
    pack_rows(&w, OUTPUTS, depth, &mut packed);
    // The same weights with each pair of channels' taps side by side: (k, tap, low/high).
    let paired: Vec<f32> = (0..OUTPUTS)
        .flat_map(|o| {
            let w = &w;
            (0..CHANNELS / 2).flat_map(move |k| {
                (0..9).flat_map(move |t| [0, 1].map(|h| w[o * depth + (2 * k + h) * 9 + t]))
            })
        })
        .collect();
    let mut packed_pairs = Vec::new();
    pack_row_pairs(&paired, OUTPUTS, depth / 2, &mut packed_pairs);
    let mut lanes = Vec::new();
    interleave_planes(&x, CHANNELS, plane, &mut lanes);
    let mut c = vec![0.0f32; MR * NR];
    let flops = 2.0 * (OUTPUTS * depth * blocks * NR) as f64;

    let fp32 = |c: &mut [f32]| {
        for panel in 0..OUTPUTS / MR {
            for steps in &steps {
                for p0 in (0..depth).step_by(KC) {
                    let range = p0..(p0 + KC).min(depth);
                    let a = &packed[(panel * depth + p0) * MR..];
                    block(a, &x, steps, range, c, NR, p0 > 0);
                }
            }
        }
    };
    let bf16 = |c: &mut [f32]| {
        let pairs = depth / 2;
        for panel in 0..OUTPUTS / MR {
            for steps in &pair_steps {
                for q0 in (0..pairs).step_by(KC / 2) {
                    let range = q0..(q0 + KC / 2).min(pairs);
                    let a = &packed_pairs[(panel * pairs + q0) * MR..];
                    block_bf16(a, &lanes, steps, range, c, NR, q0 > 0);
                }
            }
        }
    };
    let (mut t32, mut t16) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        for (times, run) in [(&mut t32, &fp32 as &dyn Fn(&mut [f32])), (&mut t16, &bf16)] {
            let start = Instant::now();
            for _ in 0..20 {
                run(&mut c);
            }
            times.push(20.0 * flops / start.elapsed().as_secs_f64() / 1e9);
        }
    }
    let (peak32, _) = measure_peak(1, 20_000_000, 3);
    let peak16 = measure_bf16_peak(1, 20_000_000, 3).unwrap_or(f64::NAN);
    let (g32, g16) = (median(t32), median(t16));
    println!("one thread, {CHANNELS} -> {OUTPUTS} channels, 3x3, {SIDE}x{SIDE} grid");
    println!(
        "{:<8} {:>10} {:>14} {:>8}",
        "kernel", "GFLOP/s", "peak GFLOP/s", "of peak"
    );
    println!(
        "{:<8} {:>10.1} {:>14.1} {:>7.0}%",
        "fp32",
        g32,
        peak32,
        100.0 * g32 / peak32
    );
    println!(
        "{:<8} {:>10.1} {:>14.1} {:>7.0}%",
        "bf16",
        g16,
        peak16,
        100.0 * g16 / peak16
    );
    println!("bf16 / fp32: {:.2}x", g16 / g32);
}
