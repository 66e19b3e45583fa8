//! The upsampler between the pre-transformer and the decoder (spec §8.4): per factor in
//! `upsampling_ratios`, a causal transposed conv with kernel = stride (nothing trimmed, no
//! look-ahead) and a ConvNeXt block (`Qwen3OmniMoeConvNeXtBlock`).

use crate::models::weights::Weights;
use candle_core::{Module, Result, Tensor};

use super::config::Code2WavConfig;
use crate::models::layers::activation::Activation;
use crate::models::layers::conv::{CausalConv1d, CausalConvTranspose1d, ConvTape};
use crate::models::layers::linear::Linear;
use crate::models::layers::norm::LayerNorm;

/// ConvNeXt's depthwise kernel and LayerNorm eps (hard-coded in the reference, not in the config).
const DWCONV_KERNEL: usize = 7;
const LAYER_NORM_EPS: f64 = 1e-6;
/// Width of the pointwise MLP relative to the channels.
const MLP_EXPANSION: usize = 4;

/// `x + gamma ⊙ pwconv2(gelu(pwconv1(LayerNorm(dwconv(x)))))` over channels.
#[derive(Debug, Clone)]
struct ConvNeXtBlock {
    dwconv: CausalConv1d,
    norm: LayerNorm,
    pwconv1: Linear,
    pwconv2: Linear,
    /// `[dim]`.
    gamma: Tensor,
}

impl ConvNeXtBlock {
    fn new(dim: usize, vb: Weights) -> Result<Self> {
        Ok(Self {
            dwconv: CausalConv1d::new(dim, dim, DWCONV_KERNEL, 1, dim, vb.pp("dwconv").pp("conv"))?,
            norm: LayerNorm::new(dim, LAYER_NORM_EPS, vb.pp("norm"))?,
            pwconv1: Linear::new(dim, MLP_EXPANSION * dim, true, vb.pp("pwconv1"))?,
            pwconv2: Linear::new(MLP_EXPANSION * dim, dim, true, vb.pp("pwconv2"))?,
            gamma: vb.get(dim, "gamma")?,
        })
    }
}

impl ConvNeXtBlock {
    /// `xs: [B, C, L]`, the next piece of the signal.
    fn forward_stream(&self, xs: &Tensor, tape: &mut ConvTape) -> Result<Tensor> {
        let h = self.dwconv.forward_stream(xs, tape)?.transpose(1, 2)?.contiguous()?; // b, L, C
        let h = self.norm.forward(&h)?;
        // nn.GELU() is the exact (erf) GELU.
        let h = Activation::GeluErf.apply(&self.pwconv1.forward(&h)?)?;
        let h = self.pwconv2.forward(&h)?.broadcast_mul(&self.gamma)?;
        xs + h.transpose(1, 2)?
    }
}

/// All upsampling stages (`code2wav.upsample.{u}.{0,1}`).
#[derive(Debug, Clone)]
pub struct Upsampler {
    stages: Vec<(CausalConvTranspose1d, ConvNeXtBlock)>,
}

impl Upsampler {
    /// `vb` points at `code2wav.upsample`.
    pub fn new(cfg: &Code2WavConfig, vb: Weights) -> Result<Self> {
        let h = cfg.hidden_size;
        let stages = cfg
            .upsampling_ratios
            .iter()
            .enumerate()
            .map(|(u, &factor)| {
                let sv = vb.pp(u);
                Ok((
                    CausalConvTranspose1d::new(h, h, factor, factor, sv.pp(0).pp("conv"))?,
                    ConvNeXtBlock::new(h, sv.pp(1))?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self { stages })
    }

    /// Left receptive field of the stages, in codec frames (each depthwise conv reaches back
    /// `kernel − 1` samples at its stage's rate).
    pub fn left_reach_frames(&self, ratios: &[usize]) -> f64 {
        let mut rate = 1usize;
        let mut reach = 0.0;
        for ((_, block), &f) in self.stages.iter().zip(ratios) {
            rate *= f;
            reach += block.dwconv.left_reach() as f64 / rate as f64;
        }
        reach
    }
}

impl Upsampler {
    /// `[B, hidden, T]` → `[B, hidden, T·Π ratios]`, the next piece of the signal; `tape`
    /// carries the convs' history between pieces (a fresh tape upsamples a whole signal).
    pub fn forward_stream(&self, xs: &Tensor, tape: &mut ConvTape) -> Result<Tensor> {
        let mut xs = xs.clone();
        for (up, block) in &self.stages {
            xs = block.forward_stream(&up.forward_stream(&xs, tape)?, tape)?;
        }
        Ok(xs)
    }
}

impl Module for Upsampler {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_stream(xs, &mut ConvTape::default())
    }
}
