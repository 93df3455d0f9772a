//! Every file convlab reads, made bad in each usual way, gets a one-line error naming the file
//! and the problem, exit status 2, no panic, and nothing written. (Flag values are covered in
//! `cli.rs`.)

mod common;

use std::path::Path;
use std::process::Output;

use common::synthetic;
use common::{assert_bad_input, convlab, stderr};
use convlab::data::facade::SIDE;
use convlab::data::facade::encode_label_map;
use convlab::data::idx::{IdxImages, encode_images, encode_labels};
use convlab::models::ClassifierKind;

const RANDOM_BYTES: &[u8] = &[
    0x13, 0x9f, 0x00, 0x77, 0xfe, 0x42, 0x08, 0xaa, 0x5c, 0x01, 0xd3, 0x66, 0x90, 0x2b, 0xee, 0x17,
    0x3a, 0xc4, 0x71, 0x0d,
];

/// How to spoil one file of a good data folder.
enum Spoil {
    Write(Vec<u8>),
    Directory,
    Remove,
}

fn spoil(path: &Path, how: &Spoil) {
    if path.is_dir() {
        std::fs::remove_dir_all(path).unwrap();
    } else if path.exists() {
        std::fs::remove_file(path).unwrap();
    }
    match how {
        Spoil::Write(bytes) => std::fs::write(path, bytes).unwrap(),
        Spoil::Directory => std::fs::create_dir(path).unwrap(),
        Spoil::Remove => {}
    }
}

/// Exit status 2 and a first line `error: ...` naming one of `files` (by file name) and saying
/// `fragment`; no panic. Prints the line, so `--nocapture` lists every case with its error.
fn assert_names_the_file(out: &Output, case: &str, files: &[&str], fragment: &str) {
    let err = stderr(out);
    let first = err.lines().next().unwrap_or_default();
    assert_eq!(out.status.code(), Some(2), "{case}: {err}");
    assert!(first.starts_with("error: "), "{case}: {err}");
    let named = files.iter().any(|f| {
        let name = Path::new(f).file_name().unwrap().to_str().unwrap();
        first.contains(name)
    });
    assert!(named, "{case}: names one of {files:?}: {err}");
    assert!(first.contains(fragment), "{case}: says '{fragment}': {err}");
    assert!(!err.contains("panicked"), "{case}: {err}");
    eprintln!("{case:<44} {first}");
}

fn assert_refused_without_output(root: &Path, args: &[&str], expected: &str, case: &str) {
    let out = convlab(args, root);
    assert_bad_input(&out, expected);
    let first = stderr(&out).lines().next().unwrap_or_default().to_string();
    assert!(!root.join("run").exists(), "{case}: output written");
    eprintln!("{case:<44} {first}");
}

#[test]
fn bad_fashion_mnist_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let images = "train-images-idx3-ubyte";
    let labels = "train-labels-idx1-ubyte";
    let wrong_size = IdxImages {
        count: 100,
        rows: 32,
        cols: 32,
        pixels: vec![0; 100 * 32 * 32],
    };
    let mut good_labels = encode_labels(&[3; 100]);
    let bad_label = {
        good_labels[8 + 5] = 12;
        good_labels.clone()
    };
    let good_images = {
        synthetic::write_fashion_dir(&root.join("d"), 100, 20).unwrap();
        std::fs::read(root.join("d").join(images)).unwrap()
    };
    let cases: Vec<(&str, &str, Spoil, &str)> = vec![
        (
            "empty images file",
            images,
            Spoil::Write(vec![]),
            "file is empty",
        ),
        (
            "truncated images file",
            images,
            Spoil::Write(good_images[..good_images.len() / 2].to_vec()),
            "header announces",
        ),
        (
            "random bytes",
            images,
            Spoil::Write(RANDOM_BYTES.to_vec()),
            "magic",
        ),
        (
            "directory instead of the file",
            images,
            Spoil::Directory,
            "directory",
        ),
        ("missing labels file", labels, Spoil::Remove, "not found"),
        (
            "images of 32x32 pixels",
            images,
            Spoil::Write(encode_images(&wrong_size)),
            "28x28",
        ),
        (
            "label out of range",
            labels,
            Spoil::Write(bad_label),
            "label 12",
        ),
    ];
    for (case, file, how, fragment) in cases {
        let data = root.join("d");
        std::fs::remove_dir_all(&data).unwrap();
        synthetic::write_fashion_dir(&data, 100, 20).unwrap();
        spoil(&data.join(file), &how);
        let out = convlab(
            &[
                "fashion",
                "train",
                "--data",
                "d",
                "--skip-checksums",
                "--out",
                "run",
            ],
            root,
        );
        assert_names_the_file(&out, case, &[file], fragment);
        assert!(!root.join("run").exists(), "{case}: output written");
    }
}

fn facade_folder(root: &Path) {
    let data = root.join("f");
    if data.exists() {
        std::fs::remove_dir_all(&data).unwrap();
    }
    synthetic::write_facade_split(&data.join("train"), 4, 1).unwrap();
    synthetic::write_facade_split(&data.join("test_dev"), 2, 2).unwrap();
}

fn png(width: u32, height: u32, color: image::ColorType) -> Vec<u8> {
    let mut bytes = Vec::new();
    let pixels = vec![0u8; (width * height) as usize * color.bytes_per_pixel() as usize];
    image::write_buffer_with_format(
        &mut std::io::Cursor::new(&mut bytes),
        &pixels,
        width,
        height,
        color,
        image::ImageFormat::Png,
    )
    .unwrap();
    bytes
}

#[test]
fn bad_mini_facade_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut label_seven = vec![1u8; SIDE * SIDE];
    label_seven[SIDE * 3 + 5] = 7;
    let cases: Vec<(&str, &str, Spoil, &str)> = vec![
        (
            "photo without its label map",
            "train/eecs442_0001.png",
            Spoil::Remove,
            "has no label map",
        ),
        (
            "label map without its photo",
            "train/eecs442_0002.jpg",
            Spoil::Remove,
            "has no photo",
        ),
        (
            "label map of another size",
            "train/eecs442_0001.png",
            Spoil::Write(encode_label_map(128, 128, &vec![1; 128 * 128])),
            "128x128",
        ),
        (
            "label value above 4",
            "train/eecs442_0001.png",
            Spoil::Write(encode_label_map(SIDE as u32, SIDE as u32, &label_seven)),
            "label value 7",
        ),
        (
            "RGB label map (colours, not indices)",
            "train/eecs442_0001.png",
            Spoil::Write(png(SIDE as u32, SIDE as u32, image::ColorType::Rgb8)),
            "index",
        ),
        (
            "photo of random bytes",
            "test_dev/eecs442_0000.jpg",
            Spoil::Write(RANDOM_BYTES.to_vec()),
            "eecs442_0000.jpg",
        ),
        (
            "empty label map",
            "train/eecs442_0000.png",
            Spoil::Write(vec![]),
            "eecs442_0000.png",
        ),
        (
            "photo of another size",
            "train/eecs442_0003.jpg",
            Spoil::Write(png(200, 256, image::ColorType::Rgb8)),
            "200x256",
        ),
    ];
    for (case, file, how, fragment) in cases {
        facade_folder(root);
        spoil(&root.join("f").join(file), &how);
        let name = Path::new(file).file_name().unwrap().to_str().unwrap();
        let out = convlab(&["facade", "train", "--data", "f", "--out", "run"], root);
        // A pair's error may name either of its two files.
        let pair = name.replace(".png", ".jpg");
        assert_names_the_file(&out, case, &[name, &pair], fragment);
        assert!(!root.join("run").exists(), "{case}: output written");
    }
}

/// A small evaluated run to spoil the files of.
fn trained_run(root: &Path) {
    synthetic::write_fashion_dir(&root.join("d"), 300, 50).unwrap();
    let out = convlab(
        &[
            "fashion",
            "train",
            "--data",
            "d",
            "--skip-checksums",
            "--epochs",
            "1",
            "--out",
            "good",
        ],
        root,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

fn copy_run(root: &Path) {
    let run = root.join("run");
    if run.exists() {
        std::fs::remove_dir_all(&run).unwrap();
    }
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    for f in [
        "config.json",
        "metrics.jsonl",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
    ] {
        std::fs::copy(root.join("good").join(f), run.join(f)).unwrap();
    }
}

#[test]
fn bad_checkpoints_and_configs_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    trained_run(root);
    let ckpt = std::fs::read(root.join("good/checkpoints/best.ckpt")).unwrap();
    let mut newer = ckpt.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("good/config.json")).unwrap()).unwrap();
    let mut other_model = config.clone();
    other_model["model"] = "wide".into();
    other_model["architecture"] = serde_json::to_value(ClassifierKind::Wide.spec()).unwrap();
    let best = "checkpoints/best.ckpt";
    let cases: Vec<(&str, &str, Spoil, &str)> = vec![
        (
            "empty checkpoint",
            best,
            Spoil::Write(vec![]),
            "file is empty",
        ),
        (
            "random-bytes checkpoint",
            best,
            Spoil::Write(RANDOM_BYTES.to_vec()),
            "not a convlab checkpoint",
        ),
        (
            "truncated checkpoint",
            best,
            Spoil::Write(ckpt[..ckpt.len() / 2].to_vec()),
            "truncated",
        ),
        (
            "checkpoint of a newer format",
            best,
            Spoil::Write(newer),
            "format 99 is not supported",
        ),
        (
            "directory instead of the checkpoint",
            best,
            Spoil::Directory,
            "directory",
        ),
        (
            "checkpoint of another model",
            "config.json",
            Spoil::Write(serde_json::to_vec(&other_model).unwrap()),
            "checkpoint is of model 'base', not 'wide'",
        ),
        (
            "empty config.json",
            "config.json",
            Spoil::Write(vec![]),
            "invalid",
        ),
        (
            "random-bytes config.json",
            "config.json",
            Spoil::Write(RANDOM_BYTES.to_vec()),
            "invalid",
        ),
        (
            "directory instead of config.json",
            "config.json",
            Spoil::Directory,
            "not found",
        ),
    ];
    for (case, file, how, fragment) in cases {
        copy_run(root);
        spoil(&root.join("run").join(file), &how);
        let before = std::fs::read_dir(root.join("run")).unwrap().count();
        let out = convlab(
            &[
                "fashion",
                "eval",
                "--run",
                "run",
                "--data",
                "d",
                "--skip-checksums",
            ],
            root,
        );
        // A checkpoint of another model is named by the checkpoint, not the config.
        let named = if case.contains("another model") {
            best
        } else {
            file
        };
        assert_names_the_file(&out, case, &[named], fragment);
        assert!(
            !root.join("run/metrics.json").exists(),
            "{case}: output written"
        );
        assert_eq!(
            std::fs::read_dir(root.join("run")).unwrap().count(),
            before,
            "{case}"
        );
    }
    // --resume with a spoiled last checkpoint is refused before training.
    copy_run(root);
    spoil(
        &root.join("run/checkpoints/last.ckpt"),
        &Spoil::Write(RANDOM_BYTES.to_vec()),
    );
    assert_refused_without_output_in(root);
}

fn assert_refused_without_output_in(root: &Path) {
    let out = convlab(
        &[
            "fashion",
            "train",
            "--data",
            "d",
            "--skip-checksums",
            "--epochs",
            "2",
            "--out",
            "run",
            "--resume",
        ],
        root,
    );
    assert_bad_input(
        &out,
        &format!("{}", Path::new("run/checkpoints/last.ckpt").display()),
    );
    assert_eq!(
        std::fs::read_to_string(root.join("run/metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        1,
        "the log is untouched"
    );
}

#[test]
fn an_output_folder_that_cannot_be_written_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    synthetic::write_fashion_dir(&root.join("d"), 100, 20).unwrap();
    std::fs::write(root.join("a-file"), b"in the way").unwrap();
    assert_refused_without_output(
        root,
        &[
            "fashion",
            "train",
            "--data",
            "d",
            "--skip-checksums",
            "--out",
            "a-file/run",
        ],
        "a-file/run: output folder is not writable",
        "output folder under a file",
    );
}

/// `--distributed mpi` in a build without the `mpi` feature says how to build one (the MPI
/// build's own refusals are in `tests/mpi.rs`).
#[cfg(not(feature = "mpi"))]
#[test]
fn distributed_training_without_the_mpi_feature_names_the_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let out = convlab(
        &["fashion", "train", "--distributed", "mpi", "--out", "run"],
        tmp.path(),
    );
    assert_bad_input(
        &out,
        "--distributed mpi: this convlab was built without MPI",
    );
    assert!(stderr(&out).contains("--features mpi"), "{}", stderr(&out));
    assert!(!tmp.path().join("run").exists());
}

#[test]
fn recipe_options_are_checked_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for (args, says, case) in [
        (
            ["fashion", "train", "--random-erasing", "0", "--out", "run"],
            "--random-erasing: must be a probability above 0 and at most 1, got 0",
            "random erasing of probability 0",
        ),
        (
            [
                "fashion",
                "train",
                "--random-erasing",
                "1.5",
                "--out",
                "run",
            ],
            "--random-erasing: must be a probability above 0 and at most 1, got 1.5",
            "random erasing of probability 1.5",
        ),
        (
            ["fashion", "train", "--budget", "0", "--out", "run"],
            "--budget: must be a positive number of minutes, got 0",
            "a budget of 0 minutes",
        ),
        (
            ["facade", "train", "--random-erasing", "0.5", "--out", "run"],
            "--random-erasing: erases classifiers' training images only",
            "random erasing for a segmenter",
        ),
        (
            ["fashion", "train", "--ema", "1", "--out", "run"],
            "--ema: must be at least 0 (off) and below 1, got 1",
            "an average that never moves",
        ),
        (
            [
                "fashion",
                "train",
                "--label-smoothing",
                "-0.1",
                "--out",
                "run",
            ],
            "--label-smoothing: must be at least 0 (off) and below 1, got -0.1",
            "negative label smoothing",
        ),
        (
            [
                "facade",
                "train",
                "--label-smoothing",
                "0.1",
                "--out",
                "run",
            ],
            "--label-smoothing: smooths classifiers' labels only",
            "label smoothing for a segmenter",
        ),
    ] {
        assert_refused_without_output(root, &args, says, case);
    }
}
