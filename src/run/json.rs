//! The run folder's JSON files: `config.json`, `metrics.json`, `examples.json`, and
//! `metrics.jsonl` (one object per epoch, the whole file rewritten atomically each epoch: it is
//! small, so a crash never leaves a torn line).

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::RunError;
use crate::fsutil::write_atomic;

pub fn write_log<T: Serialize>(path: &Path, records: &[T]) -> Result<(), RunError> {
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).expect("metrics serialise"));
        text.push('\n');
    }
    write_atomic(path, text.as_bytes()).map_err(|e| RunError::io(path, e))
}

pub fn read_log<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, RunError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| RunError::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| RunError::bad_file(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// Writes any value as pretty JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(value).expect("JSON serialise");
    write_atomic(path, text.as_bytes()).map_err(|e| RunError::io(path, e))
}

/// Reads a JSON file, naming it in the error.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, RunError> {
    if path.is_dir() {
        return Err(RunError::bad_file(path, "is a directory, expected a file"));
    }
    let bytes = std::fs::read(path).map_err(|e| RunError::bad_file(path, e.to_string()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| RunError::bad_file(path, format!("invalid JSON: {e}")))
}
