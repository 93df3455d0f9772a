//! What the command line prints for the terminal: result tables, the search's leaderboard,
//! one line per report run or predicted photo.

use crate::predict::Prediction;
use crate::report::runs::{LoadedRun, TaskRun};
use crate::run::results::{ClassificationMetrics, SegmentationMetrics};
use crate::train::search::Leaderboard;

pub fn classification_tables(metrics: &ClassificationMetrics) {
    println!(
        "model {} (checkpoint {}, epoch {}): val accuracy {:.2}%, test accuracy {:.2}%",
        metrics.model.name(),
        metrics.checkpoint,
        metrics.epoch,
        100.0 * metrics.val.accuracy,
        100.0 * metrics.test.accuracy
    );
    println!("\n{:<12} {:>8} {:>8}", "class", "val %", "test %");
    for (i, name) in metrics.class_names.iter().enumerate() {
        println!(
            "{name:<12} {:>8.2} {:>8.2}",
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

/// The search's leaderboard, best first, and the command that trains the best trial longer.
pub fn leaderboard(board: &Leaderboard) {
    println!(
        "\n{:>5} {:>10} {:>12} {:>6} {:>10} {:>6} {:>8}",
        "trial", "lr", "weight_decay", "batch", board.score_name, "epoch", "seconds"
    );
    for r in &board.board {
        println!(
            "{:>5} {:>10.3e} {:>12.3e} {:>6} {:>10.4} {:>6} {:>8.1}",
            r.trial.index,
            r.trial.lr,
            r.trial.weight_decay,
            r.trial.batch_size,
            r.score,
            r.best_epoch,
            r.seconds
        );
    }
    if let (Some(best), Some(rerun)) = (board.board.first(), &board.rerun) {
        println!(
            "\nbest: trial {} ({}); to train it longer:\n  {rerun}",
            best.trial.index,
            best.run.display(),
        );
    }
}

/// One line per photo: each class's share of its pixels.
pub fn prediction(p: &Prediction) {
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
