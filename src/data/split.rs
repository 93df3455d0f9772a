//! The seeded, stratified train/validation split.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::DataError;

/// Indices of the training and validation parts, each sorted ascending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

/// Puts `val_fraction` of each class (rounded) into validation, chosen by `seed`.
pub fn stratified(labels: &[u8], num_classes: usize, val_fraction: f64, seed: u64) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut by_class = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for mut members in by_class {
        members.shuffle(&mut rng);
        let n_val = (members.len() as f64 * val_fraction).round() as usize;
        val.extend_from_slice(&members[..n_val]);
        train.extend_from_slice(&members[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    Split { train, val }
}

/// A seeded random split without strata (segmentation has no single label per image).
pub fn random(count: usize, val_fraction: f64, seed: u64) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut all: Vec<usize> = (0..count).collect();
    all.shuffle(&mut rng);
    let n_val = (count as f64 * val_fraction).round() as usize;
    let mut val = all[..n_val].to_vec();
    let mut train = all[n_val..].to_vec();
    train.sort_unstable();
    val.sort_unstable();
    Split { train, val }
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
        let a = stratified(&labels, 10, 0.1, 7);
        let b = stratified(&labels, 10, 0.1, 7);
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
        let c = stratified(&labels, 10, 0.1, 8);
        assert_ne!(a.val, c.val, "another seed gives another split");
    }

    #[test]
    fn random_split_sizes() {
        let s = random(906, 0.1, 1);
        assert_eq!((s.train.len(), s.val.len()), (815, 91));
        assert_eq!(s, random(906, 0.1, 1));
    }
}
