//! The input gradient of a strided convolution by sub-pixel phases: the input positions with
//! the same remainders modulo the stride receive from the same kernel taps, so each phase is
//! one dense product (`PhaseKernel`: a phase's taps and kernel, built once per pass; with bf16
//! operands also in pairs of output channels for the bf16 micro-kernel).

use super::geometry::{BLOCK_FLOATS, ConvGeometry};
use super::implicit::{Padded, panels, panels_bf16};
use super::scratch::Scratch;
use crate::engine::cpu::kernel;
use crate::engine::cpu::matmul::{CountedProduct, Threads, View, matmul};

/// One phase (`py`, `px`: input position mod stride) of a strided convolution's input
/// gradient: the kernel taps reaching it, with their offsets, and the kernel they make.
pub(super) struct PhaseKernel {
    py: usize,
    px: usize,
    taps_y: Vec<(usize, isize)>,
    taps_x: Vec<(usize, isize)>,
    kernel: Vec<f32>,
    /// The kernel as `kernel::pack_rows` lays it out for the micro-kernel; with bf16 operands
    /// for the bf16 kernels, as `kernel::pack_row_pairs` lays out pairs of output channels at
    /// each tap (channel `2j` low), empty otherwise.
    packed: Vec<f32>,
    pairs: Vec<u32>,
}

impl ConvGeometry {
    /// The kernel taps through which input positions of phase `p` (position mod stride) are
    /// reached, each with the offset from the phase's own index to the output position read:
    /// input `stride * m + p` receives from output `m + offset` through tap `kernel_index`.
    fn phase_taps(&self, p: usize) -> Vec<(usize, isize)> {
        let (s, reach) = (self.stride as isize, (p + self.pad) as isize);
        (0..self.k)
            .filter(|&t| (reach - t as isize).rem_euclid(s) == 0)
            .map(|t| (t, (reach - t as isize) / s))
            .collect()
    }

    /// What [`ConvGeometry::input_grad_part`] needs to compute input gradients by phase: the
    /// phase kernels where images go one at a time with a stride or the implicit path takes
    /// them, none otherwise. Built once per pass, not per image.
    pub(super) fn input_grad_phases(&self, weight: &[f32]) -> Vec<PhaseKernel> {
        if self.stride > 1 && (!self.groups_images() || self.input_grad_runs_implicit()) {
            self.phase_kernels(weight)
        } else {
            Vec::new()
        }
    }

    /// Every phase's taps and its kernel `[c_in, c_out * taps_y * taps_x]`, also packed.
    pub(super) fn phase_kernels(&self, weight: &[f32]) -> Vec<PhaseKernel> {
        let (s, k, c_in, c_out) = (self.stride, self.k, self.c_in, self.c_out);
        let phase = |py: usize, px: usize| {
            let (taps_y, taps_x) = (self.phase_taps(py), self.phase_taps(px));
            let inner = c_out * taps_y.len() * taps_x.len();
            let mut kernel = vec![0.0; c_in * inner];
            for (ci, row) in kernel.chunks_mut(inner.max(1)).enumerate().take(c_in) {
                let mut at = 0;
                for co in 0..c_out {
                    for &(ky, _) in &taps_y {
                        for &(kx, _) in &taps_x {
                            row[at] = weight[((co * c_in + ci) * k + ky) * k + kx];
                            at += 1;
                        }
                    }
                }
            }
            let mut packed = Vec::new();
            if inner > 0 {
                kernel::pack_rows(&kernel, c_in, inner, &mut packed);
            }
            let mut pairs = Vec::new();
            if inner > 0 && self.runs_bf16_kernels() && self.input_grad_runs_implicit() {
                let taps = taps_y.len() * taps_x.len();
                let depth = c_out.div_ceil(2) * taps;
                let mut rows = vec![0.0; c_in * 2 * depth];
                for (row, paired) in kernel.chunks(inner).zip(rows.chunks_mut(2 * depth)) {
                    for (at, &value) in row.iter().enumerate() {
                        let (co, t) = (at / taps, at % taps);
                        paired[((co / 2) * taps + t) * 2 + co % 2] = value;
                    }
                }
                kernel::pack_row_pairs(&rows, c_in, depth, &mut pairs);
            }
            PhaseKernel {
                py,
                px,
                taps_y,
                taps_x,
                kernel,
                packed,
                pairs,
            }
        };
        (0..s)
            .flat_map(|py| (0..s).map(move |px| (py, px)))
            .map(|(py, px)| phase(py, px))
            .collect()
    }

    /// One image's input gradient of a strided convolution, one phase at a time (sub-pixel):
    /// the input positions with the same remainders modulo the stride receive from the same
    /// kernel taps, so each phase is a dense product written once, where col2im would scatter
    /// and add `k²` values per output position.
    pub(super) fn input_grad_by_phases(
        &self,
        grad_out: &[f32],
        phases: &[PhaseKernel],
        grad_in: &mut [f32],
        scratch: &mut Scratch,
        threads: Threads,
    ) {
        let (s, c_in) = (self.stride, self.c_in);
        for phase in phases {
            let (py, px, taps_y, taps_x) = (phase.py, phase.px, &phase.taps_y, &phase.taps_x);
            let rows = self.h.saturating_sub(py).div_ceil(s);
            let cols = self.w.saturating_sub(px).div_ceil(s);
            let inner = phase.kernel.len() / c_in;
            let rows_per_block = (BLOCK_FLOATS / (inner * cols).max(1)).clamp(1, rows.max(1));
            for m0 in (0..rows).step_by(rows_per_block) {
                let m1 = (m0 + rows_per_block).min(rows);
                let width = (m1 - m0) * cols;
                let gathered = &mut scratch.cols;
                gathered.resize(inner * width, 0.0);
                let mut row = 0;
                for plane in grad_out.chunks(self.out_plane()) {
                    for &(_, oy) in taps_y {
                        for &(_, ox) in taps_x {
                            for m in m0..m1 {
                                let dst = &mut gathered[row + (m - m0) * cols..][..cols];
                                self.gather_shifted(plane, m as isize + oy, ox, dst);
                            }
                            row += width;
                        }
                    }
                }
                scratch.rows.resize(c_in * width, 0.0);
                matmul(
                    c_in,
                    width,
                    inner,
                    &mut scratch.rows,
                    width,
                    false,
                    View::rows(&phase.kernel, inner.max(1)),
                    View::rows(gathered, width),
                    threads,
                );
                for (ci, values) in scratch.rows.chunks(width).enumerate() {
                    let channel = &mut grad_in[ci * self.h * self.w..(ci + 1) * self.h * self.w];
                    for m in m0..m1 {
                        let y = s * m + py;
                        let dst = &mut channel[y * self.w..(y + 1) * self.w];
                        let src = &values[(m - m0) * cols..(m - m0 + 1) * cols];
                        dst[px..]
                            .iter_mut()
                            .step_by(s)
                            .zip(src)
                            .for_each(|(d, &v)| *d = v);
                    }
                }
            }
        }
    }

    /// Whether the input gradient of this strided convolution runs as implicit GEMMs on the
    /// output gradient's padded grid ([`ConvGeometry::input_grad_implicit`]): every phase is
    /// reached by some tap, each at most one position away (3x3 and 4x4 kernels, padding 1).
    pub(super) fn input_grad_runs_implicit(&self) -> bool {
        self.stride > 1
            && self.runs_implicit()
            && (0..self.stride).all(|p| {
                let taps = self.phase_taps(p);
                !taps.is_empty() && taps.iter().all(|&(_, offset)| offset.abs() <= 1)
            })
    }

    /// The input gradient of consecutive images of a strided convolution
    /// ([`ConvGeometry::input_grad_runs_implicit`] must hold), one sub-pixel phase at a time as
    /// in [`ConvGeometry::input_grad_by_phases`], but each phase's product on the micro-kernel
    /// straight from the output gradient laid out once on a zero-padded grid (its taps reach
    /// one position either side): no gathered copies, and the `gemm` crate's products of
    /// `c_in` rows (3 for a first layer) no longer run at a fraction of its speed.
    pub(super) fn input_grad_implicit(
        &self,
        grad_out: &[f32],
        phases: &[PhaseKernel],
        bias: Option<&[f32]>,
        grad_in: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let phases = (phases, bias);
        // The output gradient as the input of a stride-1 "same" 3x3 convolution: its grid.
        let grid = ConvGeometry::conv(self.c_out, self.h_out, self.w_out, self.c_in, 3, 1, 1);
        if self.groups_images() {
            let rows = 0..self.h_out;
            return self.input_grad_rows_implicit(&grid, grad_out, rows, phases, grad_in, scratch);
        }
        for (dy, dx) in grad_out
            .chunks(self.out_len())
            .zip(grad_in.chunks_mut(self.in_len()))
        {
            for rows in grid.padded_blocks() {
                self.input_grad_rows_implicit(&grid, dy, rows, phases, dx, scratch);
            }
        }
    }

    /// Output rows `rows`; `phases` the phase kernels and the bias to add.
    fn input_grad_rows_implicit(
        &self,
        grid: &ConvGeometry,
        grad_out: &[f32],
        rows: std::ops::Range<usize>,
        (phases, bias): (&[PhaseKernel], Option<&[f32]>),
        grad_in: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let n = grad_out.len() / self.out_len();
        let padded = Padded::new(grid, n, rows.clone());
        let (channel, row) = (padded.channel, padded.row);
        // With bf16, the grid's channels (the output gradient's) in pairs for every phase.
        let bf16 = phases.first().is_some_and(|p| !p.pairs.is_empty());
        let planes = match bf16 {
            true => {
                padded.fill_pairs(grid, grad_out, scratch);
                self.c_out.div_ceil(2)
            }
            false => {
                padded.fill(grid, grad_out, &mut scratch.cols);
                self.c_out
            }
        };
        for phase in phases {
            let inner = phase.kernel.len() / self.c_in;
            // Step `(o, tap y, tap x)` (or pair of channels `o`): plane `o` shifted by the
            // taps' offsets (-1 to 1).
            scratch.steps.set((0..planes).flat_map(|o| {
                phase.taps_y.iter().flat_map(move |&(_, oy)| {
                    phase.taps_x.iter().map(move |&(_, ox)| {
                        o * channel + ((oy + 1) as usize) * row + (ox + 1) as usize
                    })
                })
            }));
            let flops = 2 * (self.c_in * n * rows.len() * self.w_out * inner) as u64;
            let _counted = CountedProduct::start(flops, Threads::One);
            let emit = |block: &[f32], first| {
                padded.scatter_phase(self, block, first, (phase.py, phase.px), bias, grad_in)
            };
            match bf16 {
                true => {
                    let depth = planes * phase.taps_y.len() * phase.taps_x.len();
                    panels_bf16(&padded, (self.c_in, depth), &phase.pairs, scratch, emit)
                }
                false => panels(&padded, (self.c_in, inner), &phase.packed, scratch, emit),
            }
        }
    }

    /// `dst[n] = plane[y][n + shift]` of an output-shaped plane, zero outside it.
    fn gather_shifted(&self, plane: &[f32], y: isize, shift: isize, dst: &mut [f32]) {
        let w = self.w_out as isize;
        if y < 0 || y >= self.h_out as isize {
            dst.fill(0.0);
            return;
        }
        let len = dst.len() as isize;
        let first = (-shift).clamp(0, len);
        let last = (w - shift).clamp(first, len);
        let src = &plane[y as usize * self.w_out..(y as usize + 1) * self.w_out];
        let (first, last) = (first as usize, last as usize);
        dst[..first].fill(0.0);
        dst[last..].fill(0.0);
        let start = (first as isize + shift) as usize;
        dst[first..last].copy_from_slice(&src[start..start + last - first]);
    }
}
