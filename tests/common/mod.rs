//! Running the `convlab` binary from integration tests.

#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;
use std::process::{Command, Output};

/// Runs `convlab ARGS` in `cwd`, without the caller's `CONVLAB_DATA`.
pub fn convlab(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convlab"))
        .args(args)
        .current_dir(cwd)
        .env_remove("CONVLAB_DATA")
        .output()
        .expect("runs")
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
