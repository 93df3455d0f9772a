//! `--whiten`: the frozen patch-whitening first layer of the fast CIFAR-10 recipes (Page's
//! ResNet-9 recipe; Jordan's airbench): the first convolution's leading filters are the
//! eigenvectors of the training images' patch second moment, each scaled by
//! `1 / sqrt(eigenvalue + eps)`, in pairs `+v`, `-v` (so a ReLU after them passes either sign),
//! largest eigenvalue first; they stay at those values while the rest of the network trains.
//! airbench computes them as `init_whitening_conv` does here: uncentred second moment of every
//! `k x k` patch (stride 1, no padding) of up to 5,000 training images, `eps = 5e-4`.

use super::TrainError;
use crate::models::{LayerSpec, ModelSpec};

/// airbench's `eps`, added to each eigenvalue before its inverse square root (the images are
/// normalised, so the patch second moment's eigenvalues are of order 1 down to about 1e-3).
pub const EPS: f64 = 5e-4;
/// The most training images the second moment is taken over (airbench's 5,000).
pub const MOST_IMAGES: usize = 5_000;
/// The most patches it sums: larger images are sampled at a stride.
const MOST_PATCHES: usize = 2_000_000;

/// The first convolution's shape, as `--whiten` needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstConv {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
}

impl FirstConv {
    /// The network's first layer, which `--whiten` requires to be a convolution.
    pub fn of(spec: &ModelSpec) -> Result<Self, TrainError> {
        match spec.layers.first() {
            Some(&LayerSpec::Conv {
                in_channels,
                out_channels,
                kernel,
                ..
            }) if out_channels >= 2 => Ok(FirstConv {
                in_channels,
                out_channels,
                kernel,
            }),
            _ => Err(TrainError::invalid(
                "--whiten",
                format!(
                    "`{}` does not start with a convolution of two or more filters",
                    spec.name
                ),
            )),
        }
    }

    /// Values in one patch (and in one filter): `in_channels * kernel^2`.
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.kernel * self.kernel
    }

    /// How many filters whiten: a `+v`, `-v` pair for each of the largest eigenvectors, as many
    /// as the patch has values or the layer has pairs of filters, whichever is fewer.
    pub fn whitening_filters(&self) -> usize {
        2 * self.patch_len().min(self.out_channels / 2)
    }
}

/// The uncentred second moment `sum p p^T / N` (row-major, `d x d`) of the `k x k` patches of
/// `images` (`[n, c, h, w]`), each laid out as a convolution's filter `[c, k, k]`; where there
/// are more than [`MOST_PATCHES`], positions are taken at a stride down and across.
pub fn patch_second_moment(images: &[f32], shape: [usize; 4], kernel: usize) -> Vec<f64> {
    let [n, c, h, w] = shape;
    assert_eq!(images.len(), n * c * h * w, "images of their shape");
    assert!(kernel <= h && kernel <= w, "a patch fits the image");
    let d = c * kernel * kernel;
    let (rows, cols) = (h - kernel + 1, w - kernel + 1);
    let step = (1..)
        .find(|s| n * rows.div_ceil(*s) * cols.div_ceil(*s) <= MOST_PATCHES)
        .expect("some step");
    let mut sum = vec![0.0f64; d * d];
    let mut patch = vec![0.0f64; d];
    let mut count = 0usize;
    for image in images.chunks_exact(c * h * w) {
        for y in (0..rows).step_by(step) {
            for x in (0..cols).step_by(step) {
                for ch in 0..c {
                    for ky in 0..kernel {
                        let row = &image[ch * h * w + (y + ky) * w + x..][..kernel];
                        for (kx, &v) in row.iter().enumerate() {
                            patch[(ch * kernel + ky) * kernel + kx] = v as f64;
                        }
                    }
                }
                for i in 0..d {
                    let pi = patch[i];
                    for j in i..d {
                        sum[i * d + j] += pi * patch[j];
                    }
                }
                count += 1;
            }
        }
    }
    for i in 0..d {
        for j in i..d {
            let v = sum[i * d + j] / count as f64;
            sum[i * d + j] = v;
            sum[j * d + i] = v;
        }
    }
    sum
}

/// The eigenvalues and unit eigenvectors (rows) of the symmetric `d x d` matrix `a`
/// (row-major), largest eigenvalue first: cyclic Jacobi rotations until the off-diagonal part
/// is below 1e-14 of the matrix's norm.
pub fn symmetric_eigen(a: &[f64], d: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    assert_eq!(a.len(), d * d, "a square matrix");
    let mut m = a.to_vec();
    // The columns of `v` are the eigenvectors.
    let mut v = vec![0.0f64; d * d];
    (0..d).for_each(|i| v[i * d + i] = 1.0);
    let norm: f64 = m.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * d + j] * m[i * d + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-14 * norm.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = m[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes m[p][q] (Golub and Van Loan, algorithm 8.4.1).
                let theta = (m[q * d + q] - m[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (mkp, mkq) = (m[k * d + p], m[k * d + q]);
                    m[k * d + p] = c * mkp - s * mkq;
                    m[k * d + q] = s * mkp + c * mkq;
                }
                for k in 0..d {
                    let (mpk, mqk) = (m[p * d + k], m[q * d + k]);
                    m[p * d + k] = c * mpk - s * mqk;
                    m[q * d + k] = s * mpk + c * mqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&i, &j| m[j * d + j].total_cmp(&m[i * d + i]));
    let values = order.iter().map(|&i| m[i * d + i]).collect();
    let vectors = order
        .iter()
        .map(|&i| (0..d).map(|k| v[k * d + i]).collect())
        .collect();
    (values, vectors)
}

/// The whitening filters for `conv` from `images` (`[n, c, h, w]`, normalised as the network
/// sees them): [`FirstConv::whitening_filters`] filters in the convolution's weight layout
/// (`[filters, in, k, k]`), the `+v` of each kept eigenvector first, then their `-v`.
pub fn whitening_filters(images: &[f32], shape: [usize; 4], conv: FirstConv) -> Vec<f32> {
    let d = conv.patch_len();
    let moment = patch_second_moment(images, shape, conv.kernel);
    let (values, vectors) = symmetric_eigen(&moment, d);
    let pairs = conv.whitening_filters() / 2;
    let scaled: Vec<Vec<f32>> = values
        .iter()
        .zip(&vectors)
        .take(pairs)
        .map(|(&value, vector)| {
            let scale = 1.0 / (value.max(0.0) + EPS).sqrt();
            vector.iter().map(|&x| (x * scale) as f32).collect()
        })
        .collect();
    let plus = scaled.iter().flatten().copied();
    let minus = scaled.iter().flatten().map(|&x| -x);
    plus.chain(minus).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A matrix made from its eigen-pairs by hand, `Q^T diag(6, 3, 1) Q` with the orthonormal
    /// rows (1, 1, 1)/sqrt 3, (1, -1, 0)/sqrt 2, (1, 1, -2)/sqrt 6: the pairs come back, largest
    /// first.
    #[test]
    fn eigen_pairs_of_a_hand_made_matrix() {
        let (s3, s2, s6) = (3f64.sqrt(), 2f64.sqrt(), 6f64.sqrt());
        let q = [
            [1.0 / s3, 1.0 / s3, 1.0 / s3],
            [1.0 / s2, -1.0 / s2, 0.0],
            [1.0 / s6, 1.0 / s6, -2.0 / s6],
        ];
        let l = [6.0, 3.0, 1.0];
        let mut a = vec![0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                a[i * 3 + j] = (0..3).map(|k| l[k] * q[k][i] * q[k][j]).sum();
            }
        }
        let (values, vectors) = symmetric_eigen(&a, 3);
        for k in 0..3 {
            assert!((values[k] - l[k]).abs() < 1e-12, "{values:?}");
            // Up to sign.
            let dot: f64 = (0..3).map(|i| vectors[k][i] * q[k][i]).sum();
            assert!(
                (dot.abs() - 1.0).abs() < 1e-12,
                "vector {k}: {:?}",
                vectors[k]
            );
        }
    }

    /// Patches of a 1 x 2 x 3 image with a 2 x 2 kernel: two positions, the second moment by
    /// hand.
    #[test]
    fn second_moment_of_two_patches_by_hand() {
        let image = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let m = patch_second_moment(&image, [1, 1, 2, 3], 2);
        let (p1, p2) = ([1.0, 2.0, 4.0, 5.0], [2.0, 3.0, 5.0, 6.0]);
        for i in 0..4 {
            for j in 0..4 {
                let want = (p1[i] * p1[j] + p2[i] * p2[j]) / 2.0;
                assert_eq!(m[i * 4 + j], want, "({i}, {j})");
            }
        }
    }

    /// What whitening means: the `+v` filters' responses to the images' patches have (nearly)
    /// the identity as their second moment (`lambda / (lambda + eps)` on the diagonal), and the
    /// `-v` filters are their negatives. The images are correlated noise (each pixel the mean
    /// of a random field and its right neighbour), two channels, so the patches are far from
    /// white to begin with.
    #[test]
    fn filters_whiten_the_patches_they_were_made_from() {
        use rand::{Rng, SeedableRng};
        let (n, c, h, w) = (40, 2, 9, 10);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let field: Vec<f32> = (0..n * c * h * (w + 1))
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let images: Vec<f32> = (0..n * c * h)
            .flat_map(|row| {
                let r = &field[row * (w + 1)..][..w + 1];
                (0..w)
                    .map(move |x| r[x] + 0.5 * r[x + 1])
                    .collect::<Vec<_>>()
            })
            .collect();
        let conv = FirstConv {
            in_channels: c,
            out_channels: 64,
            kernel: 3,
        };
        assert_eq!(conv.whitening_filters(), 36);
        let filters = whitening_filters(&images, [n, c, h, w], conv);
        let d = conv.patch_len();
        assert_eq!(filters.len(), 36 * d);
        let (plus, minus) = filters.split_at(18 * d);
        assert!(plus.iter().zip(minus).all(|(p, m)| *p == -*m));
        let moment = patch_second_moment(&images, [n, c, h, w], 3);
        let (values, _) = symmetric_eigen(&moment, d);
        for (i, fi) in plus.chunks_exact(d).enumerate() {
            for (j, fj) in plus.chunks_exact(d).enumerate() {
                // f_i^T M f_j
                let got: f64 = (0..d)
                    .map(|a| {
                        (0..d)
                            .map(|b| fi[a] as f64 * moment[a * d + b] * fj[b] as f64)
                            .sum::<f64>()
                    })
                    .sum();
                let want = if i == j {
                    values[i] / (values[i] + EPS)
                } else {
                    0.0
                };
                assert!(
                    (got - want).abs() < 1e-4,
                    "({i}, {j}): {got} against {want}"
                );
            }
        }
    }

    #[test]
    fn only_networks_that_start_with_a_convolution_whiten() {
        use crate::models::ClassifierKind;
        let res = FirstConv::of(&ClassifierKind::Res.spec()).expect("res starts with a conv");
        assert_eq!(
            res,
            FirstConv {
                in_channels: 1,
                out_channels: 32,
                kernel: 3
            }
        );
        // Nine values a patch: nine pairs of the layer's 32 filters.
        assert_eq!(res.whitening_filters(), 18);
        use crate::models::{ModelKind, SegmenterKind};
        let classifiers = ClassifierKind::ALL.iter().map(|k| k.spec());
        for spec in classifiers.chain(SegmenterKind::ALL.iter().map(|k| k.spec())) {
            let conv = FirstConv::of(&spec).expect("every built-in network starts with a conv");
            assert!(
                conv.whitening_filters() <= conv.out_channels,
                "{}",
                spec.name
            );
        }
        let dense = ModelSpec {
            name: "dense".into(),
            input: [1, 4, 4],
            layers: vec![
                LayerSpec::Flatten,
                LayerSpec::Linear {
                    inputs: 16,
                    outputs: 2,
                },
            ],
        };
        let err = FirstConv::of(&dense).expect_err("no conv first");
        assert!(err.to_string().starts_with("--whiten: `dense`"), "{err}");
    }
}
