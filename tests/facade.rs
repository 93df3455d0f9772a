//! Segmentation end to end on small synthetic data: training lowers the loss, evaluation writes
//! metrics.json and figures, and `predict` handles odd photos.

mod common;

use common::synthetic;
use common::{assert_bad_input, convlab};
use convlab::data::facade::SIDE;
use convlab::data::label_map;
use std::path::Path;

/// Mini Facade's layout with synthetic photos: 10 to train on, 2 to test on.
fn synthetic_facade(root: &Path) {
    synthetic::write_facade_split(&root.join("data/train"), 10, 1).unwrap();
    synthetic::write_facade_split(&root.join("data/test_dev"), 2, 2).unwrap();
}

/// `facade train --model unet` on [`synthetic_facade`]'s data into `out`, with `extra`.
fn train_unet(root: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "facade", "train", "--model", "unet", "--data", "data", "--out", out,
    ];
    args.extend(extra);
    convlab(&args, root)
}

/// The pixels a split's confusion matrix in `metrics.json` counts.
fn counted_pixels(metrics: &serde_json::Value, split: &str) -> u64 {
    metrics[split]["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum()
}

#[test]
fn fcn_trains_evaluates_and_predicts_on_synthetic_facades() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    synthetic_facade(root);
    let out = convlab(
        &[
            "facade",
            "train",
            "--data",
            "data",
            "--epochs",
            "3",
            "--batch-size",
            "3",
            "--lr",
            "0.01",
            "--out",
            "run",
        ],
        root,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let log = std::fs::read_to_string(root.join("run/metrics.jsonl")).unwrap();
    let losses: Vec<f64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(losses.len(), 3);
    assert!(losses[2] < losses[0], "loss must fall: {losses:?}");

    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("run/metrics.json")).unwrap()).unwrap();
    for split in ["val", "test"] {
        let m = &metrics[split];
        assert_eq!(m["ap"].as_array().unwrap().len(), 5, "{split}");
        assert_eq!(m["iou"].as_array().unwrap().len(), 5);
        assert!(m["map"].is_number() && m["miou"].is_number() && m["pixel_accuracy"].is_number());
        assert_eq!(m["confusion"].as_array().unwrap().len(), 5);
    }
    assert_eq!(counted_pixels(&metrics, "test"), 2 * (SIDE * SIDE) as u64);
    for figure in ["curves", "ap", "predictions", "confusion", "legend"] {
        assert!(
            image::open(root.join(format!("run/figures/{figure}.png"))).is_ok(),
            "{figure}"
        );
    }

    // A non-square RGBA PNG and a grey JPEG.
    image::RgbaImage::from_pixel(300, 170, image::Rgba([200, 100, 50, 128]))
        .save(root.join("wide.png"))
        .unwrap();
    image::GrayImage::from_pixel(90, 200, image::Luma([120]))
        .save(root.join("grey.jpg"))
        .unwrap();
    let out = convlab(
        &[
            "facade",
            "predict",
            "--run",
            "run",
            "wide.png",
            "grey.jpg",
            "--out",
            "pred",
            "--save-probs",
        ],
        root,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stem in ["wide", "grey"] {
        let mask_path = root.join(format!("pred/{stem}_mask.png"));
        let mask =
            label_map::decode_label_map(&mask_path, &std::fs::read(&mask_path).unwrap()).unwrap();
        assert_eq!((mask.width, mask.height), (SIDE as u32, SIDE as u32));
        assert!(mask.indices.iter().all(|&v| v < 5));
        let color = image::open(root.join(format!("pred/{stem}_color.png"))).unwrap();
        assert_eq!((color.width(), color.height()), (SIDE as u32, SIDE as u32));
        assert!(image::open(root.join(format!("pred/{stem}_overlay.png"))).is_ok());
        let npy = std::fs::read(root.join(format!("pred/{stem}_probs.npy"))).unwrap();
        let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
        assert_eq!(npy.len(), 10 + header_len + 4 * 5 * SIDE * SIDE);
        // Probabilities of each pixel sum to one.
        let probs: Vec<f32> = npy[10 + header_len..]
            .chunks(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let plane = SIDE * SIDE;
        let sum: f32 = (0..5).map(|c| probs[c * plane]).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
    }

    // A photo that is not an image is refused by name, before any output.
    std::fs::write(root.join("bad.jpg"), b"nope").unwrap();
    let out = convlab(
        &[
            "facade", "predict", "--run", "run", "bad.jpg", "--out", "pred2",
        ],
        root,
    );
    assert_bad_input(&out, "bad.jpg: cannot decode image");
    assert!(!root.join("pred2").exists());
}

#[test]
fn missing_facade_data_says_what_to_put_where() {
    let tmp = tempfile::tempdir().unwrap();
    let out = convlab(&["facade", "train", "--out", "run"], tmp.path());
    assert_bad_input(&out, "mini_facade: data set not found");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no public download"), "{stderr}");
}

/// `--class-weighting` replaces the recipe's weighting: the loss's weights are the training
/// pixels' median frequency over each class's (here the square of the recipe's square root),
/// config.json records it, a resume may not change it, and a classifier refuses it.
#[test]
fn class_weighting_is_chosen_recorded_and_kept_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    synthetic_facade(root);
    let train = |out: &str, extra: &[&str]| train_unet(root, out, extra);
    let weights_said = |out: &std::process::Output| -> Vec<f64> {
        let stderr = common::stderr(out);
        let line = stderr
            .lines()
            .find_map(|l| l.strip_prefix("class weights: "))
            .unwrap_or_else(|| panic!("no class weights in: {stderr}"))
            .to_string();
        line.split(", ")
            .map(|pair| pair.rsplit(' ').next().unwrap().parse().unwrap())
            .collect()
    };
    let recipe = train("recipe", &["--epochs", "1"]);
    assert!(recipe.status.success(), "{}", common::stderr(&recipe));
    let full = train(
        "full",
        &["--epochs", "1", "--class-weighting", "median-frequency"],
    );
    assert!(full.status.success(), "{}", common::stderr(&full));
    let (square_roots, weights) = (weights_said(&recipe), weights_said(&full));
    assert_eq!(weights.len(), 5);
    for (root_weight, weight) in square_roots.iter().zip(&weights) {
        // Both printed to two decimals.
        assert!(
            (root_weight * root_weight - weight).abs() <= 0.01 * (1.0 + 2.0 * root_weight),
            "{square_roots:?} squared is not {weights:?}"
        );
    }
    let config = |run: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(root.join(run).join("config.json")).unwrap()).unwrap()
    };
    assert_eq!(config("full")["class_weighting"], "median_frequency");
    assert_eq!(config("recipe")["class_weighting"], "sqrt_median_frequency");

    let changed = train(
        "full",
        &["--resume", "--epochs", "2", "--class-weighting", "none"],
    );
    assert_bad_input(
        &changed,
        "--class-weighting: none differs from the run's config.json (median-frequency)",
    );
    let same = train(
        "full",
        &[
            "--resume",
            "--epochs",
            "2",
            "--class-weighting",
            "median-frequency",
        ],
    );
    assert!(same.status.success(), "{}", common::stderr(&same));

    let classifier = convlab(
        &[
            "fashion",
            "train",
            "--class-weighting",
            "none",
            "--out",
            "c",
        ],
        root,
    );
    assert_bad_input(
        &classifier,
        "--class-weighting: weighs a segmenter's classes only",
    );
    assert!(!root.join("c").exists());
}

/// `--crop N` trains on N x N crops (the batcher's tests check their size), tests on whole
/// photos, records the crop in config.json, keeps it on resume, and refuses sizes the network
/// cannot halve, sizes over the photos' and classifiers.
#[test]
fn crops_train_on_parts_of_photos_recorded_and_kept_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    synthetic_facade(root);
    let train = |out: &str, extra: &[&str]| train_unet(root, out, extra);
    let cropped = train("cropped", &["--epochs", "1", "--crop", "64"]);
    assert!(cropped.status.success(), "{}", common::stderr(&cropped));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("cropped/config.json")).unwrap()).unwrap();
    assert_eq!(config["augment"]["crop"], 64, "{config}");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("cropped/metrics.json")).unwrap()).unwrap();
    assert_eq!(counted_pixels(&metrics, "test"), 2 * (SIDE * SIDE) as u64);

    let changed = train("cropped", &["--resume", "--epochs", "2", "--crop", "128"]);
    assert_bad_input(
        &changed,
        "--crop: 128 differs from the run's config.json (crops of 64)",
    );
    let same = train("cropped", &["--resume", "--epochs", "2", "--crop", "64"]);
    assert!(same.status.success(), "{}", common::stderr(&same));

    let odd = train("odd", &["--epochs", "1", "--crop", "100"]);
    assert_bad_input(&odd, "--crop: must be a multiple of 32");
    let whole = train("whole", &["--epochs", "1", "--crop", "512"]);
    assert_bad_input(&whole, "--crop: must be a multiple of 32");
    assert!(!root.join("odd").exists() && !root.join("whole").exists());

    let classifier = convlab(&["fashion", "train", "--crop", "64", "--out", "c"], root);
    assert_bad_input(
        &classifier,
        "--crop: crops a segmenter's training photos only",
    );
}
