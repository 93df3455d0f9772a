//! One run on several processes over MPI (`--distributed mpi`, built with `--features mpi`):
//! `mpirun -np 2` against one process, the same seed and global batch, on synthetic
//! Fashion-MNIST-shaped data; resume across launches; what is refused; and the ranks placed
//! on the two nodes of CI's Slurm (`tests/slurm/start.sh`). Two ranks on one host test the
//! launch, the placement and the arithmetic, not a network.
//!
//! Without the feature, or without `mpirun`, the tests say they are skipped; with
//! `CONVLAB_REQUIRE_MPI=1` (as in CI) that is a failure. The steps themselves are compared
//! without MPI, ranks as threads, in `tests/data_parallel.rs`.

#[cfg(not(feature = "mpi"))]
#[test]
fn skipped_without_the_mpi_feature() {
    assert!(
        std::env::var_os("CONVLAB_REQUIRE_MPI").is_none(),
        "CONVLAB_REQUIRE_MPI is set: run these tests with `cargo test --features mpi --test mpi`"
    );
    eprintln!("tests/mpi.rs: skipped: build with `--features mpi` (needs OpenMPI) to run them");
}

#[cfg(feature = "mpi")]
mod common;

#[cfg(feature = "mpi")]
mod with_mpi {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::process::{Child, Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use super::common::{self, slurm_is_up, stderr};

    /// Whether `mpirun` runs here.
    fn mpi_is_here(test: &str) -> bool {
        let here = Command::new("mpirun")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        if !here {
            assert!(
                std::env::var_os("CONVLAB_REQUIRE_MPI").is_none(),
                "{test}: no mpirun, and CONVLAB_REQUIRE_MPI is set (install openmpi-bin)"
            );
            eprintln!("{test}: skipped: no mpirun (install openmpi-bin)");
        }
        here
    }

    /// `mpirun` of `ranks` one-thread ranks of convlab on this host, as root too, with its
    /// session files under `cwd` (OpenMPI's shared default, /tmp/ompi.HOST.UID, is made by
    /// whichever of the tests' concurrent mpiruns comes first, and the others can fail on it).
    fn mpirun(ranks: usize, cwd: &Path) -> Command {
        let mut cmd = Command::new("mpirun");
        cmd.env("TMPDIR", cwd);
        cmd.args([
            "--oversubscribe",
            "--bind-to",
            "none",
            "-np",
            &ranks.to_string(),
        ])
        .args(["-x", "RAYON_NUM_THREADS=1"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env_remove("CONVLAB_DATA")
        .arg(env!("CARGO_BIN_EXE_convlab"));
        cmd
    }

    /// One process of convlab with `threads` threads.
    fn single(threads: usize) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_convlab"));
        cmd.env("RAYON_NUM_THREADS", threads.to_string())
            .env_remove("CONVLAB_DATA");
        cmd
    }

    fn run(mut cmd: Command, args: &[&str], cwd: &Path) -> Output {
        let out = cmd.args(args).current_dir(cwd).output().expect("runs");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        out
    }

    /// `fashion train` on the synthetic set in `synth` (written once per test folder).
    fn train_args<'a>(model: &'a str, out: &'a str, epochs: &'a str) -> Vec<&'a str> {
        vec![
            "fashion",
            "train",
            "--data",
            "synth",
            "--skip-checksums",
            "--model",
            model,
            "--limit",
            "320",
            "--batch-size",
            "64",
            "--epochs",
            epochs,
            "--seed",
            "9",
            "--out",
            out,
        ]
    }

    fn folder() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        common::synthetic::write_fashion_dir(&tmp.path().join("synth"), 400, 100).unwrap();
        tmp
    }

    /// Every number a run recorded: each epoch's losses and accuracies, and `metrics.json`'s.
    fn figures(run: &Path) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        for line in log.lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            for key in ["train_loss", "train_accuracy", "val_loss", "val_accuracy"] {
                out.insert(
                    format!("epoch {} {key}", record["epoch"]),
                    record[key].as_f64().unwrap(),
                );
            }
        }
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap())
                .unwrap();
        for split in ["val", "test"] {
            flatten(&metrics[split], split.to_string(), &mut out);
        }
        out
    }

    fn flatten(value: &serde_json::Value, name: String, out: &mut BTreeMap<String, f64>) {
        match value {
            serde_json::Value::Number(n) => {
                out.insert(name, n.as_f64().unwrap());
            }
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| flatten(v, format!("{name}[{i}]"), out)),
            serde_json::Value::Object(fields) => fields
                .iter()
                .for_each(|(k, v)| flatten(v, format!("{name}.{k}"), out)),
            _ => {}
        }
    }

    /// The first epoch's training loss within 1e-4 (relative) of one process's, and every
    /// figure within what one process already differs by between 1 and 2 threads, or 1e-4
    /// of the figure, whichever is larger.
    fn assert_equivalent(model: &str) {
        let tmp = folder();
        let cwd = tmp.path();
        run(single(1), &train_args(model, "one-thread", "2"), cwd);
        run(single(2), &train_args(model, "two-threads", "2"), cwd);
        let mut args = train_args(model, "two-ranks", "2");
        args.extend(["--distributed", "mpi"]);
        let launched = run(mpirun(2, cwd), &args, cwd);
        let said = String::from_utf8_lossy(&launched.stdout);
        assert_eq!(
            said.matches("model: ").count(),
            1,
            "rank 0 alone prints: {said}"
        );
        assert!(said.contains("2 ranks x 1 threads"), "{said}");

        let (one, two, ranks) = (
            figures(&cwd.join("one-thread")),
            figures(&cwd.join("two-threads")),
            figures(&cwd.join("two-ranks")),
        );
        let first = "epoch 1 train_loss";
        let relative = (ranks[first] - two[first]).abs() / two[first];
        assert!(
            relative <= 1e-4,
            "{model}: first epoch's loss {} vs {}",
            ranks[first],
            two[first]
        );
        assert_eq!(
            ranks.keys().collect::<Vec<_>>(),
            two.keys().collect::<Vec<_>>()
        );
        for (name, &value) in &two {
            let threads = (one[name] - value).abs();
            let allowed = threads.max(1e-4 * value.abs());
            let off = (ranks[name] - value).abs();
            assert!(
                off <= allowed,
                "{model}: {name} is {} on 2 ranks, {value} in one process (1 vs 2 threads: {threads})",
                ranks[name]
            );
        }
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(cwd.join("two-ranks/config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config["ranks"]["world_size"], 2);
        assert_eq!(config["ranks"]["threads_per_rank"], 1);
        let log = std::fs::read_to_string(cwd.join("two-ranks/metrics.jsonl")).unwrap();
        assert!(log.contains("\"communication_s\""), "{log}");
    }

    #[test]
    fn two_ranks_train_base_as_one_process_does() {
        if mpi_is_here("two_ranks_train_base_as_one_process_does") {
            assert_equivalent("base");
        }
    }

    #[test]
    fn two_ranks_train_res_with_synchronised_batch_norm_as_one_process_does() {
        if mpi_is_here("two_ranks_train_res_with_synchronised_batch_norm_as_one_process_does") {
            assert_equivalent("res");
        }
    }

    #[test]
    fn a_run_of_two_ranks_resumes_in_one_process() {
        if !mpi_is_here("a_run_of_two_ranks_resumes_in_one_process") {
            return;
        }
        let tmp = folder();
        let cwd = tmp.path();
        let distributed = |out: &'static str, epochs: &'static str| {
            let mut args = train_args("res", out, epochs);
            args.extend(["--distributed", "mpi"]);
            args
        };
        run(mpirun(2, cwd), &distributed("straight", "2"), cwd);
        run(mpirun(2, cwd), &distributed("resumed", "1"), cwd);
        let mut resume = train_args("res", "resumed", "2");
        resume.push("--resume");
        run(single(2), &resume, cwd);
        let (straight, resumed) = (
            figures(&cwd.join("straight")),
            figures(&cwd.join("resumed")),
        );
        for (name, &value) in &straight {
            assert!(
                (resumed[name] - value).abs() <= 1e-4 * value.abs().max(1e-2),
                "{name}: {} resumed in one process, {value} on 2 ranks throughout",
                resumed[name]
            );
        }
    }

    #[test]
    fn what_cannot_be_distributed_is_refused_before_training() {
        if !mpi_is_here("what_cannot_be_distributed_is_refused_before_training") {
            return;
        }
        let tmp = folder();
        let cwd = tmp.path();
        for (extra, says) in [
            (
                ["--engine", "burn"],
                "--distributed: trains on convlab's CPU engine only",
            ),
            (["--device", "gpu"], "--device"),
        ] {
            let mut args = train_args("base", "refused", "1");
            args.extend(["--distributed", "mpi"]);
            args.extend(extra);
            let out = mpirun(2, cwd)
                .args(&args)
                .current_dir(cwd)
                .output()
                .unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert_eq!(err.matches("error: ").count(), 1, "printed once: {err}");
            assert!(err.contains(&format!("error: {says}")), "{err}");
            assert!(!cwd.join("refused").exists());
        }
        // One rank alone (a singleton MPI run) exits with bad input's status.
        let mut args = train_args("base", "refused", "1");
        args.extend(["--distributed", "mpi", "--engine", "burn"]);
        common::assert_bad_input(
            &single(1).args(&args).current_dir(cwd).output().unwrap(),
            "--distributed",
        );
    }

    #[test]
    fn ranks_started_differently_stop_together_naming_the_difference() {
        if !mpi_is_here("ranks_started_differently_stop_together_naming_the_difference") {
            return;
        }
        let tmp = folder();
        let cwd = tmp.path();
        let mut args = train_args("base", "differ", "1");
        args.extend(["--distributed", "mpi"]);
        let mut other = args.clone();
        let seed = other.iter().position(|a| *a == "9").unwrap();
        other[seed] = "10";
        // MPMD: rank 0 and rank 1 get different command lines.
        let mut cmd = mpirun(1, cwd);
        cmd.args(&args)
            .arg(":")
            .args(["-np", "1", "-x", "RAYON_NUM_THREADS=1"]);
        cmd.arg(env!("CARGO_BIN_EXE_convlab")).args(&other);
        let out = cmd.current_dir(cwd).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
        assert_eq!(
            errors,
            ["error: rank 1: differs from rank 0: its --seed is Some(10), rank 0's is Some(9)"],
            "{err}"
        );
    }

    #[test]
    fn a_signal_to_one_rank_stops_every_rank_at_the_same_step_with_a_checkpoint() {
        if !mpi_is_here("a_signal_to_one_rank_stops_every_rank_at_the_same_step_with_a_checkpoint")
        {
            return;
        }
        let tmp = folder();
        let cwd = tmp.path();
        let mut args = train_args("res", "stopped", "50");
        args.extend(["--distributed", "mpi"]);
        let launched: Child = mpirun(2, cwd)
            .args(&args)
            .current_dir(cwd)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Rank 1 once the first epoch is logged (rank 0 wrote it: training runs).
        let started = Instant::now();
        while !cwd.join("stopped/metrics.jsonl").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no epoch in 2 minutes"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // mpirun's children on this host are the ranks.
        let ranks = Command::new("pgrep")
            .args(["-P", &launched.id().to_string()])
            .output()
            .unwrap();
        let pids: Vec<String> = String::from_utf8_lossy(&ranks.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(pids.len(), 2, "two ranks running: {pids:?}");
        let signalled = Command::new("kill")
            .args(["-TERM", &pids[1]])
            .status()
            .unwrap();
        assert!(signalled.success());
        let out = launched.wait_with_output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(130), "{err}");
        assert!(err.contains("interrupted"), "{err}");
        assert!(cwd.join("stopped/checkpoints/last.ckpt").is_file());
        let mut resume = train_args("res", "stopped", "2");
        resume.push("--resume");
        run(single(2), &resume, cwd);
    }

    #[test]
    fn sbatch_on_two_nodes_runs_one_rank_on_each_with_the_result_of_one_node() {
        let test = "sbatch_on_two_nodes_runs_one_rank_on_each_with_the_result_of_one_node";
        if !mpi_is_here(test) || !slurm_is_up(test) {
            return;
        }
        let tmp = folder();
        let cwd = tmp.path();
        let mut args = train_args("res", "on-slurm", "1");
        args.extend(["--distributed", "mpi"]);
        let convlab = env!("CARGO_BIN_EXE_convlab");
        let mpirun = "mpirun --allow-run-as-root --bind-to none -x RAYON_NUM_THREADS=1";
        let script = format!(
            "#!/bin/sh\nexport TMPDIR=\"$PWD\"\n{mpirun} sh -c 'echo \"rank $OMPI_COMM_WORLD_RANK on $SLURMD_NODENAME\"'\n{mpirun} {convlab} {}\n",
            args.join(" ")
        );
        std::fs::write(cwd.join("job.sh"), script).unwrap();
        let submitted = Command::new("sbatch")
            .args(["-N", "2", "-n", "2", "--wait", "-o", "job.out", "job.sh"])
            .current_dir(cwd)
            .output()
            .unwrap();
        let said = std::fs::read_to_string(cwd.join("job.out")).unwrap_or_default();
        assert!(submitted.status.success(), "{}\n{said}", stderr(&submitted));
        let mut placed: Vec<&str> = said.lines().filter(|l| l.starts_with("rank ")).collect();
        placed.sort();
        assert_eq!(placed, ["rank 0 on n1", "rank 1 on n2"], "{said}");

        let mut here = train_args("res", "one-node", "1");
        here.extend(["--distributed", "mpi"]);
        run(self::mpirun(2, cwd), &here, cwd);
        let (slurm, local) = (
            figures(&cwd.join("on-slurm")),
            figures(&cwd.join("one-node")),
        );
        assert_eq!(
            slurm, local,
            "the same ranks on two nodes compute what they do on one"
        );
    }
}
