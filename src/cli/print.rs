//! What the command line prints for the terminal: result tables, the search's leaderboard,
//! one line per report run or predicted photo.

use std::path::Path;

use crate::engine::{Precision, Tta};
use crate::models::ModelKind;
use crate::predict::classification::ClassPredictions;
use crate::predict::segmentation::MaskPrediction;
use crate::report::runs::{LoadedRun, TaskRun};
use crate::run::results::{ClassificationMetrics, SegmentationMetrics};
use crate::tasks::TrainingHeader;
use crate::train::search::{Leaderboard, Submitted, TrialResult, TrialState};

/// Says which test-time augmentation an evaluation used, at which precision when not the
/// run's, and where its metrics went (nothing for a plain evaluation, which rewrites
/// metrics.json as `train` did).
pub fn evaluation_views(tta: Tta, precision: Option<Precision>, metrics: &Path) {
    if !tta.is_none() {
        println!(
            "test-time augmentation: {} ({})",
            tta.name(),
            tta.about().to_lowercase(),
        );
    }
    if let Some(precision) = precision {
        println!(
            "precision: {} ({}), not the run's",
            precision.name(),
            precision.about()
        );
    }
    if !tta.is_none() || precision.is_some() {
        println!("written to {}\n", metrics.display());
    }
}

pub fn classification_tables(metrics: &ClassificationMetrics) {
    println!(
        "model {} (checkpoint {}, epoch {}): val accuracy {:.2}%, test accuracy {:.2}%",
        metrics.model.name(),
        metrics.checkpoint,
        metrics.epoch,
        100.0 * metrics.val.accuracy,
        100.0 * metrics.test.accuracy
    );
    let width = name_width(&metrics.class_names);
    println!("\n{:<width$} {:>8} {:>8}", "class", "val %", "test %");
    for (i, name) in metrics.class_names.iter().enumerate() {
        println!(
            "{name:<width$} {:>8.2} {:>8.2}",
            100.0 * metrics.val.per_class_accuracy[i],
            100.0 * metrics.test.per_class_accuracy[i]
        );
    }
    println!("\ntest confusion matrix (rows: true class, columns: predicted)");
    print!("{:<12}", "");
    for i in 0..metrics.class_names.len() {
        print!("{i:>6}");
    }
    println!();
    for (i, row) in metrics.test.confusion.iter().enumerate() {
        print!("{:<12}", format!("{i} {}", short(&metrics.class_names[i])));
        for v in row {
            print!("{v:>6}");
        }
        println!();
    }
}

fn short(name: &str) -> String {
    name.chars().take(9).collect()
}

/// The width of a column of class names (at least the 12 Fashion-MNIST's need).
fn name_width(names: &[String]) -> usize {
    names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(12)
}

/// What `train` says before the first epoch: the data and its splits, the classes, the
/// network, the engine and the run folder.
pub fn training_header(h: &TrainingHeader) {
    let d = &h.data;
    println!(
        "data: {} ({})",
        d.origin.dir.display(),
        d.origin.description
    );
    for split in &d.splits {
        let how = if split.how.is_empty() {
            String::new()
        } else {
            format!(" ({})", split.how)
        };
        println!("  {:<10} {:>7} images{how}", split.name, split.count);
    }
    let [c, height, width] = d.input;
    let colour = if c == 1 { "grey" } else { "RGB" };
    println!("classes ({}): {}", d.classes.len(), d.classes.join(", "));
    println!("input: {colour} {width}x{height}");
    println!(
        "model: {} ({} parameters), {} epochs",
        h.model,
        crate::report::html::count(h.params),
        h.epochs
    );
    match h.ranks {
        Some(r) => println!(
            "engine: {} on the {}, {} ranks x {} threads (data-parallel)",
            h.compute.engine.name(),
            h.compute.device.name(),
            r.world_size,
            r.threads_per_rank
        ),
        None => println!(
            "engine: {} on the {} ({} threads)",
            h.compute.engine.name(),
            h.compute.device.name(),
            h.threads
        ),
    }
    if !h.compute.precision.is_fp32() {
        println!(
            "precision: {} ({})",
            h.compute.precision.name(),
            h.compute.precision.about()
        );
    }
    let verb = if h.resumed { "resuming" } else { "writing" };
    println!("run folder: {} ({verb})\n", h.run.display());
}

/// What `train` says last: where the figures are and how to make the report.
pub fn training_footer(run: &Path) {
    println!("run folder: {}", run.display());
    let figures = run.join("figures");
    let mut names: Vec<String> = std::fs::read_dir(&figures)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".png"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    if !names.is_empty() {
        println!("figures: {}/{{{}}}", figures.display(), names.join(", "));
    }
    println!(
        "report: convlab report {} --out report   (then open report/index.html)",
        run.display()
    );
}

/// One line per image: its most probable classes; then where the CSV went.
pub fn class_predictions(written: &ClassPredictions) {
    for p in &written.predictions {
        let top: Vec<String> = p
            .top
            .iter()
            .map(|(name, probability)| format!("{name} {:.1}%", 100.0 * probability))
            .collect();
        println!("{}: {}", p.image.display(), top.join(", "));
    }
    println!("predictions: {}", written.csv.display());
}

pub fn segmentation_tables(m: &SegmentationMetrics) {
    println!(
        "model {} (checkpoint {}, epoch {}): test mAP {:.4}, mIoU {:.4}, pixel accuracy {:.2}%",
        m.model.name(),
        m.checkpoint,
        m.epoch,
        m.test.map,
        m.test.miou,
        100.0 * m.test.pixel_accuracy
    );
    println!(
        "\n{:<10} {:>8} {:>8} {:>8} {:>8}",
        "class", "val AP", "test AP", "val IoU", "test IoU"
    );
    for (i, name) in m.class_names.iter().enumerate() {
        println!(
            "{name:<10} {:>8.4} {:>8.4} {:>8.4} {:>8.4}",
            m.val.ap[i], m.test.ap[i], m.val.iou[i], m.test.iou[i]
        );
    }
    println!(
        "{:<10} {:>8.4} {:>8.4} {:>8.4} {:>8.4}",
        "mean", m.val.map, m.test.map, m.val.miou, m.test.miou
    );
}

/// The search's leaderboard (furthest rung first, best first within it: `epochs` is how far a
/// trial got), the trials without a result, and the command that trains the best one longer.
pub fn leaderboard(board: &Leaderboard) {
    println!(
        "\n{:>5} {:>10} {:>12} {:>6} {:>10} {:>6} {:>8} {:>6}",
        "trial", "lr", "weight_decay", "batch", board.score_name, "epoch", "seconds", "epochs"
    );
    for r in &board.board {
        println!(
            "{:>5} {:>10.3e} {:>12.3e} {:>6} {:>10.4} {:>6} {:>8.1} {:>6}",
            r.trial.index,
            r.trial.lr,
            r.trial.weight_decay,
            r.trial.batch_size,
            r.score,
            r.best_epoch,
            r.seconds,
            r.epochs
        );
    }
    for state in &board.unfinished {
        match state {
            TrialState::Failed(f) => println!("trial {} failed: {}", f.trial.index, f.reason),
            TrialState::Missing(t) => println!("trial {} has not finished", t.index),
            TrialState::Done(_) => {}
        }
    }
    if let (Some(best), Some(rerun)) = (board.board.first(), &board.rerun) {
        println!(
            "\nbest: trial {}; to train it longer:\n  {rerun}",
            best.trial.index,
        );
    }
}

/// Where a plan went and how to run its trials.
pub fn planned(plan: &Path, trials: usize) {
    let dir = plan.parent().unwrap_or(Path::new("."));
    println!(
        "plan: {} ({trials} trials)\nrun trial K (0 to {}): convlab search trial {} --index K\nthen: convlab search collect {}",
        plan.display(),
        trials - 1,
        dir.display(),
        dir.display()
    );
}

/// The jobs a `--slurm` search submitted, and how to watch them.
pub fn submitted(jobs: &Submitted, out: &Path) {
    for r in &jobs.rungs {
        println!(
            "rung {}: {} trials of {} epochs, array job {}; closed by job {}",
            r.rung.index, r.rung.trials, r.rung.epochs, r.array_job, r.collect_job
        );
    }
    let ids: Vec<&str> = jobs
        .rungs
        .iter()
        .flat_map(|r| [r.array_job.as_str(), r.collect_job.as_str()])
        .collect();
    println!(
        "scripts and job output: {}\nwatch: squeue -j {}\nleaderboard so far: convlab search collect {}",
        jobs.scripts.display(),
        ids.join(","),
        out.display()
    );
}

/// A trial's result in one line.
pub fn trial(r: &TrialResult) {
    println!(
        "trial {}: best validation score {:.4} at epoch {}, {:.1}s on {} ({} threads)",
        r.trial.index, r.score, r.best_epoch, r.seconds, r.node, r.threads
    );
}

/// One line per photo: each class's share of its pixels.
pub fn prediction(p: &MaskPrediction) {
    let shares: Vec<String> = p
        .shares
        .iter()
        .map(|(name, share)| format!("{name} {:.1}%", 100.0 * share))
        .collect();
    println!("{}: {}", p.photo.display(), shares.join(", "));
}

/// One line per run for the terminal.
pub fn run_summary(run: &LoadedRun) -> String {
    let (epochs, seconds) = run.training_time();
    let results = match &run.task {
        TaskRun::Classification { metrics, .. } => {
            let hardest = metrics
                .test
                .hardest_class()
                .map(|c| {
                    let (name, accuracy) =
                        (&metrics.class_names[c], metrics.test.per_class_accuracy[c]);
                    format!(", hardest class {name} {:.1}%", 100.0 * accuracy)
                })
                .unwrap_or_default();
            format!(
                "test accuracy {:.2}% (val {:.2}%){hardest}",
                100.0 * metrics.test.accuracy,
                100.0 * metrics.val.accuracy
            )
        }
        TaskRun::Segmentation { metrics, .. } => format!(
            "test mAP {:.3}, mIoU {:.3}, pixel accuracy {:.2}% (val mAP {:.3})",
            metrics.test.map,
            metrics.test.miou,
            100.0 * metrics.test.pixel_accuracy,
            metrics.val.map
        ),
    };
    format!(
        "{:<12} {:<6} {results}; {epochs} epochs in {}",
        run.name,
        run.model(),
        crate::report::html::duration(seconds)
    )
}
