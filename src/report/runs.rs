//! Reading finished run folders back for a report: their configuration, per-epoch log, final
//! metrics and the figures they drew. Nothing is recomputed.

use std::path::{Path, PathBuf};

use super::ReportError;
use crate::engine::{Precision, Tta};
use crate::models::{LayerSummary, ModelKind};
use crate::run::RunDir;
use crate::run::config::{AnyConfig, ClassificationConfig, HyperParams, SegmentationConfig};
use crate::run::json::{read_json, read_log};
use crate::run::records::{ClassificationEpoch, SegmentationEpoch};
use crate::run::results::{ClassExamples, ClassificationMetrics, SegmentationMetrics};

/// A finished run of either task.
pub struct LoadedRun {
    pub dir: RunDir,
    /// The run folder's own name, e.g. `own` for `runs/own`.
    pub name: String,
    pub task: TaskRun,
    /// The headline figure on test and validation of each other evaluation that was run
    /// (`eval --tta V`, `eval --precision P`), as the command that wrote it.
    pub other_evaluations: Vec<OtherEvaluation>,
}

/// The headline figure of one `eval` beside the plain one (`metrics_tta_flip.json`, ...).
pub struct OtherEvaluation {
    /// Its options, e.g. `--tta flip-shift --precision bf16`.
    pub options: String,
    pub test: f64,
    pub val: f64,
}

/// The evaluations `eval --tta` and `eval --precision` wrote beside `metrics.json`, in the order
/// of their options.
fn other_evaluations(dir: &RunDir, task: &TaskRun) -> Result<Vec<OtherEvaluation>, ReportError> {
    let precisions = std::iter::once(None).chain(Precision::ALL.map(Some));
    let mut found = Vec::new();
    for precision in precisions {
        for tta in Tta::ALL {
            let path = dir.metrics_with(tta, precision);
            if (tta.is_none() && precision.is_none()) || !path.is_file() {
                continue;
            }
            let (test, val) = match task {
                TaskRun::Classification { .. } => {
                    let m: ClassificationMetrics = read_json(&path)?;
                    (m.test.accuracy, m.val.accuracy)
                }
                TaskRun::Segmentation { .. } => {
                    let m: SegmentationMetrics = read_json(&path)?;
                    (m.test.map, m.val.map)
                }
            };
            let tta = (!tta.is_none()).then(|| format!("--tta {}", tta.name()));
            let precision = precision.map(|p| format!("--precision {}", p.name()));
            let options = tta
                .into_iter()
                .chain(precision)
                .collect::<Vec<_>>()
                .join(" ");
            found.push(OtherEvaluation { options, test, val });
        }
    }
    Ok(found)
}

pub enum TaskRun {
    Classification {
        config: ClassificationConfig,
        history: Vec<ClassificationEpoch>,
        metrics: ClassificationMetrics,
        /// `None` for runs evaluated before the per-class strips existed.
        examples: Option<Vec<ClassExamples>>,
    },
    Segmentation {
        config: SegmentationConfig,
        history: Vec<SegmentationEpoch>,
        metrics: SegmentationMetrics,
    },
}

impl LoadedRun {
    /// The task as `config.json` and the command line name it (`fashion`, `classify`, ...).
    pub fn task_name(&self) -> &str {
        match &self.task {
            TaskRun::Classification { config, .. } => &config.task,
            TaskRun::Segmentation { config, .. } => &config.task,
        }
    }

    /// The data set: the preset's name, or the user's folder's.
    pub fn data_title(&self) -> String {
        let folder = match &self.task {
            TaskRun::Classification { config, .. } => config.data.as_deref(),
            TaskRun::Segmentation { config, .. } => config.data.as_deref(),
        }
        .and_then(|d| d.file_name())
        .map(|n| n.to_string_lossy().into_owned());
        match (self.task_name(), folder) {
            ("fashion", _) => "Fashion-MNIST".into(),
            ("facade", _) => "Mini Facade".into(),
            (_, Some(folder)) => folder,
            (_, None) => "your data".into(),
        }
    }

    /// The name of the split the test figures come from.
    pub fn test_split(&self) -> &'static str {
        if self.task_name() == "facade" {
            "test_dev"
        } else {
            "test"
        }
    }

    pub fn load(root: &Path) -> Result<Self, ReportError> {
        let dir = RunDir::existing(root)?;
        let evaluated = |command: &str| -> Result<PathBuf, ReportError> {
            let path = dir.metrics();
            if path.is_file() {
                Ok(path)
            } else {
                Err(ReportError::NotEvaluated {
                    path,
                    command: format!("convlab {command} eval --run {}", root.display()),
                })
            }
        };
        let config = AnyConfig::read(&dir.config())?;
        let command = config.task().to_string();
        let task = match config {
            AnyConfig::Classification(config) => {
                let metrics = read_json(&evaluated(&command)?)?;
                let examples_json = dir.figures().join("examples.json");
                TaskRun::Classification {
                    config,
                    history: read_log(&dir.metrics_log())?,
                    metrics,
                    examples: if examples_json.is_file() {
                        Some(read_json(&examples_json)?)
                    } else {
                        None
                    },
                }
            }
            AnyConfig::Segmentation(config) => TaskRun::Segmentation {
                metrics: read_json(&evaluated(&command)?)?,
                config,
                history: read_log(&dir.metrics_log())?,
            },
        };
        let other_evaluations = other_evaluations(&dir, &task)?;
        let name = root
            .canonicalize()
            .unwrap_or_else(|_| root.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        Ok(LoadedRun {
            dir,
            name,
            task,
            other_evaluations,
        })
    }

    pub fn is_classification(&self) -> bool {
        matches!(self.task, TaskRun::Classification { .. })
    }

    pub fn model(&self) -> &str {
        match &self.task {
            TaskRun::Classification { config, .. } => config.model.name(),
            TaskRun::Segmentation { config, .. } => config.model.name(),
        }
    }

    pub fn params(&self) -> &HyperParams {
        match &self.task {
            TaskRun::Classification { config, .. } => &config.params,
            TaskRun::Segmentation { config, .. } => &config.params,
        }
    }

    pub fn architecture(&self) -> Result<(Vec<LayerSummary>, usize), ReportError> {
        let spec = match &self.task {
            TaskRun::Classification { config, .. } => &config.architecture,
            TaskRun::Segmentation { config, .. } => &config.architecture,
        };
        let rows = spec.summary().map_err(|e| ReportError::BadRun {
            path: self.dir.config(),
            reason: e.to_string(),
        })?;
        Ok((rows, spec.num_params()))
    }

    /// Epochs trained and the seconds they took, from `metrics.jsonl`.
    pub fn training_time(&self) -> (usize, f64) {
        match &self.task {
            TaskRun::Classification { history, .. } => (
                history.len(),
                history.iter().map(|r| r.seconds).sum::<f64>(),
            ),
            TaskRun::Segmentation { history, .. } => (
                history.len(),
                history.iter().map(|r| r.seconds).sum::<f64>(),
            ),
        }
    }

    /// The headline test figure: accuracy or mAP.
    pub fn headline(&self) -> (&'static str, f64) {
        match &self.task {
            TaskRun::Classification { metrics, .. } => ("test accuracy", metrics.test.accuracy),
            TaskRun::Segmentation { metrics, .. } => ("test mAP", metrics.test.map),
        }
    }
}
