//! Run folders written before the tasks shared one configuration, epoch record and metrics
//! envelope still read, and read back to the same bytes: `tests/fixtures/old_runs/` holds the
//! `config.json`, `metrics.json` and `metrics.jsonl` of a `fashion` run (`base`, 1 epoch,
//! `--limit 6000`) and a `facade` run (`unet`, 1 epoch, `--limit 64`) written by convlab at
//! commit 9db3943, and two `config.json` files in the older layout without `classes`,
//! `test_fraction`, `class_weighting` or `patience`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use convlab::data::facade;
use convlab::data::fashion_mnist::CLASS_NAMES;
use convlab::run::config::{AnyConfig, ClassWeighting, ClassificationConfig, SegmentationConfig};
use convlab::run::records::{ClassificationEpoch, SegmentationEpoch};
use convlab::run::results::{ClassificationMetrics, SegmentationMetrics};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/old_runs")
        .join(path)
}

fn text(path: &str) -> String {
    std::fs::read_to_string(fixture(path)).unwrap()
}

/// `path` read as `T` and written again as the run folder writes it (pretty JSON).
fn pretty_again<T: Serialize + DeserializeOwned>(path: &str) -> String {
    let value: T = serde_json::from_str(&text(path)).unwrap();
    serde_json::to_string_pretty(&value).unwrap()
}

/// Each line of the log at `path` read as `T` and written again as training writes it.
fn log_again<T: Serialize + DeserializeOwned>(path: &str) -> String {
    text(path)
        .lines()
        .map(|line| {
            let record: T = serde_json::from_str(line).unwrap();
            serde_json::to_string(&record).unwrap() + "\n"
        })
        .collect()
}

#[test]
fn a_classification_run_folder_reads_and_writes_back_byte_for_byte() {
    let config = "fashion-base/config.json";
    assert_eq!(pretty_again::<ClassificationConfig>(config), text(config));
    assert!(matches!(
        AnyConfig::read(&fixture(config)).unwrap(),
        AnyConfig::Classification(_)
    ));
    let metrics = "fashion-base/metrics.json";
    assert_eq!(
        pretty_again::<ClassificationMetrics>(metrics),
        text(metrics)
    );
    let log = "fashion-base/metrics.jsonl";
    assert_eq!(log_again::<ClassificationEpoch>(log), text(log));
}

#[test]
fn a_segmentation_run_folder_reads_and_writes_back_byte_for_byte() {
    let config = "facade-unet/config.json";
    assert_eq!(pretty_again::<SegmentationConfig>(config), text(config));
    assert!(matches!(
        AnyConfig::read(&fixture(config)).unwrap(),
        AnyConfig::Segmentation(_)
    ));
    let metrics = "facade-unet/metrics.json";
    assert_eq!(pretty_again::<SegmentationMetrics>(metrics), text(metrics));
    let log = "facade-unet/metrics.jsonl";
    assert_eq!(log_again::<SegmentationEpoch>(log), text(log));
}

#[test]
fn the_epoch_records_keep_their_scores_by_their_old_names() {
    let line = text("fashion-base/metrics.jsonl");
    let first: ClassificationEpoch = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let raw: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(first.val.accuracy, raw["val_accuracy"].as_f64().unwrap());
    assert_eq!(
        first.train.accuracy,
        raw["train_accuracy"].as_f64().unwrap()
    );
    let line = text("facade-unet/metrics.jsonl");
    let first: SegmentationEpoch = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let raw: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(first.val.map, raw["val_map"].as_f64().unwrap());
    assert_eq!(first.val.miou, raw["val_miou"].as_f64().unwrap());
    assert_eq!(
        first.train.pixel_accuracy,
        raw["train_pixel_accuracy"].as_f64().unwrap()
    );
}

#[test]
fn configurations_from_before_classes_were_listed_take_the_presets() {
    let AnyConfig::Classification(fashion) =
        AnyConfig::read(&fixture("older/fashion-config.json")).unwrap()
    else {
        panic!("a fashion run is a classification");
    };
    assert_eq!(fashion.classes, CLASS_NAMES.map(String::from).to_vec());
    assert_eq!(fashion.test_fraction, 0.0);
    assert_eq!(fashion.params.patience(), None);
    let AnyConfig::Segmentation(facade_run) =
        AnyConfig::read(&fixture("older/facade-config.json")).unwrap()
    else {
        panic!("a facade run is a segmentation");
    };
    assert_eq!(facade_run.classes, facade::classes());
    assert_eq!(facade_run.settings.class_weighting, ClassWeighting::None);
    assert_eq!(facade_run.test_fraction, 0.0);
}
