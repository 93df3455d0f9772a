//! Segmentation of Mini Facade (a preset) or of any folder of photos and masks
//! (`convlab segment`): its data, class-weighted pixel loss (ignored pixels left out),
//! evaluation over all labelled pixels, metrics and figures, for the commands in
//! [`crate::tasks`]; and the softmax maps that `predict` turns into masks.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{DataOf, Evaluation, Task, TaskError, TaskSource, unflipped};
use crate::data::augment::FlipScaleCrop;
use crate::data::batch::SegmentationBatcher;
use crate::data::facade::{MiniFacade, SIDE};
use crate::data::mask_folder;
use crate::data::sets::SegmentationSets;
use crate::data::split::{self, Fractions, Split};
use crate::data::{ClassSpec, DataError, IGNORE_LABEL, Normalization, SegmentedImages};
use crate::engine::softmax_channels;
use crate::engine::{DeviceKind, LossSpec, Model, StepBatch, Tta};
use crate::figures::FigureError;
use crate::metrics::Confusion;
use crate::metrics::segmentation::{
    SegmentationReport, average_precision_of_keys, iou, mean_defined, ranking_key,
};
use crate::models::{ModelKind, SegmenterKind};
use crate::progress;
use crate::run::config::{
    ClassWeighting, HyperParams, Recipe, RunConfig, SegmentationConfig, SegmentationSettings,
    TrainOptions, split_fractions,
};
use crate::run::records::{SegmentationEpoch, SegmentationTrain, SegmentationVal};
use crate::run::results::SegmentationMetrics;
use crate::run::schedule::Schedule;
use crate::run::{RunDir, RunError};
use crate::train::TrainStats;

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
            ema: None,
        },
        // Cheap enough per epoch to train long within the CPU budget: a larger rate with a
        // warm-up and cosine decay, AdamW as usual for U-Nets.
        SegmenterKind::Unet => Recipe {
            epochs: 60,
            batch_size: 8,
            lr: 2e-3,
            weight_decay: 1e-4,
            schedule: Schedule::Cosine,
            augment: None,
            label_smoothing: None,
            decoupled_decay: true,
            ema: None,
        },
    }
}

fn class_weighting(kind: SegmenterKind) -> ClassWeighting {
    match kind {
        SegmenterKind::Fcn => ClassWeighting::None,
        SegmenterKind::Unet => ClassWeighting::SqrtMedianFrequency,
    }
}

fn augmentation(kind: SegmenterKind) -> Option<FlipScaleCrop> {
    Some(FlipScaleCrop {
        flip: true,
        max_scale: 1.5,
        color_jitter: match kind {
            SegmenterKind::Fcn => 0.0,
            SegmenterKind::Unet => 0.2,
        },
        crop: None,
    })
}

/// Softmax probabilities `[N, classes, side, side]` (flattened) of `photos`
/// `[N, 3, side, side]`, averaged over the views of `tta` before the softmax.
pub fn probabilities(
    model: &Model,
    photos: Vec<f32>,
    count: usize,
    side: usize,
    tta: Tta,
) -> Vec<f32> {
    let (mut probs, shape) = model.forward_with(photos, [count, 3, side, side], tta);
    softmax_channels(&mut probs, shape[1], shape[2] * shape[3]);
    probs
}

/// Each pixel's most probable class (the first on ties, as PyTorch's `argmax`) from one
/// image's probabilities `[classes, plane]`.
pub fn argmax_classes(image_probs: &[f32], classes: usize) -> Vec<u8> {
    let plane = image_probs.len() / classes;
    (0..plane)
        .map(|p| {
            let mut best = 0;
            for c in 1..classes {
                if image_probs[c * plane + p] > image_probs[best * plane + p] {
                    best = c;
                }
            }
            best as u8
        })
        .collect()
}

/// Where the photos and masks come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentationSource {
    /// Mini Facade's `train/` and `test_dev/` folders.
    MiniFacade,
    /// The user's folder (`--data DIR`: classes.json, train/images, train/masks, ...), photos
    /// resized to `size` x `size` (a run's own side when evaluating or resuming it; 256 when
    /// neither says).
    Folder { size: Option<usize> },
}

/// Segmentation of the photos of `source`.
#[derive(Clone, Copy, Debug)]
pub struct Segmentation {
    pub source: SegmentationSource,
}

impl Segmentation {
    /// Mini Facade's `train/` and `test_dev/` folders.
    pub fn mini_facade() -> Self {
        Segmentation {
            source: SegmentationSource::MiniFacade,
        }
    }

    /// The user's photos and masks, resized to `size` x `size` when given.
    pub fn folder(size: Option<usize>) -> Self {
        Segmentation {
            source: SegmentationSource::Folder { size },
        }
    }
}

impl Task for Segmentation {
    const SCORE_NAME: &'static str = "val_map";
    const STRATIFIED: bool = false;
    type Settings = SegmentationSettings;
    type Samples = SegmentedImages;
    type Train = SegmentationTrain;
    type Val = SegmentationVal;
    type Report = SegmentationReport;

    fn name(&self) -> &'static str {
        match self.source {
            SegmentationSource::MiniFacade => "facade",
            SegmentationSource::Folder { .. } => "segment",
        }
    }

    fn source(&self) -> TaskSource {
        match self.source {
            SegmentationSource::MiniFacade => TaskSource::Facade,
            SegmentationSource::Folder { size } => TaskSource::Segment { size },
        }
    }

    fn data_options(&self) -> String {
        match self.source {
            SegmentationSource::Folder { size: Some(size) } => format!(" --size {size}"),
            _ => String::new(),
        }
    }

    fn recipe(model: SegmenterKind) -> Recipe {
        recipe(model)
    }

    fn refuse_options(options: &TrainOptions) -> Result<(), RunError> {
        if options.random_erasing.is_some() {
            return Err(RunError::invalid(
                "--random-erasing",
                "erases classifiers' training images only; a segmenter's augmentation is its recipe's",
            ));
        }
        if options.label_smoothing.is_some() {
            return Err(RunError::invalid(
                "--label-smoothing",
                "smooths classifiers' labels only; a segmenter's loss weights its classes instead",
            ));
        }
        Ok(())
    }

    fn refuse_on_resume(
        options: &TrainOptions,
        saved: &SegmentationConfig,
    ) -> Result<(), RunError> {
        let kept = |flag: &str, given: String, saved: String| {
            RunError::invalid(
                flag,
                format!(
                    "{given} differs from the run's config.json ({saved}); a resumed run keeps its configuration"
                ),
            )
        };
        let weighting = saved.settings.class_weighting;
        if let Some(given) = options.class_weighting.filter(|&given| given != weighting) {
            let (given, saved) = (given.name().to_string(), weighting.name().to_string());
            return Err(kept("--class-weighting", given, saved));
        }
        let crop = saved.settings.augment.and_then(|a| a.crop);
        if let Some(given) = options.crop.filter(|&given| Some(given) != crop) {
            let saved = crop.map_or("whole photos".into(), |c| format!("crops of {c}"));
            return Err(kept("--crop", given.to_string(), saved));
        }
        Ok(())
    }

    fn fresh_config(
        &self,
        model: SegmenterKind,
        params: HyperParams,
        options: &TrainOptions,
        device: DeviceKind,
        sets: &SegmentationSets,
    ) -> Result<SegmentationConfig, TaskError> {
        let side = sets.train.side;
        let augment = augmentation(model).map(|a| FlipScaleCrop {
            crop: options.crop,
            ..a
        });
        if !params.flips().is_random() && !augment.is_some_and(|a| a.flip) {
            return Err(unflipped(model.name()).into());
        }
        let multiple = model.side_multiple();
        if let Some(crop) = options.crop
            && (crop == 0 || !crop.is_multiple_of(multiple) || crop > side)
        {
            return Err(RunError::invalid(
                "--crop",
                format!(
                    "must be a multiple of {multiple} ('{}' halves the photos {} times) and at most the photos' side ({side}), got {crop}",
                    model.name(),
                    multiple.trailing_zeros()
                ),
            )
            .into());
        }
        if !side.is_multiple_of(multiple) {
            return Err(DataError::Unsuitable {
                path: sets.origin.dir.clone(),
                reason: format!(
                    "'{}' needs photos whose side is a multiple of {multiple}, these are {side}x{side}: pass --size (e.g. {})",
                    model.name(),
                    (side / multiple).max(1) * multiple
                ),
            }
            .into());
        }
        let fractions = split_fractions(sets.val.is_some(), sets.test.is_some());
        let normalization = match self.source {
            SegmentationSource::MiniFacade => Normalization::FACADE,
            SegmentationSource::Folder { .. } => {
                // The training part's statistics alone: validation and test stay unseen.
                let train = &sets.train;
                let split = Self::split(train, sets.classes.len(), fractions, params.seed());
                Normalization::of_images(
                    split.train.iter().map(|&i| train.image(i)),
                    3,
                    train.plane(),
                )
            }
        };
        Ok(RunConfig {
            task: self.name().into(),
            model,
            architecture: model.for_data(side, sets.classes.len()),
            params,
            settings: SegmentationSettings {
                augment,
                class_weighting: options
                    .class_weighting
                    .unwrap_or_else(|| class_weighting(model)),
            },
            classes: sets.classes.clone(),
            val_fraction: fractions.val,
            test_fraction: fractions.test,
            normalization,
            device,
            data: None,
            ranks: None,
            precision: Default::default(),
        })
    }

    fn load(
        &self,
        dir: Option<&Path>,
        config: Option<&SegmentationConfig>,
    ) -> Result<SegmentationSets, TaskError> {
        Ok(match self.source {
            SegmentationSource::MiniFacade => {
                SegmentationSets::mini_facade(MiniFacade::find_and_load(dir)?)
            }
            SegmentationSource::Folder { size } => {
                let dir = dir.ok_or(DataError::FolderRequired {
                    what: "a folder with classes.json, train/images/ and train/masks/",
                })?;
                let side = config
                    .map(SegmentationConfig::side)
                    .or(size)
                    .unwrap_or(SIDE);
                mask_folder::load(dir, side)?.into()
            }
        })
    }

    fn mismatch(sets: &SegmentationSets, config: &SegmentationConfig) -> Option<String> {
        if sets.classes != config.classes {
            let names = |classes: &[ClassSpec]| {
                classes
                    .iter()
                    .map(|c| format!("{} {}", c.name, c.hex()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Some(format!(
                "its classes are [{}], the run's are [{}]",
                names(&sets.classes),
                names(&config.classes)
            ));
        }
        (sets.train.side != config.side()).then(|| {
            format!(
                "its photos are {0}x{0}, the run's network takes {1}x{1}",
                sets.train.side,
                config.side()
            )
        })
    }

    fn split(train: &SegmentedImages, _classes: usize, fractions: Fractions, seed: u64) -> Split {
        split::random(train.len(), fractions, seed)
    }

    type Batcher = SegmentationBatcher;

    fn batcher(config: &SegmentationConfig) -> SegmentationBatcher {
        SegmentationBatcher {
            normalization: config.normalization,
            augment: config.settings.augment,
            flips: config.params.flips(),
            seed: config.params.seed(),
        }
    }

    /// The per-pixel cross-entropy, its classes weighed as the run says (the weights shown).
    fn loss(config: &SegmentationConfig, data: &DataOf<Self>) -> LossSpec {
        let weights = config.settings.class_weighting.weights(
            config.classes.len(),
            data.train_indices.iter().map(|&i| data.sets.train.label(i)),
        );
        if let Some(weights) = &weights {
            let shown: Vec<String> = config
                .classes
                .iter()
                .zip(weights)
                .map(|(class, w)| format!("{} {w:.2}", class.name))
                .collect();
            progress::notice(&format!("class weights: {}", shown.join(", ")));
        }
        LossSpec::Pixel { weights }
    }

    fn batch(
        batcher: &SegmentationBatcher,
        train: &SegmentedImages,
        indices: &[usize],
        epoch: usize,
        rng: &mut ChaCha8Rng,
    ) -> StepBatch {
        let batch = batcher.batch(train, indices, epoch, rng);
        let side = batch.side;
        StepBatch {
            images: batch.images,
            shape: [batch.count, 3, side, side],
            targets: batch.labels,
        }
    }

    fn score(val: &SegmentationVal) -> f64 {
        val.map
    }

    fn train_scores(train: TrainStats) -> SegmentationTrain {
        SegmentationTrain {
            pixel_accuracy: train.accuracy,
        }
    }

    fn val_scores(report: &SegmentationReport) -> (f64, SegmentationVal) {
        (
            report.loss,
            SegmentationVal {
                map: report.map,
                miou: report.miou,
                pixel_accuracy: report.pixel_accuracy,
            },
        )
    }

    /// Evaluates over all labelled pixels of `set` (those labelled [`IGNORE_LABEL`] count in no
    /// metric): the report, and each image's predicted label map.
    fn evaluate(
        model: &Model,
        set: &SegmentedImages,
        config: &SegmentationConfig,
        tta: Tta,
    ) -> Evaluation<SegmentationReport> {
        let batcher = SegmentationBatcher::plain(config.normalization);
        let classes = config.classes.len();
        let plane = set.plane();
        let labelled = set.labels.iter().filter(|&&l| l != IGNORE_LABEL).count();
        let mut scores: Vec<Vec<f32>> =
            (0..classes).map(|_| Vec::with_capacity(labelled)).collect();
        let mut predictions = Vec::with_capacity(set.len() * plane);
        let mut confusion = Confusion::new(classes);
        let mut loss_sum = 0.0f64;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let indices: Vec<usize> = (0..set.len()).collect();
        for chunk in indices.chunks(EVAL_BATCH) {
            let batch = batcher.batch(set, chunk, 1, &mut rng);
            let probs = probabilities(model, batch.images, batch.count, set.side, tta);
            for (b, image_probs) in probs.chunks(classes * plane).enumerate() {
                let truths = &batch.labels[b * plane..(b + 1) * plane];
                for (c, class_scores) in scores.iter_mut().enumerate() {
                    let class_probs = &image_probs[c * plane..(c + 1) * plane];
                    class_scores.extend(
                        class_probs
                            .iter()
                            .zip(truths)
                            .filter(|&(_, &t)| t != IGNORE_LABEL)
                            .map(|(&p, _)| p),
                    );
                }
                let predicted = argmax_classes(image_probs, classes);
                for (p, (&best, &truth)) in predicted.iter().zip(truths).enumerate() {
                    if truth == IGNORE_LABEL {
                        continue;
                    }
                    confusion.add(truth as usize, best as usize);
                    loss_sum -= (image_probs[truth as usize * plane + p].max(1e-30) as f64).ln();
                }
                predictions.extend_from_slice(&predicted);
            }
        }
        let truths: Vec<u8> = set
            .labels
            .iter()
            .copied()
            .filter(|&l| l != IGNORE_LABEL)
            .collect();
        let ap: Vec<f64> = scores
            .into_iter()
            .enumerate()
            .map(|(c, class_scores)| {
                let mut keys: Vec<u64> = class_scores
                    .into_iter()
                    .zip(&truths)
                    .map(|(score, &truth)| ranking_key(score, truth as usize == c))
                    .collect();
                average_precision_of_keys(&mut keys)
            })
            .collect();
        let ious = iou(&confusion);
        let report = SegmentationReport {
            map: mean_defined(&ap),
            ap,
            miou: mean_defined(&ious),
            iou: ious,
            pixel_accuracy: confusion.accuracy(),
            loss: loss_sum / labelled.max(1) as f64,
            confusion: confusion.counts,
        };
        Evaluation {
            report,
            predictions,
        }
    }

    fn draw_figures(
        run: &RunDir,
        history: &[SegmentationEpoch],
        metrics: &SegmentationMetrics,
        _model: &Model,
        config: &SegmentationConfig,
        data: &DataOf<Self>,
        test_predictions: &[u8],
    ) -> Result<(), FigureError> {
        crate::figures::segmentation::draw_all(
            &run.figures(),
            history,
            metrics,
            &data.test,
            test_predictions,
            &config.classes,
        )
    }
}
