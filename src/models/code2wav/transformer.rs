//! Code2Wav's pre-transformer (spec §8.2; `Qwen3OmniMoeCode2WavTransformerModel`): pre-norm
//! layers of sliding-window causal attention (no q/k norm, 1-D RoPE from position 0 on every
//! decode call) and a SwiGLU MLP, each branch scaled by a learned per-channel layer scale
//! before the residual add, then a final RMSNorm.

use crate::models::weights::Weights;
use candle_core::{Module, Result, Tensor};

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
    sliding_window: usize,
}

/// Per-stream state: each layer's keys and values of the last `sliding_window − 1` frames
/// (all a new frame can see) and the position of the next frame.
#[derive(Debug, Default)]
pub struct TransformerState {
    caches: Vec<KvCache>,
    next_position: usize,
}

impl PreTransformer {
    /// `vb` points at `code2wav.pre_transformer`.
    pub fn new(cfg: &Code2WavConfig, vb: Weights) -> Result<Self> {
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
            sliding_window: cfg.sliding_window,
        })
    }

    /// `xs: [1, t, hidden]` → `[1, t, hidden]`: the next frames of a stream whose earlier frames went through `state`
    /// (a fresh state: a whole decode, positions from 0). Equal to one call on all frames,
    /// frame by frame: each frame sees the same keys through the cache.
    pub fn forward_stream(&self, xs: &Tensor, state: &mut TransformerState) -> Result<Tensor> {
        let (_, t, _) = xs.dims3()?;
        if state.caches.is_empty() {
            state.caches = (0..self.layers.len()).map(|_| KvCache::with_capacity(self.sliding_window + t)).collect();
        }
        let pos = Positions3d::sequential(state.next_position as f32, t);
        let (cos, sin) = self.rotary.cos_sin(&pos, xs.dtype(), xs.device())?;
        let mut xs = xs.clone();
        for (layer, cache) in self.layers.iter().zip(state.caches.iter_mut()) {
            cache.keep_last(self.sliding_window.saturating_sub(1))?;
            let attn = layer.self_attn.forward(&layer.input_layernorm.forward(&xs)?, &cos, &sin, cache)?;
            xs = (&xs + attn.broadcast_mul(&layer.attn_scale)?)?;
            let mlp = layer.mlp.forward(&layer.post_attention_layernorm.forward(&xs)?)?;
            xs = (&xs + mlp.broadcast_mul(&layer.mlp_scale)?)?;
        }
        state.next_position += t;
        self.norm.forward(&xs)
    }

    /// Number of layers (each widens the receptive field by one attention window).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }
}
