//! Classification of any image with a trained classifier: decoded, converted to the run's
//! channels and resized to its input as training prepared its images, normalised with the
//! run's statistics; the top classes printed and written to `predictions.csv`.

use std::path::{Path, PathBuf};

use crate::data::DataError;
use crate::data::image_folder::read_image;
use crate::engine::softmax_channels;
use crate::engine::{Compute, Tta};
use crate::fsutil::{csv_field, write_atomic};
use crate::models::ModelKind;
use crate::run::config::ClassificationConfig;
use crate::run::json::read_json;
use crate::run::{RunDir, RunError, checkpoint};
use crate::tasks::TaskError;

/// One image's most probable classes, best first.
#[derive(Clone, Debug)]
pub struct ClassPrediction {
    pub image: PathBuf,
    /// `(class name, probability)`, best first.
    pub top: Vec<(String, f32)>,
}

/// What `predict` wrote and found.
#[derive(Clone, Debug)]
pub struct ClassPredictions {
    pub csv: PathBuf,
    pub predictions: Vec<ClassPrediction>,
}

/// `convlab fashion|classify predict --run DIR [--out DIR] [--top K] [--tta flip] IMAGE...`.
pub fn predict(
    run_dir: &Path,
    images: &[PathBuf],
    out: &Path,
    top: usize,
    tta: Tta,
    compute: &Compute,
) -> Result<ClassPredictions, TaskError> {
    if top == 0 {
        return Err(RunError::invalid("--top", "must be at least 1, got 0").into());
    }
    let run = RunDir::existing(run_dir)?;
    let config: ClassificationConfig = read_json(&run.config())?;
    let [channels, height, width] = config.architecture.input;
    // Every image is decoded before any work, so a bad one stops the command early.
    let mut values = Vec::with_capacity(images.len() * channels * height * width);
    for path in images {
        let (chw, h, w) = read_image(path, channels, (height == width).then_some(height))?;
        if (h, w) != (height, width) {
            return Err(DataError::Unsuitable {
                path: path.clone(),
                reason: format!(
                    "image is {w}x{h}, the run's network takes {width}x{height} (it was trained without --size)"
                ),
            }
            .into());
        }
        config
            .normalization
            .extend(&mut values, &chw, channels, h * w);
    }
    let (model, _, _) =
        checkpoint::load_final(&run, config.model.name(), &config.architecture, compute)?;
    let classes = config.classes.len();
    let mut predictions = Vec::with_capacity(images.len());
    let per_batch = 256 * channels * height * width;
    let mut done = 0;
    for chunk in values.chunks(per_batch) {
        let count = chunk.len() / (channels * height * width);
        let (mut probs, _) =
            model.forward_with(chunk.to_vec(), [count, channels, height, width], tta);
        softmax_channels(&mut probs, classes, 1);
        for row in probs.chunks(classes) {
            predictions.push(ClassPrediction {
                image: images[done].clone(),
                top: ranked(row, &config.classes, top),
            });
            done += 1;
        }
    }
    std::fs::create_dir_all(out).map_err(|e| RunError::not_writable(out, e))?;
    let csv = out.join("predictions.csv");
    write_atomic(&csv, predictions_csv(&predictions, top).as_bytes())
        .map_err(|e| RunError::io(&csv, e))?;
    Ok(ClassPredictions { csv, predictions })
}

/// The `top` most probable classes of one image's probabilities, best first (the lower index
/// first on ties).
fn ranked(probs: &[f32], names: &[String], top: usize) -> Vec<(String, f32)> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(top)
        .map(|c| (names[c].clone(), probs[c]))
        .collect()
}

/// `file,class,probability` and, for `top` > 1, `class_2,probability_2`, ... per image.
fn predictions_csv(predictions: &[ClassPrediction], top: usize) -> String {
    let mut header = vec!["file".to_string(), "class".into(), "probability".into()];
    for k in 2..=top {
        header.push(format!("class_{k}"));
        header.push(format!("probability_{k}"));
    }
    let mut text = header.join(",") + "\n";
    for p in predictions {
        let mut fields = vec![csv_field(&p.image.display().to_string())];
        for (name, probability) in &p.top {
            fields.push(csv_field(name));
            fields.push(format!("{probability:.6}"));
        }
        text.push_str(&fields.join(","));
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_commas_and_quotes_are_quoted_in_the_csv() {
        let predictions = vec![ClassPrediction {
            image: PathBuf::from("dir/a,b.png"),
            top: vec![("say \"hi\"".into(), 0.75), ("plain".into(), 0.25)],
        }];
        assert_eq!(
            predictions_csv(&predictions, 2),
            "file,class,probability,class_2,probability_2\n\"dir/a,b.png\",\"say \"\"hi\"\"\",0.750000,plain,0.250000\n"
        );
    }

    #[test]
    fn classes_are_ranked_by_probability_then_index() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let top = ranked(&[0.2, 0.4, 0.4], &names, 2);
        assert_eq!(top, vec![("b".to_string(), 0.4), ("c".to_string(), 0.4)]);
    }
}
