//! Optimisers with PyTorch's semantics (which burn's follow): Adam with L2 weight decay added
//! to the gradient, AdamW with decoupled decay, SGD with momentum.

use rayon::prelude::*;

use super::kernel::vectorised;
use crate::engine::EngineError;

const BETA_1: f64 = 0.9;
const BETA_2: f64 = 0.999;
/// PyTorch's epsilon (burn's default is 1e-5; convlab sets 1e-8 on both engines).
const EPSILON: f64 = 1e-8;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    Adam { weight_decay: f32 },
    AdamW { weight_decay: f32 },
    Sgd { momentum: f32, weight_decay: f32 },
}

/// An optimiser and its state: one or two moments per parameter tensor, and the step count.
#[derive(Clone, Debug, PartialEq)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    time: u64,
    first: Vec<Vec<f32>>,
    second: Vec<Vec<f32>>,
}

const MAGIC: &[u8; 8] = b"CLOPTIM1";

impl Optimizer {
    pub fn new(kind: OptimizerKind) -> Self {
        Optimizer {
            kind,
            time: 0,
            first: Vec::new(),
            second: Vec::new(),
        }
    }

    /// Updates every parameter tensor from its gradient (same order every step).
    pub fn step(&mut self, lr: f64, params: Vec<&mut [f32]>, grads: &[Vec<f32>]) {
        assert_eq!(params.len(), grads.len(), "one gradient per parameter");
        if self.first.is_empty() {
            self.first = grads.iter().map(|g| vec![0.0; g.len()]).collect();
            if !matches!(self.kind, OptimizerKind::Sgd { .. }) {
                self.second = self.first.clone();
            }
        }
        self.time += 1;
        let t = self.time as i32;
        let kind = self.kind;
        let correction_2 = (1.0 - BETA_2.powi(t)).sqrt();
        let step_size = (lr * correction_2 / (1.0 - BETA_1.powi(t))) as f32;
        let eps = (EPSILON * correction_2) as f32;
        const CHUNK: usize = 1 << 14;
        for (i, (p, g)) in params.into_iter().zip(grads).enumerate() {
            let chunks = p
                .par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(self.first[i].par_chunks_mut(CHUNK));
            match kind {
                OptimizerKind::Adam { weight_decay } | OptimizerKind::AdamW { weight_decay } => {
                    let decoupled = matches!(kind, OptimizerKind::AdamW { .. });
                    let (l2, keep) = if decoupled {
                        (0.0, 1.0 - (lr * weight_decay as f64) as f32)
                    } else {
                        (weight_decay, 1.0)
                    };
                    chunks.zip(self.second[i].par_chunks_mut(CHUNK)).for_each(
                        |(((p, g), m), v)| {
                            vectorised!({
                                for j in 0..p.len() {
                                    let g = g[j] + l2 * p[j];
                                    m[j] = BETA_1 as f32 * m[j] + (1.0 - BETA_1 as f32) * g;
                                    v[j] = BETA_2 as f32 * v[j] + (1.0 - BETA_2 as f32) * g * g;
                                    p[j] = p[j] * keep - step_size * m[j] / (v[j].sqrt() + eps);
                                }
                            })
                        },
                    );
                }
                OptimizerKind::Sgd {
                    momentum,
                    weight_decay,
                } => chunks.for_each(|((p, g), m)| {
                    for j in 0..p.len() {
                        let g = g[j] + weight_decay * p[j];
                        // The velocity starts at zero, so the first step's is the gradient.
                        m[j] = momentum * m[j] + g;
                        p[j] -= lr as f32 * m[j];
                    }
                }),
            }
        }
    }

    /// The state as bytes: magic, step count, then each moment tensor (length, f32 LE values).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&self.time.to_le_bytes());
        let tensors: Vec<&Vec<f32>> = self.first.iter().chain(&self.second).collect();
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        for t in tensors {
            out.extend_from_slice(&(t.len() as u64).to_le_bytes());
            t.iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        out
    }

    /// The state written by [`Optimizer::to_bytes`] for parameters of `lens` values each.
    pub fn from_bytes(
        kind: OptimizerKind,
        bytes: &[u8],
        lens: &[usize],
    ) -> Result<Self, EngineError> {
        Self::parse_state(kind, bytes, lens).map_err(EngineError::OptimizerState)
    }

    fn parse_state(kind: OptimizerKind, bytes: &[u8], lens: &[usize]) -> Result<Self, String> {
        let mut rest = bytes
            .strip_prefix(MAGIC)
            .ok_or("not convlab CPU-engine optimiser state")?;
        fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
            if rest.len() < n {
                return Err("optimiser state is truncated".into());
            }
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            Ok(head)
        }
        let u64_at = |rest: &mut &[u8]| -> Result<u64, String> {
            Ok(u64::from_le_bytes(
                take(rest, 8)?.try_into().expect("8 bytes"),
            ))
        };
        let time = u64_at(&mut rest)?;
        let count = u64_at(&mut rest)? as usize;
        let per_param = if matches!(kind, OptimizerKind::Sgd { .. }) {
            1
        } else {
            2
        };
        if count != per_param * lens.len() && count != 0 {
            return Err(format!(
                "optimiser state has {count} tensors, the model needs {}",
                per_param * lens.len()
            ));
        }
        let mut tensors = Vec::with_capacity(count);
        for i in 0..count {
            let len = u64_at(&mut rest)? as usize;
            if len != lens[i % lens.len()] {
                return Err(format!(
                    "optimiser tensor {i} has {len} values, the parameter {}",
                    lens[i % lens.len()]
                ));
            }
            let raw = take(
                &mut rest,
                len.checked_mul(4).ok_or("optimiser state is corrupt")?,
            )?;
            tensors.push(
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .collect(),
            );
        }
        let second = tensors.split_off(tensors.len().min(lens.len()));
        Ok(Optimizer {
            kind,
            time,
            first: tensors,
            second,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_adam_step_moves_each_weight_by_the_learning_rate() {
        // After one step m̂ = g and v̂ = g², so the update is lr · g / (|g| + eps).
        let mut p = vec![1.0, -2.0];
        let mut opt = Optimizer::new(OptimizerKind::Adam { weight_decay: 0.0 });
        opt.step(0.1, vec![&mut p], &[vec![0.5, -3.0]]);
        assert!(
            (p[0] - 0.9).abs() < 1e-6 && (p[1] + 1.9).abs() < 1e-6,
            "{p:?}"
        );
    }

    #[test]
    fn sgd_with_momentum_by_hand_and_state_round_trips() {
        let mut p = vec![1.0];
        let mut opt = Optimizer::new(OptimizerKind::Sgd {
            momentum: 0.9,
            weight_decay: 0.0,
        });
        opt.step(0.1, vec![&mut p], &[vec![1.0]]); // v = 1, p = 0.9
        opt.step(0.1, vec![&mut p], &[vec![1.0]]); // v = 1.9, p = 0.71
        assert!((p[0] - 0.71).abs() < 1e-6);
        let back = Optimizer::from_bytes(opt.kind, &opt.to_bytes(), &[1]).unwrap();
        assert_eq!(back, opt);
        assert!(Optimizer::from_bytes(opt.kind, &opt.to_bytes(), &[2]).is_err());
        assert!(Optimizer::from_bytes(opt.kind, &opt.to_bytes()[..20], &[1]).is_err());
    }
}
