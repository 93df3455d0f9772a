//! The forward pass of a group of small images on convlab's own micro-kernel
//! (`engine::cpu::kernel`). The input is unfolded straight into the panels of columns the
//! kernel reads, so the columns are not packed a second time as the `gemm` crate packs its
//! operands, and each panel's results go from a small buffer to the images they belong to, the
//! bias added on the way. On an Intel Xeon the `gemm` crate's path spent about as long moving
//! the columns as multiplying them.

use super::geometry::ConvGeometry;
use super::schedule::Scratch;
use crate::engine::cpu::kernel::{self, MR, NR};

/// Steps of one pass of the micro-kernel: a 256 x 48 panel of columns (48 KiB) stays in the L1
/// cache while every panel of weights passes over it.
const KC: usize = 64;

impl ConvGeometry {
    /// Whole images: the forward pass through the micro-kernel ([`kernel::available`] must
    /// hold).
    pub(super) fn forward_group_packed(
        &self,
        images: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let (plane, patch) = (self.out_plane(), self.patch());
        let width = images.len() / self.in_len() * plane;
        let panels = width.div_ceil(NR);
        kernel::pack_rows(weight, self.c_out, patch, &mut scratch.weights);
        self.unfold_into_panels(images, panels, scratch);
        let row_panels = self.c_out.div_ceil(MR);
        scratch.block.resize(row_panels * MR * NR, 0.0);
        for (jp, columns) in scratch.cols.chunks_exact(patch * NR).enumerate() {
            for p0 in (0..patch).step_by(KC) {
                let steps = KC.min(patch - p0);
                for (ip, block) in scratch.block.chunks_exact_mut(MR * NR).enumerate() {
                    let weights = &scratch.weights[(ip * patch + p0) * MR..];
                    let columns = &columns[p0 * NR..];
                    kernel::block(steps, weights, columns, NR, block, NR, p0 > 0);
                }
            }
            self.scatter_panel(&scratch.block, jp * NR, width, bias, out);
        }
    }

    /// The columns of whole images as panels of [`NR`] columns, each laid out patch row by
    /// patch row (`[panel][patch][NR]`), the last padded with zeros.
    pub(super) fn unfold_into_panels(&self, images: &[f32], panels: usize, scratch: &mut Scratch) {
        let (plane, patch) = (self.out_plane(), self.patch());
        let Scratch { cols, rows, .. } = scratch;
        cols.resize(panels * patch * NR, 0.0);
        let filled = images.len() / self.in_len() * plane - (panels - 1) * NR;
        let last = &mut cols[(panels - 1) * patch * NR..];
        last.chunks_exact_mut(NR)
            .for_each(|step| step[filled..].fill(0.0));
        if self.stride == 1 && (self.h_out, self.w_out) == (self.h, self.w) {
            for (i, image) in images.chunks(self.in_len()).enumerate() {
                self.unfold_shifted(image, i * plane, cols);
            }
            return;
        }
        // Otherwise each image is unfolded into `rows` (it stays in the L2 cache) and its rows
        // dealt out to the panels.
        rows.resize(patch * plane, 0.0);
        for (i, image) in images.chunks(self.in_len()).enumerate() {
            self.im2col(image, 0, self.h_out, rows, plane, 0);
            for (p, row) in rows.chunks_exact(plane).enumerate() {
                let mut x = 0;
                while x < plane {
                    let (panel, lane) = ((i * plane + x) / NR, (i * plane + x) % NR);
                    let run = (NR - lane).min(plane - x);
                    let at = (panel * patch + p) * NR + lane;
                    if run == NR {
                        // A whole step: a copy of fixed size, a few vector moves instead of a
                        // call to `memmove`.
                        let step: &mut [f32; NR] = (&mut cols[at..at + NR]).try_into().unwrap();
                        *step = row[x..x + NR].try_into().unwrap();
                    } else {
                        cols[at..at + run].copy_from_slice(&row[x..x + run]);
                    }
                    x += run;
                }
            }
        }
    }

    /// [`ConvGeometry::unfold_into_panels`] of one image whose output planes are the size of
    /// its input planes (stride 1): patch row `(c, ky, kx)` is then input plane `c` shifted by
    /// `(ky - pad) * w + kx - pad`, so each panel's share of it is copied from the input in
    /// one piece, and the values that fall outside the input (rows above or below it, columns
    /// that wrapped round from the next or previous row) are zeroed after. Unfolding into a
    /// buffer first and dealing its rows out to the panels took three times as long.
    fn unfold_shifted(&self, image: &[f32], first_column: usize, cols: &mut [f32]) {
        let (h, w, k, pad) = (self.h, self.w, self.k, self.pad);
        let (plane, patch) = (h * w, self.patch());
        for (c, input) in image.chunks_exact(plane).enumerate() {
            for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                let p = (c * k + ky) * k + kx;
                let shift = (ky as isize - pad as isize) * w as isize + kx as isize - pad as isize;
                // Output positions in rows whose source row lies inside the input, and the
                // columns whose source column does.
                let rows_inside =
                    pad.saturating_sub(ky) * w..(h + pad).saturating_sub(ky).min(h) * w;
                // Columns whose source lies outside the input: at the left edge when the
                // kernel column reads left of the centre, at the right edge otherwise.
                let outside = if kx < pad {
                    0..pad - kx
                } else {
                    (w + pad).saturating_sub(kx).min(w)..w
                };
                let mut x = 0;
                while x < plane {
                    let column = first_column + x;
                    let (panel, lane) = (column / NR, column % NR);
                    let run = (NR - lane).min(plane - x);
                    let dst = &mut cols[(panel * patch + p) * NR + lane..][..run];
                    // Positions x..x + run: copied where the source is inside the plane and
                    // the row inside the input, zero elsewhere.
                    let start = rows_inside
                        .start
                        .max(x)
                        .max((-shift).max(0) as usize)
                        .min(x + run);
                    let end = rows_inside
                        .end
                        .min(x + run)
                        .min((plane as isize - shift).max(0) as usize)
                        .max(start);
                    if start > x {
                        dst[..start - x].fill(0.0);
                    }
                    if end < x + run {
                        dst[end - x..].fill(0.0);
                    }
                    let source = (start as isize + shift) as usize;
                    if end == start {
                        x += run;
                        continue;
                    } else if end - start == NR {
                        let whole: &mut [f32; NR] = dst.try_into().expect("a whole step");
                        *whole = input[source..source + NR].try_into().expect("a whole step");
                    } else {
                        dst[start - x..end - x]
                            .copy_from_slice(&input[source..source + end - start]);
                    }
                    for column in outside.clone() {
                        let mut at = start + (column + w - start % w) % w;
                        while at < end {
                            dst[at - x] = 0.0;
                            at += w;
                        }
                    }
                    x += run;
                }
            }
        }
    }

    /// Columns `first..first + NR` (those before `width`) of the block's rows, plus the bias,
    /// to the output planes of the images they belong to.
    fn scatter_panel(
        &self,
        block: &[f32],
        first: usize,
        width: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) {
        let plane = self.out_plane();
        let last = (first + NR).min(width);
        let mut j = first;
        while j < last {
            let (image, x) = (j / plane, j % plane);
            let run = (plane - x).min(last - j);
            let image_out = &mut out[image * self.out_len()..(image + 1) * self.out_len()];
            for (c, channel) in image_out.chunks_exact_mut(plane).enumerate() {
                let b = bias.map_or(0.0, |b| b[c]);
                let values = &block[c * NR + j - first..][..run];
                channel[x..x + run]
                    .iter_mut()
                    .zip(values)
                    .for_each(|(o, &v)| *o = v + b);
            }
            j += run;
        }
    }
}
