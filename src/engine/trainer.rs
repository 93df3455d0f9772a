//! One training step on the engine chosen at run time (convlab's CPU engine or burn), and the
//! model and optimiser state that go with it, with the moving average of the weights when the
//! recipe keeps one (`engine::average`). The training loop and the benchmarks drive both
//! engines through this one type.

use super::average::WeightAverage;
use super::burn::{self, BurnTrainer};
use super::cpu::loss::{cross_entropy, cross_entropy_sums};
use super::cpu::{Activation, CpuNet, LayerParams, Optimizer, OptimizerKind, Shard};
use super::{
    Compute, EngineError, EngineKind, InitSpec, LossSpec, Model, OptimizerSpec, StepBatch,
    StepOutcome,
};
use crate::distributed::World;
use crate::models::ModelSpec;

/// A model being trained and its optimiser, on one engine, and the average of its weights.
pub struct Trainer {
    engine: EngineTrainer,
    average: Option<WeightAverage>,
    /// The first convolution's leading filters (`[filters, in, k, k]`), written back after
    /// every optimiser step: frozen (`--whiten`).
    held: Option<Vec<f32>>,
}

enum EngineTrainer {
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
    /// A freshly initialised model (as `init` asks, the same weights on both engines) and
    /// optimiser.
    pub fn new(
        spec: &ModelSpec,
        optim: &OptimizerSpec,
        init: &InitSpec,
        compute: &Compute,
    ) -> Result<Self, EngineError> {
        let mut initial = burn::init_cpu(spec, init.seed);
        if init.identity_convs {
            initial = initial.with_identity_convs();
        }
        let engine = match compute.engine {
            EngineKind::Burn => EngineTrainer::Burn(BurnTrainer::new(
                &initial,
                optim,
                init.seed,
                compute.device,
            )?),
            EngineKind::Cpu => EngineTrainer::Cpu {
                net: initial.with_precision(compute.precision),
                optimizer: Optimizer::new(cpu_optimizer_kind(optim)),
            },
        };
        let mut trainer = Trainer {
            engine,
            average: None,
            held: None,
        };
        if let Some(decay) = optim.average {
            trainer.average = Some(WeightAverage::new(decay, &trainer.live_net()));
        }
        Ok(trainer)
    }

    pub fn engine(&self) -> EngineKind {
        match self.engine {
            EngineTrainer::Burn(_) => EngineKind::Burn,
            EngineTrainer::Cpu { .. } => EngineKind::Cpu,
        }
    }

    /// The live weights (those the optimiser steps) as the CPU engine holds them.
    fn live_net(&self) -> std::borrow::Cow<'_, CpuNet> {
        match &self.engine {
            EngineTrainer::Burn(trainer) => std::borrow::Cow::Owned(trainer.cpu_net()),
            EngineTrainer::Cpu { net, .. } => std::borrow::Cow::Borrowed(net),
        }
    }

    /// The live weights of the first convolution, `[out, in, k, k]` (none without one).
    pub fn first_conv_weights(&self) -> Option<Vec<f32>> {
        self.live_net().first_conv_weights()
    }

    /// Writes `values` (whole filters, `[filters, in, k, k]`) over the first layer's (a
    /// convolution's) leading filters and holds them there: after every later optimiser step
    /// they are written back, so neither the gradient, the weight decay nor the optimiser's
    /// moments move them (the frozen whitening layer of `--whiten`, on either engine). An
    /// average that has seen no step yet starts again from the weights with them.
    pub fn hold_first_filters(&mut self, values: Vec<f32>) {
        self.held = Some(values);
        self.write_held();
        if let Some(average) = &self.average
            && average.updates() == 0
        {
            self.average = Some(WeightAverage::new(average.decay(), &self.live_net()));
        }
    }

    /// Writes the held filters (if any) over the live weights.
    fn write_held(&mut self) {
        let Some(values) = &self.held else {
            return;
        };
        match &mut self.engine {
            EngineTrainer::Burn(trainer) => trainer.write_first_filters(values),
            EngineTrainer::Cpu { net, .. } => {
                let Some(LayerParams::Conv { weight, .. }) = net.layers.first_mut() else {
                    unreachable!("held filters belong to a first convolution");
                };
                weight[..values.len()].copy_from_slice(values);
            }
        }
    }

    /// Moves the average (if any) towards the weights an optimiser step just made.
    fn update_average(&mut self) {
        let Some(average) = self.average.as_mut() else {
            return;
        };
        match &self.engine {
            EngineTrainer::Burn(trainer) => average.update(&trainer.cpu_net()),
            EngineTrainer::Cpu { net, .. } => average.update(net),
        }
    }

    /// Trainable values plus batch norm's running statistics.
    pub fn num_params(&self) -> usize {
        match &self.engine {
            EngineTrainer::Burn(trainer) => trainer.num_params(),
            EngineTrainer::Cpu { net, .. } => net.tensors().iter().map(|(_, _, v)| v.len()).sum(),
        }
    }

    /// Forward pass and loss; when the loss is finite, backward pass, optimiser update with
    /// learning rate `lr` and the average's update. Dropout draws from `dropout_seed`. A
    /// non-finite loss is returned as the error, with the model unchanged (burn has then
    /// already updated batch norm's running statistics, as PyTorch would; so has this engine).
    pub fn step(
        &mut self,
        batch: StepBatch,
        loss: &LossSpec,
        lr: f64,
        dropout_seed: u64,
    ) -> Result<StepOutcome, f32> {
        let outcome = match &mut self.engine {
            EngineTrainer::Burn(trainer) => trainer.step(batch, loss, lr, dropout_seed)?,
            EngineTrainer::Cpu { net, optimizer } => {
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
                StepOutcome {
                    loss: out.loss,
                    hits: out.hits,
                    count: out.count,
                }
            }
        };
        self.write_held();
        self.update_average();
        Ok(outcome)
    }

    /// [`Trainer::step`] as one rank of a data-parallel run whose ranks all call it with the
    /// same global `batch`: the CPU engine computes this rank's share of it (batch norm
    /// synchronised across ranks, dropout drawn as for the whole batch), then one sum across
    /// ranks of a single buffer holding every gradient and what divides them (the loss's
    /// weights), so every rank takes the same optimiser step (and average update) the whole
    /// batch would give. The loss, hits and count are the whole batch's; a non-finite loss is
    /// every rank's error. (The scalars travel as f32: counts are exact up to 2^24 predictions
    /// per step.) burn, which `--distributed` refuses, would compute the whole batch on every
    /// rank.
    pub fn step_shared(
        &mut self,
        world: &World,
        batch: StepBatch,
        loss: &LossSpec,
        lr: f64,
        dropout_seed: u64,
    ) -> Result<StepOutcome, f32> {
        let EngineTrainer::Cpu { net, optimizer } = &mut self.engine else {
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
        self.write_held();
        self.update_average();
        Ok(StepOutcome {
            loss: mean_loss,
            hits: hits as usize,
            count: count as usize,
        })
    }

    /// The model for validation (batch norm on running statistics, no dropout): the averaged
    /// weights when there are any, else the live ones.
    pub fn model(&self) -> Model {
        match (&self.engine, &self.average) {
            (EngineTrainer::Burn(trainer), None) => Model::Burn(trainer.model()),
            (EngineTrainer::Burn(trainer), Some(average)) => {
                Model::Burn(trainer.model_of(average.net()))
            }
            (EngineTrainer::Cpu { net, .. }, None) => Model::Cpu(net.clone()),
            (EngineTrainer::Cpu { .. }, Some(average)) => Model::Cpu(average.net().clone()),
        }
    }

    /// The evaluated model's parameters (the average's when there is one) as burn's record,
    /// whichever engine trains it (so either engine reads a checkpoint of either).
    pub fn model_record(&self) -> Result<Vec<u8>, EngineError> {
        match (&self.engine, &self.average) {
            (EngineTrainer::Burn(trainer), None) => trainer.model_record(),
            (_, Some(average)) => cpu_record(average.net()),
            (EngineTrainer::Cpu { net, .. }, None) => cpu_record(net),
        }
    }

    /// The live parameters as burn's record when they are not [`Trainer::model_record`]'s
    /// (when the weights are averaged), for a checkpoint to resume exactly.
    pub fn live_record(&self) -> Result<Option<Vec<u8>>, EngineError> {
        if self.average.is_none() {
            return Ok(None);
        }
        match &self.engine {
            EngineTrainer::Burn(trainer) => trainer.model_record().map(Some),
            EngineTrainer::Cpu { net, .. } => cpu_record(net).map(Some),
        }
    }

    /// The optimiser's state in the engine's own format.
    pub fn optimizer_state(&self) -> Result<Vec<u8>, EngineError> {
        match &self.engine {
            EngineTrainer::Burn(trainer) => trainer.optimizer_state(),
            EngineTrainer::Cpu { optimizer, .. } => Ok(optimizer.to_bytes()),
        }
    }

    /// Takes the weights of a checkpoint: `model` (what [`Trainer::model_record`] wrote) and
    /// `live` (what [`Trainer::live_record`] wrote, if anything) after `steps` optimiser
    /// steps. With an average, `model` is the average and `live` the weights that train on (a
    /// checkpoint without them, written before the run averaged, starts the average at its
    /// weights); without one, the live weights are `live` if given, else `model`.
    pub fn load_records(
        &mut self,
        model: &[u8],
        live: Option<&[u8]>,
        steps: usize,
    ) -> Result<(), EngineError> {
        self.load_live(live.unwrap_or(model))?;
        if let Some(average) = &self.average {
            let decay = average.decay();
            let live_net = self.live_net();
            let averaged = match live {
                Some(_) => {
                    burn::cpu_from_record(&live_net.spec, model)?.with_precision(live_net.precision)
                }
                None => live_net.into_owned(),
            };
            self.average = Some(WeightAverage::restored(decay, averaged, steps as u64));
        }
        Ok(())
    }

    fn load_live(&mut self, record: &[u8]) -> Result<(), EngineError> {
        match &mut self.engine {
            EngineTrainer::Burn(trainer) => trainer.load_model_record(record),
            EngineTrainer::Cpu { net, .. } => {
                *net = burn::cpu_from_record(&net.spec, record)?.with_precision(net.precision);
                Ok(())
            }
        }
    }

    /// Takes the optimiser state written by [`Trainer::optimizer_state`] on the same engine.
    pub fn load_optimizer_state(&mut self, state: &[u8]) -> Result<(), EngineError> {
        match &mut self.engine {
            EngineTrainer::Burn(trainer) => trainer.load_optimizer_state(state),
            EngineTrainer::Cpu { net, optimizer } => {
                let lens = net.trainable_lens();
                *optimizer = Optimizer::from_bytes(optimizer.kind, state, &lens)?;
                Ok(())
            }
        }
    }
}

/// burn's record of a CPU-engine network (what checkpoints store, whichever engine trained).
fn cpu_record(net: &CpuNet) -> Result<Vec<u8>, EngineError> {
    burn::model_record(&burn::burn_from_cpu(
        net,
        &burn::device(super::DeviceKind::Cpu)?,
    ))
}
