use std::path::PathBuf;

/// What can go wrong with a run folder, its files and its configuration.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{flag}: {reason}")]
    InvalidOption { flag: String, reason: String },
    #[error("{}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: output folder is not writable: {reason}", path.display())]
    NotWritable { path: PathBuf, reason: String },
    #[error(
        "{}: not enough free disk space for the checkpoints: they need about {} MB, {} MB are free",
        path.display(), needed / 1_000_000, available / 1_000_000
    )]
    DiskFull {
        path: PathBuf,
        needed: u64,
        available: u64,
    },
    /// A model or optimiser could not be turned into a checkpoint's bytes.
    #[error("{}: {reason}", path.display())]
    Record { path: PathBuf, reason: String },
}

impl RunError {
    /// Errors the user can fix by changing an input; I/O failures and records that cannot be
    /// written are not.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, RunError::Io { .. } | RunError::Record { .. })
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RunError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn invalid(flag: &str, reason: impl Into<String>) -> Self {
        RunError::InvalidOption {
            flag: flag.into(),
            reason: reason.into(),
        }
    }

    pub fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        RunError::BadFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub fn not_writable(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        RunError::NotWritable {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
