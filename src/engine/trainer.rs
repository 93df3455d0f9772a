//! One training step on the engine chosen at run time (convlab's CPU engine or burn), and the
//! model and optimiser state that go with it. The training loop and the benchmarks drive both
//! engines through this one type.

use super::burn::{self, BurnTrainer};
use super::cpu::loss::{cross_entropy, cross_entropy_sums};
use super::cpu::{Activation, CpuNet, Optimizer, OptimizerKind, Shard};
use super::{
    Compute, EngineError, EngineKind, LossSpec, Model, OptimizerSpec, StepBatch, StepOutcome,
};
use crate::distributed::World;
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

    /// [`Trainer::step`] as one rank of a data-parallel run whose ranks all call it with the
    /// same global `batch`: the CPU engine computes this rank's share of it (batch norm
    /// synchronised across ranks, dropout drawn as for the whole batch), then one sum across
    /// ranks of a single buffer holding every gradient and what divides them (the loss's
    /// weights), so every rank takes the same optimiser step the whole batch would give. The
    /// loss, hits and count are the whole batch's; a non-finite loss is every rank's error.
    /// (The scalars travel as f32: counts are exact up to 2^24 predictions per step.) burn,
    /// which `--distributed` refuses, would compute the whole batch on every rank.
    pub fn step_shared(
        &mut self,
        world: &World,
        batch: StepBatch,
        loss: &LossSpec,
        lr: f64,
        dropout_seed: u64,
    ) -> Result<StepOutcome, f32> {
        let Trainer::Cpu { net, optimizer } = self else {
            return self.step(batch, loss, lr, dropout_seed);
        };
        let share = world.share(batch.shape[0]);
        let shard = Shard {
            first_image: share.start,
            world: Some(world.clone()),
        };
        let mine = batch.share(share);
        let (logits, tape) = net.forward_train_shard(
            Activation::new(mine.images, mine.shape),
            dropout_seed,
            &shard,
        );
        let classes = logits.shape[1];
        let sums = cross_entropy_sums(loss, &logits.data, mine.shape[0], classes, &mine.targets);
        drop(logits);
        let mut grads = net.backward(tape, sums.grad);
        let totals = [sums.loss, sums.weight, sums.hits as f64, sums.count as f64];
        let mut flat: Vec<f32> = grads.iter().flatten().copied().collect();
        flat.extend(totals.map(|t| t as f32));
        world.sum_f32(&mut flat);
        let [loss_sum, weight, hits, count] = <[f32; 4]>::try_from(&flat[flat.len() - 4..])
            .expect("four totals")
            .map(f64::from);
        let weight = weight.max(f64::MIN_POSITIVE);
        let mean_loss = (loss_sum / weight) as f32;
        if !mean_loss.is_finite() {
            return Err(mean_loss);
        }
        let scale = (1.0 / weight) as f32;
        let mut summed = flat.iter();
        for g in grads.iter_mut().flat_map(|g| g.iter_mut()) {
            *g = summed.next().expect("one sum per gradient") * scale;
        }
        optimizer.step(lr, net.trainable_mut(), &grads);
        Ok(StepOutcome {
            loss: mean_loss,
            hits: hits as usize,
            count: count as usize,
        })
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
