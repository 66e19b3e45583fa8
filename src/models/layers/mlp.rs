//! SwiGLU MLP: `down(act(gate(x)) ⊙ up(x))`, no biases (Qwen3 text, code predictor,
//! Code2Wav transformer, the talker's shared expert).

use crate::models::weights::Weights;
use candle_core::{Module, Result, Tensor};

use super::activation::Activation;
use super::linear::Linear;

/// Gated MLP with `gate_proj`, `up_proj`, `down_proj`.
#[derive(Debug, Clone)]
pub struct GatedMlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: Activation,
}

impl GatedMlp {
    /// Loads `{vb}.{gate,up,down}_proj.weight`.
    pub fn new(hidden: usize, intermediate: usize, act: Activation, vb: Weights) -> Result<Self> {
        Ok(Self {
            gate_proj: Linear::new(hidden, intermediate, false, vb.pp("gate_proj"))?,
            up_proj: Linear::new(hidden, intermediate, false, vb.pp("up_proj"))?,
            down_proj: Linear::new(intermediate, hidden, false, vb.pp("down_proj"))?,
            act,
        })
    }
}

impl Module for GatedMlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let gate = self.act.apply(&self.gate_proj.forward(xs)?)?;
        self.down_proj.forward(&(gate * self.up_proj.forward(xs)?)?)
    }
}
