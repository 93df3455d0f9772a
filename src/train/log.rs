//! `metrics.jsonl`: one JSON object per epoch. The whole file is rewritten atomically each
//! epoch (it is small), so a crash never leaves a torn line.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TrainError;
use crate::fsutil::write_atomic;

pub fn write_log<T: Serialize>(path: &Path, records: &[T]) -> Result<(), TrainError> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).expect("metrics serialise"));
        text.push('\n');
    }
    write_atomic(path, text.as_bytes()).map_err(|e| TrainError::io(path, e))
}

pub fn read_log<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, TrainError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| TrainError::BadFile {
                path: path.into(),
                reason: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

/// Writes any value as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).expect("JSON serialise");
    write_atomic(path, text.as_bytes()).map_err(|e| TrainError::io(path, e))
}

/// Reads a JSON file, naming it in the error.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    if path.is_dir() {
        return Err(TrainError::BadFile {
            path: path.into(),
            reason: "is a directory, expected a file".into(),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| TrainError::BadFile {
        path: path.into(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| TrainError::BadFile {
        path: path.into(),
        reason: format!("invalid JSON: {e}"),
    })
}
