//! Checkpoints: model parameters, optimiser state and where training stands, in one file
//! written atomically. Layout: magic `CONVLABK`, format version (u32 LE), then three
//! length-prefixed (u64 LE) sections: a JSON header, the model's burnpack bytes, the
//! optimiser's burnpack bytes.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::TrainError;
use super::run_dir::RunDir;
use crate::device::{Compute, EngineKind};
use crate::fsutil::write_atomic;
use crate::models::{Model, ModelSpec, Net, cpu_from_burn};

const MAGIC: &[u8; 8] = b"CONVLABK";
pub const FORMAT_VERSION: u32 = 1;

/// Where training stands when the checkpoint is written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    pub model: String,
    /// The last completed epoch (from 1).
    pub epoch: usize,
    /// Optimiser steps taken so far.
    pub step: usize,
    pub best_score: f64,
    pub best_epoch: usize,
    /// The engine that wrote the optimiser state (checkpoints from before the CPU engine: burn).
    #[serde(default)]
    pub engine: EngineKind,
    /// Set when training was stopped inside an epoch (Ctrl-C): how far epoch `epoch + 1` got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialEpoch>,
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
    model: Bytes,
    optimizer: Bytes,
}

pub(crate) fn record_error(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Record {
        path: path.into(),
        reason: e.to_string(),
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::BadFile {
        path: path.into(),
        reason: reason.into(),
    }
}

pub fn save(
    path: &Path,
    header: &CheckpointHeader,
    model: &Net,
    optim_bytes: &[u8],
) -> Result<(), TrainError> {
    let json = serde_json::to_vec(header).expect("header serialises");
    let model_bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| record_error(path, e))?;
    let mut out = Vec::with_capacity(32 + json.len() + model_bytes.len() + optim_bytes.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    for section in [&json[..], &model_bytes[..], optim_bytes] {
        out.extend_from_slice(&(section.len() as u64).to_le_bytes());
        out.extend_from_slice(section);
    }
    write_atomic(path, &out).map_err(|e| TrainError::io(path, e))
}

pub fn load(path: &Path) -> Result<Checkpoint, TrainError> {
    if path.is_dir() {
        return Err(bad(path, "is a directory, expected a checkpoint file"));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(path, e.to_string()))?;
    if bytes.is_empty() {
        return Err(bad(path, "file is empty"));
    }
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(bad(path, "not a convlab checkpoint (bad magic bytes)"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(bad(
            path,
            format!(
                "checkpoint format {version} is not supported (this convlab reads format {FORMAT_VERSION})"
            ),
        ));
    }
    let mut rest = &bytes[12..];
    let mut sections = Vec::with_capacity(3);
    for name in ["header", "model", "optimiser"] {
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
    let optimizer = sections.pop().expect("three sections");
    let model = sections.pop().expect("three sections");
    let header: CheckpointHeader = serde_json::from_slice(&sections[0])
        .map_err(|e| bad(path, format!("invalid header: {e}")))?;
    Ok(Checkpoint {
        header,
        model: Bytes::from_bytes_vec(model),
        optimizer: Bytes::from_bytes_vec(optimizer),
    })
}

impl Checkpoint {
    /// Loads the parameters into `model`, checking the checkpoint is of the same model.
    pub fn restore_model(
        &self,
        path: &Path,
        expected_model: &str,
        model: Net,
    ) -> Result<Net, TrainError> {
        if self.header.model != expected_model {
            return Err(bad(
                path,
                format!(
                    "checkpoint is of model '{}', not '{expected_model}'",
                    self.header.model
                ),
            ));
        }
        let record =
            ModuleRecord::from_bytes(self.model.clone()).map_err(|e| bad(path, e.to_string()))?;
        model
            .try_load_record(record)
            .map_err(|e| bad(path, e.to_string()))
    }

    /// The optimiser section as written.
    pub fn optimizer_bytes(&self) -> &[u8] {
        &self.optimizer
    }

    pub fn restore_optimizer(
        &self,
        path: &Path,
        optimizer: ModuleOptimizer,
    ) -> Result<ModuleOptimizer, TrainError> {
        optimizer
            .from_bytes(self.optimizer.clone())
            .map_err(|e| bad(path, e.to_string()))
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
) -> Result<(Model, CheckpointHeader, PathBuf), TrainError> {
    let path = run.final_checkpoint();
    let ckpt = load(&path)?;
    let net = ckpt.restore_model(&path, model_name, Net::init(architecture, &compute.device))?;
    let model = match compute.engine {
        EngineKind::Burn => Model::Burn {
            net: net.valid(),
            device: compute.device.clone(),
        },
        EngineKind::Cpu => Model::Cpu(cpu_from_burn(architecture, &net)),
    };
    Ok((model, ckpt.header, path))
}
