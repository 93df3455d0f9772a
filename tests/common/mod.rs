//! What the integration tests share: the real data sets (found one way for every test), small
//! synthetic ones ([`synthetic`]), running the `convlab` binary, and searches' folders
//! ([`searches`]).

#![allow(dead_code)] // each test file uses a different subset

pub mod searches;
pub mod synthetic;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The real data set `set` (`fashion-mnist` or `mini_facade`), found as every test finds it:
/// under `$CONVLAB_DATA` where that is set, else under `../shared/data` beside the project.
/// `None` when it is not there, after saying on stderr that `test` is skipped or runs on a
/// stand-in (`instead`); with `CONVLAB_REQUIRE_DATA` set (CI's run with the data), its absence
/// fails the test instead of passing unseen.
pub fn real_data(set: &str, test: &str, instead: &str) -> Option<PathBuf> {
    let root = std::env::var_os("CONVLAB_DATA")
        .filter(|r| !r.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let dir = root.join(set);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CONVLAB_REQUIRE_DATA").is_none(),
        "{test}: {} not found, and CONVLAB_REQUIRE_DATA is set",
        dir.display()
    );
    eprintln!(
        "{test}: {instead}: real {set} not found at {} (set CONVLAB_DATA to the folder holding {set}/)",
        dir.display()
    );
    None
}

/// Runs `convlab ARGS` in `cwd`, without the caller's `CONVLAB_DATA`.
pub fn convlab(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convlab"))
        .args(args)
        .current_dir(cwd)
        .env_remove("CONVLAB_DATA")
        .output()
        .expect("runs")
}

/// `convlab fashion train` on the synthetic set in `data` (IDX files, checksums skipped) into
/// `out`, then `extra`, in `cwd`.
pub fn train_on_synthetic(data: &str, out: &str, extra: &[&str], cwd: &Path) -> Output {
    let mut args = vec![
        "fashion",
        "train",
        "--data",
        data,
        "--skip-checksums",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    convlab(&args, cwd)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exit status 2, a first line starting `error: <prefix>`, no panic, no backtrace.
pub fn assert_bad_input(out: &Output, prefix: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("error: {prefix}")),
        "stderr: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "stderr: {err}"
    );
}

/// Whether a Slurm controller answers `sinfo`.
pub fn slurm_is_up(test: &str) -> bool {
    let up = std::process::Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|out| out.status.success());
    if !up {
        assert!(
            std::env::var_os("CONVLAB_REQUIRE_SLURM").is_none(),
            "{test}: no Slurm answers sinfo, and CONVLAB_REQUIRE_SLURM is set (start one with tests/slurm/start.sh and export SLURM_CONF)"
        );
        eprintln!("{test}: skipped: no Slurm answers sinfo (tests/slurm/start.sh starts one)");
    }
    up
}
