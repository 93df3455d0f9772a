//! The seeded splits: validation (and test, where the data set has none of its own) taken
//! off the training part, per class for classification.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::DataError;

/// Indices of the training, validation and test parts, each sorted ascending (test is empty
/// where the data set has a test split of its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// The shares of the training part to hold out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fractions {
    pub val: f64,
    pub test: f64,
}

impl Split {
    /// Members shuffled by the caller: the first `test` share to test, the next `val` share
    /// to validation, the rest to training.
    fn deal(&mut self, members: &[usize], fractions: Fractions) {
        let n_test = (members.len() as f64 * fractions.test).round() as usize;
        let n_val = (members.len() as f64 * fractions.val).round() as usize;
        let n_val = n_val.min(members.len() - n_test);
        self.test.extend_from_slice(&members[..n_test]);
        self.val.extend_from_slice(&members[n_test..n_test + n_val]);
        self.train.extend_from_slice(&members[n_test + n_val..]);
    }

    fn sorted(mut self) -> Self {
        self.train.sort_unstable();
        self.val.sort_unstable();
        self.test.sort_unstable();
        self
    }

    fn empty() -> Self {
        Split {
            train: Vec::new(),
            val: Vec::new(),
            test: Vec::new(),
        }
    }
}

/// Puts the given shares of each class (rounded) into test and validation, chosen by `seed`.
/// Without a test share it draws exactly what the two-way split always drew.
pub fn stratified(labels: &[u8], num_classes: usize, fractions: Fractions, seed: u64) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut by_class = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let mut split = Split::empty();
    for mut members in by_class {
        members.shuffle(&mut rng);
        split.deal(&members, fractions);
    }
    split.sorted()
}

/// A seeded random split without strata (segmentation has no single label per image).
pub fn random(count: usize, fractions: Fractions, seed: u64) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut all: Vec<usize> = (0..count).collect();
    all.shuffle(&mut rng);
    let mut split = Split::empty();
    split.deal(&all, fractions);
    split.sorted()
}

/// The first `limit` training indices (`--limit`), all of them without a limit.
pub fn limited(train: &[usize], limit: Option<usize>) -> Result<Vec<usize>, DataError> {
    match limit {
        Some(limit) if limit > train.len() => Err(DataError::LimitTooLarge {
            limit,
            available: train.len(),
        }),
        Some(limit) => Ok(train[..limit].to_vec()),
        None => Ok(train.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<u8> {
        (0..60_000).map(|i| (i % 10) as u8).collect()
    }

    #[test]
    fn stratified_split_is_deterministic_stratified_and_disjoint() {
        let labels = labels();
        let tenth = Fractions {
            val: 0.1,
            test: 0.0,
        };
        let a = stratified(&labels, 10, tenth, 7);
        let b = stratified(&labels, 10, tenth, 7);
        assert_eq!(a, b);
        assert_eq!((a.train.len(), a.val.len()), (54_000, 6_000));
        for class in 0..10u8 {
            assert_eq!(a.val.iter().filter(|&&i| labels[i] == class).count(), 600);
        }
        let mut all: Vec<usize> = a.train.iter().chain(&a.val).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            all.len(),
            60_000,
            "train and val must be disjoint and cover everything"
        );
        let c = stratified(&labels, 10, tenth, 8);
        assert_ne!(a.val, c.val, "another seed gives another split");
        assert!(a.test.is_empty());
    }

    #[test]
    fn a_test_share_comes_off_each_class_before_validation() {
        let labels = labels();
        let three = stratified(
            &labels,
            10,
            Fractions {
                val: 0.1,
                test: 0.1,
            },
            7,
        );
        assert_eq!(
            (three.train.len(), three.val.len(), three.test.len()),
            (48_000, 6_000, 6_000)
        );
        for class in 0..10u8 {
            assert_eq!(
                three.test.iter().filter(|&&i| labels[i] == class).count(),
                600
            );
        }
        let mut all: Vec<usize> = [&three.train, &three.val, &three.test]
            .into_iter()
            .flatten()
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 60_000);
    }

    #[test]
    fn random_split_sizes() {
        let tenth = Fractions {
            val: 0.1,
            test: 0.0,
        };
        let s = random(906, tenth, 1);
        assert_eq!((s.train.len(), s.val.len()), (815, 91));
        assert_eq!(s, random(906, tenth, 1));
        let both = random(
            906,
            Fractions {
                val: 0.1,
                test: 0.1,
            },
            1,
        );
        assert_eq!(
            (both.train.len(), both.val.len(), both.test.len()),
            (724, 91, 91)
        );
    }
}
