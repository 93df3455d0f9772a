//! Where data sets are looked for: `--data DIR`, then `$CONVLAB_DATA/<set>`, then
//! `./data/<set>`, then any places a data set adds (e.g. Debian's package folder).

use std::path::{Path, PathBuf};

/// The folders to try for data set `set`, in order.
pub fn candidates(set: &str, explicit: Option<&Path>, extra: &[&str]) -> Vec<PathBuf> {
    if let Some(dir) = explicit {
        return vec![dir.to_path_buf()];
    }
    let mut dirs = Vec::new();
    if let Some(root) = std::env::var_os("CONVLAB_DATA").filter(|r| !r.is_empty()) {
        dirs.push(PathBuf::from(root).join(set));
    }
    dirs.push(Path::new("data").join(set));
    dirs.extend(extra.iter().map(PathBuf::from));
    dirs
}
