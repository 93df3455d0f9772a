//! The `convlab` binary: bad input gets one line and exit status 2; a whole run on synthetic
//! data produces the run folder.

mod common;

use common::{assert_bad_input, convlab, stderr, train_on_synthetic};

#[test]
fn invalid_values_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["--lr", "0"], "--lr: must be a positive number"),
        (&["--lr=-1e-3"], "--lr: must be a positive number"),
        // As a new user types it: convlab's message, not the parser's "unexpected argument".
        (&["--lr", "-1"], "--lr: must be a positive number, got -1"),
        (
            &["--weight-decay", "-0.5"],
            "--weight-decay: must be zero or positive, got -0.5",
        ),
        (&["--batch-size", "0"], "--batch-size: must be at least 1"),
        (&["--epochs", "0"], "--epochs: must be at least 1"),
        (&["--limit", "0"], "--limit: must be at least 1"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["fashion", "train", "--out", "run"];
        args.extend_from_slice(extra);
        let out = convlab(&args, tmp.path());
        assert_bad_input(&out, expected);
        assert!(
            !tmp.path().join("run").exists(),
            "nothing is written for {extra:?}"
        );
    }
    let out = convlab(&["fashion", "train", "--model", "resnet"], tmp.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid value 'resnet'"));
}

#[test]
fn the_cpu_engine_is_refused_on_a_gpu_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = convlab(
        &[
            "fashion", "train", "--engine", "cpu", "--device", "gpu", "--out", "run",
        ],
        tmp.path(),
    );
    assert_bad_input(&out, "--engine: cpu runs on the CPU only");
    assert!(!tmp.path().join("run").exists());
}

#[test]
fn missing_data_names_the_folder_and_says_what_to_put_there() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let out = convlab(
        &["fashion", "train", "--data", "empty", "--out", "run"],
        tmp.path(),
    );
    assert_bad_input(&out, "fashion-mnist: data set not found (looked in empty)");
    assert!(stderr(&out).contains("hint: put the four Fashion-MNIST files"));
}

#[test]
fn limit_larger_than_the_data_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic::write_fashion_dir(&tmp.path().join("synth"), 100, 20).unwrap();
    let out = convlab(
        &[
            "fashion",
            "train",
            "--data",
            "synth",
            "--skip-checksums",
            "--limit",
            "1000",
            "--out",
            "run",
        ],
        tmp.path(),
    );
    assert_bad_input(
        &out,
        "--limit 1000: larger than the 90 training images available",
    );
}

#[test]
fn train_then_eval_on_synthetic_data() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic::write_fashion_dir(&tmp.path().join("synth"), 400, 100).unwrap();
    let train = [
        "fashion",
        "train",
        "--data",
        "synth",
        "--skip-checksums",
        "--epochs",
        "1",
        "--lr",
        "0.001",
        "--out",
        "runs/a",
    ];
    let out = convlab(&train, tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("test accuracy") && stdout.contains("Ankle boot"),
        "{stdout}"
    );
    let run = tmp.path().join("runs/a");
    for file in [
        "config.json",
        "metrics.jsonl",
        "metrics.json",
        "checkpoints/last.ckpt",
        "figures/examples.png",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    // A second train into the same folder must not overwrite it.
    let again = convlab(&train, tmp.path());
    assert_bad_input(&again, "--out: runs/a already holds a run");

    let out = convlab(
        &[
            "fashion",
            "eval",
            "--run",
            "runs/a",
            "--data",
            "synth",
            "--skip-checksums",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let with_data = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(with_data.contains("confusion matrix"));

    // Test-time augmentation is reported separately: its own metrics file, metrics.json and
    // the figures as they were.
    let plain = std::fs::read(run.join("metrics.json")).unwrap();
    let out = convlab(
        &[
            "fashion",
            "eval",
            "--run",
            "runs/a",
            "--data",
            "synth",
            "--skip-checksums",
            "--tta",
            "flip",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let flipped = String::from_utf8_lossy(&out.stdout);
    assert!(
        flipped.contains("test-time augmentation: flip")
            && flipped.contains("metrics_tta_flip.json"),
        "{flipped}"
    );
    assert_eq!(std::fs::read(run.join("metrics.json")).unwrap(), plain);
    let tta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("metrics_tta_flip.json")).unwrap()).unwrap();
    assert_eq!(tta["tta"], "flip");
    let plain: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert!(plain.get("tta").is_none());
    assert_eq!(tta["test"]["confusion"].as_array().unwrap().len(), 10);
    assert_ne!(
        tta["val"]["loss"], plain["val"]["loss"],
        "the mirror images count"
    );
    let out = convlab(&["report", "runs/a", "--out", "report"], tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(tmp.path().join("report/index.html")).unwrap();
    let reported = format!(
        "With <code>eval --tta flip</code>: test accuracy {:.2}%",
        100.0 * tta["test"]["accuracy"].as_f64().unwrap()
    );
    assert!(page.contains(&reported), "the report shows {reported:?}");
    // The run remembers its --data: eval finds the same data without, from another folder too
    // (the same tables, so not other data found elsewhere).
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let run_path = run.to_str().unwrap();
    let out = convlab(
        &["fashion", "eval", "--run", run_path, "--skip-checksums"],
        &elsewhere,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), with_data);

    // A corrupt checkpoint is refused with its name; nothing panics.
    std::fs::write(run.join("checkpoints/best.ckpt"), b"garbage").unwrap();
    let out = convlab(
        &[
            "fashion",
            "eval",
            "--run",
            "runs/a",
            "--data",
            "synth",
            "--skip-checksums",
        ],
        tmp.path(),
    );
    assert_bad_input(
        &out,
        "runs/a/checkpoints/best.ckpt: not a convlab checkpoint",
    );
}

#[test]
fn eval_of_a_folder_that_is_not_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = convlab(&["fashion", "eval", "--run", "nowhere"], tmp.path());
    assert_bad_input(&out, "nowhere/config.json: not found");
}

#[test]
fn patience_stops_training_once_validation_stops_improving() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic::write_fashion_dir(&tmp.path().join("synth"), 600, 100).unwrap();
    let args = [
        "fashion",
        "train",
        "--data",
        "synth",
        "--skip-checksums",
        "--epochs",
        "12",
        "--patience",
        "1",
        "--out",
        "run",
    ];
    let out = convlab(&args, tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    // The blocks are learnt within a few epochs; validation then stops improving.
    let epochs = std::fs::read_to_string(tmp.path().join("run/metrics.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(epochs < 12, "{epochs} epochs");
    assert!(
        stderr(&out).contains(&format!(
            "early stop after epoch {epochs}: no better validation score for 1 epochs"
        )),
        "{}",
        stderr(&out)
    );
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("run/metrics.json")).unwrap())
            .unwrap();
    assert_eq!(
        metrics["epoch"].as_u64(),
        Some(epochs as u64 - 1),
        "the best checkpoint is evaluated"
    );
    let out = convlab(
        &["fashion", "train", "--patience", "0", "--out", "x"],
        tmp.path(),
    );
    assert_bad_input(&out, "--patience: must be at least 1");
}

#[test]
fn resume_trains_the_run_s_own_model_unless_another_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    common::synthetic::write_fashion_dir(&tmp.path().join("synth"), 300, 50).unwrap();
    let train = |extra: &[&str]| train_on_synthetic("synth", "run", extra, tmp.path());
    let first = train(&["--model", "wide", "--epochs", "1"]);
    assert!(first.status.success(), "{}", stderr(&first));
    // No --model: the run's own (wide), not the default (base).
    let resumed = train(&["--resume", "--epochs", "2"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let log = std::fs::read_to_string(tmp.path().join("run/metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("run/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["model"], "wide");
    // Another model named: refused, as before.
    assert_bad_input(
        &train(&["--resume", "--epochs", "3", "--model", "base"]),
        "--model: the run in run trains 'wide'",
    );
}

#[test]
fn random_erasing_is_kept_in_the_run_and_a_resume_may_not_change_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    common::synthetic::write_fashion_dir(&cwd.join("d"), 200, 40).unwrap();
    let train = |extra: &[&str]| train_on_synthetic("d", "run", extra, cwd);
    let out = train(&["--epochs", "1", "--random-erasing", "0.5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cwd.join("run/config.json")).unwrap())
            .unwrap();
    let erasing = &config["params"]["erasing"];
    assert_eq!(erasing["prob"], 0.5, "{config}");
    assert_eq!(
        (erasing["min_area"].as_f64(), erasing["min_aspect"].as_f64()),
        (Some(0.02), Some(0.3))
    );
    assert_bad_input(
        &train(&["--resume", "--epochs", "2", "--random-erasing", "0.3"]),
        "--random-erasing: Some(0.3) differs from the run's config.json (Some(0.5))",
    );
    let resumed = train(&["--resume", "--epochs", "2"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
}

/// `--flips alternating` lands in config.json (runs without it say nothing: random), a resume
/// may not change it, and a model whose recipe does not flip refuses it before any work.
#[test]
fn alternating_flips_are_kept_in_the_run_and_refused_without_flips() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    common::synthetic::write_fashion_dir(&cwd.join("d"), 200, 40).unwrap();
    let train = |extra: &[&str]| train_on_synthetic("d", "run", extra, cwd);
    let out = train(&["--model", "own", "--epochs", "1", "--flips", "alternating"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(cwd.join("run/config.json")).unwrap())
            .unwrap()
    };
    assert_eq!(config()["params"]["flips"], "alternating");
    assert_bad_input(
        &train(&["--resume", "--epochs", "2", "--flips", "random"]),
        "--flips: random differs from the run's config.json (alternating)",
    );
    let resumed = train(&["--resume", "--epochs", "2", "--flips", "alternating"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(config()["params"]["flips"], "alternating");

    let plain = train_on_synthetic("d", "plain", &["--model", "own", "--epochs", "1"], cwd);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let saved = std::fs::read_to_string(cwd.join("plain/config.json")).unwrap();
    assert!(!saved.contains("flips"), "{saved}");

    let refused = train_on_synthetic("d", "base", &["--flips", "alternating"], cwd);
    assert_bad_input(&refused, "--flips: 'base' trains without flips");
    assert!(!cwd.join("base").exists());
}

/// `--ema` and `--label-smoothing` land in config.json; a resume may not change them; `eval
/// --tta flip-shift` writes its own metrics file beside the plain one.
#[test]
fn the_weight_average_and_label_smoothing_are_kept_in_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    common::synthetic::write_fashion_dir(&cwd.join("d"), 200, 40).unwrap();
    let train = |extra: &[&str]| train_on_synthetic("d", "run", extra, cwd);
    let out = train(&["--epochs", "1", "--ema", "0.99", "--label-smoothing", "0.2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cwd.join("run/config.json")).unwrap())
            .unwrap();
    let params = &config["params"];
    assert_eq!(
        (params["ema"].as_f64(), params["label_smoothing"].as_f64()),
        (Some(0.99), Some(0.2)),
        "{config}"
    );
    assert_bad_input(
        &train(&["--resume", "--epochs", "2", "--ema", "0.9"]),
        "--ema: Some(0.9) differs from the run's config.json (Some(0.99))",
    );
    let resumed = train(&["--resume", "--epochs", "2"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let eval = convlab(
        &[
            "fashion",
            "eval",
            "--run",
            "run",
            "--data",
            "d",
            "--skip-checksums",
            "--tta",
            "flip-shift",
        ],
        cwd,
    );
    assert!(eval.status.success(), "{}", stderr(&eval));
    assert!(cwd.join("run/metrics_tta_flip-shift.json").is_file());
    assert!(cwd.join("run/metrics.json").is_file());
}

/// `--precision bf16`: recorded in config.json and said at the start; `eval` at another
/// precision than the run's writes `metrics_<precision>.json` and leaves metrics.json; a
/// resume at another precision says so; burn refuses bf16.
#[test]
fn bf16_runs_record_their_precision_and_evaluate_beside_fp32() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    common::synthetic::write_fashion_dir(&cwd.join("d"), 200, 40).unwrap();
    let train = |extra: &[&str]| train_on_synthetic("d", "run", extra, cwd);
    let out = train(&["--epochs", "1", "--precision", "bf16"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("precision: bf16"));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cwd.join("run/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["precision"], "bf16", "{config}");
    let plain = std::fs::read(cwd.join("run/metrics.json")).unwrap();
    let eval = convlab(
        &[
            "fashion",
            "eval",
            "--run",
            "run",
            "--data",
            "d",
            "--skip-checksums",
        ],
        cwd,
    );
    assert!(eval.status.success(), "{}", stderr(&eval));
    let fp32: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cwd.join("run/metrics_fp32.json")).unwrap())
            .unwrap();
    assert_eq!(fp32["precision"], "fp32");
    assert_eq!(std::fs::read(cwd.join("run/metrics.json")).unwrap(), plain);
    let resumed = train(&["--resume", "--epochs", "2"]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("resuming a run trained in bf16 in fp32"),
        "{}",
        stderr(&resumed)
    );
    assert_bad_input(
        &train(&["--epochs", "1", "--engine", "burn", "--precision", "bf16"]),
        "--engine: burn computes in fp32 only; --precision bf16 runs on convlab's CPU engine",
    );
}
