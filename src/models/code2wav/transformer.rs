//! Code2Wav's pre-transformer (spec §8.2; `Qwen3OmniMoeCode2WavTransformerModel`): pre-norm
//! layers of sliding-window causal attention (no q/k norm, 1-D RoPE from position 0 on every
//! decode call) and a SwiGLU MLP, each branch scaled by a learned per-channel layer scale
//! before the residual add, then a final RMSNorm.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::config::Code2WavConfig;
use crate::models::layers::attention::DecoderAttention;
use crate::models::layers::kv_cache::KvCache;
use crate::models::layers::mlp::GatedMlp;
use crate::models::layers::norm::RmsNorm;
use crate::models::layers::rotary::{Positions3d, TextRotary};

#[derive(Debug, Clone)]
struct Layer {
    input_layernorm: RmsNorm,
    self_attn: DecoderAttention,
    /// `self_attn_layer_scale.scale` `[hidden]`.
    attn_scale: Tensor,
    post_attention_layernorm: RmsNorm,
    mlp: GatedMlp,
    /// `mlp_layer_scale.scale` `[hidden]`.
    mlp_scale: Tensor,
}

/// The pre-transformer weights.
#[derive(Debug, Clone)]
pub struct PreTransformer {
    layers: Vec<Layer>,
    norm: RmsNorm,
    rotary: TextRotary,
}

impl PreTransformer {
    /// `vb` points at `code2wav.pre_transformer`.
    pub fn new(cfg: &Code2WavConfig, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let attn_cfg = cfg.attention();
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let lv = vb.pp("layers").pp(i);
            layers.push(Layer {
                input_layernorm: RmsNorm::new(h, cfg.rms_norm_eps, lv.pp("input_layernorm"))?,
                self_attn: DecoderAttention::new(&attn_cfg, lv.pp("self_attn"))?,
                attn_scale: lv.pp("self_attn_layer_scale").get(h, "scale")?,
                post_attention_layernorm: RmsNorm::new(h, cfg.rms_norm_eps, lv.pp("post_attention_layernorm"))?,
                mlp: GatedMlp::new(h, cfg.intermediate_size, cfg.hidden_act, lv.pp("mlp"))?,
                mlp_scale: lv.pp("mlp_layer_scale").get(h, "scale")?,
            });
        }
        let theta = cfg.rope_theta().map_err(candle_core::Error::msg)?;
        Ok(Self {
            layers,
            norm: RmsNorm::new(h, cfg.rms_norm_eps, vb.pp("norm"))?,
            rotary: TextRotary::new(attn_cfg.head_dim, theta, None)?,
        })
    }

    /// `xs: [1, T, hidden]` → `[1, T, hidden]`, positions `0..T`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (_, t, _) = xs.dims3()?;
        let (cos, sin) = self.rotary.cos_sin(&Positions3d::sequential(0.0, t), xs.dtype(), xs.device())?;
        let mut xs = xs.clone();
        for layer in &self.layers {
            // One whole-window pass per decode: a fresh cache holds just this call's keys.
            let mut cache = KvCache::with_capacity(t);
            let attn = layer.self_attn.forward(&layer.input_layernorm.forward(&xs)?, &cos, &sin, &mut cache)?;
            xs = (&xs + attn.broadcast_mul(&layer.attn_scale)?)?;
            let mlp = layer.mlp.forward(&layer.post_attention_layernorm.forward(&xs)?)?;
            xs = (&xs + mlp.broadcast_mul(&layer.mlp_scale)?)?;
        }
        self.norm.forward(&xs)
    }

    /// Number of layers (each widens the receptive field by one attention window).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }
}
