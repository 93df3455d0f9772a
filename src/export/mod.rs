//! `convlab export`: a run's best checkpoint in the formats other tools read: ONNX (to deploy
//! with onnxruntime and the like) and safetensors in PyTorch's `state_dict` layout (to load into
//! the twins in `bench/reference/models.py`). Either engine's runs export alike: checkpoints hold
//! the same parameters by name whichever engine wrote them.

mod onnx;
mod onnx_proto;
mod safetensors;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::engine::CpuNet;
use crate::engine::{Compute, Model};
use crate::fsutil::write_atomic;
use crate::run::config::AnyConfig;
use crate::run::json::read_json;
use crate::run::results::{ClassificationMetrics, SegmentationMetrics};
use crate::run::{RunDir, RunError, checkpoint};
use crate::tasks::TaskError;

pub use onnx::{INPUT as ONNX_INPUT, OPSET as ONNX_OPSET, OUTPUT as ONNX_OUTPUT};

/// The formats `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Onnx,
    Safetensors,
}

impl ExportFormat {
    pub const ALL: [ExportFormat; 2] = [ExportFormat::Onnx, ExportFormat::Safetensors];

    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Onnx => "onnx",
            ExportFormat::Safetensors => "safetensors",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            ExportFormat::Onnx => {
                "ONNX (opset 17): pixels in [0, 1] in, logits out, the normalisation inside"
            }
            ExportFormat::Safetensors => {
                "PyTorch's state_dict names and layouts (bench/reference/models.py loads them)"
            }
        }
    }

    /// The file name `export` writes in the run folder when `--out` is not given.
    fn default_file(self) -> &'static str {
        match self {
            ExportFormat::Onnx => "model.onnx",
            ExportFormat::Safetensors => "model.safetensors",
        }
    }
}

/// A model's parameters by layer and name, in the shapes both engines use (burn's: linear
/// weights `[in, out]`, transposed convolutions' `[in, out, k, k]`).
pub struct ModelTensors {
    by_name: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl ModelTensors {
    fn of(net: &CpuNet) -> Self {
        ModelTensors {
            by_name: net
                .tensors()
                .into_iter()
                .map(|(name, shape, values)| (name, (shape, values.to_vec())))
                .collect(),
        }
    }

    /// Tensor `name` (`weight`, `bias`, `gamma`, `beta`, `running_mean`, `running_var`) of
    /// layer `layer`: its shape and values.
    fn get(&self, layer: usize, name: &str) -> (&[usize], &[f32]) {
        let (shape, values) = &self.by_name[&format!("layers.{layer}.{name}")];
        (shape, values)
    }
}

/// `convlab export --run RUN --format F [--out FILE]`: returns the file written.
pub fn export_command(
    run_dir: &Path,
    format: ExportFormat,
    out: Option<&Path>,
) -> Result<PathBuf, TaskError> {
    let run = RunDir::existing(run_dir)?;
    let config = AnyConfig::read(&run.config())?;
    let (model, header, _) = checkpoint::load_final(
        &run,
        config.model_name(),
        config.architecture(),
        &Compute::cpu_engine(),
    )?;
    let Model::Cpu(net) = model else {
        unreachable!("the CPU engine gives a CPU-engine model")
    };
    let tensors = ModelTensors::of(&net);
    let out = out.map_or_else(|| run.root.join(format.default_file()), Path::to_path_buf);
    let mut metadata = metadata(&config, &run);
    let bytes = match format {
        ExportFormat::Onnx => onnx::model_bytes(
            config.architecture(),
            &tensors,
            config.normalization(),
            &metadata,
        ),
        ExportFormat::Safetensors => {
            metadata.push(("format".into(), "pt".into()));
            safetensors::state_dict_bytes(config.architecture(), &tensors, header.step, metadata)?
        }
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| RunError::not_writable(parent, e))?;
    }
    write_atomic(&out, &bytes).map_err(|e| RunError::not_writable(&out, e))?;
    Ok(out)
}

/// What an exported file says about itself: classes (and colours), input size, normalisation,
/// convlab's version, and the run's test metric where it has been evaluated.
fn metadata(config: &AnyConfig, run: &RunDir) -> Vec<(String, String)> {
    let normalization = config.normalization();
    let channels = config.architecture().input[0];
    let mut out = vec![
        ("class_names".into(), json(&config.class_names())),
        (
            "input_size".into(),
            json(&config.architecture().input.to_vec()),
        ),
        (
            "normalization".into(),
            format!(
                "{{\"mean\": {}, \"std\": {}, \"applied_to\": \"pixels / 255\"}}",
                json(&normalization.mean[..channels].to_vec()),
                json(&normalization.std[..channels].to_vec())
            ),
        ),
        ("convlab_version".into(), env!("CARGO_PKG_VERSION").into()),
        ("model".into(), config.model_name().into()),
        ("task".into(), config.task().into()),
    ];
    if let Some(colors) = config.class_colors() {
        out.push(("class_colors".into(), json(&colors)));
    }
    if let Some((name, value)) = test_metric(config, run) {
        out.push((name.into(), value.to_string()));
    }
    out
}

/// The run's headline test figure from `metrics.json`, when it has been evaluated.
fn test_metric(config: &AnyConfig, run: &RunDir) -> Option<(&'static str, f64)> {
    let path = run.metrics();
    match config {
        AnyConfig::Classification(_) => {
            let metrics: ClassificationMetrics = read_json(&path).ok()?;
            Some(("test_accuracy", metrics.test.accuracy))
        }
        AnyConfig::Segmentation(_) => {
            let metrics: SegmentationMetrics = read_json(&path).ok()?;
            Some(("test_map", metrics.test.map))
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain values serialise")
}
