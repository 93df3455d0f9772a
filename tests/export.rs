//! `convlab export` checked against the tools users load its files with: for every model, a
//! short run is exported as ONNX and safetensors; onnxruntime must give convlab's logits on test
//! images (and, for Fashion-MNIST, its test accuracy; for Mini Facade, the probabilities of
//! `facade predict --save-probs`), the safetensors file must hold the checkpoint's tensors under
//! PyTorch's names and layouts, and the TensorBoard event file must hold `metrics.jsonl`'s
//! values. The Python side is `tests/interop/check_export.py` (onnx, onnxruntime, safetensors,
//! tensorboard, numpy; CI installs them). Real data from `$CONVLAB_DATA` or `../shared/data`
//! where present, synthetic data otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::synthetic;
use common::{assert_bad_input, convlab};
use convlab::data::facade;
use convlab::data::fashion_mnist::Checksums;
use convlab::engine::{Compute, Model, Tta};
use convlab::models::{ClassifierKind, ModelKind, SegmenterKind};
use convlab::predict::npy_f32;
use convlab::run::config::{RunConfig, TaskSettings, TrainOptions};
use convlab::run::{RunDir, checkpoint};
use convlab::tasks::{
    self, Classification, ConfigOf, DataOf, ModelOf, Segmentation, Task, evaluate_run,
};
use convlab::train::Launch;

/// Whether the Python packages are there; without them the checks are skipped, unless
/// `CONVLAB_REQUIRE_INTEROP` is set (CI), where their absence fails.
fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import numpy, onnx, onnxruntime, safetensors, tensorboard",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CONVLAB_REQUIRE_INTEROP").is_none(),
            "CONVLAB_REQUIRE_INTEROP is set but python3 lacks numpy, onnx, onnxruntime, safetensors or tensorboard"
        );
        eprintln!(
            "SKIPPED: pip install numpy onnx onnxruntime safetensors tensorboard to run the interop checks"
        );
    }
    ok
}

fn check(args: &[&Path]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/check_export.py");
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    eprint!("{said}");
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// Trains `epochs` short epochs of `model` into `dir` (on at most `limit` images).
fn short_run<T: Task>(
    task: &T,
    model: ModelOf<T>,
    data: Option<&Path>,
    dir: &Path,
    (epochs, limit): (usize, usize),
) -> (ConfigOf<T>, DataOf<T>, RunDir) {
    let options = TrainOptions {
        epochs: Some(epochs),
        batch_size: Some(4),
        limit: Some(limit),
        ..Default::default()
    };
    let params = options.check(&T::recipe(model)).unwrap();
    let sets = task.load(data, None).unwrap();
    let config = task
        .fresh_config(model, params, &options, Default::default(), &sets)
        .unwrap();
    let prepared = tasks::prepare::<T>(sets, &config).unwrap();
    let run = RunDir::new(dir);
    run.start(&config).unwrap();
    T::train(&config, &prepared, &run, &Launch::on(Compute::cpu_engine())).unwrap();
    (config, prepared, run)
}

/// Exports `run` in both formats with the binary; returns the ONNX and safetensors files.
fn export(run: &RunDir, tmp: &Path) -> (PathBuf, PathBuf) {
    let onnx = tmp.join("exported/model.onnx");
    let tensors = tmp.join("exported/model.safetensors");
    for (format, file) in [("onnx", &onnx), ("safetensors", &tensors)] {
        let out = convlab(
            &[
                "export",
                "--run",
                run.root.to_str().unwrap(),
                "--format",
                format,
                "--out",
                file.to_str().unwrap(),
            ],
            tmp,
        );
        assert!(out.status.success(), "{}", common::stderr(&out));
        assert!(file.is_file());
    }
    (onnx, tensors)
}

/// The run's model on the CPU engine, and its parameters written as `layers.<i>.<name>.npy`.
fn model_and_parameters<S: TaskSettings>(config: &RunConfig<S>, run: &RunDir, dir: &Path) -> Model {
    let (model, _, _) = checkpoint::load_final(
        run,
        config.model_name(),
        &config.architecture,
        &Compute::cpu_engine(),
    )
    .unwrap();
    let Model::Cpu(net) = &model else {
        unreachable!()
    };
    std::fs::create_dir_all(dir).unwrap();
    for (name, shape, values) in net.tensors() {
        write(&dir.join(format!("{name}.npy")), &npy_f32(values, &shape));
    }
    model
}

/// Images `[n, c, h, w]` as pixels / 255 (ONNX's input) and as convlab normalises them.
fn inputs(
    pixels: &[u8],
    normalization: convlab::data::Normalization,
    [channels, height, width]: [usize; 3],
) -> (Vec<f32>, Vec<f32>) {
    let mut normalized = Vec::with_capacity(pixels.len());
    normalization.extend(&mut normalized, pixels, channels, height * width);
    (
        pixels.iter().map(|&b| b as f32 / 255.0).collect(),
        normalized,
    )
}

fn classifier_round_trip(kind: ClassifierKind) {
    if !python_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let real = common::real_data("fashion-mnist", "export", "synthetic data stands in");
    let (data, limit) = if let Some(real) = real {
        (real, 512)
    } else {
        let dir = tmp.path().join("synth");
        synthetic::write_fashion_dir(&dir, 300, 100).unwrap();
        (dir, 256)
    };
    let checksums = if data.ends_with("synth") {
        Checksums::Skip
    } else {
        Checksums::Verify
    };
    let task = Classification::fashion_mnist(checksums);
    let (config, prepared, run) = short_run(
        &task,
        kind,
        Some(&data),
        &tmp.path().join("run"),
        (2, limit),
    );
    let (onnx, tensors) = export(&run, tmp.path());
    let model = model_and_parameters(&config, &run, &tmp.path().join("expected"));

    let test = &prepared.test;
    let count = 64.min(test.len());
    let shape = [count, test.channels, test.height, test.width];
    let (plain, normalized) = inputs(
        &test.pixels[..count * test.image_len()],
        config.normalization,
        config.architecture.input,
    );
    let (logits, out_shape) = model.forward(normalized, shape);
    let images = write(&tmp.path().join("images.npy"), &npy_f32(&plain, &shape));
    let expected = write(
        &tmp.path().join("logits.npy"),
        &npy_f32(&logits, &[count, out_shape[1]]),
    );
    check(&[Path::new("onnx"), &onnx, &images, &expected]);
    check(&[
        Path::new("safetensors"),
        &tensors,
        &tmp.path().join("expected"),
        &run.config(),
    ]);
    check(&[Path::new("tensorboard"), &run.root]);
    check(&[Path::new("twin"), Path::new(kind.name()), &tensors]);

    if kind == ClassifierKind::Base {
        // The whole test set: ONNX's accuracy is convlab's.
        let metrics = evaluate_run::<Classification>(
            &config,
            &prepared,
            &run,
            &Compute::cpu_engine(),
            Tta::None,
        )
        .unwrap();
        let all = [test.len(), test.channels, test.height, test.width];
        let (plain, _) = inputs(
            &test.pixels,
            config.normalization,
            config.architecture.input,
        );
        let images = write(&tmp.path().join("test.npy"), &npy_f32(&plain, &all));
        let labels: Vec<f32> = test.labels.iter().map(|&l| l as f32).collect();
        let labels = write(
            &tmp.path().join("labels.npy"),
            &npy_f32(&labels, &[test.len()]),
        );
        let accuracy = metrics.test.accuracy.to_string();
        check(&[
            Path::new("accuracy"),
            &onnx,
            &images,
            &labels,
            Path::new(&accuracy),
        ]);
    }
}

fn segmenter_round_trip(kind: SegmenterKind) {
    if !python_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let real = common::real_data("mini_facade", "export", "synthetic data stands in");
    let data = if let Some(real) = real {
        real
    } else {
        let dir = tmp.path().join("synth");
        synthetic::write_facade_split(&dir.join("train"), 12, 1).unwrap();
        synthetic::write_facade_split(&dir.join("test_dev"), 2, 2).unwrap();
        dir
    };
    let (config, prepared, run) = short_run(
        &Segmentation::mini_facade(),
        kind,
        Some(&data),
        &tmp.path().join("run"),
        (1, 8),
    );
    let (onnx, tensors) = export(&run, tmp.path());
    let model = model_and_parameters(&config, &run, &tmp.path().join("expected"));

    let test: &convlab::data::SegmentedImages = &prepared.test;
    let count = 2;
    let [c, h, w] = config.architecture.input;
    let shape = [count, c, h, w];
    let pixels: Vec<u8> = (0..count).flat_map(|i| test.image(i).to_vec()).collect();
    let (plain, normalized) = inputs(&pixels, config.normalization, [c, h, w]);
    let (logits, out_shape) = model.forward(normalized, shape);
    let images = write(&tmp.path().join("images.npy"), &npy_f32(&plain, &shape));
    let expected = write(
        &tmp.path().join("logits.npy"),
        &npy_f32(&logits, &out_shape),
    );
    check(&[Path::new("onnx"), &onnx, &images, &expected]);
    check(&[
        Path::new("safetensors"),
        &tensors,
        &tmp.path().join("expected"),
        &run.config(),
    ]);
    check(&[Path::new("tensorboard"), &run.root]);
    check(&[Path::new("twin"), Path::new(kind.name()), &tensors]);

    // A photo through `facade predict --save-probs`, and the same photo through ONNX.
    let photo = first_photo(&data.join("test_dev"));
    let out = convlab(
        &[
            "facade",
            "predict",
            "--run",
            run.root.to_str().unwrap(),
            "--out",
            "predicted",
            "--save-probs",
            photo.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let stem = photo.file_stem().unwrap().to_string_lossy();
    let probs = tmp.path().join(format!("predicted/{stem}_probs.npy"));
    let decoded = facade::hwc_to_chw(&facade::read_photo(&photo).unwrap());
    let (plain, _) = inputs(&decoded, config.normalization, [c, h, w]);
    let one = write(
        &tmp.path().join("photo.npy"),
        &npy_f32(&plain, &[1, c, h, w]),
    );
    check(&[Path::new("probs"), &onnx, &one, &probs]);
}

fn first_photo(dir: &Path) -> PathBuf {
    let mut photos: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    photos.sort();
    // The binary runs in another folder.
    photos.remove(0).canonicalize().unwrap()
}

#[test]
fn base_exports_to_onnx_and_safetensors() {
    classifier_round_trip(ClassifierKind::Base);
}

#[test]
fn wide_exports_to_onnx_and_safetensors() {
    classifier_round_trip(ClassifierKind::Wide);
}

#[test]
fn own_exports_to_onnx_and_safetensors() {
    classifier_round_trip(ClassifierKind::Own);
}

#[test]
fn res_exports_to_onnx_and_safetensors() {
    classifier_round_trip(ClassifierKind::Res);
}

#[test]
fn wres_exports_to_onnx_and_safetensors() {
    classifier_round_trip(ClassifierKind::Wres);
}

#[test]
fn fcn_exports_to_onnx_and_safetensors() {
    segmenter_round_trip(SegmenterKind::Fcn);
}

#[test]
fn unet_exports_to_onnx_and_safetensors() {
    segmenter_round_trip(SegmenterKind::Unet);
}

#[test]
fn bad_exports_are_refused_naming_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // A run folder without a checkpoint.
    std::fs::create_dir_all(root.join("run")).unwrap();
    common::synthetic::write_fashion_dir(&root.join("synth"), 8, 4).unwrap();
    let task = Classification::fashion_mnist(Checksums::Skip);
    let sets = task.load(Some(&root.join("synth")), None).unwrap();
    let config = task
        .fresh_config(
            ClassifierKind::Base,
            TrainOptions::default()
                .check(&Classification::recipe(ClassifierKind::Base))
                .unwrap(),
            &TrainOptions::default(),
            Default::default(),
            &sets,
        )
        .unwrap();
    RunDir::new(root.join("run")).start(&config).unwrap();
    let out = convlab(&["export", "--run", "run", "--format", "onnx"], root);
    assert_bad_input(&out, "run/checkpoints/last.ckpt");
    // An unknown format.
    let out = convlab(&["export", "--run", "run", "--format", "tflite"], root);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("tflite"));
    // No run at all.
    let out = convlab(&["export", "--run", "nowhere", "--format", "onnx"], root);
    assert_bad_input(&out, "nowhere/config.json");
}

#[test]
fn an_unwritable_output_is_refused_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    synthetic::write_fashion_dir(&root.join("synth"), 100, 20).unwrap();
    let task = Classification::fashion_mnist(Checksums::Skip);
    let (_, _, run) = short_run(
        &task,
        ClassifierKind::Base,
        Some(&root.join("synth")),
        &root.join("run"),
        (1, 32),
    );
    // A file where the output's folder should be.
    std::fs::write(root.join("blocked"), b"not a folder").unwrap();
    let out = convlab(
        &[
            "export",
            "--run",
            run.root.to_str().unwrap(),
            "--format",
            "safetensors",
            "--out",
            "blocked/model.safetensors",
        ],
        root,
    );
    assert_bad_input(&out, "blocked");
}
