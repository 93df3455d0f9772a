//! Confusion matrices: counts of (true, predicted) class pairs, accuracy and per-class recall.

use serde::{Deserialize, Serialize};

/// Counts of (true class, predicted class) pairs: `counts[true][predicted]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub counts: Vec<Vec<u64>>,
}

impl Confusion {
    pub fn new(classes: usize) -> Self {
        Confusion {
            counts: vec![vec![0; classes]; classes],
        }
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth][predicted] += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let correct: u64 = (0..self.counts.len()).map(|c| self.counts[c][c]).sum();
        ratio(correct, self.total())
    }

    /// Recall of each class: correct / members of the class (NaN for a class with no members).
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.counts
            .iter()
            .enumerate()
            .map(|(c, row)| ratio(row[c], row.iter().sum()))
            .collect()
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        f64::NAN
    } else {
        num as f64 / den as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_example() {
        // truth:     0 0 0 1 1 2
        // predicted: 0 1 0 1 1 0
        let mut c = Confusion::new(3);
        for (t, p) in [(0, 0), (0, 1), (0, 0), (1, 1), (1, 1), (2, 0)] {
            c.add(t, p);
        }
        assert_eq!(c.counts, vec![vec![2, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]);
        assert!((c.accuracy() - 4.0 / 6.0).abs() < 1e-12);
        let per = c.per_class_accuracy();
        assert!((per[0] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(per[1], 1.0);
        assert_eq!(per[2], 0.0);
    }

    #[test]
    fn empty_class_is_nan_not_zero() {
        let mut c = Confusion::new(2);
        c.add(0, 0);
        assert!(c.per_class_accuracy()[1].is_nan());
    }
}
