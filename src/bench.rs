//! `convlab bench`: how fast one network trains and infers on this machine, as one JSON line
//! that `bench/compare.py` sets beside PyTorch's (`bench/reference/`), measured the same way:
//! - `steps`: median milliseconds per training step (forward, loss, backward, Adam) and per
//!   inference batch on a fixed random batch, after warm-up;
//! - `epoch`: one epoch from the files on disk through convlab's own training loop (loading,
//!   batching, augmentation, validation, checkpoint), as `convlab ... train` runs it;
//! - `time-to-90`: wall time until validation accuracy first reaches the target (Fashion-MNIST,
//!   Adam lr 1e-3, batch 64, validation every `--eval-every` steps);
//! - `peak`: the machine's fp32 peak (FMAs on all threads, no network), which `steps` also
//!   measures to give the matrix products' share of it.
//!
//! Each measurement runs in its own process, so its peak memory (RSS) is its own.

use std::path::PathBuf;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::batch::ClassificationBatcher;
use crate::data::facade::NUM_CLASSES as FACADE_CLASSES;
use crate::data::fashion_mnist::{Checksums, NUM_CLASSES};
use crate::distributed::World;
use crate::engine::{
    Compute, EngineKind, LossSpec, ProductWork, StepBatch, Trainer, Tta, VectorIsa,
    bf16_kernels_pay, count_products, counted_products, measure_bf16_peak, measure_peak,
};
use crate::models::{ClassifierKind, ModelKind, ModelSpec, SegmenterKind};
use crate::progress;
use crate::run::config::{Recipe, TrainOptions};
use crate::run::records::EpochTiming;
use crate::tasks::{self, Classification, ModelOf, Segmentation, Task, TaskError};
use crate::train::TrainRequest;
use crate::train::{Clock, Launch};

/// What `bench` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    Steps,
    Epoch,
    #[serde(rename = "time-to-90")]
    TimeTo90,
    Peak,
}

impl Measure {
    pub const ALL: [Measure; 4] = [
        Measure::Steps,
        Measure::Epoch,
        Measure::TimeTo90,
        Measure::Peak,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Measure::Steps => "steps",
            Measure::Epoch => "epoch",
            Measure::TimeTo90 => "time-to-90",
            Measure::Peak => "peak",
        }
    }
}

/// What can stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("{flag}: {reason}")]
    InvalidOption { flag: &'static str, reason: String },
    /// The network stopped learning: a failure of the run, not of the user's input.
    #[error("training diverged at step {step}: loss is {loss}")]
    Diverged { step: usize, loss: f32 },
}

impl BenchError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            BenchError::Task(e) => e.is_bad_input(),
            BenchError::InvalidOption { .. } => true,
            BenchError::Diverged { .. } => false,
        }
    }
}

/// A benchmark as asked for (`convlab bench`).
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The network: base, wide, own, res, wres (Fashion-MNIST) or fcn, unet (Mini Facade); none
    /// for `peak`.
    pub network: Option<String>,
    pub measure: Measure,
    /// Timed steps (after the warm-up).
    pub steps: usize,
    pub warmup: usize,
    /// Images per step (default: 64 for Fashion-MNIST networks, 8 for Mini Facade ones).
    pub batch_size: Option<usize>,
    /// time-to-90: the validation accuracy to reach.
    pub target: f64,
    /// time-to-90: optimiser steps between validations.
    pub eval_every: usize,
    /// time-to-90: give up after this many epochs.
    pub max_epochs: usize,
    pub data: Option<PathBuf>,
    pub compute: Compute,
}

/// The networks `bench` knows: classifiers take 1x28x28 images, segmenters 3x256x256 photos.
#[derive(Clone, Copy, Debug)]
enum Network {
    Classifier(ClassifierKind),
    Segmenter(SegmenterKind),
}

impl Network {
    fn parse(name: &str) -> Result<Self, BenchError> {
        let lower = name.to_ascii_lowercase();
        if let Some(kind) = ClassifierKind::from_name(&lower) {
            return Ok(Network::Classifier(kind));
        }
        if let Some(kind) = SegmenterKind::from_name(&lower) {
            return Ok(Network::Segmenter(kind));
        }
        Err(BenchError::InvalidOption {
            flag: "--network",
            reason: format!(
                "unknown network '{name}' ({})",
                (ClassifierKind::ALL.iter().map(|k| k.name()))
                    .chain(SegmenterKind::ALL.iter().map(|k| k.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    fn spec(self) -> ModelSpec {
        match self {
            Network::Classifier(k) => k.spec(),
            Network::Segmenter(k) => k.spec(),
        }
    }

    fn recipe(self) -> Recipe {
        match self {
            Network::Classifier(k) => Classification::recipe(k),
            Network::Segmenter(k) => Segmentation::recipe(k),
        }
    }

    fn default_batch(self) -> usize {
        match self {
            Network::Classifier(_) => 64,
            Network::Segmenter(_) => 8,
        }
    }
}

/// One measurement, printed as a JSON line.
#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub framework: &'static str,
    /// convlab's engine: cpu (its own) or burn.
    pub engine: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    pub measure: Measure,
    pub device: String,
    pub threads: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Trainable parameters (the reference must have as many).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<usize>,
    /// steps, peak: the fp32 peak of all threads (GFLOP/s) and the instructions that reach it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_gflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isa: Option<VectorIsa>,
    /// steps, peak: the bf16 peak of all threads (GFLOP/s) where the CPU has AVX512-BF16.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_bf16_gflops: Option<f64>,
    /// steps, peak: whether `--precision bf16` runs its convolutions on the bf16 kernels here
    /// (where they outrun fp32's), else on fp32's kernels with rounded operands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bf16_kernels: Option<bool>,
    /// The products' precision of a CPU-engine measurement (absent for fp32).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<&'static str>,
    /// steps (CPU engine): the training step's matrix products, their GFLOP/s over the time
    /// they held the threads, and that time per timed step as a share of the median step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub products_gflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub products_share_of_step: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_step_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infer_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_images_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infer_images_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch_s: Option<f64>,
    /// epoch: the training loop's own split of the epoch (steps, waiting for data, validation,
    /// saving), from the run's metrics.jsonl.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch_timing: Option<EpochTiming>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_to_target: Option<f64>,
    /// (seconds, validation accuracy) at each validation of `time-to-90`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace: Trace,
    pub peak_rss_mib: Option<f64>,
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        0.5 * (values[n / 2 - 1] + values[n / 2])
    }
}

/// Rounds of FMAs per thread for the peak: about a tenth of a second on the machines seen.
const PEAK_ROUNDS: usize = 20_000_000;

/// `convlab bench`: runs the measurement (the CLI prints it as one JSON line).
pub fn bench_command(args: &BenchOptions) -> Result<BenchResult, BenchError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut result = BenchResult {
        framework: "convlab",
        engine: args.compute.engine.name(),
        network: args.network.clone(),
        measure: args.measure,
        device: args.compute.device.name().into(),
        threads,
        batch_size: None,
        params: None,
        peak_gflops: None,
        isa: None,
        peak_bf16_gflops: None,
        bf16_kernels: None,
        precision: (!args.compute.precision.is_fp32()).then(|| args.compute.precision.name()),
        products_gflops: None,
        products_share_of_step: None,
        train_step_ms: None,
        infer_ms: None,
        train_images_per_s: None,
        infer_images_per_s: None,
        epoch_s: None,
        epoch_timing: None,
        seconds_to_target: None,
        trace: Vec::new(),
        peak_rss_mib: None,
    };
    if matches!(args.measure, Measure::Steps | Measure::Peak) {
        let (gflops, isa) = measure_peak(threads, PEAK_ROUNDS, 3);
        result.peak_gflops = Some(gflops);
        result.isa = Some(isa);
        result.peak_bf16_gflops = measure_bf16_peak(threads, PEAK_ROUNDS, 3);
        result.bf16_kernels = Some(bf16_kernels_pay());
    }
    let Some(name) = &args.network else {
        if args.measure == Measure::Peak {
            return Ok(result);
        }
        return Err(BenchError::InvalidOption {
            flag: "--network",
            reason: format!("--measure {} needs a network", args.measure.name()),
        });
    };
    let network = Network::parse(name)?;
    let batch_size = args.batch_size.unwrap_or(network.default_batch());
    if batch_size == 0 || args.steps == 0 || args.eval_every == 0 {
        return Err(BenchError::InvalidOption {
            flag: "--batch-size/--steps/--eval-every",
            reason: "must be at least 1".into(),
        });
    }
    let compute = args.compute;
    result.batch_size = Some(batch_size);
    result.params = Some(network.spec().num_params());
    match args.measure {
        Measure::Peak => {}
        Measure::Steps => {
            let (train, infer, products) = time_steps(network, batch_size, args, &compute)?;
            if compute.engine == EngineKind::Cpu && products.flops > 0.0 {
                let held = products.thread_seconds / threads as f64;
                result.products_gflops = Some(products.flops / held / 1e9);
                result.products_share_of_step = Some(held / (train * 1e-3 * args.steps as f64));
            }
            result.train_step_ms = Some(train);
            result.infer_ms = Some(infer);
            result.train_images_per_s = Some(batch_size as f64 / train * 1e3);
            result.infer_images_per_s = Some(batch_size as f64 / infer * 1e3);
        }
        Measure::Epoch => {
            let (seconds, timing) = time_epoch(network, batch_size, args, &compute)?;
            result.epoch_s = Some(seconds);
            result.epoch_timing = timing;
        }
        Measure::TimeTo90 => {
            let (seconds, trace) = time_to_accuracy(network, batch_size, args, &compute)?;
            result.seconds_to_target = seconds;
            result.trace = trace;
        }
    }
    result.peak_rss_mib = crate::process::peak_rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0));
    Ok(result)
}

/// Median ms of a training step and of an inference batch on a fixed random batch, and the
/// work of the matrix products over the timed training steps.
fn time_steps(
    network: Network,
    batch: usize,
    args: &BenchOptions,
    compute: &Compute,
) -> Result<(f64, f64, ProductWork), BenchError> {
    let spec = network.spec();
    let [c, h, w] = spec.input;
    let shape = [batch, c, h, w];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let images: Vec<f32> = (0..batch * c * h * w)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    // Adam lr 1e-3 without weight decay, as the PyTorch reference.
    let params = TrainOptions {
        lr: Some(1e-3),
        weight_decay: Some(0.0),
        ..Default::default()
    }
    .check(&network.recipe())
    .expect("valid benchmark settings");
    let mut trainer = Trainer::new(&spec, &params.optimizer(), &params.init(), compute)
        .map_err(TaskError::from)?;
    let (loss, targets) = match network {
        Network::Classifier(_) => (
            LossSpec::Image { smoothing: None },
            (0..batch)
                .map(|_| rng.random_range(0..NUM_CLASSES as u8))
                .collect::<Vec<u8>>(),
        ),
        Network::Segmenter(_) => (
            LossSpec::Pixel { weights: None },
            (0..batch * h * w)
                .map(|_| rng.random_range(0..FACADE_CLASSES as u8))
                .collect(),
        ),
    };
    let mut train_ms = Vec::with_capacity(args.steps);
    for i in 0..args.warmup + args.steps {
        let step_batch = StepBatch {
            images: images.clone(),
            shape,
            targets: targets.clone(),
        };
        if i == args.warmup {
            count_products(true);
        }
        let start = Instant::now();
        trainer
            .step(step_batch, &loss, params.lr(), i as u64)
            .expect("random batches keep a finite loss");
        if i >= args.warmup {
            train_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let products = counted_products();
    count_products(false);
    let model = trainer.model();
    let mut infer_ms = Vec::with_capacity(args.steps);
    for i in 0..args.warmup + args.steps {
        let input = images.clone();
        let start = Instant::now();
        std::hint::black_box(model.forward(input, shape));
        if i >= args.warmup {
            infer_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok((median(&mut train_ms), median(&mut infer_ms), products))
}

/// Seconds for one epoch from the files on disk, through the same path as `train`, and the
/// loop's own split of it.
fn time_epoch(
    network: Network,
    batch: usize,
    args: &BenchOptions,
    compute: &Compute,
) -> Result<(f64, Option<EpochTiming>), BenchError> {
    let out = std::env::temp_dir().join(format!("convlab-bench-{}", std::process::id()));
    let request = TrainRequest {
        options: TrainOptions {
            epochs: Some(1),
            batch_size: Some(batch),
            ..Default::default()
        },
        resume: false,
        out: out.clone(),
        data: args.data.clone(),
        compute: *compute,
        world: World::single(),
        clock: Clock::wall(),
    };
    let start = Instant::now();
    let result = match network {
        Network::Classifier(kind) => one_epoch(
            &Classification::fashion_mnist(Checksums::Verify),
            kind,
            &request,
        ),
        Network::Segmenter(kind) => one_epoch(&Segmentation::mini_facade(), kind, &request),
    };
    let seconds = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&out);
    Ok(result.map(|timing| (seconds, timing))?)
}

/// Trains `request`'s one epoch as `train` would (without the final evaluation); the loop's
/// split of its time.
fn one_epoch<T: Task>(
    task: &T,
    model: ModelOf<T>,
    request: &TrainRequest,
) -> Result<Option<EpochTiming>, TaskError> {
    let plan = tasks::plan_training(task, Some(model), request)?;
    let history = T::train(
        &plan.config,
        &plan.data,
        &plan.run,
        &Launch::on(request.compute),
    )?;
    Ok(history.last().and_then(|record| record.timing))
}

/// (seconds since the start, validation accuracy) at each validation.
type Trace = Vec<(f64, f64)>;

/// Trains a classifier with Adam lr 1e-3 until validation accuracy reaches `args.target`;
/// returns the wall time (training and validations, after loading) and the trace.
fn time_to_accuracy(
    network: Network,
    batch: usize,
    args: &BenchOptions,
    compute: &Compute,
) -> Result<(Option<f64>, Trace), BenchError> {
    let Network::Classifier(kind) = network else {
        return Err(BenchError::InvalidOption {
            flag: "--network",
            reason: "time-to-90 is for Fashion-MNIST networks".into(),
        });
    };
    let task = Classification::fashion_mnist(Checksums::Verify);
    let sets = task.load(args.data.as_deref(), None)?;
    // Adam lr 1e-3 without weight decay, as the PyTorch reference.
    let options = TrainOptions {
        batch_size: Some(batch),
        lr: Some(1e-3),
        weight_decay: Some(0.0),
        ..Default::default()
    };
    let params = options
        .check(&Classification::recipe(kind))
        .map_err(TaskError::from)?;
    let config = task.fresh_config(kind, params, &options, compute.device, &sets)?;
    let data = tasks::prepare::<Classification>(sets, &config)?;
    let params = &config.params;
    let batcher = ClassificationBatcher::plain(config.normalization);
    let mut trainer = Trainer::new(&kind.spec(), &params.optimizer(), &params.init(), compute)
        .map_err(TaskError::from)?;
    let loss = LossSpec::Image { smoothing: None };
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed());
    let mut trace = Vec::new();
    let mut step = 0usize;
    let start = Instant::now();
    for _epoch in 0..args.max_epochs {
        let mut order = data.train_indices.clone();
        order.shuffle(&mut rng);
        for chunk in order.chunks(batch) {
            let b = batcher.batch(&data.sets.train, chunk, 1, &mut rng);
            let batch = StepBatch {
                images: b.images,
                shape: b.shape,
                targets: b.labels,
            };
            trainer
                .step(batch, &loss, params.lr(), step as u64)
                .map_err(|loss| BenchError::Diverged {
                    step: step + 1,
                    loss,
                })?;
            step += 1;
            if step.is_multiple_of(args.eval_every) {
                let accuracy =
                    Classification::evaluate(&trainer.model(), &data.val, &config, Tta::None)
                        .report
                        .accuracy;
                let t = start.elapsed().as_secs_f64();
                trace.push((t, accuracy));
                progress::notice(&format!(
                    "{t:.1}s step {step}: val accuracy {:.2}%",
                    100.0 * accuracy
                ));
                if accuracy >= args.target {
                    return Ok((Some(t), trace));
                }
            }
        }
    }
    Ok((None, trace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn steps_of_a_small_network_are_timed() {
        let args = BenchOptions {
            network: Some("base".into()),
            measure: Measure::Steps,
            steps: 2,
            warmup: 1,
            batch_size: Some(4),
            target: 0.9,
            eval_every: 1,
            max_epochs: 1,
            data: None,
            compute: Compute::cpu_engine(),
        };
        for compute in [Compute::cpu_engine(), Compute::burn_cpu()] {
            let (train, infer, products) =
                time_steps(Network::parse("base").unwrap(), 4, &args, &compute).unwrap();
            assert!(train > 0.0 && infer > 0.0 && train.is_finite() && infer.is_finite());
            if compute.engine == EngineKind::Cpu {
                // At least the first linear layer of the two timed steps: three products of
                // 4 x 1568 x 128 each (forward, input gradient, weight gradient).
                assert!(
                    products.flops >= 2.0 * 3.0 * 2.0 * 4.0 * 1568.0 * 128.0,
                    "{products:?}"
                );
                assert!(products.thread_seconds > 0.0);
            }
        }
        assert!(Network::parse("resnet").is_err());
    }
}
