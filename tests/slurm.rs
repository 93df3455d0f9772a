//! Searches submitted to a real Slurm (`--slurm`): the two-node cluster of
//! `tests/slurm/start.sh` (which CI starts; `SLURM_CONF` names its configuration). The trials
//! run as array jobs on both nodes and give the leaderboard of the same search run here with one
//! thread, with and without successive halving. Without a reachable Slurm the tests say they are
//! skipped; with `CONVLAB_REQUIRE_SLURM=1` (as in CI) that is a failure.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::searches::{fashion_search, ranking};
use common::{slurm_is_up, stderr};

/// `convlab ARGS` in `cwd` with one engine thread unless Slurm says otherwise.
fn convlab(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convlab"))
        .args(args)
        .current_dir(cwd)
        .env_remove("CONVLAB_DATA")
        .env_remove("RAYON_NUM_THREADS")
        .output()
        .expect("runs")
}

fn search_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut more = vec!["--trials", "4", "--batch-sizes", "32,64"];
    more.extend_from_slice(extra);
    fashion_search(out, &more)
}

/// Submits the search and waits (at most five minutes) until its jobs have left the queue.
fn on_slurm(cwd: &Path, out: &str, extra: &[&str]) {
    let mut args = search_args(out, extra);
    args.extend(["--slurm", "--max-parallel", "2", "--cpus-per-task", "1"]);
    let submitted = convlab(&args, cwd);
    assert!(submitted.status.success(), "{}", stderr(&submitted));
    let said = String::from_utf8_lossy(&submitted.stdout).into_owned();
    let jobs = said
        .lines()
        .find_map(|l| l.strip_prefix("watch: squeue -j "))
        .unwrap_or_else(|| panic!("no job ids in: {said}"))
        .to_string();
    let started = Instant::now();
    loop {
        let queue = Command::new("squeue")
            .args(["-h", "-j", &jobs])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&queue.stdout).trim().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "jobs {jobs} still queued after 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Here, one thread (what a one-CPU Slurm task computes with).
fn here(cwd: &Path, out: &str, extra: &[&str]) {
    let mut args = search_args(out, extra);
    args.extend(["--engine", "cpu"]);
    let out = Command::new(env!("CARGO_BIN_EXE_convlab"))
        .args(&args)
        .current_dir(cwd)
        .env_remove("CONVLAB_DATA")
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The nodes the result files of `dir` name.
fn nodes(cwd: &Path, dir: &str) -> Vec<String> {
    let mut nodes: Vec<String> = std::fs::read_dir(cwd.join(dir))
        .unwrap()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.ok()?.path().join("rung-0.json")).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            Some(v["node"].as_str()?.to_string())
        })
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

#[test]
fn a_search_on_slurm_gives_the_leaderboard_of_the_same_search_here() {
    if !slurm_is_up("a_search_on_slurm_gives_the_leaderboard_of_the_same_search_here") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    common::synthetic::write_fashion_dir(&cwd.join("synth"), 300, 50).unwrap();
    on_slurm(cwd, "slurm", &["--epochs", "1"]);
    here(cwd, "here", &["--epochs", "1"]);
    let slurm = ranking(cwd, "slurm");
    assert_eq!(slurm.len(), 5, "{slurm:?}");
    assert_eq!(slurm, ranking(cwd, "here"));
    assert_eq!(nodes(cwd, "slurm"), ["n1", "n2"], "both nodes ran trials");
}

#[test]
fn a_halving_search_on_slurm_keeps_the_survivors_of_the_same_search_here() {
    if !slurm_is_up("a_halving_search_on_slurm_keeps_the_survivors_of_the_same_search_here") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    common::synthetic::write_fashion_dir(&cwd.join("synth"), 300, 50).unwrap();
    let halving = ["--epochs", "2", "--halving", "2", "--min-epochs", "1"];
    on_slurm(cwd, "slurm", &halving);
    here(cwd, "here", &halving);
    assert_eq!(ranking(cwd, "slurm"), ranking(cwd, "here"));
    let survivors = |dir: &str| std::fs::read_to_string(cwd.join(dir).join("survivors-1.json"));
    assert_eq!(survivors("slurm").unwrap(), survivors("here").unwrap());
}
