//! Training, evaluating and predicting with a Mini Facade segmenter in a run folder.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::fit::{EpochTiming, Task, TrainStats, fit};
use super::log::{read_json, read_log, write_json};
use super::options::{HyperParams, Recipe, TrainArgs};
use super::run_dir::{RunConfig, RunDir, open_for_training};
use super::schedule::Schedule;
use super::search::{self, SearchArgs, TrialResult, best_of};
use super::trainer::StepBatch;
use crate::Error;
use crate::cpu::LossSpec;
use crate::cpu::loss::softmax_channels;
use crate::data::facade::{CLASS_NAMES, FacadeSet, MiniFacade, NUM_CLASSES, SIDE};
use crate::data::seg_batcher::{FlipScaleCrop, SegmentationBatcher};
use crate::data::split::{self, Split};
use crate::data::{DataError, Normalization};
use crate::device::{Compute, DeviceKind};
use crate::metrics::classification::Confusion;
use crate::metrics::segmentation::{average_precision_of_pairs, iou, mean_defined};
use crate::models::{Model, ModelSpec, SegmenterKind};
use crate::progress::count_bar;

pub const VAL_FRACTION: f64 = 0.1;
const EVAL_BATCH: usize = 4;

/// Everything needed to rebuild the model and repeat the run (`config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FacadeConfig {
    pub task: String,
    pub model: SegmenterKind,
    pub architecture: ModelSpec,
    pub params: HyperParams,
    pub augment: Option<FlipScaleCrop>,
    /// Older run folders have no such key: they trained unweighted.
    #[serde(default)]
    pub class_weighting: ClassWeighting,
    pub val_fraction: f64,
    pub normalization: Normalization,
    pub device: DeviceKind,
}

impl RunConfig for FacadeConfig {
    fn model_name(&self) -> &str {
        self.model.name()
    }

    fn params(&self) -> &HyperParams {
        &self.params
    }

    fn with_params(self, params: HyperParams) -> Self {
        FacadeConfig { params, ..self }
    }
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegEpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_pixel_accuracy: f64,
    pub val_loss: f64,
    pub val_map: f64,
    pub val_miou: f64,
    pub val_pixel_accuracy: f64,
    pub lr: f64,
    pub seconds: f64,
    /// Where the epoch's time went (absent in logs written before it was measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<EpochTiming>,
}

/// The evaluation of one split over all its pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentationReport {
    pub ap: Vec<f64>,
    pub map: f64,
    pub iou: Vec<f64>,
    pub miou: f64,
    pub pixel_accuracy: f64,
    pub loss: f64,
    pub confusion: Vec<Vec<u64>>,
}

/// `metrics.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FacadeMetrics {
    pub model: SegmenterKind,
    pub checkpoint: String,
    pub epoch: usize,
    pub class_names: Vec<String>,
    pub val: SegmentationReport,
    pub test: SegmentationReport,
}

/// Photos are scaled to about zero mean and unit spread (the same for every channel).
pub const FACADE_NORMALIZATION: Normalization = Normalization {
    mean: 0.5,
    std: 0.25,
};

/// How the per-pixel loss weighs the classes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeighting {
    /// Every pixel counts the same.
    #[default]
    None,
    /// Class c weighs `sqrt(median frequency / frequency of c)` over the training pixels: the
    /// square root of SegNet's median-frequency balancing, which lifts the rare pillar and
    /// balcony without letting their few pixels dominate the gradient.
    SqrtMedianFrequency,
}

impl ClassWeighting {
    /// The weight of each class from the training label maps; `None` when unweighted.
    pub fn weights<'a>(self, label_maps: impl Iterator<Item = &'a [u8]>) -> Option<Vec<f32>> {
        match self {
            ClassWeighting::None => None,
            ClassWeighting::SqrtMedianFrequency => {
                let mut counts = [0u64; NUM_CLASSES];
                for labels in label_maps {
                    for &l in labels {
                        counts[l as usize] += 1;
                    }
                }
                let mut present: Vec<u64> = counts.iter().copied().filter(|&n| n > 0).collect();
                present.sort_unstable();
                let median = *present.get(present.len() / 2)? as f64;
                Some(
                    counts
                        .iter()
                        .map(|&n| {
                            if n == 0 {
                                0.0
                            } else {
                                (median / n as f64).sqrt() as f32
                            }
                        })
                        .collect(),
                )
            }
        }
    }
}

pub fn recipe(kind: SegmenterKind) -> Recipe {
    match kind {
        // The write-up's tuned values: Adam lr 1e-4, weight decay 1e-5.
        SegmenterKind::Fcn => Recipe {
            epochs: 20,
            batch_size: 8,
            lr: 1e-4,
            weight_decay: 1e-5,
            schedule: Schedule::Constant,
            augment: None,
            label_smoothing: None,
            decoupled_decay: false,
        },
        // Cheap enough per epoch to train long within the CPU budget: a larger rate with a
        // warm-up and cosine decay, AdamW as usual for U-Nets.
        SegmenterKind::Unet => Recipe {
            epochs: 48,
            batch_size: 8,
            lr: 2e-3,
            weight_decay: 1e-4,
            schedule: Schedule::Cosine,
            augment: None,
            label_smoothing: None,
            decoupled_decay: true,
        },
    }
}

fn class_weighting(kind: SegmenterKind) -> ClassWeighting {
    match kind {
        SegmenterKind::Fcn => ClassWeighting::None,
        SegmenterKind::Unet => ClassWeighting::SqrtMedianFrequency,
    }
}

fn augmentation(_kind: SegmenterKind) -> Option<FlipScaleCrop> {
    Some(FlipScaleCrop {
        flip: true,
        max_scale: 1.5,
    })
}

pub struct FacadeData {
    pub sets: MiniFacade,
    pub split: Split,
    pub train_indices: Vec<usize>,
    pub val: FacadeSet,
}

impl FacadeData {
    pub fn prepare(
        sets: MiniFacade,
        params: &HyperParams,
        val_fraction: f64,
    ) -> Result<Self, DataError> {
        let split = split::random(sets.train.len(), val_fraction, params.seed);
        let train_indices = split::limited(&split.train, params.limit)?;
        let val = select(&sets.train, &split.val);
        Ok(FacadeData {
            sets,
            split,
            train_indices,
            val,
        })
    }
}

fn select(set: &FacadeSet, indices: &[usize]) -> FacadeSet {
    let mut out = FacadeSet {
        names: Vec::new(),
        photos: Vec::new(),
        labels: Vec::new(),
    };
    for &i in indices {
        out.names.push(set.names[i].clone());
        out.photos.extend_from_slice(set.photo(i));
        out.labels.extend_from_slice(set.label(i));
    }
    out
}

struct FacadeTask<'a> {
    config: &'a FacadeConfig,
    data: &'a FacadeData,
    batcher: SegmentationBatcher,
    loss: LossSpec,
}

impl Task for FacadeTask<'_> {
    type Validation = SegmentationReport;
    type Record = SegEpochRecord;

    fn model_name(&self) -> &str {
        self.config.model.name()
    }

    fn architecture(&self) -> &ModelSpec {
        &self.config.architecture
    }

    fn train_indices(&self) -> &[usize] {
        &self.data.train_indices
    }

    fn batch(&self, indices: &[usize], rng: &mut ChaCha8Rng) -> StepBatch {
        let batch = self.batcher.batch(&self.data.sets.train, indices, rng);
        StepBatch {
            images: batch.photos,
            shape: [batch.count, 3, SIDE, SIDE],
            targets: batch.labels,
        }
    }

    fn loss(&self) -> &LossSpec {
        &self.loss
    }

    fn validate(&self, model: &Model) -> SegmentationReport {
        evaluate(model, &self.data.val, self.config.normalization).0
    }

    fn score(&self, v: &SegmentationReport) -> f64 {
        if v.map.is_nan() {
            f64::NEG_INFINITY
        } else {
            v.map
        }
    }

    fn record(
        &self,
        epoch: usize,
        train: TrainStats,
        v: &SegmentationReport,
        lr: f64,
        seconds: f64,
        timing: EpochTiming,
    ) -> SegEpochRecord {
        SegEpochRecord {
            epoch,
            train_loss: train.loss,
            train_pixel_accuracy: train.accuracy,
            val_loss: v.loss,
            val_map: v.map,
            val_miou: v.miou,
            val_pixel_accuracy: v.pixel_accuracy,
            lr,
            seconds,
            timing: Some(timing),
        }
    }

    fn describe(&self, r: &SegEpochRecord) -> String {
        format!(
            "train loss {:.4} | val loss {:.4} mAP {:.4} mIoU {:.4} pixel acc {:.2}% | {:.1}s",
            r.train_loss,
            r.val_loss,
            r.val_map,
            r.val_miou,
            100.0 * r.val_pixel_accuracy,
            r.seconds
        )
    }

    fn epoch_of(r: &SegEpochRecord) -> usize {
        r.epoch
    }
}

/// Softmax probabilities `[N, 5, H, W]` (flattened) of `photos` `[N, 3, SIDE, SIDE]`.
pub fn probabilities(model: &Model, photos: Vec<f32>, count: usize) -> Vec<f32> {
    let (mut probs, shape) = model.forward(photos, [count, 3, SIDE, SIDE]);
    softmax_channels(&mut probs, shape[1], shape[2] * shape[3]);
    probs
}

/// Each pixel's most probable class (the first on ties, as PyTorch's `argmax`) from one
/// image's probabilities `[classes, SIDE, SIDE]`.
pub fn argmax_classes(image_probs: &[f32]) -> Vec<u8> {
    let plane = SIDE * SIDE;
    (0..plane)
        .map(|p| {
            let mut best = 0;
            for c in 1..NUM_CLASSES {
                if image_probs[c * plane + p] > image_probs[best * plane + p] {
                    best = c;
                }
            }
            best as u8
        })
        .collect()
}

/// Evaluates over all pixels of `set`; also returns each image's predicted label map.
pub fn evaluate(
    model: &Model,
    set: &FacadeSet,
    normalization: Normalization,
) -> (SegmentationReport, Vec<u8>) {
    let batcher = SegmentationBatcher {
        normalization,
        augment: None,
    };
    let plane = SIDE * SIDE;
    let mut scores: Vec<Vec<f32>> = (0..NUM_CLASSES)
        .map(|_| Vec::with_capacity(set.len() * plane))
        .collect();
    let mut predictions = Vec::with_capacity(set.len() * plane);
    let mut confusion = Confusion::new(NUM_CLASSES);
    let mut loss_sum = 0.0f64;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let indices: Vec<usize> = (0..set.len()).collect();
    for chunk in indices.chunks(EVAL_BATCH) {
        let batch = batcher.batch(set, chunk, &mut rng);
        let probs = probabilities(model, batch.photos.clone(), batch.count);
        for (b, image_probs) in probs.chunks(NUM_CLASSES * plane).enumerate() {
            for (c, class_scores) in scores.iter_mut().enumerate() {
                class_scores.extend_from_slice(&image_probs[c * plane..(c + 1) * plane]);
            }
            let predicted = argmax_classes(image_probs);
            for (p, &best) in predicted.iter().enumerate() {
                let truth = batch.labels[b * plane + p] as usize;
                confusion.add(truth, best as usize);
                loss_sum -= (image_probs[truth * plane + p].max(1e-30) as f64).ln();
            }
            predictions.extend_from_slice(&predicted);
        }
    }
    let ap: Vec<f64> = scores
        .into_iter()
        .enumerate()
        .map(|(c, class_scores)| {
            let mut pairs: Vec<(f32, bool)> = class_scores
                .into_iter()
                .zip(set.labels.iter().map(|&l| l as usize == c))
                .collect();
            average_precision_of_pairs(&mut pairs)
        })
        .collect();
    let ious = iou(&confusion);
    let report = SegmentationReport {
        map: mean_defined(&ap),
        ap,
        miou: mean_defined(&ious),
        iou: ious,
        pixel_accuracy: confusion.accuracy(),
        loss: loss_sum / predictions.len().max(1) as f64,
        confusion: confusion.counts,
    };
    (report, predictions)
}

pub fn train_until(
    config: &FacadeConfig,
    data: &FacadeData,
    run: &RunDir,
    compute: &Compute,
    resume: bool,
    stop_after: Option<usize>,
) -> Result<Vec<SegEpochRecord>, Error> {
    let task = FacadeTask {
        config,
        data,
        batcher: SegmentationBatcher {
            normalization: config.normalization,
            augment: config.augment,
        },
        loss: LossSpec::Pixel {
            weights: config
                .class_weighting
                .weights(data.train_indices.iter().map(|&i| data.sets.train.label(i))),
        },
    };
    if let LossSpec::Pixel {
        weights: Some(weights),
    } = &task.loss
    {
        let shown: Vec<String> = CLASS_NAMES
            .iter()
            .zip(weights)
            .map(|(name, w)| format!("{name} {w:.2}"))
            .collect();
        eprintln!("class weights: {}", shown.join(", "));
    }
    fit(&task, &config.params, run, compute, resume, stop_after)
}

pub(crate) fn fresh_config(
    kind: SegmenterKind,
    params: HyperParams,
    device: DeviceKind,
) -> FacadeConfig {
    FacadeConfig {
        task: "facade".into(),
        model: kind,
        architecture: kind.spec(),
        params,
        augment: augmentation(kind),
        class_weighting: class_weighting(kind),
        val_fraction: VAL_FRACTION,
        normalization: FACADE_NORMALIZATION,
        device,
    }
}

/// `convlab facade search`: short runs with random hyper-parameters, scored by validation mAP.
pub fn search_command(kind: SegmenterKind, args: &SearchArgs) -> Result<Vec<TrialResult>, Error> {
    args.validate()?;
    let compute = Compute::new(args.engine, args.device)?;
    let sets = MiniFacade::find_and_load(args.data.as_deref())?;
    search::run(
        args,
        "facade",
        kind.name(),
        recipe(kind).epochs,
        "val_map",
        |trial| {
            let (run, config) = open_for_training(trial, kind.name(), &recipe(kind), |params| {
                fresh_config(kind, params, trial.device)
            })?;
            let data = FacadeData::prepare(sets.clone(), &config.params, config.val_fraction)?;
            run.start(&config)?;
            let history = train_until(&config, &data, &run, &compute, false, None)?;
            Ok(best_of(history.iter().map(|r| (r.val_map, r.epoch))))
        },
    )
}

/// `convlab facade train`.
pub fn train_command(kind: SegmenterKind, args: &TrainArgs) -> Result<FacadeMetrics, Error> {
    let (run, config) = open_for_training(args, kind.name(), &recipe(kind), |params| {
        fresh_config(kind, params, args.device)
    })?;
    let compute = args.compute()?;
    let sets = MiniFacade::find_and_load(args.data.as_deref())?;
    let data = FacadeData::prepare(sets, &config.params, config.val_fraction)?;
    run.start(&config)?;
    train_until(&config, &data, &run, &compute, args.resume, None)?;
    evaluate_run(&config, &data, &run, &compute)
}

/// Evaluates the best checkpoint on validation and test, writes `metrics.json` and figures.
pub fn evaluate_run(
    config: &FacadeConfig,
    data: &FacadeData,
    run: &RunDir,
    compute: &Compute,
) -> Result<FacadeMetrics, Error> {
    let (model, header, path) =
        checkpoint::load_final(run, config.model.name(), &config.architecture, compute)?;
    let bar = count_bar(2, "evaluating");
    let (val, _) = evaluate(&model, &data.val, config.normalization);
    bar.inc(1);
    let (test, test_predictions) = evaluate(&model, &data.sets.test, config.normalization);
    bar.finish_and_clear();
    let metrics = FacadeMetrics {
        model: config.model,
        checkpoint: path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into(),
        epoch: header.epoch,
        class_names: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        val,
        test,
    };
    write_json(&run.metrics(), &metrics)?;
    let history: Vec<SegEpochRecord> = read_log(&run.metrics_log())?;
    crate::figures::segmentation::draw_all(
        &run.figures(),
        &history,
        &metrics,
        &data.sets.test,
        &test_predictions,
    )?;
    print_tables(&metrics);
    Ok(metrics)
}

/// `convlab facade eval --run DIR`.
pub fn eval_command(
    run_dir: &Path,
    data: Option<&Path>,
    compute: &Compute,
) -> Result<FacadeMetrics, Error> {
    let run = RunDir::existing(run_dir)?;
    let config: FacadeConfig = read_json(&run.config())?;
    let sets = MiniFacade::find_and_load(data)?;
    let data = FacadeData::prepare(sets, &config.params, config.val_fraction)?;
    evaluate_run(&config, &data, &run, compute)
}

pub fn print_tables(m: &FacadeMetrics) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_classes_weigh_more_and_the_median_class_weighs_one() {
        // Pixel counts 400, 100, 25, 100, 0: the median of the present counts is 100.
        let mut labels = vec![0u8; 400];
        labels.extend([1u8; 100]);
        labels.extend([2u8; 25]);
        labels.extend([3u8; 100]);
        let weights = ClassWeighting::SqrtMedianFrequency
            .weights(std::iter::once(labels.as_slice()))
            .unwrap();
        assert_eq!(weights, vec![0.5, 1.0, 2.0, 1.0, 0.0]);
        assert_eq!(
            ClassWeighting::None.weights(std::iter::once(labels.as_slice())),
            None
        );
    }
}
