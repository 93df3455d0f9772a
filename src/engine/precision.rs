//! The precision of the products (`--precision`): fp32 throughout, or bf16 mixed precision as
//! PyTorch's `torch.autocast("cpu", torch.bfloat16)` has it: the convolutions, transposed
//! convolutions and linear layers take bf16 operands (the input and weights forward, the
//! output gradient with the weights or the input backward) and accumulate in fp32, and a
//! training step stores the activations between a convolution and its batch norm in bf16,
//! while batch norm's arithmetic, the loss, the optimiser and the master weights stay fp32.
//! Checkpoints hold fp32 weights either way, so a run of either precision is evaluated,
//! exported and resumed at either.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::Fp32, Precision::Bf16];

    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    pub fn about(self) -> &'static str {
        match self {
            Precision::Fp32 => "32-bit floats throughout",
            Precision::Bf16 => {
                "bf16 operands in the convolutions and linear layers, bf16 activations between convolutions and batch norms in training, fp32 sums and everything else (as PyTorch's autocast); convlab's CPU engine only"
            }
        }
    }
}
