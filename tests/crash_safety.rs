//! Interrupted training loses nothing: Ctrl-C saves a checkpoint and stops with status 130; a
//! process killed (SIGKILL) at any moment leaves only whole files; and `--resume` then finishes
//! with the metrics of an uninterrupted run.

#![cfg(unix)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::convlab;
use common::synthetic;
use convlab::run::checkpoint;

const EPOCHS: &str = "4";

fn train_args(out: &str) -> Vec<&str> {
    vec![
        "fashion",
        "train",
        "--data",
        "data",
        "--skip-checksums",
        "--epochs",
        EPOCHS,
        "--out",
        out,
    ]
}

fn spawn(args: &[&str], cwd: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_convlab"))
        .args(args)
        .current_dir(cwd)
        .env_remove("CONVLAB_DATA")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn logged_epochs(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Waits until the run has written its config and logged `epochs` epochs (or the process
/// ended).
fn wait_for_epochs(child: &mut Child, run: &Path, epochs: usize) {
    let start = Instant::now();
    while (!run.join("config.json").exists() || logged_epochs(run) < epochs)
        && child.try_wait().unwrap().is_none()
    {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "training stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file in the run folder is whole: JSON parses, each log line parses, checkpoints load,
/// and the last checkpoint is at the logged epoch or the one before (a kill between the two
/// writes); no temporary file is mistaken for a real one.
fn assert_whole(run: &Path) {
    if run.join("config.json").exists() {
        json(&run.join("config.json"));
    }
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    let logged = log.lines().count();
    let last = run.join("checkpoints/last.ckpt");
    if last.exists() {
        let header = checkpoint::load(&last).unwrap().header;
        assert!(
            header.epoch == logged || header.epoch + 1 == logged,
            "checkpoint epoch {} with {logged} logged epochs",
            header.epoch
        );
    }
    let best = run.join("checkpoints/best.ckpt");
    if best.exists() {
        checkpoint::load(&best).unwrap();
    }
}

/// Test accuracy and loss, and each epoch's training loss, agree with the straight run's.
fn assert_same_results(run: &Path, straight: &Path) {
    let (a, b) = (
        json(&run.join("metrics.json")),
        json(&straight.join("metrics.json")),
    );
    for key in ["accuracy", "loss"] {
        let (x, y) = (
            a["test"][key].as_f64().unwrap(),
            b["test"][key].as_f64().unwrap(),
        );
        assert!((x - y).abs() < 1e-3, "test {key}: {x} vs {y}");
    }
    let losses = |p: &Path| -> Vec<f64> {
        std::fs::read_to_string(p.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    let (x, y) = (losses(run), losses(straight));
    assert_eq!(x.len(), y.len());
    for (e, (x, y)) in x.iter().zip(&y).enumerate() {
        assert!(
            (x - y).abs() < 1e-4 * y.abs().max(1.0),
            "epoch {}: {x} vs {y}",
            e + 1
        );
    }
}

/// One folder for every test here: the synthetic data and the uninterrupted run `straight`
/// (trained once); each test trains into its own run folder beside them.
fn setup() -> &'static Path {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        synthetic::write_fashion_dir(&tmp.path().join("data"), 2400, 300).unwrap();
        let out = convlab(&train_args("straight"), tmp.path());
        assert!(out.status.success(), "{}", common::stderr(&out));
        tmp
    })
    .path()
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_resume_finishes_like_an_uninterrupted_run() {
    let root = setup();
    let run = root.join("cut");
    let mut child = spawn(&train_args("cut"), root);
    wait_for_epochs(&mut child, &run, 1);
    std::thread::sleep(Duration::from_millis(150));
    signal(&child, "INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let message = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        message.starts_with("error: interrupted in epoch"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_whole(&run);
    let header = checkpoint::load(&run.join("checkpoints/last.ckpt"))
        .unwrap()
        .header;
    assert!(header.epoch >= 1, "{header:?}");
    assert!(
        header.partial.is_some(),
        "stopped inside an epoch: {header:?}"
    );

    let mut args = train_args("cut");
    args.push("--resume");
    let out = convlab(&args, root);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_same_results(&run, &root.join("straight"));
}

#[test]
fn sigkill_at_any_moment_leaves_whole_files_and_resume_finishes_the_run() {
    let root = setup();
    let run = root.join("killed");
    // Kill points: inside epoch 1 (no checkpoint yet), just after epoch 1's log line (between
    // writes), and inside epoch 3.
    let points: [(usize, u64); 3] = [(0, 300), (1, 0), (2, 120)];
    let mut args = train_args("killed");
    for (i, (epochs, delay_ms)) in points.into_iter().enumerate() {
        let mut child = spawn(&args, root);
        wait_for_epochs(&mut child, &run, epochs);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            signal(&child, "KILL");
        }
        child.wait().unwrap();
        assert_whole(&run);
        if i == 0 {
            args.push("--resume");
        }
    }
    let out = convlab(&args, root);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_whole(&run);
    let leftovers: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_same_results(&run, &root.join("straight"));
}
