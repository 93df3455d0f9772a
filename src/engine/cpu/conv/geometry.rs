//! The shape of a convolution (`ConvGeometry`: sizes, the geometries derived from one) and
//! unfolding: im2col and its adjoint col2im, a few output rows at a time (row blocks) or whole
//! images side by side, with `RowPhases` for strided rows.

use std::ops::Range;

use super::kernel;

/// Floats of unfolded columns built at once for one image (1 MiB): the size of a row block.
pub(super) const BLOCK_FLOATS: usize = 1 << 18;

/// A convolution from `[c_in, h, w]` to `[c_out, h_out, w_out]` with a square kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub h_out: usize,
    pub w_out: usize,
    /// Whether the products take bf16 operands (`--precision bf16`).
    pub bf16: bool,
    /// Whether the bf16 operands go to the bf16 kernels (where the CPU has AVX512-BF16): the
    /// caller hands fp32 values, which the kernels round as they lay them out and the entry
    /// points round copies of for the passes fp32 kernels run (the same numbers). Without
    /// them the caller hands values it has rounded, and fp32 kernels read them.
    pub bf16_kernels: bool,
}

impl ConvGeometry {
    /// The convolution of a `[c_in, h, w]` input; `h + 2 pad >= k` is the caller's to check.
    pub fn conv(
        c_in: usize,
        h: usize,
        w: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        ConvGeometry {
            c_in,
            h,
            w,
            c_out,
            k,
            stride,
            pad,
            h_out: (h + 2 * pad - k) / stride + 1,
            w_out: (w + 2 * pad - k) / stride + 1,
            bf16: false,
            bf16_kernels: false,
        }
    }

    /// The same convolution with bf16 operands when `bf16`, on the bf16 kernels where the CPU
    /// has them.
    pub fn with_bf16(self, bf16: bool) -> Self {
        let bf16_kernels = bf16 && kernel::available_bf16();
        ConvGeometry {
            bf16,
            bf16_kernels,
            ..self
        }
    }

    /// The same convolution on the bf16 kernels only when `use_them` (and the CPU has them).
    pub fn with_bf16_kernels(self, use_them: bool) -> Self {
        let bf16_kernels = self.bf16_kernels && use_them;
        ConvGeometry {
            bf16_kernels,
            ..self
        }
    }

    /// The convolution that a transposed convolution of a `[c_in, h, w]` input to `c_out`
    /// channels transposes: it maps the transposed one's output back to its input, and its
    /// weight `[c_in, c_out, k, k]` is the transposed one's, as stored.
    pub fn transposing(
        c_in: usize,
        h: usize,
        w: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        // The size the transposed convolution gives; the convolution maps it back to `n`.
        let size = |n: usize| (n - 1) * stride + k - 2 * pad;
        let g = ConvGeometry::conv(c_out, size(h), size(w), c_in, k, stride, pad);
        debug_assert_eq!((g.h_out, g.w_out), (h, w));
        g
    }

    /// The input gradient of a stride-1 convolution is itself a convolution of the output
    /// gradient, with each kernel flipped, inputs and outputs swapped, and padding `k - 1 - pad`.
    /// Run that way it is a forward pass: products whose inner size is `c_out k²` rather than
    /// `c_out`, and no col2im.
    pub(super) fn flipped(&self, weight: &[f32]) -> Option<(ConvGeometry, Vec<f32>)> {
        if self.stride != 1 || self.is_pointwise() || self.pad >= self.k {
            return None;
        }
        let (k, c_in, c_out) = (self.k, self.c_in, self.c_out);
        let g = ConvGeometry::conv(c_out, self.h_out, self.w_out, c_in, k, 1, k - 1 - self.pad)
            .with_bf16(self.bf16)
            .with_bf16_kernels(self.bf16_kernels);
        debug_assert_eq!((g.h_out, g.w_out), (self.h, self.w));
        let mut kernels = vec![0.0; weight.len()];
        for o in 0..c_out {
            for i in 0..c_in {
                for ky in 0..k {
                    for kx in 0..k {
                        kernels[((i * c_out + o) * k + k - 1 - ky) * k + k - 1 - kx] =
                            weight[((o * c_in + i) * k + ky) * k + kx];
                    }
                }
            }
        }
        Some((g, kernels))
    }

    pub fn patch(&self) -> usize {
        self.c_in * self.k * self.k
    }

    /// Pairs of steps of the patch for the bf16 kernels: pairs of input channels at each tap.
    pub fn pair_depth(&self) -> usize {
        self.c_in.div_ceil(2) * self.k * self.k
    }

    pub fn in_len(&self) -> usize {
        self.c_in * self.h * self.w
    }

    pub fn out_plane(&self) -> usize {
        self.h_out * self.w_out
    }

    pub fn out_len(&self) -> usize {
        self.c_out * self.out_plane()
    }

    pub fn weight_len(&self) -> usize {
        self.c_out * self.patch()
    }

    /// A 1x1 convolution with stride 1 and no padding reads its input as the columns.
    pub(super) fn is_pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    fn rows_per_block(&self) -> usize {
        (BLOCK_FLOATS / (self.patch() * self.w_out).max(1)).clamp(1, self.h_out)
    }

    pub(super) fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + use<> {
        let (rows, h_out) = (self.rows_per_block(), self.h_out);
        (0..h_out)
            .step_by(rows)
            .map(move |y0| (y0, (y0 + rows).min(h_out)))
    }

    /// Output columns `x` whose source `x * stride + kx - pad` lies inside the input.
    fn inside_x(&self, kx: usize) -> (usize, usize) {
        let first = (self.pad.saturating_sub(kx)).div_ceil(self.stride);
        let last = (self.w + self.pad)
            .saturating_sub(kx)
            .div_ceil(self.stride)
            .min(self.w_out);
        (first.min(last), last)
    }

    /// Unfolds output rows `y0..y1` of one image into `cols`: patch row `r` of the block
    /// starts at `r * row_stride + offset` (other images of a group sit beside it).
    pub(super) fn im2col(
        &self,
        image: &[f32],
        y0: usize,
        y1: usize,
        cols: &mut [f32],
        row_stride: usize,
        offset: usize,
    ) {
        if self.stride == 1 && self.w_out == self.w {
            return self.unfold_shifted(image, y0..y1, cols, row_stride, offset);
        }
        let (k, w_out) = (self.k, self.w_out);
        let mut phases = RowPhases::new(self.w, self.stride);
        for c in 0..self.c_in {
            let plane = &image[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ky in 0..k {
                let row = |kx: usize, y: usize| {
                    ((c * k + ky) * k + kx) * row_stride + offset + (y - y0) * w_out
                };
                for y in y0..y1 {
                    let Some(iy) = self.source_row(y, ky) else {
                        for kx in 0..k {
                            cols[row(kx, y)..][..w_out].fill(0.0);
                        }
                        continue;
                    };
                    let src = &plane[iy * self.w..(iy + 1) * self.w];
                    phases.split(src);
                    for kx in 0..k {
                        let (first, last) = self.inside_x(kx);
                        let dst = &mut cols[row(kx, y)..][..w_out];
                        dst[..first].fill(0.0);
                        dst[last..].fill(0.0);
                        let run = phases.run(src, self.offset_x(kx), first, last);
                        dst[first..last].copy_from_slice(run);
                    }
                }
            }
        }
    }

    /// [`ConvGeometry::im2col`] for output rows `rows` of a stride-1 convolution whose output
    /// planes are the size of its input planes. Patch row `(c, ky, kx)` is then input plane `c`
    /// shifted by `(ky - pad) * w + kx - pad`, so it is copied in one run (one copy per patch
    /// row instead of one per output row: the copies of a 28-wide plane were mostly call
    /// overhead), and the values outside the input (rows above or below it, columns that
    /// wrapped round from the next or previous row) are zeroed after.
    fn unfold_shifted(
        &self,
        image: &[f32],
        rows: Range<usize>,
        cols: &mut [f32],
        row_stride: usize,
        offset: usize,
    ) {
        debug_assert!(self.stride == 1 && (self.h_out, self.w_out) == (self.h, self.w));
        let (h, w, k, pad) = (self.h, self.w, self.k, self.pad);
        let plane = h * w;
        let (x, run) = (rows.start * w, rows.len() * w);
        for (c, input) in image.chunks_exact(plane).enumerate() {
            for (ky, kx) in (0..k).flat_map(|ky| (0..k).map(move |kx| (ky, kx))) {
                let p = (c * k + ky) * k + kx;
                let shift = (ky as isize - pad as isize) * w as isize + kx as isize - pad as isize;
                // Output positions in rows whose source row lies inside the input, and the
                // columns whose source lies outside it: at the left edge when the kernel
                // column reads left of the centre, at the right edge otherwise.
                let rows_inside =
                    pad.saturating_sub(ky) * w..(h + pad).saturating_sub(ky).min(h) * w;
                let outside = if kx < pad {
                    0..pad - kx
                } else {
                    (w + pad).saturating_sub(kx).min(w)..w
                };
                let dst = &mut cols[p * row_stride + offset..][..run];
                // Copied where the source is inside the plane and the row inside the input,
                // zero elsewhere.
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
                dst[..start - x].fill(0.0);
                dst[end - x..].fill(0.0);
                if end > start {
                    let source = (start as isize + shift) as usize;
                    dst[start - x..end - x].copy_from_slice(&input[source..source + end - start]);
                }
                for column in outside {
                    let mut at = start + (column + w - start % w) % w;
                    while at < end {
                        dst[at - x] = 0.0;
                        at += w;
                    }
                }
            }
        }
    }

    /// The input row that output row `y` reads through kernel row `ky`, if inside the input.
    fn source_row(&self, y: usize, ky: usize) -> Option<usize> {
        (y * self.stride + ky)
            .checked_sub(self.pad)
            .filter(|&iy| iy < self.h)
    }

    /// Output column `x` reads input column `x * stride + offset_x(kx)` through kernel column `kx`.
    fn offset_x(&self, kx: usize) -> isize {
        kx as isize - self.pad as isize
    }

    /// Adds columns laid out as [`ConvGeometry::im2col`] writes them back onto their image.
    pub(super) fn col2im(
        &self,
        cols: &[f32],
        y0: usize,
        y1: usize,
        image: &mut [f32],
        row_stride: usize,
        offset: usize,
    ) {
        let (k, w_out) = (self.k, self.w_out);
        let mut phases = RowPhases::new(self.w, self.stride);
        for c in 0..self.c_in {
            let plane = &mut image[c * self.h * self.w..(c + 1) * self.h * self.w];
            for ky in 0..k {
                for y in y0..y1 {
                    let Some(iy) = self.source_row(y, ky) else {
                        continue;
                    };
                    let dst = &mut plane[iy * self.w..(iy + 1) * self.w];
                    for kx in 0..k {
                        let row = ((c * k + ky) * k + kx) * row_stride + offset + (y - y0) * w_out;
                        let (first, last) = self.inside_x(kx);
                        let run = phases.run_mut(dst, self.offset_x(kx), first, last);
                        run.iter_mut()
                            .zip(&cols[row + first..row + last])
                            .for_each(|(d, s)| *d += s);
                    }
                    phases.add_to(dst);
                }
            }
        }
    }

    /// The columns of whole images side by side: `[patch, images * out_plane]`.
    pub(super) fn unfold_group(&self, images: &[f32], width: usize, cols: &mut Vec<f32>) {
        cols.resize(self.patch() * width, 0.0);
        for (i, image) in images.chunks(self.in_len()).enumerate() {
            self.im2col(image, 0, self.h_out, cols, width, i * self.out_plane());
        }
    }

    /// Output-shaped values `[images, c_out, plane]` as `[c_out, images * plane]`.
    pub(super) fn gather_rows(&self, values: &[f32], width: usize, rows: &mut Vec<f32>) {
        let plane = self.out_plane();
        rows.resize(self.c_out * width, 0.0);
        for (i, image) in values.chunks(self.out_len()).enumerate() {
            for (c, channel) in image.chunks(plane).enumerate() {
                rows[c * width + i * plane..c * width + (i + 1) * plane].copy_from_slice(channel);
            }
        }
    }
}

/// An input row split by phase (column mod stride), so that each kernel column of a strided
/// convolution reads or adds one contiguous run instead of every `stride`-th value. With
/// stride 1 the row itself is read or added to and nothing is copied.
struct RowPhases {
    stride: usize,
    len: usize,
    buffer: Vec<f32>,
}

impl RowPhases {
    fn new(w: usize, stride: usize) -> Self {
        let len = w.div_ceil(stride);
        let buffer = vec![0.0; if stride > 1 { stride * len } else { 0 }];
        RowPhases {
            stride,
            len,
            buffer,
        }
    }

    /// Takes `row`'s values for [`RowPhases::run`].
    fn split(&mut self, row: &[f32]) {
        for (p, phase) in self.buffer.chunks_mut(self.len).enumerate() {
            phase
                .iter_mut()
                .zip(row[p..].iter().step_by(self.stride))
                .for_each(|(d, &v)| *d = v);
        }
    }

    /// The values of `row`'s columns `x * stride + offset` for `x` in `first..last`.
    fn run<'a>(&'a self, row: &'a [f32], offset: isize, first: usize, last: usize) -> &'a [f32] {
        let (phase, start) = self.locate(offset, first);
        match self.stride {
            1 => &row[start..start + last - first],
            _ => &self.buffer[phase * self.len + start..][..last - first],
        }
    }

    /// Where to add values for `row`'s columns `x * stride + offset`, `x` in `first..last`;
    /// with a stride above 1 they reach the row at [`RowPhases::add_to`].
    fn run_mut<'a>(
        &'a mut self,
        row: &'a mut [f32],
        offset: isize,
        first: usize,
        last: usize,
    ) -> &'a mut [f32] {
        let (phase, start) = self.locate(offset, first);
        match self.stride {
            1 => &mut row[start..start + last - first],
            _ => &mut self.buffer[phase * self.len + start..][..last - first],
        }
    }

    /// Adds the values gathered by [`RowPhases::run_mut`] to `row` and clears them.
    fn add_to(&mut self, row: &mut [f32]) {
        for (p, phase) in self.buffer.chunks_mut(self.len).enumerate() {
            row[p..]
                .iter_mut()
                .step_by(self.stride)
                .zip(phase.iter_mut())
                .for_each(|(d, v)| *d += std::mem::take(v));
        }
    }

    /// Column `x * stride + offset` is value `x + shift` of phase `p`: `(p, first + shift)`.
    fn locate(&self, offset: isize, first: usize) -> (usize, usize) {
        let stride = self.stride as isize;
        let (phase, shift) = (offset.rem_euclid(stride), offset.div_euclid(stride));
        (phase as usize, (first as isize + shift) as usize)
    }
}
