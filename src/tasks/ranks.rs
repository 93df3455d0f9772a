//! A `train` command on the ranks of a data-parallel run (`--distributed`): what must hold
//! before the first step. Every rank reads the same command line and its own copy of the data;
//! rank 0 alone opens the run folder, and its configuration reaches the others. The ranks
//! agree before training starts: on the command line, on the data each loaded (a digest of
//! the training images and the order they are drawn from), and on any rank's failure, which
//! stops every rank with that rank's message (rank 0 prints it) and the same exit status.

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{DataOf, Task, TaskError};
use crate::data::Samples;
use crate::distributed::World;
use crate::engine::{DeviceKind, EngineKind};
use crate::train::TrainRequest;

/// Refuses what `--distributed` cannot train with: the CPU engine only, for now.
pub fn check_distributable(request: &TrainRequest) -> Result<(), TaskError> {
    if !request.world.is_distributed() {
        return Ok(());
    }
    let compute = request.compute;
    if compute.device != DeviceKind::Cpu || compute.engine != EngineKind::Cpu {
        return Err(TaskError::NotDistributable(format!(
            "trains on convlab's CPU engine only (got --engine {} --device {})",
            compute.engine.name(),
            compute.device.name()
        )));
    }
    Ok(())
}

/// Every rank's verdict on a stage before training, agreed: `Ok` where every rank's is, else
/// on every rank the first failing rank's error (as [`TaskError::RankStopped`], so that it is
/// printed once, by rank 0).
pub fn agree<R>(world: &World, mine: Result<R, TaskError>) -> Result<R, TaskError> {
    if !world.is_distributed() {
        return mine;
    }
    let failed = world.gather_all(u64::from(mine.is_err()));
    let Some(first) = failed.iter().position(|&f| f == 1) else {
        return mine;
    };
    // The first failing rank keeps its own error; the others learn its message.
    let mut message = match (&mine, world.rank() == first) {
        (Err(e), true) => [&[u8::from(e.is_bad_input())][..], e.to_string().as_bytes()].concat(),
        _ => Vec::new(),
    };
    world.broadcast_from(first, &mut message);
    if world.rank() == first {
        return mine;
    }
    Err(TaskError::RankStopped {
        rank: first,
        bad_input: message.first() == Some(&1),
        why: String::from_utf8_lossy(message.get(1..).unwrap_or_default()).into_owned(),
    })
}

/// The command line as every rank must have it, option by option.
fn command(request: &TrainRequest, model: &str) -> Vec<(&'static str, String)> {
    let o = &request.options;
    let shown = |value: &dyn std::fmt::Debug| format!("{value:?}");
    vec![
        ("--model", model.to_string()),
        ("--epochs", shown(&o.epochs)),
        ("--batch-size", shown(&o.batch_size)),
        ("--lr", shown(&o.lr)),
        ("--weight-decay", shown(&o.weight_decay)),
        ("--schedule", shown(&o.schedule)),
        ("--seed", shown(&o.seed)),
        ("--limit", shown(&o.limit)),
        ("--patience", shown(&o.patience)),
        ("--resume", shown(&request.resume)),
        ("--out", request.out.display().to_string()),
        ("--data", shown(&request.data)),
    ]
}

/// Rank 0's command line against this rank's: the first option that differs, as an error.
pub fn check_command(world: &World, request: &TrainRequest, model: &str) -> Result<(), TaskError> {
    let mine = command(request, model);
    let mut bytes = serde_json::to_vec(&mine).expect("strings serialise");
    world.broadcast(&mut bytes);
    let leader: Vec<(String, String)> = serde_json::from_slice(&bytes).unwrap_or_default();
    let differs = mine
        .iter()
        .zip(&leader)
        .find(|((_, a), (_, b))| a != b)
        .map(|((flag, a), (_, b))| {
            TaskError::RanksDiffer(format!("its {flag} is {a}, rank 0's is {b}"))
        });
    agree(world, differs.map_or(Ok(()), Err))
}

/// Rank 0's configuration on every rank: rank 0 passes `Some` of its planning (the
/// configuration, or its error's message), the others `None` and receive it. A failure of
/// rank 0's stops every rank (rank 0 keeps its own error).
pub fn share_config<C: Serialize + DeserializeOwned>(
    world: &World,
    planned: Option<Result<C, String>>,
) -> Result<C, TaskError> {
    let mut bytes = match &planned {
        Some(Ok(config)) => [
            &[0][..],
            &serde_json::to_vec(config).expect("a configuration serialises"),
        ]
        .concat(),
        Some(Err(message)) => [&[1][..], message.as_bytes()].concat(),
        None => Vec::new(),
    };
    world.broadcast(&mut bytes);
    match bytes.split_first() {
        Some((0, config)) => serde_json::from_slice(config).map_err(|e| TaskError::RankStopped {
            rank: 0,
            why: format!("its configuration did not arrive whole ({e})"),
            bad_input: false,
        }),
        _ => Err(TaskError::RankStopped {
            rank: 0,
            why: String::from_utf8_lossy(bytes.get(1..).unwrap_or_default()).into_owned(),
            bad_input: false,
        }),
    }
}

/// A digest of what a rank trains on: the training images and labels and the order the run
/// draws them from.
pub fn data_digest<T: Task>(data: &DataOf<T>) -> u64 {
    let mut sha = Sha256::new();
    for part in data.sets.train.contents() {
        sha.update((part.len() as u64).to_le_bytes());
        sha.update(part);
    }
    for &i in &data.train_indices {
        sha.update((i as u64).to_le_bytes());
    }
    u64::from_le_bytes(sha.finalize()[..8].try_into().expect("8 bytes"))
}

/// Every rank's data against rank 0's (`Err`: this rank could not load its own), and a
/// global batch that gives every rank images.
pub fn check_data<T: Task>(
    world: &World,
    data: Result<&DataOf<T>, &TaskError>,
    batch_size: usize,
) -> Result<(), TaskError> {
    let digest = data.map_or(0, data_digest::<T>);
    let digests = world.gather_all(digest);
    let mine = match data {
        Err(e) => Err(TaskError::RankStopped {
            rank: world.rank(),
            why: e.to_string(),
            bad_input: e.is_bad_input(),
        }),
        Ok(_) if digest != digests[0] => Err(TaskError::RanksDiffer(format!(
            "its training data (digest {digest:016x}) is not rank 0's ({:016x}): every rank must read the same data set",
            digests[0]
        ))),
        Ok(data) => smallest_batch(data.train_indices.len(), batch_size, world.size()),
    };
    agree(world, mine)
}

/// Refuses a batch that leaves a rank without images (the epoch's last batch included).
fn smallest_batch(examples: usize, batch_size: usize, ranks: usize) -> Result<(), TaskError> {
    let last = match examples % batch_size {
        0 => batch_size,
        rest => rest,
    };
    if batch_size.min(last) < ranks {
        return Err(TaskError::NotDistributable(format!(
            "a batch of {} images cannot be shared by {ranks} ranks ({examples} training images in batches of {batch_size}); change --batch-size or --limit",
            batch_size.min(last)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_must_give_every_rank_an_image() {
        assert!(smallest_batch(1000, 64, 2).is_ok());
        // 1000 = 15 x 64 + 40: the last batch has 40.
        assert!(smallest_batch(1000, 64, 40).is_ok());
        assert!(smallest_batch(1000, 64, 41).is_err());
        assert!(smallest_batch(65, 64, 2).is_err());
        assert!(smallest_batch(128, 64, 64).is_ok());
    }
}
