//! A classification run's section: training curves and epoch log, per-class accuracy,
//! first-layer filters, the confusion matrix and test examples per class.

use super::ReportError;
use super::assets::Assets;
use super::common::{EpochColumns, epoch_log};
use super::html::{self, Cell, Table};
use super::runs::LoadedRun;

use crate::run::records::{ClassificationEpoch, ClassificationTrain, ClassificationVal};
use crate::run::results::{ClassExamples, ClassificationMetrics};

pub(super) fn classification(
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
    out.push_str(&epoch_log(history));

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

impl EpochColumns for ClassificationTrain {
    const HEADERS: &'static [&'static str] = &["train acc"];

    fn cells(&self) -> Vec<Cell> {
        vec![Cell::percent(self.accuracy)]
    }
}

impl EpochColumns for ClassificationVal {
    const HEADERS: &'static [&'static str] = &["val acc"];

    fn cells(&self) -> Vec<Cell> {
        vec![Cell::percent(self.accuracy)]
    }
}
