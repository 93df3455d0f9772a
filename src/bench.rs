//! `convlab bench`: how fast one network trains and infers on this machine, as one JSON line
//! that `bench/compare.py` sets beside PyTorch's (`bench/reference/`), measured the same way:
//! - `steps`: median milliseconds per training step (forward, loss, backward, Adam) and per
//!   inference batch on a fixed random batch, after warm-up;
//! - `epoch`: one epoch from the files on disk through convlab's own training loop (loading,
//!   batching, augmentation, validation, checkpoint), as `convlab ... train` runs it;
//! - `time-to-90`: wall time until validation accuracy first reaches the target (Fashion-MNIST,
//!   Adam lr 1e-3, batch 64, validation every `--eval-every` steps).
//!
//! Each measurement runs in its own process, so its peak memory (RSS) is its own.

use std::path::PathBuf;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::Error;
use crate::cpu::LossSpec;
use crate::data::ImageBatcher;
use crate::data::facade::{MiniFacade, NUM_CLASSES as FACADE_CLASSES};
use crate::data::fashion_mnist::{Checksums, FashionMnist, NUM_CLASSES};
use crate::device::{Compute, DeviceKind, EngineKind};
use crate::models::{ClassifierKind, ModelSpec, SegmenterKind};
use crate::train::fit::EpochTiming;
use crate::train::options::{Recipe, TrainArgs};
use crate::train::run_dir::RunDir;
use crate::train::trainer::{StepBatch, Trainer};
use crate::train::{TrainError, classify, segment};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    Steps,
    Epoch,
    #[value(name = "time-to-90")]
    #[serde(rename = "time-to-90")]
    TimeTo90,
}

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The network: base, wide, own (Fashion-MNIST) or fcn, unet (Mini Facade).
    #[arg(long)]
    pub network: String,
    #[arg(long, value_enum, default_value = "steps")]
    pub measure: Measure,
    /// Timed steps (after the warm-up).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Images per step (default: 64 for Fashion-MNIST networks, 8 for Mini Facade ones).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// time-to-90: the validation accuracy to reach.
    #[arg(long, default_value_t = 0.90)]
    pub target: f64,
    /// time-to-90: optimiser steps between validations (211 = a quarter epoch at batch 64).
    #[arg(long, default_value_t = 211)]
    pub eval_every: usize,
    /// time-to-90: give up after this many epochs.
    #[arg(long, default_value_t = 10)]
    pub max_epochs: usize,
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// The engine: cpu (convlab's own, the default on the CPU) or burn.
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
}

/// The networks `bench` knows: classifiers take 1x28x28 images, segmenters 3x256x256 photos.
#[derive(Clone, Copy, Debug)]
enum Network {
    Classifier(ClassifierKind),
    Segmenter(SegmenterKind),
}

impl Network {
    fn parse(name: &str) -> Result<Self, TrainError> {
        use clap::ValueEnum;
        if let Ok(kind) = ClassifierKind::from_str(name, true) {
            return Ok(Network::Classifier(kind));
        }
        if let Ok(kind) = SegmenterKind::from_str(name, true) {
            return Ok(Network::Segmenter(kind));
        }
        Err(TrainError::invalid(
            "--network",
            format!("unknown network '{name}' (base, wide, own, fcn, unet)"),
        ))
    }

    fn spec(self) -> ModelSpec {
        match self {
            Network::Classifier(k) => k.spec(),
            Network::Segmenter(k) => k.spec(),
        }
    }

    fn recipe(self) -> Recipe {
        match self {
            Network::Classifier(k) => classify::recipe(k),
            Network::Segmenter(k) => segment::recipe(k),
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
    pub network: String,
    pub measure: Measure,
    pub device: String,
    pub threads: usize,
    pub batch_size: usize,
    /// Trainable parameters (the reference must have as many).
    pub params: usize,
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
    pub epoch_timing: Option<crate::train::fit::EpochTiming>,
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

/// `convlab bench`: runs the measurement and prints its JSON line.
pub fn bench_command(args: &BenchArgs) -> Result<BenchResult, Error> {
    let network = Network::parse(&args.network)?;
    let batch_size = args.batch_size.unwrap_or(network.default_batch());
    if batch_size == 0 || args.steps == 0 || args.eval_every == 0 {
        return Err(
            TrainError::invalid("--batch-size/--steps/--eval-every", "must be at least 1").into(),
        );
    }
    let compute = Compute::new(args.engine, args.device)?;
    let mut result = BenchResult {
        framework: "convlab",
        engine: compute.engine.name(),
        network: args.network.clone(),
        measure: args.measure,
        device: format!("{:?}", args.device).to_lowercase(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        batch_size,
        params: network.spec().num_params(),
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
    match args.measure {
        Measure::Steps => {
            let (train, infer) = time_steps(network, batch_size, args, &compute);
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
    println!("{}", serde_json::to_string(&result).expect("serialises"));
    Ok(result)
}

/// Median ms of a training step and of an inference batch on a fixed random batch.
fn time_steps(network: Network, batch: usize, args: &BenchArgs, compute: &Compute) -> (f64, f64) {
    let spec = network.spec();
    let [c, h, w] = spec.input;
    let shape = [batch, c, h, w];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let images: Vec<f32> = (0..batch * c * h * w)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    // Adam lr 1e-3 without weight decay, as the PyTorch reference.
    let params = TrainArgs {
        lr: Some(1e-3),
        weight_decay: Some(0.0),
        ..Default::default()
    }
    .check(&network.recipe())
    .expect("valid benchmark settings");
    let mut trainer = Trainer::new(&spec, &params, compute);
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
        let start = Instant::now();
        trainer
            .step(step_batch, &loss, params.lr, i as u64)
            .expect("random batches keep a finite loss");
        if i >= args.warmup {
            train_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
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
    (median(&mut train_ms), median(&mut infer_ms))
}

/// Seconds for one epoch from the files on disk, through the same path as `train`, and the
/// loop's own split of it.
fn time_epoch(
    network: Network,
    batch: usize,
    args: &BenchArgs,
    compute: &Compute,
) -> Result<(f64, Option<EpochTiming>), Error> {
    let out = std::env::temp_dir().join(format!("convlab-bench-{}", std::process::id()));
    let train_args = TrainArgs {
        epochs: Some(1),
        batch_size: Some(batch),
        out: out.clone(),
        data: args.data.clone(),
        device: args.device,
        ..Default::default()
    };
    let start = Instant::now();
    let result = (|| -> Result<Option<EpochTiming>, Error> {
        let run = RunDir::fresh(&out)?;
        match network {
            Network::Classifier(kind) => {
                let params = train_args.check(&classify::recipe(kind))?;
                let config = classify::fresh_config(kind, params, args.device);
                let sets = FashionMnist::find_and_load(args.data.as_deref(), Checksums::Verify)?;
                let data =
                    classify::FashionData::prepare(sets, &config.params, config.val_fraction)?;
                run.start(&config)?;
                let history = classify::train(&config, &data, &run, compute, false)?;
                Ok(history.last().and_then(|r| r.timing))
            }
            Network::Segmenter(kind) => {
                let params = train_args.check(&segment::recipe(kind))?;
                let config = segment::fresh_config(kind, params, args.device);
                let sets = MiniFacade::find_and_load(args.data.as_deref())?;
                let data = segment::FacadeData::prepare(sets, &config.params, config.val_fraction)?;
                run.start(&config)?;
                let history = segment::train_until(&config, &data, &run, compute, false, None)?;
                Ok(history.last().and_then(|r| r.timing))
            }
        }
    })();
    let seconds = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&out);
    result.map(|timing| (seconds, timing))
}

/// (seconds since the start, validation accuracy) at each validation.
type Trace = Vec<(f64, f64)>;

/// Trains a classifier with Adam lr 1e-3 until validation accuracy reaches `args.target`;
/// returns the wall time (training and validations, after loading) and the trace.
fn time_to_accuracy(
    network: Network,
    batch: usize,
    args: &BenchArgs,
    compute: &Compute,
) -> Result<(Option<f64>, Trace), Error> {
    let Network::Classifier(kind) = network else {
        return Err(
            TrainError::invalid("--network", "time-to-90 is for Fashion-MNIST networks").into(),
        );
    };
    let sets = FashionMnist::find_and_load(args.data.as_deref(), Checksums::Verify)?;
    // Adam lr 1e-3 without weight decay, as the PyTorch reference.
    let params = TrainArgs {
        batch_size: Some(batch),
        lr: Some(1e-3),
        weight_decay: Some(0.0),
        ..Default::default()
    }
    .check(&classify::recipe(kind))?;
    let data = classify::FashionData::prepare(sets, &params, classify::VAL_FRACTION)?;
    let normalization = crate::data::Normalization::FASHION_MNIST;
    let batcher = ImageBatcher {
        normalization,
        augment: None,
    };
    let mut trainer = Trainer::new(&kind.spec(), &params, compute);
    let loss = LossSpec::Image { smoothing: None };
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut trace = Vec::new();
    let mut step = 0usize;
    let start = Instant::now();
    for _epoch in 0..args.max_epochs {
        let mut order = data.train_indices.clone();
        order.shuffle(&mut rng);
        for chunk in order.chunks(batch) {
            let b = batcher.batch(&data.sets.train, chunk, &mut rng);
            let batch = StepBatch {
                images: b.images,
                shape: b.shape,
                targets: b.labels,
            };
            trainer
                .step(batch, &loss, params.lr, step as u64)
                .map_err(|loss| {
                    TrainError::invalid("--network", format!("training diverged (loss {loss})"))
                })?;
            step += 1;
            if step.is_multiple_of(args.eval_every) {
                let accuracy = classify::evaluate(&trainer.model(), &data.val, normalization)
                    .confusion
                    .accuracy();
                let t = start.elapsed().as_secs_f64();
                trace.push((t, accuracy));
                eprintln!("{t:.1}s step {step}: val accuracy {:.2}%", 100.0 * accuracy);
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
        let args = BenchArgs {
            network: "base".into(),
            measure: Measure::Steps,
            steps: 2,
            warmup: 1,
            batch_size: Some(4),
            target: 0.9,
            eval_every: 1,
            max_epochs: 1,
            data: None,
            device: DeviceKind::Cpu,
            engine: None,
        };
        for compute in [Compute::cpu_engine(), Compute::burn_cpu()] {
            let (train, infer) = time_steps(Network::parse("base").unwrap(), 4, &args, &compute);
            assert!(train > 0.0 && infer > 0.0 && train.is_finite() && infer.is_finite());
        }
        assert!(Network::parse("resnet").is_err());
    }
}
