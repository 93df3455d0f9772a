//! `convlab report`: a write-up of finished runs as one HTML page (`index.html`, its images in
//! a folder per run beside it, no network needed): architecture and hyper-parameters, curves,
//! per-class tables, filters, examples, confusion matrices, segmentation predictions, and a
//! comparison of runs of the same task. It reads what training and evaluation wrote (config,
//! metrics, figures); only predictions on extra photos (`--photos`) run a model.

pub mod html;
pub mod runs;

use std::path::{Path, PathBuf};

use html::{Cell, Table};
use runs::{LoadedRun, TaskRun};

use crate::engine::Compute;
use crate::fsutil::write_atomic;
use crate::run::RunError;
use crate::run::config::{HyperParams, SegmentationConfig};
use crate::run::records::{ClassificationEpoch, SegmentationEpoch};
use crate::run::results::{ClassExamples, ClassificationMetrics, SegmentationMetrics};
use crate::tasks::TaskError;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("{}: not found: this run has not been evaluated; run `{command}` first", path.display())]
    NotEvaluated { path: PathBuf, command: String },
    #[error("{}: unknown task '{task}' (expected \"fashion\" or \"facade\")", path.display())]
    UnknownTask { path: PathBuf, task: String },
    #[error("{}: {reason}", path.display())]
    BadRun { path: PathBuf, reason: String },
    #[error("--photos {}: {reason}", path.display())]
    Photos { path: PathBuf, reason: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ReportError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            ReportError::Run(e) => e.is_bad_input(),
            ReportError::Task(e) => e.is_bad_input(),
            ReportError::Io { .. } => false,
            _ => true,
        }
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        ReportError::Io {
            path: path.into(),
            source,
        }
    }
}

/// A written report: the page and the runs it shows.
pub struct Report {
    pub page: PathBuf,
    pub runs: Vec<LoadedRun>,
}

/// `convlab report RUN_DIR... --out DIR [--photos DIR]`.
pub fn report_command(
    run_dirs: &[PathBuf],
    out: &Path,
    photos: Option<&Path>,
    compute: &Compute,
) -> Result<Report, ReportError> {
    // Every input is read and checked before anything is written.
    let loaded: Vec<LoadedRun> = run_dirs
        .iter()
        .map(|d| LoadedRun::load(d))
        .collect::<Result<_, _>>()?;
    let photos = photos.map(list_photos).transpose()?.unwrap_or_default();
    std::fs::create_dir_all(out).map_err(|e| RunError::not_writable(out, e))?;

    let mut body = String::new();
    body.push_str(&contents(&loaded));
    for classification in [true, false] {
        let same_task: Vec<&LoadedRun> = loaded
            .iter()
            .filter(|r| r.is_classification() == classification)
            .collect();
        if same_task.len() >= 2 {
            body.push_str(&comparison(&same_task)?);
        }
    }
    for (i, run) in loaded.iter().enumerate() {
        let assets = Assets {
            page_dir: out.to_path_buf(),
            folder: format!("{}-{}", i + 1, slug(&run.name)),
        };
        body.push_str(&section(run, &assets, &photos, compute)?);
    }
    let page = out.join("index.html");
    write_atomic(&page, page_html(&body).as_bytes()).map_err(|e| ReportError::io(&page, e))?;
    Ok(Report { page, runs: loaded })
}

/// The photos in `dir` (JPEG and PNG), sorted by name.
fn list_photos(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let bad = |reason: String| ReportError::Photos {
        path: dir.into(),
        reason,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| bad(e.to_string()))?;
    let mut photos: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    photos.sort();
    if photos.is_empty() {
        return Err(bad("holds no .jpg, .jpeg or .png photos".into()));
    }
    Ok(photos)
}

fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "run".into() } else { s }
}

/// Where one run's images go: `<page_dir>/<folder>/`, referenced relative to the page.
struct Assets {
    page_dir: PathBuf,
    folder: String,
}

impl Assets {
    fn dir(&self) -> PathBuf {
        self.page_dir.join(&self.folder)
    }

    /// Copies `from` as `name` beside the page; `None` when the run has no such file.
    fn copy(&self, from: &Path, name: &str) -> Result<Option<String>, ReportError> {
        if !from.is_file() {
            return Ok(None);
        }
        let to = self.dir().join(name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ReportError::io(parent, e))?;
        }
        let bytes = std::fs::read(from).map_err(|e| ReportError::io(from, e))?;
        write_atomic(&to, &bytes).map_err(|e| ReportError::io(&to, e))?;
        Ok(Some(format!("{}/{name}", self.folder)))
    }

    /// The run's `figures/<file>` as a figure, or a note saying how to draw it.
    fn figure(
        &self,
        run: &LoadedRun,
        file: &str,
        alt: &str,
        caption: &str,
    ) -> Result<String, ReportError> {
        Ok(match self.copy(&run.dir.figures().join(file), file)? {
            Some(src) => html::figure(&src, alt, caption),
            None => html::missing(
                &format!("figures/{file}"),
                &format!(
                    "evaluate the run again (`{}`) to draw it",
                    eval_command(run)
                ),
            ),
        })
    }
}

fn eval_command(run: &LoadedRun) -> String {
    let task = if run.is_classification() {
        "fashion"
    } else {
        "facade"
    };
    format!("convlab {task} eval --run {}", run.dir.root.display())
}

fn page_html(body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>convlab report</title>\n<style>{}</style>\n</head>\n<body>\n\
         <header><h1>convlab report</h1>\n<p class=\"lede\">Trained models, their metrics and \
         the pictures that explain them. Accuracy, AP and IoU are measured on held-out data: \
         validation (10% of the training files, used to pick the checkpoint) and test (never \
         used for choices).</p></header>\n<main>\n{body}</main>\n<footer>Made by convlab {} \
         from the run folders' config.json, metrics.jsonl, metrics.json and figures.</footer>\n\
         </body>\n</html>\n",
        html::STYLE,
        env!("CARGO_PKG_VERSION")
    )
}

fn task_title(run: &LoadedRun) -> &'static str {
    if run.is_classification() {
        "Fashion-MNIST classification"
    } else {
        "Mini Facade segmentation"
    }
}

fn contents(runs: &[LoadedRun]) -> String {
    let mut out = String::from("<nav aria-label=\"Runs\"><ul>");
    for (i, run) in runs.iter().enumerate() {
        let (what, value) = run.headline();
        let value = if run.is_classification() {
            format!("{:.2}%", 100.0 * value)
        } else {
            format!("{value:.3}")
        };
        out.push_str(&format!(
            "<li><a href=\"#{}-{}\">{}</a>: {} with <code>{}</code>, {what} {value}</li>",
            i + 1,
            slug(&run.name),
            html::escape(&run.name),
            task_title(run),
            html::escape(run.model()),
        ));
    }
    out.push_str("</ul></nav>\n");
    out
}

/// One row per run of the same task; the best headline figure is highlighted.
fn comparison(runs: &[&LoadedRun]) -> Result<String, ReportError> {
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
            "Segmentation runs compared (test_dev set)",
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
                        .map(|r| r.val_accuracy)
                        .fold(f64::NAN, f64::max),
                ));
            }
            TaskRun::Segmentation {
                metrics, history, ..
            } => {
                cells.push(Cell::num(metrics.test.map, 3));
                cells.push(Cell::num(metrics.test.miou, 3));
                cells.push(Cell::num(
                    history.iter().map(|r| r.val_map).fold(f64::NAN, f64::max),
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
    let title = if classification {
        "Comparison: Fashion-MNIST"
    } else {
        "Comparison: Mini Facade"
    };
    Ok(format!(
        "<section class=\"compare\"><h2>{title}</h2>\n{}</section>\n",
        table.render()
    ))
}

fn section(
    run: &LoadedRun,
    assets: &Assets,
    photos: &[PathBuf],
    compute: &Compute,
) -> Result<String, ReportError> {
    let mut out = format!(
        "<section class=\"run\" id=\"{}\">\n<h2>{}: <code>{}</code>, {}</h2>\n",
        html::escape(&assets.folder),
        html::escape(&run.name),
        html::escape(run.model()),
        task_title(run)
    );
    out.push_str(&headline(run)?);
    out.push_str("<div class=\"grid\"><div>\n");
    out.push_str(&hyper_parameters(run).render());
    out.push_str("</div><div>\n");
    out.push_str(&architecture(run)?);
    out.push_str("</div></div>\n");
    match &run.task {
        TaskRun::Classification {
            metrics,
            history,
            examples,
            ..
        } => out.push_str(&classification(
            run,
            assets,
            metrics,
            history,
            examples.as_deref(),
        )?),
        TaskRun::Segmentation {
            metrics, history, ..
        } => out.push_str(&segmentation(
            run, assets, metrics, history, photos, compute,
        )?),
    }
    out.push_str("</section>\n");
    Ok(out)
}

fn headline(run: &LoadedRun) -> Result<String, ReportError> {
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
    Ok(format!(
        "<p class=\"headline\">{results}<br>{epochs} epochs in {} · {} parameters</p>\n",
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

fn hyper_parameters(run: &LoadedRun) -> Table {
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
                config.augment.map_or("none".into(), |a| {
                    let flip = if a.flip { "horizontal flip + " } else { "" };
                    format!("{flip}random zoom up to {}x and crop", a.max_scale)
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
    match config.class_weighting {
        ClassWeighting::None => "none".into(),
        ClassWeighting::SqrtMedianFrequency => "sqrt(median frequency / class frequency)".into(),
    }
}

/// Long layer lists (U-Nets) fold away; short ones show open.
fn architecture(run: &LoadedRun) -> Result<String, ReportError> {
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

fn classification(
    run: &LoadedRun,
    assets: &Assets,
    metrics: &ClassificationMetrics,
    history: &[ClassificationEpoch],
    examples: Option<&[ClassExamples]>,
) -> Result<String, ReportError> {
    let mut out = String::from("<h3>Training</h3>\n");
    out.push_str(&assets.figure(
        run,
        "curves.png",
        "Line charts of training and validation accuracy (left) and loss (right) per epoch",
        "Accuracy and loss per epoch, training (blue) and validation (orange).",
    )?);
    out.push_str(&epoch_log_classification(history));

    out.push_str("<h3>Per-class accuracy</h3>\n");
    let hardest = metrics.test.hardest_class();
    let mut t = Table::new(
        "Per-class accuracy (the hardest class on test in bold)",
        &["class", "validation", "test"],
    );
    for (c, name) in metrics.class_names.iter().enumerate() {
        let name = if Some(c) == hardest {
            format!("{name} (hardest)")
        } else {
            name.clone()
        };
        t.push(vec![
            Cell::text(name),
            Cell::percent(metrics.val.per_class_accuracy[c]),
            Cell::percent(metrics.test.per_class_accuracy[c]),
        ]);
    }
    t.push(vec![
        Cell::text("all classes"),
        Cell::percent(metrics.val.accuracy),
        Cell::percent(metrics.test.accuracy),
    ]);
    if let Some(h) = hardest {
        t.rows[h].highlight = true;
    }
    out.push_str(&t.render());

    out.push_str("<h3>What the network learned</h3>\n<div class=\"grid\"><div>\n");
    out.push_str(&assets.figure(
        run,
        "filters.png",
        "Grid of the first convolution layer's learned filters, brighter meaning larger weight",
        "First-layer filters (brighter = larger weight).",
    )?);
    out.push_str("</div><div>\n");
    out.push_str(&assets.figure(
        run,
        "confusion.png",
        "Confusion matrix of the test set: true class in rows, predicted class in columns",
        "Test confusion matrix: rows are true classes, columns predictions.",
    )?);
    out.push_str("</div></div>\n<h3>Examples from the test set</h3>\n");
    out.push_str(&examples_table(run, assets, examples)?);
    Ok(out)
}

/// The write-up's table: per class, test images classified correctly as it and false
/// positives (other classes predicted as it), each false positive named by its true class.
fn examples_table(
    run: &LoadedRun,
    assets: &Assets,
    examples: Option<&[ClassExamples]>,
) -> Result<String, ReportError> {
    let Some(examples) = examples else {
        return assets.figure(
            run,
            "examples.png",
            "Per class, test images classified correctly and false positives",
            "Per predicted class: correct (green) and false positives (red), captioned with the true class.",
        );
    };
    let strips = run.dir.figures().join("examples");
    let mut t = Table::new(
        "Correct and incorrect (false positive) test predictions per class",
        &["class", "Correct", "Incorrect (false positive)"],
    );
    for (c, ex) in examples.iter().enumerate() {
        let [correct_file, fp_file] = ClassExamples::strip_names(c);
        let cell = |file: &str, count: usize, alt: String, note: String| {
            if count == 0 {
                return Ok(Cell::text("none"));
            }
            let name = format!("examples/{file}");
            Ok::<_, ReportError>(match assets.copy(&strips.join(file), &name)? {
                Some(src) => Cell::Html(format!(
                    "{}<br><small>{}</small>",
                    html::image(&src, &alt),
                    html::escape(&note)
                )),
                None => Cell::text(format!("figures/{name} is missing")),
            })
        };
        let correct = cell(
            &correct_file,
            ex.correct.len(),
            format!(
                "{} test images of {} classified correctly",
                ex.correct.len(),
                ex.class
            ),
            format!("{} correct", ex.correct.len()),
        )?;
        let false_positives = cell(
            &fp_file,
            ex.false_positives.len(),
            format!(
                "{} test images predicted as {} but truly: {}",
                ex.false_positives.len(),
                ex.class,
                ex.false_positive_truths.join(", ")
            ),
            format!("truly: {}", ex.false_positive_truths.join(", ")),
        )?;
        t.push(vec![Cell::text(&ex.class), correct, false_positives]);
    }
    Ok(t.render())
}

fn epoch_log_classification(history: &[ClassificationEpoch]) -> String {
    let mut t = Table::new(
        "Per-epoch log (metrics.jsonl)",
        &[
            "epoch",
            "train loss",
            "train acc",
            "val loss",
            "val acc",
            "learning rate",
            "seconds",
        ],
    );
    for r in history {
        t.push(vec![
            Cell::Number(r.epoch.to_string()),
            Cell::num(r.train_loss, 4),
            Cell::percent(r.train_accuracy),
            Cell::num(r.val_loss, 4),
            Cell::percent(r.val_accuracy),
            Cell::Number(format!("{:.2e}", r.lr)),
            Cell::num(r.seconds, 1),
        ]);
    }
    details("Per-epoch log", &t)
}

fn details(summary: &str, table: &Table) -> String {
    format!(
        "<details><summary>{}</summary>\n{}</details>\n",
        html::escape(summary),
        table.render()
    )
}

fn segmentation(
    run: &LoadedRun,
    assets: &Assets,
    metrics: &SegmentationMetrics,
    history: &[SegmentationEpoch],
    photos: &[PathBuf],
    compute: &Compute,
) -> Result<String, ReportError> {
    let mut out = String::from("<h3>Training</h3>\n");
    out.push_str(&assets.figure(
        run,
        "curves.png",
        "Line charts of training and validation loss (left) and validation mAP (right) per epoch",
        "Loss per epoch (training blue, validation orange) and validation mAP.",
    )?);
    out.push_str(&epoch_log_segmentation(history));

    out.push_str("<h3>Average precision and IoU per class</h3>\n<div class=\"grid\"><div>\n");
    let mut t = Table::new(
        "Per-class AP (as scikit-learn's average_precision_score over all pixels) and IoU",
        &["class", "val AP", "test AP", "val IoU", "test IoU"],
    );
    for (c, name) in metrics.class_names.iter().enumerate() {
        t.push(vec![
            Cell::text(name),
            Cell::num(metrics.val.ap[c], 3),
            Cell::num(metrics.test.ap[c], 3),
            Cell::num(metrics.val.iou[c], 3),
            Cell::num(metrics.test.iou[c], 3),
        ]);
    }
    t.push(vec![
        Cell::text("mean (mAP, mIoU)"),
        Cell::num(metrics.val.map, 3),
        Cell::num(metrics.test.map, 3),
        Cell::num(metrics.val.miou, 3),
        Cell::num(metrics.test.miou, 3),
    ]);
    let last = t.rows.len() - 1;
    t.rows[last].highlight = true;
    out.push_str(&t.render());
    out.push_str("</div><div>\n");
    out.push_str(&assets.figure(
        run,
        "ap.png",
        "Bar chart of test average precision per class with the mean",
        "Test AP per class; the mean is the mAP.",
    )?);
    out.push_str("</div></div>\n<h3>Predictions on test_dev</h3>\n");
    out.push_str(&assets.figure(
        run,
        "legend.png",
        "Colour legend: others, facade, pillar, window, balcony",
        "Colours of the five classes.",
    )?);
    out.push_str(&assets.figure(
        run,
        "predictions.png",
        "Rows of test photos, their ground-truth label maps and the predicted label maps",
        "Photo | ground truth | prediction, for test_dev images.",
    )?);
    out.push_str(&assets.figure(
        run,
        "confusion.png",
        "Pixel confusion matrix of test_dev: true class in rows, predicted in columns",
        "Test pixel confusion matrix: rows are true classes, columns predictions.",
    )?);
    if !photos.is_empty() {
        out.push_str(&extra_photos(run, assets, photos, compute)?);
    }
    Ok(out)
}

/// Segments the user's photos with the run's model; a table of overlays and colour masks.
fn extra_photos(
    run: &LoadedRun,
    assets: &Assets,
    photos: &[PathBuf],
    compute: &Compute,
) -> Result<String, ReportError> {
    let out_dir = assets.dir().join("photos");
    let predictions =
        crate::predict::predict_command(&run.dir.root, photos, &out_dir, false, compute)?;
    let files: Vec<_> = predictions.into_iter().map(|p| p.files).collect();
    let mut t = Table::new(
        "Predictions on your photos (rescaled to 256×256)",
        &["photo", "overlay with legend", "colour-coded prediction"],
    );
    for (photo, f) in photos.iter().zip(&files) {
        let name = photo
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rel = |p: &Path| {
            format!(
                "{}/photos/{}",
                assets.folder,
                p.file_name().unwrap_or_default().to_string_lossy()
            )
        };
        t.push(vec![
            Cell::text(&name),
            Cell::Html(html::image(
                &rel(&f.overlay),
                &format!("Prediction for {name} blended over the photo, with a legend"),
            )),
            Cell::Html(html::image(
                &rel(&f.color),
                &format!("Colour-coded class of each pixel of {name}"),
            )),
        ]);
    }
    Ok(format!("<h3>Your photos</h3>\n{}", t.render()))
}

fn epoch_log_segmentation(history: &[SegmentationEpoch]) -> String {
    let mut t = Table::new(
        "Per-epoch log (metrics.jsonl)",
        &[
            "epoch",
            "train loss",
            "val loss",
            "val mAP",
            "val mIoU",
            "val pixel acc",
            "learning rate",
            "seconds",
        ],
    );
    for r in history {
        t.push(vec![
            Cell::Number(r.epoch.to_string()),
            Cell::num(r.train_loss, 4),
            Cell::num(r.val_loss, 4),
            Cell::num(r.val_map, 3),
            Cell::num(r.val_miou, 3),
            Cell::percent(r.val_pixel_accuracy),
            Cell::Number(format!("{:.2e}", r.lr)),
            Cell::num(r.seconds, 1),
        ]);
    }
    details("Per-epoch log", &t)
}
