//! The activations that appear in the checkpoints' `hidden_act` fields.

use candle_core::{Result, Tensor};

/// An activation named by a Hugging Face config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum Activation {
    /// `x·sigmoid(x)`.
    #[serde(rename = "silu", alias = "swish")]
    Silu,
    /// Exact GELU (erf), torch's `nn.GELU()` / HF `"gelu"`.
    #[serde(rename = "gelu")]
    GeluErf,
    /// Tanh-approximated GELU, HF `"gelu_pytorch_tanh"` / `"gelu_new"`.
    #[serde(rename = "gelu_pytorch_tanh", alias = "gelu_new", alias = "gelu_fast")]
    GeluTanh,
}

impl Activation {
    /// Applies the activation elementwise.
    pub fn apply(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Silu => candle_nn::ops::silu(xs),
            Activation::GeluErf => xs.gelu_erf(),
            Activation::GeluTanh => xs.gelu(),
        }
    }
}
