//! Checkpoints: model parameters, optimiser state and where training stands, in one file
//! written atomically. Layout: magic `CONVLABK`, format version (u32 LE), then
//! length-prefixed (u64 LE) sections: a JSON header, the model's parameters (burn's record,
//! whichever engine trained it: the weights evaluated, exported and predicted with) and the
//! optimiser's state (in the format of the engine named in the header); format 2 adds a
//! fourth, the live weights the optimiser steps, when the model is a moving average of them
//! (`--ema`). Runs without an average write format 1, as before. The engines supply and take
//! the byte sections.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RunError;
use super::dir::RunDir;
use crate::engine::{Compute, EngineError, EngineKind, Model, Trainer};
use crate::fsutil::write_atomic;
use crate::models::ModelSpec;
use crate::progress;

const MAGIC: &[u8; 8] = b"CONVLABK";
/// The format of a checkpoint of a model that is its live weights.
pub const FORMAT_VERSION: u32 = 1;
/// The format with the live weights in a section of their own, beside their average.
pub const AVERAGED_FORMAT_VERSION: u32 = 2;

/// Where training stands when the checkpoint is written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    pub model: String,
    /// The last completed epoch (from 1).
    pub epoch: usize,
    /// Optimiser steps taken so far.
    pub step: usize,
    /// JSON has no infinities: a run with no score yet (-inf) writes null.
    #[serde(deserialize_with = "null_as_no_score")]
    pub best_score: f64,
    pub best_epoch: usize,
    /// The engine that wrote the optimiser state (checkpoints from before the CPU engine: burn).
    #[serde(default)]
    pub engine: EngineKind,
    /// Set when training was stopped inside an epoch (Ctrl-C): how far epoch `epoch + 1` got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialEpoch>,
}

fn null_as_no_score<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NEG_INFINITY))
}

/// The part of an epoch done before an interruption, so a resumed run continues mid-epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Optimiser steps of the epoch already taken.
    pub steps: usize,
    pub loss_sum: f64,
    pub examples: usize,
    pub hits: usize,
    pub count: usize,
    pub seconds: f64,
}

pub struct Checkpoint {
    pub header: CheckpointHeader,
    model: Vec<u8>,
    optimizer: Vec<u8>,
    /// The live weights, when `model` is their average.
    live: Option<Vec<u8>>,
}

fn bad(path: &Path, reason: impl Into<String>) -> RunError {
    RunError::bad_file(path, reason)
}

/// Writes `trainer`'s model and optimiser with `header` (its engine set to the trainer's).
pub fn save(path: &Path, header: &CheckpointHeader, trainer: &Trainer) -> Result<(), RunError> {
    let unwritable = |e: EngineError| RunError::Record {
        path: path.into(),
        reason: e.to_string(),
    };
    let out = encode(header, trainer).map_err(unwritable)?;
    write_atomic(path, &out).map_err(|e| RunError::io(path, e))
}

/// A checkpoint's bytes, as [`save`] writes them (and as the ranks of a run receive rank 0's
/// starting state).
pub fn encode(header: &CheckpointHeader, trainer: &Trainer) -> Result<Vec<u8>, EngineError> {
    let mut header = header.clone();
    header.engine = trainer.engine();
    let json = serde_json::to_vec(&header).expect("header serialises");
    let model = trainer.model_record()?;
    let optimizer = trainer.optimizer_state()?;
    let live = trainer.live_record()?;
    let version = match live {
        Some(_) => AVERAGED_FORMAT_VERSION,
        None => FORMAT_VERSION,
    };
    let mut sections = vec![json, model, optimizer];
    sections.extend(live);
    let mut out = Vec::with_capacity(40 + sections.iter().map(Vec::len).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    for section in &sections {
        out.extend_from_slice(&(section.len() as u64).to_le_bytes());
        out.extend_from_slice(section);
    }
    Ok(out)
}

pub fn load(path: &Path) -> Result<Checkpoint, RunError> {
    if path.is_dir() {
        return Err(bad(path, "is a directory, expected a checkpoint file"));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(path, e.to_string()))?;
    decode(&bytes, path)
}

/// A checkpoint from its bytes; errors name `path` as where they came from.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Checkpoint, RunError> {
    if bytes.is_empty() {
        return Err(bad(path, "file is empty"));
    }
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(bad(path, "not a convlab checkpoint (bad magic bytes)"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    let names: &[&str] = match version {
        FORMAT_VERSION => &["header", "model", "optimiser"],
        AVERAGED_FORMAT_VERSION => &["header", "model", "optimiser", "live weights"],
        _ => {
            return Err(bad(
                path,
                format!(
                    "checkpoint format {version} is not supported (this convlab reads formats {FORMAT_VERSION} and {AVERAGED_FORMAT_VERSION})"
                ),
            ));
        }
    };
    let mut rest = &bytes[12..];
    let mut sections = Vec::with_capacity(names.len());
    for name in names {
        if rest.len() < 8 {
            return Err(bad(path, format!("truncated before the {name} section")));
        }
        let len = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes")) as usize;
        rest = &rest[8..];
        if rest.len() < len {
            return Err(bad(path, format!("truncated in the {name} section")));
        }
        sections.push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    if !rest.is_empty() {
        return Err(bad(path, "trailing bytes after the last section"));
    }
    let live = (sections.len() == 4).then(|| sections.pop().expect("four sections"));
    let optimizer = sections.pop().expect("three sections");
    let model = sections.pop().expect("three sections");
    let header: CheckpointHeader = serde_json::from_slice(&sections[0])
        .map_err(|e| bad(path, format!("invalid header: {e}")))?;
    Ok(Checkpoint {
        header,
        model,
        optimizer,
        live,
    })
}

impl Checkpoint {
    fn check_model(&self, path: &Path, expected_model: &str) -> Result<(), RunError> {
        if self.header.model != expected_model {
            return Err(bad(
                path,
                format!(
                    "checkpoint is of model '{}', not '{expected_model}'",
                    self.header.model
                ),
            ));
        }
        Ok(())
    }

    /// Puts the weights (live and averaged) and optimiser state into `trainer`. The optimiser's moments carry over
    /// when the checkpoint was written by the same engine; from the other engine only the
    /// model does, and the optimiser starts afresh (said on stderr).
    pub fn restore(
        &self,
        trainer: &mut Trainer,
        path: &Path,
        model_name: &str,
    ) -> Result<(), RunError> {
        self.check_model(path, model_name)?;
        let same_engine = self.header.engine == trainer.engine();
        if !same_engine {
            progress::notice(&format!(
                "{} was written by the {} engine: resuming its model on the {} engine with fresh optimiser moments",
                path.display(),
                self.header.engine.name(),
                trainer.engine().name()
            ));
        }
        let unreadable = |e: EngineError| bad(path, e.to_string());
        trainer
            .load_records(&self.model, self.live.as_deref(), self.header.step)
            .map_err(unreadable)?;
        if same_engine {
            trainer
                .load_optimizer_state(&self.optimizer)
                .map_err(unreadable)?;
        }
        Ok(())
    }

    /// The model for inference on `compute`'s engine and device.
    pub fn model(
        &self,
        path: &Path,
        model_name: &str,
        architecture: &ModelSpec,
        compute: &Compute,
    ) -> Result<Model, RunError> {
        self.check_model(path, model_name)?;
        Model::from_record(architecture, &self.model, compute).map_err(|e| bad(path, e.to_string()))
    }
}

/// A finished run's model for evaluation or prediction: its final checkpoint (the best, else the
/// last), on `compute`'s engine and device, ready for inference, with the checkpoint's header
/// and path. Either engine reads a checkpoint of either.
pub fn load_final(
    run: &RunDir,
    model_name: &str,
    architecture: &ModelSpec,
    compute: &Compute,
) -> Result<(Model, CheckpointHeader, PathBuf), RunError> {
    let path = run.final_checkpoint();
    let ckpt = load(&path)?;
    let model = ckpt.model(&path, model_name, architecture, compute)?;
    Ok((model, ckpt.header, path))
}
