//! The parts of the page every run has, whatever its task: titles, the headline figures,
//! hyper-parameters, architecture, the eval command, folded tables, and the comparison of runs
//! of one task.

use super::ReportError;
use super::html::{self, Cell, Table};
use super::runs::{LoadedRun, TaskRun};

use crate::run::config::{HyperParams, SegmentationConfig};
use crate::run::records::Epoch;

pub(super) fn eval_command(run: &LoadedRun) -> String {
    format!(
        "convlab {} eval --run {}",
        run.task_name(),
        run.dir.root.display()
    )
}

pub(super) fn task_title(run: &LoadedRun) -> String {
    let kind = if run.is_classification() {
        "classification"
    } else {
        "segmentation"
    };
    format!("{} {kind}", run.data_title())
}

/// One row per run of the same task; the best headline figure is highlighted.
pub(super) fn comparison(runs: &[&LoadedRun]) -> Result<String, ReportError> {
    let classification = runs[0].is_classification();
    let mut table = if classification {
        Table::new(
            "Classification runs compared (test set)",
            &[
                "run",
                "model",
                "test accuracy",
                "best val accuracy",
                "epochs",
                "training time",
                "parameters",
            ],
        )
    } else {
        Table::new(
            format!("Segmentation runs compared ({} set)", runs[0].test_split()),
            &[
                "run",
                "model",
                "test mAP",
                "test mIoU",
                "best val mAP",
                "epochs",
                "training time",
                "parameters",
            ],
        )
    };
    let mut best = (f64::NEG_INFINITY, 0);
    for (i, run) in runs.iter().enumerate() {
        let (epochs, seconds) = run.training_time();
        let (_, params) = run.architecture()?;
        let mut cells = vec![Cell::text(&run.name), Cell::text(run.model())];
        match &run.task {
            TaskRun::Classification {
                metrics, history, ..
            } => {
                cells.push(Cell::percent(metrics.test.accuracy));
                cells.push(Cell::percent(
                    history
                        .iter()
                        .map(|r| r.val.accuracy)
                        .fold(f64::NAN, f64::max),
                ));
            }
            TaskRun::Segmentation {
                metrics, history, ..
            } => {
                cells.push(Cell::num(metrics.test.map, 3));
                cells.push(Cell::num(metrics.test.miou, 3));
                cells.push(Cell::num(
                    history.iter().map(|r| r.val.map).fold(f64::NAN, f64::max),
                    3,
                ));
            }
        }
        cells.push(Cell::Number(epochs.to_string()));
        cells.push(Cell::Number(html::duration(seconds)));
        cells.push(Cell::Number(html::count(params)));
        table.push(cells);
        let (_, value) = run.headline();
        if value > best.0 {
            best = (value, i);
        }
    }
    if best.0.is_finite() {
        table.rows[best.1].highlight = true;
        if let Cell::Text(name) = &mut table.rows[best.1].cells[0] {
            name.push_str(" (best)");
        }
    }
    Ok(format!(
        "<section class=\"compare\"><h2>Comparison: {}</h2>\n{}</section>\n",
        html::escape(&runs[0].data_title()),
        table.render()
    ))
}

pub(super) fn headline(run: &LoadedRun) -> Result<String, ReportError> {
    let (epochs, seconds) = run.training_time();
    let (_, params) = run.architecture()?;
    let results = match &run.task {
        TaskRun::Classification {
            metrics, history, ..
        } => format!(
            "Test accuracy <strong>{:.2}%</strong> · validation {:.2}% (checkpoint of epoch {}{})",
            100.0 * metrics.test.accuracy,
            100.0 * metrics.val.accuracy,
            metrics.epoch,
            best_note(&metrics.checkpoint, history.len()),
        ),
        TaskRun::Segmentation {
            metrics, history, ..
        } => format!(
            "Test mAP <strong>{:.3}</strong> · mIoU {:.3} · pixel accuracy {:.2}% · validation \
             mAP {:.3} (checkpoint of epoch {}{})",
            metrics.test.map,
            metrics.test.miou,
            100.0 * metrics.test.pixel_accuracy,
            metrics.val.map,
            metrics.epoch,
            best_note(&metrics.checkpoint, history.len()),
        ),
    };
    let others: String = run
        .other_evaluations
        .iter()
        .map(|other| {
            let options = html::escape(&other.options);
            if run.is_classification() {
                format!(
                    "<br>With <code>eval {options}</code>: test accuracy {:.2}% · validation \
                     {:.2}%",
                    100.0 * other.test,
                    100.0 * other.val
                )
            } else {
                format!(
                    "<br>With <code>eval {options}</code>: test mAP {:.3} · validation mAP {:.3}",
                    other.test, other.val
                )
            }
        })
        .collect();
    Ok(format!(
        "<p class=\"headline\">{results}{others}<br>{epochs} epochs in {} · {} parameters</p>\n",
        html::duration(seconds),
        html::count(params)
    ))
}

fn best_note(checkpoint: &str, epochs: usize) -> String {
    if checkpoint.starts_with("best") {
        format!(", the best on validation of {epochs}")
    } else {
        String::new()
    }
}

pub(super) fn hyper_parameters(run: &LoadedRun) -> Table {
    let p: &HyperParams = run.params();
    let mut t = Table::new("Hyper-parameters", &["setting", "value"]);
    let optimiser = if p.decoupled_decay() {
        format!("AdamW, decoupled weight decay {}", p.weight_decay())
    } else {
        format!("Adam, L2 weight decay {}", p.weight_decay())
    };
    let mut rows = vec![
        ("optimiser", optimiser),
        ("learning rate", format!("{}", p.lr())),
        ("schedule", format!("{:?}", p.schedule()).to_lowercase()),
        ("epochs", p.epochs().to_string()),
        ("batch size", p.batch_size().to_string()),
        ("seed", p.seed().to_string()),
        (
            "training images",
            p.limit()
                .map_or("all of the training split".into(), |n| format!("first {n}")),
        ),
    ];
    if p.init().identity_convs {
        rows.push((
            "initialisation",
            "each convolution's first filters the identity (--identity-init)".into(),
        ));
    }
    if p.whiten() {
        rows.push((
            "first layer",
            "leading filters frozen as patch whitening (--whiten)".into(),
        ));
    }
    if let Some(decay) = p.ema() {
        rows.push((
            "weights evaluated",
            format!("moving average of the weights (EMA), decay {decay}"),
        ));
    }
    match &run.task {
        TaskRun::Classification { .. } => {
            rows.push((
                "augmentation",
                p.augment().map_or("none".into(), |a| {
                    let flip = if a.flip { " + horizontal flip" } else { "" };
                    format!("random crop (pad {}){flip}", a.pad)
                }),
            ));
            rows.push((
                "label smoothing",
                p.label_smoothing().map_or("none".into(), |s| s.to_string()),
            ));
        }
        TaskRun::Segmentation { config, .. } => {
            rows.push((
                "augmentation",
                config.settings.augment.map_or("none".into(), |a| {
                    let flip = if a.flip { "horizontal flip + " } else { "" };
                    let crop = a.crop.map_or(String::new(), |c| format!(" ({c} x {c})"));
                    format!("{flip}random zoom up to {}x and crop{crop}", a.max_scale)
                }),
            ));
            rows.push(("class weights", class_weighting(config)));
        }
    }
    for (k, v) in rows {
        t.push(vec![Cell::text(k), Cell::text(v)]);
    }
    t
}

fn class_weighting(config: &SegmentationConfig) -> String {
    use crate::run::config::ClassWeighting;
    match config.settings.class_weighting {
        ClassWeighting::None => "none".into(),
        weighting => weighting.about().into(),
    }
}

/// Long layer lists (U-Nets) fold away; short ones show open.
pub(super) fn architecture(run: &LoadedRun) -> Result<String, ReportError> {
    let (rows, params) = run.architecture()?;
    let mut t = Table::new(
        format!("Architecture ({} parameters)", html::count(params)),
        &["#", "layer", "output shape", "parameters"],
    );
    for (i, r) in rows.iter().enumerate() {
        let shape: Vec<String> = r.output_shape.iter().map(|d| d.to_string()).collect();
        t.push(vec![
            Cell::Number(i.to_string()),
            Cell::text(&r.layer),
            Cell::text(shape.join("×")),
            Cell::Number(html::count(r.params)),
        ]);
    }
    let open = if rows.len() <= 24 { " open" } else { "" };
    Ok(format!(
        "<details{open}><summary>Architecture: {} layers, {} parameters</summary>\n{}</details>\n",
        rows.len(),
        html::count(params),
        t.render()
    ))
}

pub(super) fn details(summary: &str, table: &Table) -> String {
    format!(
        "<details><summary>{}</summary>\n{}</details>\n",
        html::escape(summary),
        table.render()
    )
}

/// A task's scores as columns of the per-epoch log.
pub trait EpochColumns {
    const HEADERS: &'static [&'static str];
    fn cells(&self) -> Vec<Cell>;
}

/// The per-epoch log (`metrics.jsonl`) as a folded table: the epoch, the losses with the
/// task's scores after each, the learning rate and the time.
pub fn epoch_log<T: EpochColumns, V: EpochColumns>(history: &[Epoch<T, V>]) -> String {
    let mut headers = vec!["epoch", "train loss"];
    headers.extend(T::HEADERS);
    headers.push("val loss");
    headers.extend(V::HEADERS);
    headers.extend(["learning rate", "seconds"]);
    let mut t = Table::new("Per-epoch log (metrics.jsonl)", &headers);
    for r in history {
        let mut cells = vec![
            Cell::Number(r.epoch.to_string()),
            Cell::num(r.train_loss, 4),
        ];
        cells.extend(r.train.cells());
        cells.push(Cell::num(r.val_loss, 4));
        cells.extend(r.val.cells());
        cells.push(Cell::Number(format!("{:.2e}", r.lr)));
        cells.push(Cell::num(r.seconds, 1));
        t.push(cells);
    }
    details("Per-epoch log", &t)
}
