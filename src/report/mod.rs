//! `convlab report`: a write-up of finished runs as one HTML page (`index.html`, its images in
//! a folder per run beside it, no network needed): architecture and hyper-parameters, curves,
//! per-class tables, filters, examples, confusion matrices, segmentation predictions, and a
//! comparison of runs of the same task. It reads what training and evaluation wrote (config,
//! metrics, figures); only predictions on extra photos (`--photos`) run a model.

mod assets;
mod classification;
mod common;
pub mod html;
pub mod runs;
mod segmentation;

use std::path::{Path, PathBuf};

use assets::Assets;
use classification::classification;
use common::{architecture, comparison, headline, hyper_parameters, task_title};
use runs::{LoadedRun, TaskRun};
use segmentation::segmentation;

use crate::engine::Compute;
use crate::fsutil::write_atomic;
use crate::run::RunError;
use crate::tasks::TaskError;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("{}: not found: this run has not been evaluated; run `{command}` first", path.display())]
    NotEvaluated { path: PathBuf, command: String },
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
    // Runs are compared with runs of the same task on the same data.
    let mut groups: Vec<(String, bool)> = Vec::new();
    for run in &loaded {
        let key = (run.data_title(), run.is_classification());
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    for key in groups {
        let same_task: Vec<&LoadedRun> = loaded
            .iter()
            .filter(|r| (r.data_title(), r.is_classification()) == key)
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
            html::escape(&task_title(run)),
            html::escape(run.model()),
        ));
    }
    out.push_str("</ul></nav>\n");
    out
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
        html::escape(&task_title(run))
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
