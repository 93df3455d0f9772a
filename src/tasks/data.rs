//! A run's data: the data set as loaded, split as its configuration says (one `prepare` for
//! every task), and the summary of it that `train` prints.

use super::{ConfigOf, DataOf, SetsOf, Task, TaskError};
use crate::data::sets::{DataOrigin, Sets};
use crate::data::split::{self, Fractions, Split};
use crate::data::{DataError, Samples};
use crate::run::config::HyperParams;

/// The data a run uses: the sets as loaded, the split of their training part, the training
/// indices (after `--limit`), and the validation and test samples.
pub struct RunData<S, C> {
    pub sets: Sets<S, C>,
    pub split: Split,
    pub train_indices: Vec<usize>,
    pub val: S,
    pub test: S,
}

/// Splits `sets` as `config` says: validation and test are the data set's own where the run
/// used them, else split off its training part with the run's seed. Refuses data that is not
/// the run's (other classes, another image size, an own split gone).
pub fn prepare<T: Task>(sets: SetsOf<T>, config: &ConfigOf<T>) -> Result<DataOf<T>, TaskError> {
    let changed = |reason: String| DataError::DataChanged {
        path: sets.origin.dir.clone(),
        reason,
    };
    if let Some(reason) = T::mismatch(&sets, config) {
        return Err(changed(reason).into());
    }
    let fractions = config.fractions();
    let split = T::split(
        &sets.train,
        config.classes.len(),
        fractions,
        config.params.seed(),
    );
    let train_indices = split::limited(&split.train, config.params.limit())?;
    let own_split = |own: &Option<T::Samples>, taken: &[usize], share: f64, name: &str| match own {
        Some(samples) if share == 0.0 => Ok(samples.clone()),
        _ if share > 0.0 => Ok(sets.train.select(taken)),
        _ => Err(changed(format!(
            "the run used its own {name} split, which is not there any more"
        ))),
    };
    let val = own_split(&sets.val, &split.val, fractions.val, "validation")?;
    let test = own_split(&sets.test, &split.test, fractions.test, "test")?;
    Ok(RunData {
        sets,
        split,
        train_indices,
        val,
        test,
    })
}

/// One split of a run's data: its size and where it came from.
#[derive(Clone, Debug)]
pub struct SplitSummary {
    pub name: &'static str,
    pub count: usize,
    /// How it was made (empty for the training part as given).
    pub how: String,
}

/// The three splits of a run: `counts` of train (after `--limit`), validation and test, each
/// said to be the data set's own or split off (`stratified` per class, or not) with the seed.
fn split_summaries(
    counts: [usize; 3],
    params: &HyperParams,
    fractions: Fractions,
    stratified: bool,
) -> Vec<SplitSummary> {
    let how = |share: f64| {
        if share > 0.0 {
            let strata = if stratified { ", stratified" } else { "" };
            format!(
                "{:.0}% of train split off{strata}, seed {}",
                100.0 * share,
                params.seed()
            )
        } else {
            "the data set's own".into()
        }
    };
    vec![
        SplitSummary {
            name: "train",
            count: counts[0],
            how: match params.limit() {
                Some(limit) => format!("first {limit} (--limit)"),
                None => String::new(),
            },
        },
        SplitSummary {
            name: "validation",
            count: counts[1],
            how: how(fractions.val),
        },
        SplitSummary {
            name: "test",
            count: counts[2],
            how: how(fractions.test),
        },
    ]
}

/// What a run trains on.
#[derive(Clone, Debug)]
pub struct DataSummary {
    pub origin: DataOrigin,
    pub splits: Vec<SplitSummary>,
    pub classes: Vec<String>,
    /// Channels, height, width of the network's input.
    pub input: [usize; 3],
}

/// What the run of `config` trains on, for the header `train` prints.
pub fn summary<T: Task>(data: &DataOf<T>, config: &ConfigOf<T>) -> DataSummary {
    DataSummary {
        origin: data.sets.origin.clone(),
        splits: split_summaries(
            [data.train_indices.len(), data.val.len(), data.test.len()],
            &config.params,
            config.fractions(),
            T::STRATIFIED,
        ),
        classes: config.class_names(),
        input: config.architecture.input,
    }
}
