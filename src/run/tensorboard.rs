//! The run's TensorBoard event file (`events.out.tfevents.*`): every epoch's scalars of
//! `metrics.jsonl`, so `tensorboard --logdir runs` shows all runs side by side, live while they
//! train. Each training session (a run, or its resume) starts a new file holding the log as it
//! stands (so the two agree even after a resume trimmed the log) and removes the older one;
//! each epoch is then appended to it. Appended, not rewritten: TensorBoard keeps reading an
//! event file where it stopped, and would never see a file replaced under the same name.
//! Records are framed as TensorFlow's TFRecord (length, masked CRC-32C of the length, data,
//! masked CRC-32C of the data) around `tensorflow.Event` protobuf messages.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use super::records::{Epoch, Scores};
use super::{RunDir, RunError};
use crate::fsutil::write_atomic;

const PREFIX: &str = "events.out.tfevents.";

/// `tensorflow.Event`: `what` is a oneof, written here as the two optional members convlab uses.
#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(double, tag = "1")]
    wall_time: f64,
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(string, optional, tag = "3")]
    file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` holding a `simple_value` (a oneof member, so always written).
#[derive(Clone, PartialEq, Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// TFRecord's masked CRC-32C (so that a CRC of data holding CRCs stays well spread).
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn frame(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

/// The event files already in the run folder, with the start time stamped in each name.
fn event_files(run: &RunDir) -> Vec<(f64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(&run.root) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| Some((started_at(&p)?, p)))
        .collect()
}

/// The start time stamped in an event file's name.
fn started_at(path: &Path) -> Option<f64> {
    let name = path.file_name()?.to_str()?;
    let rest = name.strip_prefix(PREFIX)?;
    rest.split('.')
        .next()?
        .parse::<u64>()
        .ok()
        .map(|s| s as f64)
}

/// An epoch's event: step = epoch, wall time = the run's start plus the seconds trained so far.
fn epoch_event<T: Scores, V: Scores>(record: &Epoch<T, V>, wall_time: f64) -> Vec<u8> {
    let event = Event {
        wall_time,
        step: record.epoch as i64,
        file_version: None,
        summary: Some(Summary {
            value: record
                .scalars()
                .into_iter()
                .map(|(tag, value)| SummaryValue {
                    tag: tag.into(),
                    simple_value: Some(value as f32),
                })
                .collect(),
        }),
    };
    event.encode_to_vec()
}

/// The event file of one training session.
pub struct EventLog {
    path: PathBuf,
    /// The run's start (Unix seconds) and the seconds trained since.
    started: f64,
    elapsed: f64,
}

impl EventLog {
    /// A new event file holding `history` (the epochs already trained), replacing the run's
    /// older event files.
    pub fn start<T: Scores, V: Scores>(
        run: &RunDir,
        history: &[Epoch<T, V>],
    ) -> Result<Self, RunError> {
        let older = event_files(run);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let started = older.iter().map(|(t, _)| *t).fold(now as f64, f64::min);
        let path = run.root.join(format!("{PREFIX}{now}.convlab"));
        let mut log = EventLog {
            path,
            started,
            elapsed: 0.0,
        };
        let mut bytes = Vec::new();
        let version = Event {
            wall_time: started,
            step: 0,
            file_version: Some("brain.Event:2".into()),
            summary: None,
        };
        frame(&mut bytes, &version.encode_to_vec());
        for record in history {
            log.elapsed += record.seconds;
            frame(&mut bytes, &epoch_event(record, started + log.elapsed));
        }
        write_atomic(&log.path, &bytes).map_err(|e| RunError::io(&log.path, e))?;
        for (_, old) in older.iter().filter(|(_, p)| *p != log.path) {
            std::fs::remove_file(old).map_err(|e| RunError::io(old, e))?;
        }
        Ok(log)
    }

    /// Appends an epoch (written through to the disk, so TensorBoard sees it now).
    pub fn append<T: Scores, V: Scores>(&mut self, record: &Epoch<T, V>) -> Result<(), RunError> {
        self.elapsed += record.seconds;
        let mut bytes = Vec::new();
        frame(
            &mut bytes,
            &epoch_event(record, self.started + self.elapsed),
        );
        let io = |e| RunError::io(&self.path, e);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_data().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_castagnolis_masked_as_tensorflow_does() {
        // CRC-32C("123456789") = 0xE3069283 (the standard check value); TensorFlow masks it as
        // ((crc >> 15) | (crc << 17)) + 0xa282ead8 = 0xC78AB0E5 (computed by hand in Python).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(masked_crc(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn a_record_is_length_crc_data_crc() {
        let mut out = Vec::new();
        frame(&mut out, b"abc");
        assert_eq!(out.len(), 8 + 4 + 3 + 4);
        assert_eq!(&out[..8], &3u64.to_le_bytes());
        assert_eq!(&out[12..15], b"abc");
        assert_eq!(&out[15..], &masked_crc(b"abc").to_le_bytes());
    }
}
