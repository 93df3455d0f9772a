//! One training step on the engine chosen at run time (convlab's CPU engine or burn), and the
//! model and optimiser state that go with it. The training loop and the benchmarks drive both
//! engines through this one type.

use super::burn::{self, BurnTrainer};
use super::cpu::loss::cross_entropy;
use super::cpu::{Activation, CpuNet, Optimizer, OptimizerKind};
use super::{
    Compute, EngineError, EngineKind, LossSpec, Model, OptimizerSpec, StepBatch, StepOutcome,
};
use crate::models::ModelSpec;

/// A model being trained and its optimiser, on one engine.
pub enum Trainer {
    Burn(BurnTrainer),
    Cpu { net: CpuNet, optimizer: Optimizer },
}

/// The CPU engine's optimiser for the recipe: Adam with L2 decay, or AdamW.
fn cpu_optimizer_kind(spec: &OptimizerSpec) -> OptimizerKind {
    let weight_decay = spec.weight_decay as f32;
    if spec.decoupled_decay {
        OptimizerKind::AdamW { weight_decay }
    } else {
        OptimizerKind::Adam { weight_decay }
    }
}

impl Trainer {
    /// A freshly initialised model (burn's initialisers seeded by `seed` on both engines, so
    /// both start from the same weights) and optimiser.
    pub fn new(
        spec: &ModelSpec,
        optim: &OptimizerSpec,
        seed: u64,
        compute: &Compute,
    ) -> Result<Self, EngineError> {
        Ok(match compute.engine {
            EngineKind::Burn => Trainer::Burn(BurnTrainer::new(spec, optim, seed, compute.device)?),
            EngineKind::Cpu => Trainer::Cpu {
                net: burn::init_cpu(spec, seed),
                optimizer: Optimizer::new(cpu_optimizer_kind(optim)),
            },
        })
    }

    pub fn engine(&self) -> EngineKind {
        match self {
            Trainer::Burn(_) => EngineKind::Burn,
            Trainer::Cpu { .. } => EngineKind::Cpu,
        }
    }

    /// Trainable values plus batch norm's running statistics.
    pub fn num_params(&self) -> usize {
        match self {
            Trainer::Burn(trainer) => trainer.num_params(),
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
        match self {
            Trainer::Burn(trainer) => trainer.step(batch, loss, lr, dropout_seed),
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
            Trainer::Burn(trainer) => Model::Burn(trainer.model()),
            Trainer::Cpu { net, .. } => Model::Cpu(net.clone()),
        }
    }

    /// The model's parameters as burn's record, whichever engine trains it (so either engine
    /// reads a checkpoint of either).
    pub fn model_record(&self) -> Result<Vec<u8>, EngineError> {
        match self {
            Trainer::Burn(trainer) => trainer.model_record(),
            Trainer::Cpu { net, .. } => burn::model_record(&burn::burn_from_cpu(
                net,
                &burn::device(super::DeviceKind::Cpu)?,
            )),
        }
    }

    /// The optimiser's state in the engine's own format.
    pub fn optimizer_state(&self) -> Result<Vec<u8>, EngineError> {
        match self {
            Trainer::Burn(trainer) => trainer.optimizer_state(),
            Trainer::Cpu { optimizer, .. } => Ok(optimizer.to_bytes()),
        }
    }

    /// Takes the parameters of a record written by [`Trainer::model_record`].
    pub fn load_model_record(&mut self, record: &[u8]) -> Result<(), EngineError> {
        match self {
            Trainer::Burn(trainer) => trainer.load_model_record(record),
            Trainer::Cpu { net, .. } => {
                *net = burn::cpu_from_record(&net.spec, record)?;
                Ok(())
            }
        }
    }

    /// Takes the optimiser state written by [`Trainer::optimizer_state`] on the same engine.
    pub fn load_optimizer_state(&mut self, state: &[u8]) -> Result<(), EngineError> {
        match self {
            Trainer::Burn(trainer) => trainer.load_optimizer_state(state),
            Trainer::Cpu { net, optimizer } => {
                let lens = net.trainable_lens();
                *optimizer = Optimizer::from_bytes(optimizer.kind, state, &lens)?;
                Ok(())
            }
        }
    }
}
