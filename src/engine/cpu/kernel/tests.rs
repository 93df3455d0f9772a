//! The kernels against plain loops: products, copies and transposes to the definition, the
//! vectorised loops and lane sums bit for bit.

use super::*;

fn values(n: usize, modulus: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % modulus) as f32 * scale - 2.0)
        .collect()
}

/// A block of `rows x cols` values (`at % 7` at offset `at`) with rows `ldc` apart and a row
/// more, every value around the block NaN: what a kernel must add to and leave alone.
fn block_in_nans(rows: usize, cols: usize, ldc: usize) -> Vec<f32> {
    (0..(rows + 1) * ldc)
        .map(|at| match (at / ldc, at % ldc) {
            (i, j) if i < rows && j < cols => (at % 7) as f32,
            _ => f32::NAN,
        })
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
            let mut c = block_in_nans(rows, cols, ldc);
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
                let mut c = block_in_nans(positions, cols, ldc);
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

/// Every other value of each run, then its zeros, for lengths around the vectors' 16 (masked
/// tails); the source holds NaN past each run's last value read, so a read past it shows.
#[test]
fn runs_are_copied_from_every_other_value() {
    for (len, zeros) in [(1, 1), (7, 0), (8, 1), (9, 2), (16, 1), (21, 11), (32, 3)] {
        let span = 2 * len - 1;
        let runs = Runs {
            rows: 3,
            len,
            src_stride: span + 5,
            dst_stride: len + zeros + 2,
            zeros,
        };
        let src: Vec<f32> = (0..3 * runs.src_stride)
            .map(|i| match i % runs.src_stride < span {
                true => i as f32,
                false => f32::NAN,
            })
            .collect();
        let mut dst = vec![-1.0; 3 * runs.dst_stride];
        copy_runs_from_every_other(&mut dst, &src, runs);
        for (r, row) in dst.chunks(runs.dst_stride).enumerate() {
            for (x, &v) in row.iter().enumerate() {
                let expected = match x {
                    x if x < len => src[r * runs.src_stride + 2 * x],
                    x if x < len + zeros => 0.0,
                    _ => -1.0,
                };
                assert_eq!(v, expected, "len {len} row {r}: value {x}");
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

/// The bf16 micro-kernel against the emulated path's definition (each value rounded to bf16,
/// the exact products added, here in f64): within 1e-6 of the sum of |products| per result
/// (`vdpbf16ps` rounds each addition in fp32), on odd pair counts, scrambled starts, an odd
/// channel count (the missing channel zero), part of the pairs, both modes; and the packing
/// puts value `2q` low and `2q + 1` high.
#[test]
fn bf16_blocks_match_the_rounded_product() {
    use crate::engine::cpu::bf16::round;
    if !available_bf16() {
        eprintln!("skipped: this CPU has no AVX512-BF16, so the bf16 micro-kernel never runs here");
        return;
    }
    let mut packed = Vec::new();
    pack_row_pairs(&[1.0, -2.0, 3.0, 0.5], 1, 2, &mut packed);
    assert_eq!(packed[0], 0x3f80 | 0xc000 << 16);
    assert_eq!(packed[MR], 0x4040 | 0x3f00 << 16);
    for (channels, plane, pairs_used) in [(2, NR + 5, 1), (7, 97, 3), (64, 300, 32)] {
        let x = values(channels * plane, 23, 0.173);
        let mut b = Vec::new();
        interleave_planes(&x, channels, plane, &mut b);
        let lanes = channels.div_ceil(2);
        assert_eq!(b.len(), lanes * plane);
        // Pair q reads channel pair q % lanes, shifted by a scrambled start inside the plane.
        let start = |q: usize| (q % lanes) * plane + (q * 37 + 3) % (plane - NR + 1);
        let depth = 3 * pairs_used + 1;
        let mut steps = Steps::default();
        steps.set((0..depth).map(start));
        let a = values(MR * 2 * depth, 19, 0.31);
        pack_row_pairs(&a, MR, depth, &mut packed);
        let value = |channel: usize, at: usize| match channel < channels {
            true => round(x[channel * plane + at]) as f64,
            false => 0.0,
        };
        for range in [0..depth, depth / 2..depth] {
            let ldc = NR + 3;
            let mut c = values(MR * ldc, 17, 1.0);
            let before = c.clone();
            block_bf16(
                &packed[range.start * MR..],
                &b,
                &steps,
                range.clone(),
                &mut c,
                ldc,
                true,
            );
            for (i, j) in (0..MR).flat_map(|i| (0..NR).map(move |j| (i, j))) {
                let (mut sum, mut magnitude) = (before[i * ldc + j] as f64, 0.0);
                for q in range.clone() {
                    let (pair, at) = (q % lanes, start(q) - (q % lanes) * plane + j);
                    for half in 0..2 {
                        let w = round(a[i * 2 * depth + 2 * q + half]) as f64;
                        let product = w * value(2 * pair + half, at);
                        sum += product;
                        magnitude += product.abs();
                    }
                }
                let got = c[i * ldc + j] as f64;
                assert!(
                    (got - sum).abs()
                        <= 1e-6 * (magnitude + before[i * ldc + j].abs() as f64) + 1e-30,
                    "{channels} channels, pairs {range:?}, ({i}, {j}): {got} against {sum}"
                );
            }
            block_bf16(
                &packed[range.start * MR..],
                &b,
                &steps,
                range.clone(),
                &mut c,
                ldc,
                false,
            );
            assert_ne!(c[0], before[0]);
        }
    }
}

/// The bf16 block with channels in the lanes against the product of the operands rounded to
/// bf16, summed in f64: within 1e-6 of the sum of the products' magnitudes (`vdpbf16ps` rounds
/// each addition in fp32), for every block shape, odd pair counts, scrambled starts, a part of
/// the pairs, both modes, and nothing written around the block.
#[test]
fn bf16_lanes_blocks_match_the_rounded_product() {
    use crate::engine::cpu::bf16::round;
    if !available_bf16() {
        eprintln!("skipped: this CPU has no AVX512-BF16, so the bf16 lanes kernel never runs here");
        return;
    }
    let blocks = (1..=LANES_VECTORS)
        .map(|v| (LANES, v))
        .chain([(2 * LANES, 1), (2 * LANES, 2)]);
    for (positions, vectors) in blocks {
        let cols = 16 * vectors;
        for (depth, ldw, ldc) in [(1, cols, cols), (7, cols + 3, cols + 1), (97, 70, 71)] {
            // Two planes (the pair's low and high values) interleaved into lanes, for the
            // input and for the weights.
            let n = depth * 5 + NR + 100;
            let x = values(2 * n, 13, 0.173);
            let mut p = Vec::new();
            interleave_planes(&x, 2, n, &mut p);
            let wx = values(2 * depth * ldw, 11, 0.31);
            let mut w = Vec::new();
            interleave_planes(&wx, 2, depth * ldw, &mut w);
            let mut steps = Steps::default();
            let start = |s: usize| (s * 31 + 5) % (depth * 5 + 1);
            steps.set((0..depth).map(start));
            for (range, add) in [(0..depth, true), (depth / 3..depth, false)] {
                let mut c = block_in_nans(positions, cols, ldc);
                let wr = &w[range.start * ldw..];
                let block = (positions, vectors);
                lanes_block_bf16(block, &p, &steps, range.clone(), wr, ldw, &mut c, ldc, add);
                for (j, o) in (0..positions + 1).flat_map(|j| (0..ldc).map(move |o| (j, o))) {
                    let got = c[j * ldc + o] as f64;
                    if j == positions || o >= cols {
                        assert!(got.is_nan(), "({j}, {o}) written");
                        continue;
                    }
                    let before = if add { ((j * ldc + o) % 7) as f64 } else { 0.0 };
                    let (mut sum, mut magnitude) = (before, before.abs());
                    for s in range.clone() {
                        for half in 0..2 {
                            let value = round(x[half * n + start(s) + j]) as f64;
                            let weight = round(wx[half * depth * ldw + s * ldw + o]) as f64;
                            sum += value * weight;
                            magnitude += (value * weight).abs();
                        }
                    }
                    assert!(
                        (got - sum).abs() <= 1e-6 * magnitude + 1e-30,
                        "{positions} x {vectors}, depth {depth} pairs {range:?} ({j}, {o}): \
                         {got} against {sum}"
                    );
                }
            }
        }
    }
}

/// The bf16 weight-gradient block against the product of the operands rounded to bf16 (f64
/// sums; within 1e-6 of the products' magnitudes, as `vdpbf16ps` rounds each addition), added
/// to what the block held, for 1 to 4 vectors, odd position counts (the last pair half zero),
/// starts of either parity, ranges of pairs with gaps; nothing written around the block. And
/// the layouts: `to_bf16` rounds and ends in a zero, `pair_rows` puts row `2k` low.
#[test]
fn bf16_shifted_blocks_match_the_rounded_product() {
    use crate::engine::cpu::bf16::round;
    if !available_bf16() {
        eprintln!(
            "skipped: this CPU has no AVX512-BF16, so the bf16 shifted kernel never runs here"
        );
        return;
    }
    let mut grid = Vec::new();
    to_bf16(
        &[1.0, -2.5, 1.0 + 2f32.powi(-8) + 2f32.powi(-20)],
        &mut grid,
    );
    assert_eq!(grid, [0x3f80, 0xc020, 0x3f81, 0]);
    let mut lanes = Vec::new();
    pair_rows(
        &[1.0, 2.0, 9.0, 3.0, 4.0, 9.0, 5.0, 6.0, 9.0],
        3,
        2,
        3,
        &mut lanes,
    );
    let half = |v: f32| bf16_bits(v) as u32;
    let expected = [
        half(1.0) | half(3.0) << 16,
        half(2.0) | half(4.0) << 16,
        half(5.0),
        half(6.0),
    ];
    assert_eq!(lanes, expected);
    for vectors in 1..=4 {
        let (rows, cols) = (shifted_rows(vectors), 16 * vectors);
        for (positions, ldb, ldc, pairs) in [
            (1, cols, cols, std::iter::once(0..1).collect::<Vec<_>>()),
            (7, cols + 3, cols + 1, std::iter::once(0..4).collect()),
            (193, 70, 71, vec![0..25, 30..31, 40..40, 50..97]),
        ] {
            let x = values(positions + 301, 13, 0.173);
            let mut p = Vec::new();
            to_bf16(&x, &mut p);
            let dy = values(positions * ldb, 11, 0.31);
            let mut b = Vec::new();
            pair_rows(&dy, ldb, ldb, positions, &mut b);
            let starts: Vec<usize> = (0..rows).map(|i| (i * 37 + 3) % 300).collect();
            let mut c = block_in_nans(rows, cols, ldc);
            shifted_block_bf16(vectors, &p, &starts, &b, ldb, &pairs, &mut c, ldc);
            for (i, j) in (0..rows + 1).flat_map(|i| (0..ldc).map(move |j| (i, j))) {
                let got = c[i * ldc + j] as f64;
                if i == rows || j >= cols {
                    assert!(got.is_nan(), "({i}, {j}) written");
                    continue;
                }
                let before = ((i * ldc + j) % 7) as f64;
                let (mut sum, mut magnitude) = (before, before);
                for q in pairs.iter().flat_map(|k| 2 * k.start..2 * k.end) {
                    if q < positions {
                        let product =
                            round(x[starts[i] + q]) as f64 * round(dy[q * ldb + j]) as f64;
                        sum += product;
                        magnitude += product.abs();
                    }
                }
                assert!(
                    (got - sum).abs() <= 1e-6 * magnitude,
                    "{vectors} vectors, pairs {pairs:?}, ({i}, {j}): {got} against {sum}"
                );
            }
        }
    }
}

/// The bf16 conversions around the bf16 kernels against the scalar rounding (`bf16_bits`, as
/// `engine::cpu::bf16::round`) bit for bit: runs of odd lengths (masked tails) with zeros
/// after them, an odd run count (the last pair's high half zero), strides between runs, ties
/// to even, a NaN, infinities; nothing written between rows.
#[test]
fn bf16_runs_and_pairs_round_as_the_scalar_definition() {
    let tie = 1.0 + 2f32.powi(-8);
    let mut src = values(5 * 41, 31, 0.37);
    src[..4].copy_from_slice(&[tie, f32::NAN, f32::INFINITY, -f32::MAX]);
    for (rows, len, zeros) in [(5, 37, 3), (4, 16, 0), (3, 1, 17), (1, 0, 5)] {
        let runs = Runs {
            rows,
            len,
            src_stride: 41,
            dst_stride: len + zeros + 2,
            zeros,
        };
        let mut bits = vec![0xdead_u16; rows * runs.dst_stride];
        bf16_runs(&mut bits, &src, runs);
        let mut pairs = vec![0xdead_beef_u32; rows.div_ceil(2) * runs.dst_stride];
        pair_runs(&mut pairs, &src, runs);
        let value = |r: usize, j: usize| match r < rows && j < len {
            true => bf16_bits(src[r * 41 + j]),
            false => 0,
        };
        for (r, j) in (0..rows).flat_map(|r| (0..runs.dst_stride).map(move |j| (r, j))) {
            let expected = if j < len + zeros { value(r, j) } else { 0xdead };
            assert_eq!(bits[r * runs.dst_stride + j], expected, "bf16 run {r}, {j}");
        }
        for (k, j) in (0..rows.div_ceil(2)).flat_map(|k| (0..runs.dst_stride).map(move |j| (k, j)))
        {
            let expected = match j < len + zeros {
                true => value(2 * k, j) as u32 | (value(2 * k + 1, j) as u32) << 16,
                false => 0xdead_beef,
            };
            assert_eq!(pairs[k * runs.dst_stride + j], expected, "pair {k}, {j}");
        }
    }
    assert_eq!(bf16_bits(tie), 0x3f80);
}
