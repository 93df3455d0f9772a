//! A search as a plan, trials and a collection (`TASK search --plan-only`, `search trial`,
//! `search collect`): trials run one at a time from the plan give the leaderboard of the same
//! search run whole; a finished trial is never run again, a stopped one resumes; bad plans and
//! indices get one line and exit status 2.

mod common;

use std::path::Path;

use common::searches::{fashion_search, ranking, result};
use common::{assert_bad_input, convlab, stderr};

/// `fashion search` on the synthetic set in `synth`, three one-epoch trials, into `out`.
fn search(cwd: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let mut more = vec!["--trials", "3", "--epochs", "1", "--batch-sizes", "32,64"];
    more.extend_from_slice(extra);
    convlab(&fashion_search(out, &more), cwd)
}

fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The leaderboard's rows as (trial, lr, weight decay, batch, score, status), best first.
fn board(cwd: &Path, dir: &str) -> Vec<[String; 6]> {
    let csv = std::fs::read_to_string(cwd.join(dir).join("leaderboard.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            [f[1], f[2], f[3], f[4], f[5], f[10]].map(String::from)
        })
        .collect()
}

#[test]
fn search_writes_a_sorted_leaderboard_and_the_rerun_command() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    common::synthetic::write_fashion_dir(&cwd.join("synth"), 300, 50).unwrap();
    let stdout = ok(search(cwd, "runs/search", &["--lr-range", "1e-4", "3e-3"]));
    assert!(
        stdout.contains(
            "to train it longer:\n  convlab fashion train --data synth --skip-checksums --model base --lr"
        ),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(cwd.join("runs/search/leaderboard.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 3, "{csv}");
    let scores: Vec<f64> = rows.iter().map(|r| r[5].parse().unwrap()).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "sorted best first: {scores:?}"
    );
    for r in &rows {
        let lr: f64 = r[2].parse().unwrap();
        assert!((1e-4..=3e-3).contains(&lr));
        assert!(["32", "64"].contains(&r[4]));
        assert!(cwd.join(r[8]).join("config.json").is_file());
    }
}

#[test]
fn trials_run_one_at_a_time_from_the_plan_give_the_whole_search_s_leaderboard() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    common::synthetic::write_fashion_dir(&cwd.join("synth"), 300, 50).unwrap();
    ok(search(cwd, "whole", &[]));
    let whole = board(cwd, "whole");
    assert_eq!(whole.len(), 3);
    assert!(whole.iter().all(|row| row[5] == "done"), "{whole:?}");

    let said = ok(search(cwd, "planned", &["--plan-only"]));
    assert!(said.contains("planned --index K"), "{said}");
    assert!(cwd.join("planned/plan.json").is_file());
    assert!(
        !cwd.join("planned/trial-01").exists(),
        "a plan runs nothing"
    );
    ok(convlab(&["search", "collect", "planned"], cwd));
    let nothing = board(cwd, "planned");
    assert!(
        nothing
            .iter()
            .all(|row| row[5] == "not finished" && row[4].is_empty()),
        "{nothing:?}"
    );

    // In any order, as an array's tasks may run.
    for index in ["2", "0", "1"] {
        ok(convlab(
            &["search", "trial", "planned", "--index", index],
            cwd,
        ));
    }
    // Each trial is an ordinary run folder with its evaluation.
    assert!(cwd.join("planned/trial-03/metrics.json").is_file());
    ok(convlab(&["search", "collect", "planned"], cwd));
    assert_eq!(board(cwd, "planned"), whole, "the same trials and scores");

    // A finished trial is left as it is.
    let result = cwd.join("planned/trial-01/rung-0.json");
    let first = std::fs::read(&result).unwrap();
    ok(convlab(
        &["search", "trial", "planned", "--index", "0"],
        cwd,
    ));
    assert_eq!(std::fs::read(&result).unwrap(), first);
    // One whose result was not written (killed after its last checkpoint) resumes: no epoch
    // trained again, the same score.
    std::fs::remove_file(&result).unwrap();
    let again = convlab(&["search", "trial", "planned", "--index", "0"], cwd);
    assert!(
        stderr(&again).contains("the run already trained 1 epochs"),
        "{}",
        stderr(&again)
    );
    ok(convlab(&["search", "collect", "planned"], cwd));
    assert_eq!(board(cwd, "planned"), whole);
}

#[test]
fn halving_trains_the_best_third_of_each_rung_three_times_as_long() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    common::synthetic::write_fashion_dir(&cwd.join("synth"), 300, 50).unwrap();
    let halving = [
        "--trials",
        "6",
        "--epochs",
        "3",
        "--halving",
        "3",
        "--min-epochs",
        "1",
    ];
    let run = |out: &str, extra: &[&str]| {
        let mut more = halving.to_vec();
        more.extend_from_slice(extra);
        convlab(&fashion_search(out, &more), cwd)
    };
    ok(run("local", &[]));
    // Rung 0: six trials of 1 epoch; rung 1: the best two, resumed to 3 epochs.
    let rung0: Vec<serde_json::Value> = (1..=6)
        .map(|t| result(cwd, "local", t, 0).unwrap())
        .collect();
    assert!(rung0.iter().all(|r| r["epochs"] == 1));
    let mut ranked: Vec<(f64, u64)> = rung0
        .iter()
        .map(|r| {
            (
                r["score"].as_f64().unwrap(),
                r["trial"]["index"].as_u64().unwrap(),
            )
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let kept: Vec<u64> = ranked[..2].iter().map(|r| r.1).collect();
    let survivors: Vec<u64> =
        serde_json::from_str(&std::fs::read_to_string(cwd.join("local/survivors-1.json")).unwrap())
            .unwrap();
    assert_eq!(survivors, kept, "the top third of rung 0");
    for t in 1..=6u64 {
        let rung1 = result(cwd, "local", t as usize, 1);
        assert_eq!(rung1.is_some(), kept.contains(&t), "trial {t}");
        let log =
            std::fs::read_to_string(cwd.join(format!("local/trial-{t:02}/metrics.jsonl"))).unwrap();
        let epochs = if kept.contains(&t) { 3 } else { 1 };
        assert_eq!(
            log.lines().count(),
            epochs,
            "trial {t} trained {epochs} epochs"
        );
        if let Some(r) = rung1 {
            assert_eq!(r["epochs"], 3);
        }
    }
    let board = board(cwd, "local");
    let rungs: Vec<&str> = board.iter().map(|row| row[5].as_str()).collect();
    assert!(rungs.iter().all(|s| *s == "done"), "{board:?}");

    // The same search planned and run rung by rung, as Slurm's arrays and collect jobs do.
    ok(run("planned", &["--plan-only"]));
    assert_bad_input(
        &convlab(
            &["search", "trial", "planned", "--rung", "1", "--index", "0"],
            cwd,
        ),
        "--rung: rung 1 has not been decided yet",
    );
    for index in 0..6 {
        let k = index.to_string();
        ok(convlab(&["search", "trial", "planned", "--index", &k], cwd));
    }
    ok(convlab(
        &["search", "collect", "planned", "--close-rung", "0"],
        cwd,
    ));
    for index in ["0", "1"] {
        ok(convlab(
            &[
                "search", "trial", "planned", "--rung", "1", "--index", index,
            ],
            cwd,
        ));
    }
    ok(convlab(
        &["search", "collect", "planned", "--close-rung", "1"],
        cwd,
    ));
    assert_eq!(ranking(cwd, "planned"), ranking(cwd, "local"));
}

#[test]
fn a_trial_killed_mid_way_resumes_to_the_score_of_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    common::synthetic::write_fashion_dir(&cwd.join("synth"), 2000, 100).unwrap();
    let plan = |out: &str| {
        let more = ["--trials", "1", "--epochs", "6", "--plan-only"];
        ok(convlab(&fashion_search(out, &more), cwd));
    };
    plan("reference");
    plan("killed");
    ok(convlab(
        &["search", "trial", "reference", "--index", "0"],
        cwd,
    ));
    // Killed (as a preempted job is) once its first epoch is logged, then run again.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_convlab"))
        .args(["search", "trial", "killed", "--index", "0"])
        .current_dir(cwd)
        .env_remove("CONVLAB_DATA")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = cwd.join("killed/trial-01/metrics.jsonl");
    let started = std::time::Instant::now();
    while !log.is_file() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        result(cwd, "killed", 1, 0).is_none(),
        "killed before its end (make the trial longer if this fails)"
    );
    let again = convlab(&["search", "trial", "killed", "--index", "0"], cwd);
    assert!(again.status.success(), "{}", stderr(&again));
    let (reference, resumed) = (
        result(cwd, "reference", 1, 0).unwrap(),
        result(cwd, "killed", 1, 0).unwrap(),
    );
    assert_eq!(resumed["score"], reference["score"]);
    assert_eq!(resumed["best_epoch"], reference["best_epoch"]);
    // Nothing counted twice: one line per epoch, the same as the uninterrupted trial's.
    let epochs = |dir: &str| -> Vec<(f64, f64)> {
        std::fs::read_to_string(cwd.join(dir).join("trial-01/metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["train_loss"].as_f64().unwrap(),
                    v["val_loss"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(epochs("killed"), epochs("reference"));
}

#[test]
fn bad_plans_and_indices_are_refused_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    common::synthetic::write_fashion_dir(&cwd.join("synth"), 300, 50).unwrap();
    ok(search(cwd, "planned", &["--plan-only"]));
    assert_bad_input(
        &convlab(&["search", "trial", "planned", "--index", "3"], cwd),
        "--index: rung 0 of planned/plan.json has trials 0 to 2 (got 3)",
    );
    assert!(!cwd.join("planned/trial-04").exists());
    // A trial folder holding another plan's run (copied in): refused, left as it was.
    ok(search(cwd, "other", &["--seed", "7"]));
    std::fs::create_dir(cwd.join("planned/trial-01")).unwrap();
    std::fs::copy(
        cwd.join("other/trial-01/config.json"),
        cwd.join("planned/trial-01/config.json"),
    )
    .unwrap();
    let copied = convlab(&["search", "trial", "planned", "--index", "0"], cwd);
    assert_bad_input(&copied, "--index: ");
    assert!(
        stderr(&copied).contains("planned/trial-01 holds a run of another plan"),
        "{}",
        stderr(&copied)
    );
    assert!(!cwd.join("planned/trial-01/checkpoints").exists());
    // Another search into the same folder.
    assert_bad_input(
        &search(cwd, "planned", &["--plan-only", "--seed", "7"]),
        "--out: planned holds another search's plan",
    );
    std::fs::create_dir(cwd.join("notaplan")).unwrap();
    std::fs::write(cwd.join("notaplan/plan.json"), "{\"trials\": 3}").unwrap();
    assert_bad_input(
        &convlab(&["search", "trial", "notaplan", "--index", "0"], cwd),
        "notaplan/plan.json: invalid JSON",
    );
    assert_bad_input(
        &convlab(&["search", "collect", "nowhere"], cwd),
        "nowhere/plan.json",
    );
    // Data that is not there: refused before the plan is written.
    let missing = convlab(
        &[
            "fashion",
            "search",
            "--data",
            "missing",
            "--plan-only",
            "--out",
            "nodata",
        ],
        cwd,
    );
    assert_bad_input(&missing, "");
    assert!(stderr(&missing).contains("missing"), "{}", stderr(&missing));
    assert!(!cwd.join("nodata").exists(), "nothing written");
    // --slurm where there is no Slurm: refused before anything is written.
    let mut args = fashion_search("jobs", &["--slurm"]);
    let no_sbatch = std::process::Command::new(env!("CARGO_BIN_EXE_convlab"))
        .args(&args)
        .current_dir(cwd)
        .env("PATH", cwd.join("no-such-bin"))
        .output()
        .unwrap();
    assert_bad_input(&no_sbatch, "--slurm: sbatch is not on PATH");
    assert!(!cwd.join("jobs").exists(), "nothing written");
    args.extend(["--time", "1:2:3:4"]);
    assert_bad_input(&convlab(&args, cwd), "--");
    assert!(!cwd.join("jobs").exists(), "nothing written");
}
