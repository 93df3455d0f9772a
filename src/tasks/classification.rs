//! Classification of Fashion-MNIST (a preset: known files, checksums) or of any folder of
//! class folders (`convlab classify`): its data, training loss, evaluation, metrics and
//! figures, for the commands in [`crate::tasks`].

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{DataOf, Evaluation, Task, TaskError, TaskSource, unflipped};
use crate::data::batch::ClassificationBatcher;
use crate::data::fashion_mnist::{Checksums, FashionMnist};
use crate::data::image_folder::{self, FolderOptions};
use crate::data::sets::ClassificationSets;
use crate::data::split::{self, Fractions, Split};
use crate::data::{DataError, LabelledImages, Normalization};
use crate::engine::{DeviceKind, LossSpec, Model, StepBatch, Tta};
use crate::figures::FigureError;
use crate::metrics::Confusion;
use crate::metrics::classification::ClassificationReport;
use crate::models::{ClassifierKind, ModelKind};
use crate::run::config::{
    ClassificationConfig, ClassificationSettings, HyperParams, Recipe, RunConfig, TrainOptions,
    split_fractions,
};
use crate::run::records::{ClassificationEpoch, ClassificationTrain, ClassificationVal};
use crate::run::results::ClassificationMetrics;
use crate::run::schedule::Schedule;
use crate::run::{RunDir, RunError};
use crate::train::TrainStats;

const EVAL_BATCH: usize = 500;

/// The training recipe of each model where the command line is silent.
pub fn recipe(kind: ClassifierKind) -> Recipe {
    match kind {
        // Adam lr 1e-3: the write-up's 0.01 can kill the network (measured with seed 42 on the
        // full data: every ReLU dead within the first epoch, loss stuck at ln 10, 10% accuracy).
        ClassifierKind::Base | ClassifierKind::Wide => Recipe {
            epochs: 10,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            augment: None,
            label_smoothing: None,
            decoupled_decay: false,
            ema: None,
        },
        ClassifierKind::Own => Recipe {
            // 16 epochs fit the 60-minute budget on a 2-core CPU.
            epochs: 16,
            batch_size: 128,
            lr: 2e-3,
            weight_decay: 0.02,
            schedule: Schedule::Cosine,
            augment: Some(crate::data::augment::CropFlip { pad: 2, flip: true }),
            label_smoothing: Some(0.1),
            decoupled_decay: true,
            ema: None,
        },
        // `own`'s recipe; 20 epochs fit the 30-minute budget on a 2-core CPU.
        ClassifierKind::Res => Recipe {
            epochs: 20,
            ..recipe(ClassifierKind::Own)
        },
        // Four times `res`'s multiply-adds: 10 epochs took 30 min 48 s on a 2-core Zen 4
        // (`res`'s 20 epochs take about 19).
        ClassifierKind::Wres => Recipe {
            epochs: 10,
            ..recipe(ClassifierKind::Own)
        },
    }
}

/// The arg-max of `logits` and the negative log-softmax of class `label`.
fn argmax_and_nll(logits: &[f32], label: usize) -> (usize, f64) {
    let (mut best, mut max) = (0, f32::NEG_INFINITY);
    for (i, &v) in logits.iter().enumerate() {
        if v > max {
            best = i;
            max = v;
        }
    }
    let log_sum: f64 = logits
        .iter()
        .map(|&v| ((v - max) as f64).exp())
        .sum::<f64>()
        .ln();
    (best, log_sum - (logits[label] - max) as f64)
}

/// Where the images come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassificationSource {
    /// Fashion-MNIST's four IDX files, read with `checksums`.
    FashionMnist { checksums: Checksums },
    /// The user's class folders (`--data DIR`), resized to `size` x `size` when given.
    Folder { size: Option<usize> },
}

/// Classification of the images of `source`.
#[derive(Clone, Copy, Debug)]
pub struct Classification {
    pub source: ClassificationSource,
}

impl Classification {
    /// Fashion-MNIST's IDX files, read with `checksums`.
    pub fn fashion_mnist(checksums: Checksums) -> Self {
        Classification {
            source: ClassificationSource::FashionMnist { checksums },
        }
    }

    /// The user's class folders, resized to `size` x `size` when given.
    pub fn folder(size: Option<usize>) -> Self {
        Classification {
            source: ClassificationSource::Folder { size },
        }
    }

    /// The folder read as the run was trained: its image size and channels.
    fn folder_options(size: Option<usize>, config: Option<&ClassificationConfig>) -> FolderOptions {
        match config {
            Some(config) => {
                let [channels, height, width] = config.architecture.input;
                FolderOptions {
                    size: (height == width).then_some(height),
                    channels: Some(channels),
                }
            }
            None => FolderOptions {
                size,
                channels: None,
            },
        }
    }
}

impl Task for Classification {
    const SCORE_NAME: &'static str = "val_accuracy";
    const STRATIFIED: bool = true;
    type Settings = ClassificationSettings;
    type Samples = LabelledImages;
    type Train = ClassificationTrain;
    type Val = ClassificationVal;
    type Report = ClassificationReport;

    fn name(&self) -> &'static str {
        match self.source {
            ClassificationSource::FashionMnist { .. } => "fashion",
            ClassificationSource::Folder { .. } => "classify",
        }
    }

    fn source(&self) -> TaskSource {
        match self.source {
            ClassificationSource::FashionMnist { checksums } => TaskSource::Fashion {
                skip_checksums: checksums == Checksums::Skip,
            },
            ClassificationSource::Folder { size } => TaskSource::Classify { size },
        }
    }

    fn data_options(&self) -> String {
        match self.source {
            ClassificationSource::FashionMnist {
                checksums: Checksums::Skip,
            } => " --skip-checksums".into(),
            ClassificationSource::Folder { size: Some(size) } => format!(" --size {size}"),
            _ => String::new(),
        }
    }

    fn recipe(model: ClassifierKind) -> Recipe {
        recipe(model)
    }

    fn refuse_options(options: &TrainOptions) -> Result<(), RunError> {
        if options.class_weighting.is_some() {
            return Err(RunError::invalid(
                "--class-weighting",
                "weighs a segmenter's classes only; a classifier's loss counts every image the same",
            ));
        }
        if options.crop.is_some() {
            return Err(RunError::invalid(
                "--crop",
                "crops a segmenter's training photos only; a classifier's recipe pads and crops its own",
            ));
        }
        Ok(())
    }

    fn fresh_config(
        &self,
        model: ClassifierKind,
        params: HyperParams,
        _options: &TrainOptions,
        device: DeviceKind,
        sets: &ClassificationSets,
    ) -> Result<ClassificationConfig, TaskError> {
        if !params.flips().is_random() && !params.augment().is_some_and(|a| a.flip) {
            return Err(unflipped(model.name()).into());
        }
        let train = &sets.train;
        let fractions = split_fractions(sets.val.is_some(), sets.test.is_some());
        let min = ClassifierKind::MIN_SIDE;
        if train.height < min || train.width < min {
            return Err(DataError::Unsuitable {
                path: sets.origin.dir.clone(),
                reason: format!(
                    "images of {}x{} are too small for '{}' (at least {min}x{min}); pass --size N",
                    train.width,
                    train.height,
                    model.name()
                ),
            }
            .into());
        }
        let normalization = match self.source {
            ClassificationSource::FashionMnist { .. } => Normalization::FASHION_MNIST,
            ClassificationSource::Folder { .. } => {
                // The training part's statistics alone: validation and test stay unseen.
                let split = Self::split(train, sets.classes.len(), fractions, params.seed());
                Normalization::of_images(
                    split.train.iter().map(|&i| train.image(i)),
                    train.channels,
                    train.height * train.width,
                )
            }
        };
        let input = [train.channels, train.height, train.width];
        Ok(RunConfig {
            task: self.name().into(),
            model,
            architecture: model.for_data(input, sets.classes.len()),
            params,
            settings: ClassificationSettings {},
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
        config: Option<&ClassificationConfig>,
    ) -> Result<ClassificationSets, TaskError> {
        Ok(match self.source {
            ClassificationSource::FashionMnist { checksums } => ClassificationSets::fashion_mnist(
                FashionMnist::find_and_load(dir, checksums)?,
                checksums == Checksums::Verify,
            ),
            ClassificationSource::Folder { size } => {
                let dir = dir.ok_or(DataError::FolderRequired {
                    what: "a folder of class folders (DIR/<class>/*.png, or DIR/train/<class>/...)",
                })?;
                image_folder::load(dir, Self::folder_options(size, config))?.into()
            }
        })
    }

    fn mismatch(sets: &ClassificationSets, config: &ClassificationConfig) -> Option<String> {
        if sets.classes != config.classes {
            return Some(format!(
                "its classes are {:?}, the run's are {:?}",
                sets.classes, config.classes
            ));
        }
        let input = [sets.train.channels, sets.train.height, sets.train.width];
        (input != config.input()).then(|| {
            format!(
                "its images are {input:?} (channels, height, width), the run's network takes {:?}",
                config.input()
            )
        })
    }

    fn split(train: &LabelledImages, classes: usize, fractions: Fractions, seed: u64) -> Split {
        split::stratified(&train.labels, classes, fractions, seed)
    }

    type Batcher = ClassificationBatcher;

    fn batcher(config: &ClassificationConfig) -> ClassificationBatcher {
        ClassificationBatcher {
            normalization: config.normalization,
            augment: config.params.augment(),
            erasing: config.params.erasing(),
            flips: config.params.flips(),
            seed: config.params.seed(),
        }
    }

    fn loss(config: &ClassificationConfig, _data: &DataOf<Self>) -> LossSpec {
        LossSpec::Image {
            smoothing: config.params.label_smoothing(),
        }
    }

    fn batch(
        batcher: &ClassificationBatcher,
        train: &LabelledImages,
        indices: &[usize],
        epoch: usize,
        rng: &mut ChaCha8Rng,
    ) -> StepBatch {
        let batch = batcher.batch(train, indices, epoch, rng);
        StepBatch {
            images: batch.images,
            shape: batch.shape,
            targets: batch.labels,
        }
    }

    fn score(val: &ClassificationVal) -> f64 {
        val.accuracy
    }

    fn train_scores(train: TrainStats) -> ClassificationTrain {
        ClassificationTrain {
            accuracy: train.accuracy,
        }
    }

    fn val_scores(report: &ClassificationReport) -> (f64, ClassificationVal) {
        (
            report.loss,
            ClassificationVal {
                accuracy: report.accuracy,
            },
        )
    }

    /// Evaluates a model (no gradient tracking on either engine): the report of its predictions
    /// (accuracy, per class, confusion, the mean cross-entropy without smoothing) and each
    /// image's predicted class.
    fn evaluate(
        model: &Model,
        set: &LabelledImages,
        config: &ClassificationConfig,
        tta: Tta,
    ) -> Evaluation<ClassificationReport> {
        let batcher = ClassificationBatcher::plain(config.normalization);
        let classes = config.classes.len();
        let mut confusion = Confusion::new(classes);
        let mut predictions = Vec::with_capacity(set.len());
        let mut loss_sum = 0.0f64;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let indices: Vec<usize> = (0..set.len()).collect();
        for chunk in indices.chunks(EVAL_BATCH) {
            let batch = batcher.batch(set, chunk, 1, &mut rng);
            let (values, _) = model.forward_with(batch.images, batch.shape, tta);
            for (row, &label) in values.chunks(classes).zip(&batch.labels) {
                let (predicted, nll) = argmax_and_nll(row, label as usize);
                confusion.add(label as usize, predicted);
                predictions.push(predicted as u8);
                loss_sum += nll;
            }
        }
        Evaluation {
            report: ClassificationReport::new(&confusion, loss_sum / set.len().max(1) as f64),
            predictions,
        }
    }

    fn draw_figures(
        run: &RunDir,
        history: &[ClassificationEpoch],
        metrics: &ClassificationMetrics,
        model: &Model,
        config: &ClassificationConfig,
        data: &DataOf<Self>,
        test_predictions: &[u8],
    ) -> Result<(), FigureError> {
        let filters = model.first_conv_weights();
        crate::figures::classification::draw_all(
            &run.figures(),
            history,
            metrics,
            filters.as_deref(),
            config.architecture.first_conv(),
            &data.test,
            test_predictions,
        )
    }
}
