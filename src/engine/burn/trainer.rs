//! A training step on burn: PyTorch's cross-entropy (label smoothing per image, class weights
//! per pixel), Adam or AdamW, on the autodiff device.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{
    AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer, decay::WeightDecayConfig,
};
use burn::prelude::*;
use burn::tensor::Bytes;
use burn::tensor::activation::log_softmax;

use super::{BurnModel, Layer, Net, convert};
use crate::data::IGNORE_LABEL;
use crate::engine::{
    CpuNet, DeviceKind, EngineError, LossSpec, OptimizerSpec, StepBatch, StepOutcome,
};
use crate::models::ModelSpec;

/// A burn model being trained and its optimiser.
pub struct BurnTrainer {
    spec: ModelSpec,
    model: Net,
    optimizer: ModuleOptimizer,
    /// The autodiff device the model trains on.
    device: Device,
    /// Where the validation model runs (the same device without autodiff).
    eval_device: Device,
}

/// Adam with L2 weight decay (PyTorch's `Adam(weight_decay=...)`), or AdamW when decoupled;
/// PyTorch's epsilon 1e-8 (burn's default is 1e-5).
fn optimizer(spec: &OptimizerSpec) -> ModuleOptimizer {
    if spec.decoupled_decay {
        AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(spec.weight_decay as f32)
            .init()
    } else {
        let decay =
            (spec.weight_decay > 0.0).then(|| WeightDecayConfig::new(spec.weight_decay as f32));
        AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(decay)
            .init()
    }
}

/// burn's loss for `spec`: PyTorch's cross-entropy, with label smoothing per image or class
/// weights per pixel (the weighted mean `sum(w[y] nll) / sum(w[y])`); `counted` is 1 for each
/// pixel that counts and 0 for those labelled [`IGNORE_LABEL`] (PyTorch's `ignore_index`),
/// `None` when every pixel counts.
fn burn_loss(
    spec: &LossSpec,
    logits: Tensor<4>,
    labels: Tensor<1, Int>,
    counted: Option<Tensor<1>>,
) -> Tensor<1> {
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
            let class_weights = weights.as_ref().map(|weights| {
                Tensor::<1>::from_floats(weights.as_slice(), device).select(0, labels)
            });
            let pixel_weights = match (class_weights, counted) {
                (None, None) => return picked.mean().neg(),
                (Some(weights), None) => weights,
                (None, Some(counted)) => counted,
                (Some(weights), Some(counted)) => weights * counted,
            };
            (picked * pixel_weights.clone()).sum().neg() / pixel_weights.sum()
        }
    }
}

/// The class indices `[n * plane]` of a batch's images or pixels, on `device` (ignored pixels
/// as class 0, which [`counted`] then leaves out).
fn burn_labels(targets: &[u8], device: &Device) -> Tensor<1, Int> {
    let labels: Vec<i64> = targets
        .iter()
        .map(|&t| if t == IGNORE_LABEL { 0 } else { t as i64 })
        .collect();
    Tensor::from_data(TensorData::new(labels, [targets.len()]), device)
}

/// 1 for each target that counts, 0 for the ignored; `None` when none is ignored.
fn counted(targets: &[u8], device: &Device) -> Option<Tensor<1>> {
    targets.contains(&IGNORE_LABEL).then(|| {
        let ones: Vec<f32> = targets
            .iter()
            .map(|&t| (t != IGNORE_LABEL) as u8 as f32)
            .collect();
        Tensor::from_data(TensorData::new(ones, [targets.len()]), device)
    })
}

/// Correct arg-max predictions of `logits [n, classes, h, w]` against `labels [n * h * w]`,
/// among the targets that count.
fn burn_hits(logits: Tensor<4>, labels: Tensor<1, Int>, counted: Option<Tensor<1>>) -> usize {
    let [n, _, h, w] = logits.dims();
    let equal = logits
        .argmax(1)
        .equal(labels.reshape([n, 1, h, w]))
        .float()
        .reshape([n * h * w]);
    let hits: f32 = match counted {
        Some(counted) => (equal * counted).sum().into_scalar(),
        None => equal.sum().into_scalar(),
    };
    hits.round() as usize
}

impl BurnTrainer {
    /// A model that starts from `initial`'s weights, and its optimiser; `seed` seeds the
    /// device's draws (dropout).
    pub fn new(
        initial: &CpuNet,
        optim: &OptimizerSpec,
        seed: u64,
        kind: DeviceKind,
    ) -> Result<Self, EngineError> {
        let eval_device = super::device(kind)?;
        let device = eval_device.clone().autodiff();
        device.seed(seed);
        Ok(BurnTrainer {
            spec: initial.spec.clone(),
            model: convert::burn_from_cpu(initial, &device),
            optimizer: optimizer(optim),
            device,
            eval_device,
        })
    }

    /// Trainable values plus batch norm's running statistics.
    pub fn num_params(&self) -> usize {
        self.model.num_params()
    }

    /// See [`crate::engine::Trainer::step`].
    pub fn step(
        &mut self,
        batch: StepBatch,
        loss: &LossSpec,
        lr: f64,
        dropout_seed: u64,
    ) -> Result<StepOutcome, f32> {
        let count = batch.targets.iter().filter(|&&t| t != IGNORE_LABEL).count();
        self.device.seed(dropout_seed);
        let images =
            Tensor::<4>::from_data(TensorData::new(batch.images, batch.shape), &self.device);
        let logits = self.model.forward_maps(images);
        let labels = burn_labels(&batch.targets, &self.device);
        let counted = counted(&batch.targets, &self.device);
        let hits = burn_hits(logits.clone(), labels.clone(), counted.clone());
        let loss = burn_loss(loss, logits, labels, counted);
        let value: f32 = loss.clone().into_scalar();
        if !value.is_finite() {
            return Err(value);
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optimizer.step(lr, self.model.clone(), grads);
        Ok(StepOutcome {
            loss: value,
            hits,
            count,
        })
    }

    /// Writes `values` (whole filters, `[filters, in, k, k]`) over the first layer's (a
    /// convolution's) leading filters, as a fresh leaf of the graph (see
    /// [`crate::engine::Trainer::hold_first_filters`]).
    pub fn write_first_filters(&mut self, values: &[f32]) {
        let Some(Layer::Conv(conv)) = self.model.layers.first_mut() else {
            unreachable!("held filters belong to a first convolution");
        };
        let [_, inputs, kh, kw] = conv.weight.val().dims();
        let filters = values.len() / (inputs * kh * kw);
        let held = Tensor::<4>::from_data(
            TensorData::new(values.to_vec(), [filters, inputs, kh, kw]),
            &self.device,
        );
        conv.weight = conv.weight.clone().map(|weight| {
            weight
                .slice_assign([0..filters, 0..inputs, 0..kh, 0..kw], held)
                .detach()
                .require_grad()
        });
    }

    /// The model for validation (batch norm on running statistics, no dropout).
    pub fn model(&self) -> BurnModel {
        BurnModel {
            net: self.model.valid(),
            device: self.eval_device.clone(),
        }
    }

    /// The network of other weights (a moving average of these) for validation, on the same
    /// device.
    pub fn model_of(&self, weights: &CpuNet) -> BurnModel {
        BurnModel {
            net: convert::burn_from_cpu(weights, &self.eval_device).valid(),
            device: self.eval_device.clone(),
        }
    }

    /// The live weights as the CPU engine holds them.
    pub fn cpu_net(&self) -> CpuNet {
        convert::cpu_from_burn(&self.spec, &self.model)
    }

    pub fn model_record(&self) -> Result<Vec<u8>, EngineError> {
        convert::model_record(&self.model)
    }

    pub fn optimizer_state(&self) -> Result<Vec<u8>, EngineError> {
        let bytes = self
            .optimizer
            .into_bytes()
            .map_err(|e| EngineError::Record(e.to_string()))?;
        Ok(bytes.to_vec())
    }

    pub fn load_model_record(&mut self, record: &[u8]) -> Result<(), EngineError> {
        self.model = convert::net_from_record(self.model.clone(), record)?;
        Ok(())
    }

    pub fn load_optimizer_state(&mut self, state: &[u8]) -> Result<(), EngineError> {
        let placeholder = AdamConfig::new().init();
        let optimizer = std::mem::replace(&mut self.optimizer, placeholder);
        self.optimizer = optimizer
            .from_bytes(Bytes::from_bytes_vec(state.to_vec()))
            .map_err(|e| EngineError::OptimizerState(e.to_string()))?;
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
        let plain_loss: f32 =
            burn_loss(&plain, logits(), burn_labels(&[0, 1], &device), None).into_scalar();
        assert!((plain_loss as f64 - (nll0 + nll1) / 2.0).abs() < 1e-6);
        // PyTorch's ignore_index: pixel 1 ignored leaves pixel 0's ln 2, and no hit of its own.
        let targets = [0, IGNORE_LABEL];
        let one_ignored: f32 = burn_loss(
            &plain,
            logits(),
            burn_labels(&targets, &device),
            counted(&targets, &device),
        )
        .into_scalar();
        assert!((one_ignored as f64 - nll0).abs() < 1e-6);
        let hits = burn_hits(
            logits(),
            burn_labels(&targets, &device),
            counted(&targets, &device),
        );
        assert_eq!(hits, 1);
        // torch.nn.functional.cross_entropy(logits, targets, weight=torch.tensor([1., 3.]))
        // divides by the summed weights of the targets: (1 ln 2 + 3 ln 4/3) / 4 = 0.3890.
        let weighted = LossSpec::Pixel {
            weights: Some(vec![1.0, 3.0]),
        };
        let weighted: f32 =
            burn_loss(&weighted, logits(), burn_labels(&[0, 1], &device), None).into_scalar();
        assert!((weighted as f64 - (nll0 + 3.0 * nll1) / 4.0).abs() < 1e-6);
        assert!((weighted - 0.3890).abs() < 1e-4);
    }
}
