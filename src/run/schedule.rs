//! Learning-rate schedules, evaluated per optimiser step.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// Linear warm-up over the first epoch, then cosine decay to zero at the last step.
    Cosine,
}

impl Schedule {
    pub const ALL: [Schedule; 2] = [Schedule::Constant, Schedule::Cosine];

    pub fn name(self) -> &'static str {
        match self {
            Schedule::Constant => "constant",
            Schedule::Cosine => "cosine",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            Schedule::Constant => "The same rate throughout",
            Schedule::Cosine => {
                "Linear warm-up over the first epoch, then cosine decay to zero at the last step"
            }
        }
    }

    /// The rate at `step` (0-based) of `total` steps, with `warmup` warm-up steps.
    pub fn rate(self, base: f64, step: usize, total: usize, warmup: usize) -> f64 {
        match self {
            Schedule::Constant => base,
            Schedule::Cosine if step < warmup => base * (step + 1) as f64 / warmup as f64,
            Schedule::Cosine => {
                let span = total.saturating_sub(warmup).max(1) as f64;
                let t = (step - warmup) as f64 / span;
                0.5 * base * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_warms_up_peaks_and_decays() {
        let s = Schedule::Cosine;
        assert!((s.rate(1.0, 0, 100, 10) - 0.1).abs() < 1e-12);
        assert!((s.rate(1.0, 9, 100, 10) - 1.0).abs() < 1e-12);
        assert!((s.rate(1.0, 10, 100, 10) - 1.0).abs() < 1e-12);
        assert!((s.rate(1.0, 55, 100, 10) - 0.5).abs() < 1e-12);
        assert!(s.rate(1.0, 99, 100, 10) < 0.001);
        assert_eq!(Schedule::Constant.rate(0.3, 50, 100, 10), 0.3);
    }
}
