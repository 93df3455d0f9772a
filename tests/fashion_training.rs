//! Training on small synthetic data (always) and on the real Fashion-MNIST files (when present).

mod common;

use std::path::{Path, PathBuf};

use common::synthetic;
use convlab::data::LabelledImages;
use convlab::data::fashion_mnist::{Checksums, FashionMnist};
use convlab::data::sets::ClassificationSets;
use convlab::engine::{Compute, Tta};
use convlab::models::ClassifierKind;
use convlab::run::RunDir;
use convlab::run::config::{ClassificationConfig as FashionConfig, TrainOptions};
use convlab::run::json::read_log;
use convlab::run::records::ClassificationEpoch as EpochRecord;
use convlab::tasks::{self, Classification, DataOf, Task, evaluate_run};
use convlab::train::Launch;

fn config(kind: ClassifierKind, args: TrainOptions) -> FashionConfig {
    let params = args.check(&Classification::recipe(kind)).unwrap();
    // Fashion-MNIST's configuration depends on the files' shape alone: none is read here.
    let empty = LabelledImages {
        pixels: Vec::new(),
        labels: Vec::new(),
        channels: 1,
        height: 28,
        width: 28,
    };
    let shape = ClassificationSets::fashion_mnist(
        FashionMnist {
            dir: PathBuf::new(),
            train: empty.clone(),
            test: empty,
        },
        false,
    );
    Classification::fashion_mnist(Checksums::Skip)
        .fresh_config(kind, params, &args, Default::default(), &shape)
        .unwrap()
}

/// Fashion-MNIST files as the classification task takes them.
fn prepare(sets: FashionMnist, config: &FashionConfig) -> DataOf<Classification> {
    tasks::prepare::<Classification>(ClassificationSets::fashion_mnist(sets, false), config)
        .unwrap()
}

/// burn's CPU backend keeps one random generator per process (dropout draws from it), so
/// trainings in this test binary run one at a time to stay reproducible.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TRAINING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TRAINING.lock().unwrap_or_else(|e| e.into_inner())
}

fn synthetic_data(dir: &Path, train: usize, test: usize) -> FashionMnist {
    synthetic::write_fashion_dir(dir, train, test).unwrap();
    FashionMnist::load_dir(dir, Checksums::Skip).unwrap()
}

fn train_in(
    run: &Path,
    config: &FashionConfig,
    sets: &FashionMnist,
    resume: bool,
) -> Vec<EpochRecord> {
    let data = prepare(sets.clone(), config);
    let run = RunDir::new(run);
    run.prepare().unwrap();
    Classification::train(
        config,
        &data,
        &run,
        &Launch::on(Compute::cpu_engine()).resuming(resume),
    )
    .unwrap()
}

#[test]
fn base_learns_a_synthetic_task_and_writes_the_run_folder() {
    let _serial = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let sets = synthetic_data(&tmp.path().join("data"), 1000, 200);
    let config = config(
        ClassifierKind::Base,
        TrainOptions {
            epochs: Some(3),
            lr: Some(1e-3),
            batch_size: Some(32),
            ..Default::default()
        },
    );
    let run_path = tmp.path().join("run");
    let history = train_in(&run_path, &config, &sets, false);
    assert_eq!(history.len(), 3);
    assert!(
        history[2].train_loss < 0.5 * history[0].train_loss,
        "loss must fall: {:?}",
        history.iter().map(|r| r.train_loss).collect::<Vec<_>>()
    );
    assert!(
        history[2].val.accuracy > 0.95,
        "val accuracy {}",
        history[2].val.accuracy
    );

    let data = prepare(sets, &config);
    let run = RunDir::new(&run_path);
    let metrics =
        evaluate_run::<Classification>(&config, &data, &run, &Compute::cpu_engine(), Tta::None)
            .unwrap();
    assert!(metrics.test.accuracy > 0.95);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.metrics()).unwrap()).unwrap();
    for split in ["val", "test"] {
        assert!(json[split]["accuracy"].is_number());
        assert_eq!(
            json[split]["per_class_accuracy"].as_array().unwrap().len(),
            10
        );
        let confusion = json[split]["confusion"].as_array().unwrap();
        assert_eq!(confusion.len(), 10);
        assert!(
            confusion
                .iter()
                .all(|row| row.as_array().unwrap().len() == 10)
        );
    }
    assert_eq!(
        json["test"]["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap())
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        200
    );
    for figure in ["curves", "per_class", "filters", "examples", "confusion"] {
        let path = run.figures().join(format!("{figure}.png"));
        let img = image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            img.width() > 200 && img.height() > 200,
            "{figure} is too small"
        );
    }
    let log: Vec<EpochRecord> = read_log(&run.metrics_log()).unwrap();
    assert_eq!(log, history);
    assert!(run.best_checkpoint().is_file() && run.last_checkpoint().is_file());
}

#[test]
fn resuming_equals_training_straight_through() {
    let _serial = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let sets = synthetic_data(&tmp.path().join("data"), 600, 50);
    // The own model exercises dropout, batch norm, augmentation and the cosine schedule.
    let args = |epochs| TrainOptions {
        epochs: Some(epochs),
        batch_size: Some(64),
        ..Default::default()
    };
    let full = config(ClassifierKind::Own, args(3));
    let straight = train_in(&tmp.path().join("straight"), &full, &sets, false);

    // Training stops after epoch 2 (as if interrupted), then resumes to 3.
    let partial = train_in_until(&tmp.path().join("resumed"), &full, &sets, 2);
    assert_eq!(partial.len(), 2);
    let resumed = train_in(&tmp.path().join("resumed"), &full, &sets, true);
    assert_eq!(resumed.len(), 3);
    for (a, b) in straight.iter().zip(&resumed) {
        assert_eq!(a.epoch, b.epoch);
        assert!(
            (a.train_loss - b.train_loss).abs() < 1e-4,
            "epoch {}: {} vs {}",
            a.epoch,
            a.train_loss,
            b.train_loss
        );
        assert!(
            (a.val_loss - b.val_loss).abs() < 1e-4,
            "epoch {}: {} vs {}",
            a.epoch,
            a.val_loss,
            b.val_loss
        );
        assert!((a.val.accuracy - b.val.accuracy).abs() < 1e-9);
    }
    // TensorBoard: the resumed session's event file replaced the first one and holds the version
    // record and one record per epoch of the log.
    let events: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("resumed"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("events.out.tfevents."))
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let bytes = std::fs::read(&events[0]).unwrap();
    let mut records = 0;
    let mut at = 0;
    while at < bytes.len() {
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        at += 8 + 4 + len + 4;
        records += 1;
    }
    assert_eq!((at, records), (bytes.len(), 1 + resumed.len()));
}

#[test]
fn two_runs_with_the_same_seed_agree_and_another_seed_differs() {
    let _serial = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let sets = synthetic_data(&tmp.path().join("data"), 600, 50);
    let args = |seed| TrainOptions {
        epochs: Some(2),
        batch_size: Some(64),
        seed: Some(seed),
        ..Default::default()
    };
    let first = train_in(
        &tmp.path().join("a"),
        &config(ClassifierKind::Own, args(7)),
        &sets,
        false,
    );
    let again = train_in(
        &tmp.path().join("b"),
        &config(ClassifierKind::Own, args(7)),
        &sets,
        false,
    );
    let other = train_in(
        &tmp.path().join("c"),
        &config(ClassifierKind::Own, args(8)),
        &sets,
        false,
    );
    // The CPU engine sums in a fixed order: the same seed repeats the run bit for bit.
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(a.train_loss, b.train_loss);
        assert_eq!(a.val_loss, b.val_loss);
        assert_eq!(a.val.accuracy, b.val.accuracy);
    }
    assert!((first[0].train_loss - other[0].train_loss).abs() > 1e-4);
}

#[test]
fn divergence_names_epoch_and_step_and_keeps_the_last_good_checkpoint() {
    let _serial = one_at_a_time();
    use convlab::train::TrainError;
    let tmp = tempfile::tempdir().unwrap();
    let sets = synthetic_data(&tmp.path().join("data"), 600, 50);
    let dir = tmp.path().join("run");
    let good = config(
        ClassifierKind::Base,
        TrainOptions {
            epochs: Some(1),
            batch_size: Some(64),
            ..Default::default()
        },
    );
    train_in(&dir, &good, &sets, false);
    let run = RunDir::new(&dir);
    let kept = std::fs::read(run.last_checkpoint()).unwrap();
    // The second epoch with a rate that overflows the weights: the loss turns NaN or infinite.
    let wild = config(
        ClassifierKind::Base,
        TrainOptions {
            epochs: Some(2),
            batch_size: Some(64),
            lr: Some(1e30),
            ..Default::default()
        },
    );
    let data = prepare(sets.clone(), &wild);
    let err = Classification::train(
        &wild,
        &data,
        &run,
        &Launch::on(Compute::cpu_engine()).resuming(true),
    )
    .unwrap_err();
    let steps_per_epoch = 540usize.div_ceil(64);
    match &err {
        TrainError::Diverged { epoch, step, .. } => {
            assert_eq!(*epoch, 2);
            assert!(
                *step > steps_per_epoch && *step <= 2 * steps_per_epoch,
                "{err}"
            );
        }
        other => panic!("expected divergence, got {other}"),
    }
    assert!(
        err.to_string()
            .starts_with("training diverged at epoch 2, step "),
        "{err}"
    );
    assert_eq!(std::fs::read(run.last_checkpoint()).unwrap(), kept);
    assert_eq!(convlab::cli::Error::Task(err.into()).exit_code(), 1);
    let log: Vec<EpochRecord> = read_log(&run.metrics_log()).unwrap();
    assert_eq!(log.len(), 1);
}

/// Trains with `config` but stops after `stop_after` epochs, like an interrupted run.
fn train_in_until(
    run: &Path,
    config: &FashionConfig,
    sets: &FashionMnist,
    stop_after: usize,
) -> Vec<EpochRecord> {
    let data = prepare(sets.clone(), config);
    let run = RunDir::new(run);
    run.prepare().unwrap();
    Classification::train(
        config,
        &data,
        &run,
        &Launch::on(Compute::cpu_engine()).stopping_after(stop_after),
    )
    .unwrap()
}

#[test]
fn real_fashion_mnist_verifies_and_a_short_run_learns() {
    let _serial = one_at_a_time();
    let Some(dir) = common::real_data(
        "fashion-mnist",
        "real_fashion_mnist_verifies_and_a_short_run_learns",
        "SKIPPED",
    ) else {
        return;
    };
    let sets = FashionMnist::load_dir(&dir, Checksums::Verify).unwrap();
    assert_eq!((sets.train.len(), sets.test.len()), (60_000, 10_000));
    for class in 0..10u8 {
        assert_eq!(
            sets.train.labels.iter().filter(|&&l| l == class).count(),
            6_000
        );
    }
    // 4,000 images, one epoch of `base` at its default lr 1e-3: measured 77.75% here
    // (`convlab fashion train --model base --epochs 1 --limit 4000`, seed 42).
    let config = config(
        ClassifierKind::Base,
        TrainOptions {
            epochs: Some(1),
            limit: Some(4000),
            ..Default::default()
        },
    );
    let tmp = tempfile::tempdir().unwrap();
    let history = train_in(tmp.path(), &config, &sets, false);
    assert!(
        history[0].val.accuracy > 0.72,
        "val accuracy {} on 6,000 validation images",
        history[0].val.accuracy
    );
}

/// A run trained on the CPU engine is evaluated on burn with the same results, and resumed on
/// burn (the checkpoint holds burn's record of the model whichever engine wrote it).
#[test]
fn a_run_trained_on_one_engine_is_evaluated_and_resumed_on_the_other() {
    let _serial = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let sets = synthetic_data(&tmp.path().join("data"), 600, 50);
    let one = config(
        ClassifierKind::Base,
        TrainOptions {
            epochs: Some(1),
            batch_size: Some(64),
            ..Default::default()
        },
    );
    let run_path = tmp.path().join("run");
    train_in(&run_path, &one, &sets, false);
    let data = prepare(sets.clone(), &one);
    let run = RunDir::new(&run_path);
    let on_cpu =
        evaluate_run::<Classification>(&one, &data, &run, &Compute::cpu_engine(), Tta::None)
            .unwrap();
    let on_burn =
        evaluate_run::<Classification>(&one, &data, &run, &Compute::burn_cpu(), Tta::None).unwrap();
    // The engines' logits differ by rounding (~1e-6), which could flip a near-tie: one image.
    for (a, b, images) in [
        (&on_cpu.val, &on_burn.val, data.val.len()),
        (&on_cpu.test, &on_burn.test, data.test.len()),
    ] {
        assert!((a.accuracy - b.accuracy).abs() <= 1.0 / images as f64 + 1e-12);
        assert!((a.loss - b.loss).abs() < 1e-4, "{} vs {}", a.loss, b.loss);
    }
    // As `--resume --epochs 2` does.
    let more = TrainOptions {
        epochs: Some(2),
        ..Default::default()
    };
    let two = FashionConfig {
        params: more.resume_with(&one.params).unwrap(),
        ..one.clone()
    };
    let history = Classification::train(
        &two,
        &data,
        &run,
        &Launch::on(Compute::burn_cpu()).resuming(true),
    )
    .unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[1].train_loss < history[0].train_loss, "{history:?}");
    let ckpt = convlab::run::checkpoint::load(&run.last_checkpoint()).unwrap();
    assert_eq!(ckpt.header.engine, convlab::engine::EngineKind::Burn);
    assert_eq!(ckpt.header.epoch, 2);
}

#[test]
fn a_budget_fits_the_schedule_to_the_time_left_after_the_first_epoch() {
    use convlab::run::schedule::Schedule;
    use convlab::train::Clock;
    let _serial = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let sets = synthetic_data(&tmp.path().join("data"), 300, 50);
    let budgeted = |minutes: f64, epochs: Option<usize>| {
        config(
            ClassifierKind::Base,
            TrainOptions {
                budget: Some(minutes),
                epochs,
                schedule: Some(Schedule::Cosine),
                batch_size: Some(64),
                ..Default::default()
            },
        )
    };
    // An injected clock: 10 s at the first epoch's start, 70 s once it is done (a 60 s epoch).
    // 5 minutes leave 300 - 70 - 60 (an epoch's time kept for the final evaluation) = 170 s:
    // 2 more epochs.
    let train = |name: &str, config: &FashionConfig| {
        let data = prepare(sets.clone(), config);
        let run = RunDir::new(tmp.path().join(name));
        run.prepare().unwrap();
        let launch = Launch::on(Compute::cpu_engine()).timed_by(Clock::scripted(vec![10.0, 70.0]));
        Classification::train(config, &data, &run, &launch).unwrap()
    };
    let fitted = budgeted(5.0, None);
    let history = train("fitted", &fitted);
    assert_eq!(history.len(), 3);
    // The cosine schedule was planned for the 3 epochs chosen, not cut from the recipe's 10:
    // the last step's rate is near the end of the cosine (0.02 of the peak here), where 10
    // epochs would still be at 0.9 of it.
    let last_lr = history[2].lr / fitted.params.lr();
    assert!(last_lr < 0.1, "last rate {last_lr} of the peak");
    let saved: FashionConfig =
        convlab::run::json::read_json(&tmp.path().join("fitted/config.json")).unwrap();
    assert_eq!(saved.params.epochs(), 3);
    let budget = saved.params.budget().unwrap();
    assert!(budget.chosen && budget.minutes == 5.0, "{budget:?}");
    // --epochs with --budget is the most it may choose; a budget the first epoch spent still
    // ends with a finished (one-epoch) schedule.
    assert_eq!(train("capped", &budgeted(5.0, Some(2))).len(), 2);
    assert_eq!(train("spent", &budgeted(1.0, None)).len(), 1);
    // A resumed run keeps the epochs chosen, whatever its clock says.
    let resumed = train_in(&tmp.path().join("fitted"), &saved, &sets, true);
    assert_eq!(resumed.len(), 3);
}

/// `--ema`: the averaged weights are validated, checkpointed as the model (a format-2
/// checkpoint with the live weights beside them) and evaluated; a run stopped after epoch 1
/// and resumed equals one trained straight through, figure for figure, because the live
/// weights, the optimiser and the average all resume; and the average changes what is
/// validated (the same run without it validates other figures).
#[test]
fn a_weight_average_is_evaluated_as_the_model_and_resumes_exactly() {
    let _serial = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let sets = synthetic_data(&tmp.path().join("data"), 600, 50);
    let args = |ema| TrainOptions {
        epochs: Some(2),
        batch_size: Some(64),
        ema,
        ..Default::default()
    };
    let averaged = config(ClassifierKind::Base, args(Some(0.9)));
    assert_eq!(averaged.params.ema(), Some(0.9));
    let straight = train_in(&tmp.path().join("straight"), &averaged, &sets, false);
    train_in_until(&tmp.path().join("resumed"), &averaged, &sets, 1);
    let resumed = train_in(&tmp.path().join("resumed"), &averaged, &sets, true);
    assert_eq!(straight.len(), 2);
    for (a, b) in straight.iter().zip(&resumed) {
        assert_eq!((a.train_loss, a.val_loss), (b.train_loss, b.val_loss));
        assert_eq!(a.val.accuracy, b.val.accuracy);
    }

    let run = RunDir::new(tmp.path().join("straight"));
    let bytes = std::fs::read(run.last_checkpoint()).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2);
    let data = prepare(sets.clone(), &averaged);
    let evaluated =
        evaluate_run::<Classification>(&averaged, &data, &run, &Compute::cpu_engine(), Tta::None)
            .unwrap();
    // The final checkpoint is the best epoch's: its validation figures are the evaluation's.
    assert!(
        straight
            .iter()
            .any(|r| (r.val_loss - evaluated.val.loss).abs() < 1e-6
                && r.val.accuracy == evaluated.val.accuracy),
        "{:?} against {straight:?}",
        evaluated.val
    );

    let plain = train_in(
        &tmp.path().join("plain"),
        &config(ClassifierKind::Base, args(None)),
        &sets,
        false,
    );
    assert_eq!(plain[0].train_loss, straight[0].train_loss, "same steps");
    assert_ne!(
        plain[1].val_loss, straight[1].val_loss,
        "another model validated"
    );
    let plain_bytes =
        std::fs::read(RunDir::new(tmp.path().join("plain")).last_checkpoint()).unwrap();
    assert_eq!(
        u32::from_le_bytes(plain_bytes[8..12].try_into().unwrap()),
        1
    );
}

/// `--whiten`: the first convolution's leading filters whiten the training patches (nine
/// values a 3x3 patch of one channel: nine `+v` filters, then their negatives) and stay so
/// through training and a resume, which repeats the straight run figure for figure; the
/// layer's other filters train; a run without it trains other first filters.
#[test]
fn whitening_filters_stay_frozen_through_training_and_resume() {
    use convlab::run::checkpoint;
    let _serial = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let sets = synthetic_data(&tmp.path().join("data"), 600, 50);
    let args = |whiten| TrainOptions {
        epochs: Some(2),
        batch_size: Some(64),
        whiten,
        ..Default::default()
    };
    let whitened = config(ClassifierKind::Res, args(true));
    assert!(whitened.params.whiten());
    let first_filters = |run: &str| {
        let path = tmp.path().join(run).join("checkpoints").join("last.ckpt");
        checkpoint::load(&path)
            .unwrap()
            .model(&path, "res", &whitened.architecture, &Compute::cpu_engine())
            .unwrap()
            .first_conv_weights()
            .unwrap()
    };
    let straight = train_in(&tmp.path().join("straight"), &whitened, &sets, false);
    train_in_until(&tmp.path().join("resumed"), &whitened, &sets, 1);
    let after_one = first_filters("resumed");
    let resumed = train_in(&tmp.path().join("resumed"), &whitened, &sets, true);
    for (a, b) in straight.iter().zip(&resumed) {
        assert_eq!((a.train_loss, a.val_loss), (b.train_loss, b.val_loss));
    }
    let (start, end) = (after_one, first_filters("straight"));
    let held = 18 * 9;
    assert_eq!(start[..held], end[..held], "the whitening filters moved");
    let (plus, minus) = end[..held].split_at(held / 2);
    assert!(plus.iter().zip(minus).all(|(p, m)| *p == -*m));
    // Eigenvectors scaled by 1 / sqrt(eigenvalue + eps): the smallest eigenvalue's filter is
    // the longest.
    let norms: Vec<f32> = plus
        .chunks_exact(9)
        .map(|f| f.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect();
    assert!(norms.windows(2).all(|w| w[0] <= w[1] * 1.0001), "{norms:?}");
    assert_eq!(start.len(), 32 * 9);
    assert_ne!(
        start[held..],
        end[held..],
        "the other filters did not train"
    );
    train_in(
        &tmp.path().join("plain"),
        &config(ClassifierKind::Res, args(false)),
        &sets,
        false,
    );
    assert_ne!(first_filters("plain")[..held], end[..held]);
}

/// `--precision bf16` trains `res` (batch norm, residual additions, global pooling; in bf16 its
/// activations between convolutions and batch norms are stored in bf16) on the same steps as
/// fp32: each epoch's training loss within 2% of fp32's, and the last epoch's validation
/// accuracy within 10 points (60 validation images: 6 images), from the same initial weights
/// and batches. Measured on an Intel Xeon (family 6 model 207): training losses within 0.74%
/// (2.1569 / 2.1567, 1.6961 / 1.6881, 1.4504 / 1.4396), validation accuracy 0.10 / 0.10, 0.10
/// / 0.02, 0.25 / 0.30. (The models are near chance after two epochs, where a few images
/// move the accuracy: epoch 2's is not compared.)
#[test]
fn bf16_training_tracks_the_fp32_loss_curve() {
    use convlab::engine::Precision;
    let _serial = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let sets = synthetic_data(&tmp.path().join("data"), 600, 50);
    let config = config(
        ClassifierKind::Res,
        TrainOptions {
            epochs: Some(3),
            batch_size: Some(64),
            ..Default::default()
        },
    );
    let data = prepare(sets.clone(), &config);
    let train_at = |precision: Precision, name: &str| {
        let run = RunDir::new(tmp.path().join(name));
        run.prepare().unwrap();
        let compute = Compute::cpu_engine().at(precision);
        Classification::train(&config, &data, &run, &Launch::on(compute)).unwrap()
    };
    let fp32 = train_at(Precision::Fp32, "fp32");
    let bf16 = train_at(Precision::Bf16, "bf16");
    for (a, b) in fp32.iter().zip(&bf16) {
        let relative = (a.train_loss - b.train_loss).abs() / a.train_loss;
        assert!(
            relative < 0.02,
            "epoch {}: train loss fp32 {} bf16 {} ({relative})",
            a.epoch,
            a.train_loss,
            b.train_loss
        );
    }
    let (a, b) = (fp32.last().unwrap(), bf16.last().unwrap());
    assert!(
        (a.val.accuracy - b.val.accuracy).abs() <= 0.1,
        "last epoch: val accuracy fp32 {} bf16 {}",
        a.val.accuracy,
        b.val.accuracy
    );
    assert_ne!(
        fp32[0].train_loss, bf16[0].train_loss,
        "bf16 computed something else"
    );
}
