//! Which task reads which data, as a search plan names it: the task's name on the command
//! line and the options that read its data beyond `--data`.

use serde::{Deserialize, Serialize};

/// Which task reads which data, as a plan keeps it (the task's name and the options that read
/// its data beyond `--data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum TaskSource {
    Fashion { skip_checksums: bool },
    Classify { size: Option<usize> },
    Facade,
    Segment { size: Option<usize> },
}
