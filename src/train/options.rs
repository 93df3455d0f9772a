//! Hyper-parameters: the unchecked command-line values ([`TrainArgs`]) become a checked
//! [`HyperParams`] before any work starts; a run saves them in `config.json`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::TrainError;
use super::schedule::Schedule;
use crate::data::augment::CropFlip;
use crate::device::{Compute, DeviceKind, EngineKind};

/// Options shared by every `train` command (the model is chosen by each task's command).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TrainArgs {
    /// Number of epochs (default depends on the model).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per optimiser step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// L2 weight decay added to the gradient (PyTorch's Adam `weight_decay`).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule.
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// Seed for the split, initial weights, shuffling, augmentation and dropout.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Train on the first N training images only (a quick run).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Continue the run in --out from its last checkpoint (its config.json is reused; only
    /// --epochs may be raised).
    #[arg(long)]
    pub resume: bool,
    /// The run folder.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// Folder holding the data set (default: $CONVLAB_DATA/<set>, then ./data/<set>).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where to train.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// The engine: cpu (convlab's own, the default on the CPU) or burn (the reference, and the
    /// only one on a GPU).
    #[arg(long, value_enum)]
    pub engine: Option<EngineKind>,
}

impl TrainArgs {
    /// The engine and device to train on, or why they cannot be used.
    pub fn compute(&self) -> Result<Compute, TrainError> {
        Compute::new(self.engine, self.device)
    }
}

/// A model's recommended training recipe, used where the command line is silent.
#[derive(Clone, Debug)]
pub struct Recipe {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    pub augment: Option<CropFlip>,
    pub label_smoothing: Option<f32>,
    /// Decoupled (AdamW) weight decay instead of L2 in the gradient.
    pub decoupled_decay: bool,
}

/// Checked hyper-parameters, as saved in `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HyperParams {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub decoupled_decay: bool,
    pub schedule: Schedule,
    pub seed: u64,
    pub limit: Option<usize>,
    pub augment: Option<CropFlip>,
    pub label_smoothing: Option<f32>,
}

pub const DEFAULT_SEED: u64 = 42;

impl TrainArgs {
    /// Fills the gaps from `recipe` and checks every value.
    pub fn check(&self, recipe: &Recipe) -> Result<HyperParams, TrainError> {
        let params = HyperParams {
            epochs: self.epochs.unwrap_or(recipe.epochs),
            batch_size: self.batch_size.unwrap_or(recipe.batch_size),
            lr: self.lr.unwrap_or(recipe.lr),
            weight_decay: self.weight_decay.unwrap_or(recipe.weight_decay),
            decoupled_decay: recipe.decoupled_decay,
            schedule: self.schedule.unwrap_or(recipe.schedule),
            seed: self.seed.unwrap_or(DEFAULT_SEED),
            limit: self.limit,
            augment: recipe.augment,
            label_smoothing: recipe.label_smoothing,
        };
        params.validate()?;
        Ok(params)
    }

    /// For `--resume`: the saved parameters, with `--epochs` raised if given; any other option
    /// given must agree with the saved one.
    pub fn resume_with(&self, saved: &HyperParams) -> Result<HyperParams, TrainError> {
        let differs = |flag: &str, given: String, saved: String| {
            TrainError::invalid(
                flag,
                format!(
                    "{given} differs from the run's config.json ({saved}); a resumed run keeps its configuration"
                ),
            )
        };
        macro_rules! same {
            ($field:ident, $flag:literal) => {
                if let Some(v) = self.$field {
                    if v != saved.$field {
                        return Err(differs(
                            $flag,
                            format!("{v:?}"),
                            format!("{:?}", saved.$field),
                        ));
                    }
                }
            };
        }
        same!(batch_size, "--batch-size");
        same!(lr, "--lr");
        same!(weight_decay, "--weight-decay");
        same!(schedule, "--schedule");
        same!(seed, "--seed");
        if self.limit.is_some() && self.limit != saved.limit {
            return Err(differs(
                "--limit",
                format!("{:?}", self.limit),
                format!("{:?}", saved.limit),
            ));
        }
        let mut params = saved.clone();
        if let Some(epochs) = self.epochs {
            params.epochs = epochs;
        }
        params.validate()?;
        Ok(params)
    }
}

impl HyperParams {
    pub fn validate(&self) -> Result<(), TrainError> {
        let positive = |flag: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(TrainError::invalid(
                    flag,
                    format!("must be a positive number, got {v}"),
                ))
            }
        };
        positive("--lr", self.lr)?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(TrainError::invalid(
                "--weight-decay",
                format!("must be zero or positive, got {}", self.weight_decay),
            ));
        }
        if self.epochs == 0 {
            return Err(TrainError::invalid("--epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(TrainError::invalid("--batch-size", "must be at least 1"));
        }
        if self.limit == Some(0) {
            return Err(TrainError::invalid("--limit", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe() -> Recipe {
        Recipe {
            epochs: 3,
            batch_size: 64,
            lr: 0.01,
            weight_decay: 0.0,
            schedule: Schedule::Constant,
            augment: None,
            label_smoothing: None,
            decoupled_decay: false,
        }
    }

    #[test]
    fn bad_values_are_refused_naming_the_flag() {
        let cases: [(TrainArgs, &str); 5] = [
            (
                TrainArgs {
                    lr: Some(0.0),
                    ..Default::default()
                },
                "--lr",
            ),
            (
                TrainArgs {
                    lr: Some(f64::NAN),
                    ..Default::default()
                },
                "--lr",
            ),
            (
                TrainArgs {
                    batch_size: Some(0),
                    ..Default::default()
                },
                "--batch-size",
            ),
            (
                TrainArgs {
                    epochs: Some(0),
                    ..Default::default()
                },
                "--epochs",
            ),
            (
                TrainArgs {
                    weight_decay: Some(-1.0),
                    ..Default::default()
                },
                "--weight-decay",
            ),
        ];
        for (args, flag) in cases {
            let err = args.check(&recipe()).unwrap_err();
            assert!(err.to_string().starts_with(flag), "{err}");
            assert!(err.is_bad_input());
        }
    }

    #[test]
    fn resume_keeps_config_and_allows_more_epochs() {
        let saved = TrainArgs::default().check(&recipe()).unwrap();
        let more = TrainArgs {
            epochs: Some(9),
            ..Default::default()
        };
        assert_eq!(more.resume_with(&saved).unwrap().epochs, 9);
        let other_lr = TrainArgs {
            lr: Some(0.5),
            ..Default::default()
        };
        assert!(
            other_lr
                .resume_with(&saved)
                .unwrap_err()
                .to_string()
                .starts_with("--lr")
        );
    }
}
