//! One training step on the engine chosen at run time (convlab's CPU engine or burn), and the
//! model, optimiser state and checkpoints that go with it. The loop in `fit` and the
//! benchmarks drive both engines through this one type.

use std::path::Path;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{
    AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, decay::WeightDecayConfig,
};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::TrainError;
use super::checkpoint::{self, Checkpoint, CheckpointHeader};
use super::options::HyperParams;
use crate::cpu::loss::cross_entropy;
use crate::cpu::{Activation, CpuNet, LossSpec, Optimizer, OptimizerKind};
use crate::device::{Compute, EngineKind};
use crate::models::{Model, ModelSpec, Net, burn_from_cpu, cpu_from_burn, init_cpu};

/// A batch ready for a step: images `[n, c, h, w]` and one class index per image or per pixel.
#[derive(Clone, Debug)]
pub struct StepBatch {
    pub images: Vec<f32>,
    pub shape: [usize; 4],
    pub targets: Vec<u8>,
}

/// What one optimiser step reports.
#[derive(Clone, Copy, Debug)]
pub struct StepOutcome {
    /// The batch's mean loss.
    pub loss: f32,
    /// Correct predictions in the batch (images or pixels), and predictions made.
    pub hits: usize,
    pub count: usize,
}

/// A model being trained and its optimiser, on one engine.
pub enum Trainer {
    Burn {
        model: Net,
        optimizer: ModuleOptimizer,
        /// The autodiff device the model trains on.
        device: Device,
        /// Where the validation model runs (the same device without autodiff).
        eval_device: Device,
    },
    Cpu {
        net: CpuNet,
        optimizer: Optimizer,
    },
}

/// Adam with L2 weight decay (PyTorch's `Adam(weight_decay=...)`), or AdamW when decoupled;
/// PyTorch's epsilon 1e-8 (burn's default is 1e-5).
pub fn optimizer(params: &HyperParams) -> ModuleOptimizer {
    if params.decoupled_decay {
        AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(params.weight_decay as f32)
            .init()
    } else {
        let decay =
            (params.weight_decay > 0.0).then(|| WeightDecayConfig::new(params.weight_decay as f32));
        AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(decay)
            .init()
    }
}

/// The CPU engine's optimiser for the recipe: Adam with L2 decay, or AdamW.
fn cpu_optimizer_kind(params: &HyperParams) -> OptimizerKind {
    let weight_decay = params.weight_decay as f32;
    if params.decoupled_decay {
        OptimizerKind::AdamW { weight_decay }
    } else {
        OptimizerKind::Adam { weight_decay }
    }
}

/// burn's loss for `spec`: PyTorch's cross-entropy, with label smoothing per image or class
/// weights per pixel (the weighted mean `sum(w[y] nll) / sum(w[y])`).
fn burn_loss(spec: &LossSpec, logits: Tensor<4>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [n, classes, h, w] = logits.dims();
    let device = &logits.device();
    match spec {
        LossSpec::Image { smoothing } => {
            let mut config = CrossEntropyLossConfig::new();
            if let Some(alpha) = smoothing {
                config = config.with_smoothing(Some(*alpha));
            }
            config
                .init(device)
                .forward(logits.reshape([n, classes]), labels)
        }
        LossSpec::Pixel { weights } => {
            let picked = log_softmax(logits, 1)
                .gather(1, labels.clone().reshape([n, 1, h, w]))
                .reshape([n * h * w]);
            match weights {
                None => picked.mean().neg(),
                Some(weights) => {
                    let pixel_weights =
                        Tensor::<1>::from_floats(weights.as_slice(), device).select(0, labels);
                    (picked * pixel_weights.clone()).sum().neg() / pixel_weights.sum()
                }
            }
        }
    }
}

/// The class indices `[n * plane]` of a batch's images or pixels, on `device`.
fn burn_labels(targets: &[u8], device: &Device) -> Tensor<1, Int> {
    let labels: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
    Tensor::from_data(TensorData::new(labels, [targets.len()]), device)
}

/// Correct arg-max predictions of `logits [n, classes, h, w]` against `labels [n * h * w]`.
fn burn_hits(logits: Tensor<4>, labels: Tensor<1, Int>) -> usize {
    let [n, _, h, w] = logits.dims();
    let hits: i64 = logits
        .argmax(1)
        .equal(labels.reshape([n, 1, h, w]))
        .int()
        .sum()
        .into_scalar();
    hits as usize
}

impl Trainer {
    /// A freshly initialised model (burn's initialisers seeded by `params.seed` on both
    /// engines, so both start from the same weights) and optimiser.
    pub fn new(spec: &ModelSpec, params: &HyperParams, compute: &Compute) -> Self {
        match compute.engine {
            EngineKind::Burn => {
                let device = compute.device.clone().autodiff();
                device.seed(params.seed);
                Trainer::Burn {
                    model: Net::init(spec, &device),
                    optimizer: optimizer(params),
                    device,
                    eval_device: compute.device.clone(),
                }
            }
            EngineKind::Cpu => Trainer::Cpu {
                net: init_cpu(spec, params.seed),
                optimizer: Optimizer::new(cpu_optimizer_kind(params)),
            },
        }
    }

    pub fn engine(&self) -> EngineKind {
        match self {
            Trainer::Burn { .. } => EngineKind::Burn,
            Trainer::Cpu { .. } => EngineKind::Cpu,
        }
    }

    /// Trainable values plus batch norm's running statistics.
    pub fn num_params(&self) -> usize {
        match self {
            Trainer::Burn { model, .. } => model.num_params(),
            Trainer::Cpu { net, .. } => net.tensors().iter().map(|(_, _, v)| v.len()).sum(),
        }
    }

    /// Forward pass and loss; when the loss is finite, backward pass and optimiser update with
    /// learning rate `lr`. Dropout draws from `dropout_seed`. A non-finite loss is returned as
    /// the error, with the model unchanged (burn has then already updated batch norm's running
    /// statistics, as PyTorch would; so has this engine).
    pub fn step(
        &mut self,
        batch: StepBatch,
        loss: &LossSpec,
        lr: f64,
        dropout_seed: u64,
    ) -> Result<StepOutcome, f32> {
        let count = batch.targets.len();
        match self {
            Trainer::Burn {
                model,
                optimizer,
                device,
                ..
            } => {
                device.seed(dropout_seed);
                let images =
                    Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), &*device);
                let logits = model.forward_maps(images);
                let labels = burn_labels(&batch.targets, device);
                let hits = burn_hits(logits.clone(), labels.clone());
                let loss = burn_loss(loss, logits, labels);
                let value: f32 = loss.clone().into_scalar();
                if !value.is_finite() {
                    return Err(value);
                }
                let grads = GradientsParams::from_grads(loss.backward(), &*model);
                *model = optimizer.step(lr, model.clone(), grads);
                Ok(StepOutcome {
                    loss: value,
                    hits,
                    count,
                })
            }
            Trainer::Cpu { net, optimizer } => {
                let (logits, tape) =
                    net.forward_train(Activation::new(batch.images, batch.shape), dropout_seed);
                let classes = logits.shape[1];
                let out =
                    cross_entropy(loss, &logits.data, batch.shape[0], classes, &batch.targets);
                drop(logits);
                if !out.loss.is_finite() {
                    return Err(out.loss);
                }
                let grads = net.backward(tape, out.grad);
                optimizer.step(lr, net.trainable_mut(), &grads);
                Ok(StepOutcome {
                    loss: out.loss,
                    hits: out.hits,
                    count: out.count,
                })
            }
        }
    }

    /// The model for validation (batch norm on running statistics, no dropout).
    pub fn model(&self) -> Model {
        match self {
            Trainer::Burn {
                model, eval_device, ..
            } => Model::Burn {
                net: model.valid(),
                device: eval_device.clone(),
            },
            Trainer::Cpu { net, .. } => Model::Cpu(net.clone()),
        }
    }

    /// Writes a checkpoint: the model as burn's record (either engine reads it), the optimiser
    /// state in the engine's own format, named in the header.
    pub fn save(&self, path: &Path, header: &CheckpointHeader) -> Result<(), TrainError> {
        let mut header = header.clone();
        header.engine = self.engine();
        match self {
            Trainer::Burn {
                model, optimizer, ..
            } => {
                let optim = optimizer
                    .into_bytes()
                    .map_err(|e| checkpoint::record_error(path, e))?;
                checkpoint::save(path, &header, model, &optim)
            }
            Trainer::Cpu { net, optimizer } => {
                let model = burn_from_cpu(net, &Device::flex());
                checkpoint::save(path, &header, &model, &optimizer.to_bytes())
            }
        }
    }

    /// Takes the model and optimiser state of a checkpoint. The optimiser's moments carry over
    /// when the checkpoint was written by the same engine; from the other engine only the
    /// model does, and the optimiser starts afresh (said on stderr).
    pub fn restore(
        &mut self,
        ckpt: &Checkpoint,
        path: &Path,
        model_name: &str,
    ) -> Result<(), TrainError> {
        let same_engine = ckpt.header.engine == self.engine();
        if !same_engine {
            eprintln!(
                "{} was written by the {} engine: resuming its model on the {} engine with fresh optimiser moments",
                path.display(),
                ckpt.header.engine.name(),
                self.engine().name()
            );
        }
        match self {
            Trainer::Burn {
                model, optimizer, ..
            } => {
                *model = ckpt.restore_model(path, model_name, model.clone())?;
                if same_engine {
                    let placeholder = AdamConfig::new().init();
                    *optimizer =
                        ckpt.restore_optimizer(path, std::mem::replace(optimizer, placeholder))?;
                }
            }
            Trainer::Cpu { net, optimizer } => {
                let burn =
                    ckpt.restore_model(path, model_name, Net::init(&net.spec, &Device::flex()))?;
                *net = cpu_from_burn(&net.spec, &burn);
                if same_engine {
                    let lens = net.trainable_lens();
                    *optimizer =
                        Optimizer::from_bytes(optimizer.kind, ckpt.optimizer_bytes(), &lens)
                            .map_err(|reason| TrainError::BadFile {
                                path: path.into(),
                                reason,
                            })?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burns_pixel_loss_is_the_mean_or_pytorchs_weighted_mean() {
        // One image, two classes, two pixels: pixel 0 has logits (0, 0) and label 0, so its
        // negative log-likelihood is ln 2; pixel 1 has logits (0, ln 3) and label 1, so ln(4/3).
        let device = Device::flex();
        let logits =
            || Tensor::<1>::from_floats([0.0, 0.0, 0.0, 3f32.ln()], &device).reshape([1, 2, 1, 2]);
        let (nll0, nll1) = (2f64.ln(), (4.0f64 / 3.0).ln());
        let plain = LossSpec::Pixel { weights: None };
        let plain: f32 = burn_loss(&plain, logits(), burn_labels(&[0, 1], &device)).into_scalar();
        assert!((plain as f64 - (nll0 + nll1) / 2.0).abs() < 1e-6);
        // torch.nn.functional.cross_entropy(logits, targets, weight=torch.tensor([1., 3.]))
        // divides by the summed weights of the targets: (1 ln 2 + 3 ln 4/3) / 4 = 0.3890.
        let weighted = LossSpec::Pixel {
            weights: Some(vec![1.0, 3.0]),
        };
        let weighted: f32 =
            burn_loss(&weighted, logits(), burn_labels(&[0, 1], &device)).into_scalar();
        assert!((weighted as f64 - (nll0 + 3.0 * nll1) / 4.0).abs() < 1e-6);
        assert!((weighted - 0.3890).abs() < 1e-4);
    }
}
