//! An exponential moving average of a network's weights (`--ema DECAY`), kept beside the live
//! weights the optimiser steps: after every step each value `a` of the average becomes
//! `d a + (1 - d) w` for the live value `w`, batch norm's running statistics included (as
//! timm's `ModelEmaV2` averages every entry of the state dict). The decay ramps up as
//! TensorFlow's `ExponentialMovingAverage(num_updates=...)` does, `d = min(decay, (1 + t) /
//! (10 + t))` after `t` earlier updates, so the first steps' average is not mostly the random
//! initial weights. The averaged network is the one validated, checkpointed as the model,
//! evaluated, exported and predicted with; the live one goes on training.

use super::cpu::CpuNet;

/// The averaged weights and how many updates made them.
#[derive(Clone, Debug)]
pub struct WeightAverage {
    decay: f32,
    updates: u64,
    net: CpuNet,
}

impl WeightAverage {
    /// An average that starts as `live` after `updates` steps (0 for a fresh run; a resumed
    /// run's average is restored with [`WeightAverage::restored`]).
    pub fn new(decay: f32, live: &CpuNet) -> Self {
        WeightAverage {
            decay,
            updates: 0,
            net: live.clone(),
        }
    }

    /// The average `net` after `updates` updates (a checkpoint's weights and step).
    pub fn restored(decay: f32, net: CpuNet, updates: u64) -> Self {
        WeightAverage {
            decay,
            updates,
            net,
        }
    }

    /// The decay the next update uses.
    pub fn next_decay(&self) -> f32 {
        let t = self.updates as f32;
        self.decay.min((1.0 + t) / (10.0 + t))
    }

    /// Moves the average towards `live` (the weights after an optimiser step).
    pub fn update(&mut self, live: &CpuNet) {
        let d = self.next_decay();
        let live = live.tensors();
        for (avg, (_, _, w)) in self.net.values_mut().into_iter().zip(live) {
            avg.iter_mut()
                .zip(w)
                .for_each(|(a, &w)| *a = d * *a + (1.0 - d) * w);
        }
        self.updates += 1;
    }

    pub fn decay(&self) -> f32 {
        self.decay
    }

    /// The updates made so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    pub fn net(&self) -> &CpuNet {
        &self.net
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::burn::init_cpu;
    use crate::models::ModelSpec;

    fn spec() -> ModelSpec {
        crate::models::ClassifierKind::Res.spec()
    }

    /// A fresh `res` with every value, batch norm's running statistics included, moved by
    /// `by` (fresh statistics are the same 0s and 1s for every seed).
    fn moved(seed: u64, by: f32) -> CpuNet {
        let mut net = init_cpu(&spec(), seed);
        for values in net.values_mut() {
            values.iter_mut().for_each(|v| *v += by);
        }
        net
    }

    /// The ramp by hand: 1/10, 2/11, 3/12, ... until the decay caps it.
    #[test]
    fn decay_ramps_up_to_its_cap() {
        let net = init_cpu(&spec(), 1);
        let mut average = WeightAverage::new(0.2, &net);
        assert!((average.next_decay() - 0.1).abs() < 1e-7);
        average.update(&net);
        assert!((average.next_decay() - 2.0 / 11.0).abs() < 1e-7);
        average.update(&net);
        assert!(
            (average.next_decay() - 0.2).abs() < 1e-7,
            "3/12 > 0.2: capped"
        );
        let restored = WeightAverage::restored(0.999, net, 990);
        assert!((restored.next_decay() - 991.0 / 1000.0).abs() < 1e-6);
    }

    /// Two updates towards two other networks, every value against the formula written out:
    /// a2 = d1 (d0 a0 + (1 - d0) w1) + (1 - d1) w2 with d0 = 1/10, d1 = 2/11; running
    /// statistics averaged like the rest.
    #[test]
    fn update_is_the_moving_average_of_every_value() {
        let (start, w1, w2) = (moved(1, 0.0), moved(2, 0.5), moved(3, -1.5));
        let mut average = WeightAverage::new(0.9, &start);
        average.update(&w1);
        average.update(&w2);
        let (d0, d1) = (0.1f32, 2.0f32 / 11.0);
        let got = average.net().tensors();
        let mut checked = 0;
        for (((name, _, a), (_, _, x0)), ((_, _, x1), (_, _, x2))) in got
            .iter()
            .zip(start.tensors())
            .zip(w1.tensors().into_iter().zip(w2.tensors()))
        {
            for i in 0..a.len() {
                let want = d1 * (d0 * x0[i] + (1.0 - d0) * x1[i]) + (1.0 - d1) * x2[i];
                assert!(
                    (a[i] - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{name}[{i}]: {} vs {want}",
                    a[i]
                );
                checked += 1;
            }
        }
        assert_eq!(
            checked,
            start.tensors().iter().map(|t| t.2.len()).sum::<usize>()
        );
        assert_ne!(average.net(), &w2, "the average is not the last weights");
    }
}
