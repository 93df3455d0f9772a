//! Segmentation (today: Mini Facade): its data, class-weighted pixel loss, evaluation over all
//! pixels, metrics and figures, for the commands in [`crate::tasks`]; and the softmax maps that
//! `predict` turns into masks.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{Task, TaskError};
use crate::data::augment::FlipScaleCrop;
use crate::data::batch::SegmentationBatcher;
use crate::data::facade::{CLASS_NAMES, MiniFacade, NUM_CLASSES, SIDE};
use crate::data::split::{self, Split};
use crate::data::{DataError, Normalization, SegmentationSet};
use crate::engine::cpu::loss::softmax_channels;
use crate::engine::{Compute, DeviceKind, LossSpec, Model, StepBatch};
use crate::figures::FigureError;
use crate::metrics::Confusion;
use crate::metrics::segmentation::{
    SegmentationReport, average_precision_of_pairs, iou, mean_defined,
};
use crate::models::SegmenterKind;
use crate::run::RunDir;
use crate::run::config::{ClassWeighting, HyperParams, Recipe, SegmentationConfig, VAL_FRACTION};
use crate::run::records::{EpochTiming, SegmentationEpoch};
use crate::run::results::SegmentationMetrics;
use crate::run::schedule::Schedule;
use crate::train::search::best_of;
use crate::train::{TrainError, TrainStats, TrainingTask, fit};

const EVAL_BATCH: usize = 4;

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

pub struct SegmentationData {
    pub sets: MiniFacade,
    pub split: Split,
    pub train_indices: Vec<usize>,
    pub val: SegmentationSet,
}

impl SegmentationData {
    pub fn prepare(
        sets: MiniFacade,
        params: &HyperParams,
        val_fraction: f64,
    ) -> Result<Self, DataError> {
        let split = split::random(sets.train.len(), val_fraction, params.seed());
        let train_indices = split::limited(&split.train, params.limit())?;
        let val = sets.train.select(&split.val);
        Ok(SegmentationData {
            sets,
            split,
            train_indices,
            val,
        })
    }
}

struct SegmentationTraining<'a> {
    config: &'a SegmentationConfig,
    data: &'a SegmentationData,
    batcher: SegmentationBatcher,
    loss: LossSpec,
}

impl TrainingTask for SegmentationTraining<'_> {
    type Validation = SegmentationReport;
    type Record = SegmentationEpoch;

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
    ) -> SegmentationEpoch {
        SegmentationEpoch {
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

    fn describe(&self, r: &SegmentationEpoch) -> String {
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
    set: &SegmentationSet,
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

/// Segmentation on Mini Facade.
#[derive(Clone, Copy, Debug)]
pub struct Segmentation;

impl Task for Segmentation {
    const NAME: &'static str = "facade";
    const SCORE_NAME: &'static str = "val_map";
    type Model = SegmenterKind;
    type Config = SegmentationConfig;
    type Sets = MiniFacade;
    type Data = SegmentationData;
    type Split = SegmentationSet;
    type Record = SegmentationEpoch;
    /// The report and each image's predicted label map.
    type Evaluation = (SegmentationReport, Vec<u8>);
    type Metrics = SegmentationMetrics;

    fn model_name(model: SegmenterKind) -> &'static str {
        model.name()
    }

    fn recipe(model: SegmenterKind) -> Recipe {
        recipe(model)
    }

    fn fresh_config(
        model: SegmenterKind,
        params: HyperParams,
        device: DeviceKind,
    ) -> SegmentationConfig {
        SegmentationConfig {
            task: Self::NAME.into(),
            model,
            architecture: model.spec(),
            params,
            augment: augmentation(model),
            class_weighting: class_weighting(model),
            val_fraction: VAL_FRACTION,
            normalization: Normalization::FACADE,
            device,
            data: None,
        }
    }

    fn load(&self, dir: Option<&Path>) -> Result<MiniFacade, TaskError> {
        Ok(MiniFacade::find_and_load(dir)?)
    }

    fn prepare(
        sets: MiniFacade,
        config: &SegmentationConfig,
    ) -> Result<SegmentationData, TaskError> {
        Ok(SegmentationData::prepare(
            sets,
            &config.params,
            config.val_fraction,
        )?)
    }

    fn train(
        config: &SegmentationConfig,
        data: &SegmentationData,
        run: &RunDir,
        compute: &Compute,
        resume: bool,
        stop_after: Option<usize>,
    ) -> Result<Vec<SegmentationEpoch>, TrainError> {
        let task = SegmentationTraining {
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
        fit(&task, config, run, compute, resume, stop_after)
    }

    fn best_score(history: &[SegmentationEpoch]) -> (f64, usize) {
        best_of(history.iter().map(|r| (r.val_map, r.epoch)))
    }

    fn validation(data: &SegmentationData) -> &SegmentationSet {
        &data.val
    }

    fn test(data: &SegmentationData) -> &SegmentationSet {
        &data.sets.test
    }

    fn evaluate(
        model: &Model,
        split: &SegmentationSet,
        config: &SegmentationConfig,
    ) -> (SegmentationReport, Vec<u8>) {
        evaluate(model, split, config.normalization)
    }

    fn metrics(
        config: &SegmentationConfig,
        checkpoint: String,
        epoch: usize,
        val: &(SegmentationReport, Vec<u8>),
        test: &(SegmentationReport, Vec<u8>),
    ) -> SegmentationMetrics {
        SegmentationMetrics {
            model: config.model,
            checkpoint,
            epoch,
            class_names: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
            val: val.0.clone(),
            test: test.0.clone(),
        }
    }

    fn draw_figures(
        run: &RunDir,
        history: &[SegmentationEpoch],
        metrics: &SegmentationMetrics,
        _model: &Model,
        _config: &SegmentationConfig,
        data: &SegmentationData,
        test: &(SegmentationReport, Vec<u8>),
    ) -> Result<(), FigureError> {
        crate::figures::segmentation::draw_all(
            &run.figures(),
            history,
            metrics,
            &data.sets.test,
            &test.1,
        )
    }
}
