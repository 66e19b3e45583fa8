//! Config pieces shared by Qwen3-Omni and Qwen3-VL, deserialised from the checkpoint's
//! `config.json` (field names as in transformers 5.23; defaults are the transformers class
//! defaults, which are *not* the real checkpoints' values — spec §1.4 — so every value
//! that matters must be present in the file or equal the reference's own default).

use serde::Deserialize;

use super::layers::activation::Activation;
use super::layers::attention::AttentionConfig;
use super::layers::moe::{ExpertStorage, MoeConfig};
use super::text_decoder::{FfnConfig, TextDecoderConfig};

/// RoPE settings as written either by transformers 5.x (`rope_parameters`) or by the
/// published checkpoints (`rope_theta` + `rope_scaling`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeFields {
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default)]
    pub rope_scaling: Option<RopeParameters>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
}

/// The inside of `rope_parameters` / `rope_scaling`. Published configs carry both
/// `"rope_type"` and the older `"type"` (so they cannot be one serde alias).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_type: Option<String>,
    #[serde(default, rename = "type")]
    pub legacy_type: Option<String>,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub mrope_section: Option<Vec<usize>>,
}

/// Resolved RoPE: base and (for multimodal decoders) the interleaved section sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    pub theta: f64,
    pub mrope_section: Option<Vec<usize>>,
}

impl RopeFields {
    /// Resolves the two spellings; `default_theta` is the transformers class default.
    /// Only `default` RoPE is supported (the type every Qwen3-Omni/VL checkpoint uses).
    pub fn resolve(&self, default_theta: f64, default_section: Option<&[usize]>) -> Result<Rope, String> {
        let params = self.rope_parameters.as_ref().or(self.rope_scaling.as_ref());
        if let Some(t) = params.and_then(|p| p.rope_type.as_deref().or(p.legacy_type.as_deref())) {
            if !matches!(t, "default" | "mrope" | "axial") {
                return Err(format!("rope type {t:?} is not supported (only default RoPE)"));
            }
        }
        let theta = params.and_then(|p| p.rope_theta).or(self.rope_theta).unwrap_or(default_theta);
        let mrope_section =
            params.and_then(|p| p.mrope_section.clone()).or_else(|| default_section.map(|s| s.to_vec()));
        Ok(Rope { theta, mrope_section })
    }
}

/// The vision tower config (`thinker_config.vision_config` in Omni, `vision_config` in VL).
#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    #[serde(default = "crate::models::config::default_usize::<27>", alias = "num_hidden_layers")]
    pub depth: usize,
    #[serde(default = "crate::models::config::default_usize::<1152>")]
    pub hidden_size: usize,
    #[serde(default = "gelu_tanh")]
    pub hidden_act: Activation,
    #[serde(default = "crate::models::config::default_usize::<4304>")]
    pub intermediate_size: usize,
    #[serde(default = "crate::models::config::default_usize::<16>", alias = "num_attention_heads")]
    pub num_heads: usize,
    #[serde(default = "crate::models::config::default_usize::<3>")]
    pub in_channels: usize,
    #[serde(default = "crate::models::config::default_usize::<16>")]
    pub patch_size: usize,
    #[serde(default = "crate::models::config::default_usize::<2>")]
    pub spatial_merge_size: usize,
    #[serde(default = "crate::models::config::default_usize::<2>")]
    pub temporal_patch_size: usize,
    #[serde(default = "crate::models::config::default_usize::<3584>")]
    pub out_hidden_size: usize,
    #[serde(default = "crate::models::config::default_usize::<2304>")]
    pub num_position_embeddings: usize,
    #[serde(default = "deepstack_default")]
    pub deepstack_visual_indexes: Vec<usize>,
    #[serde(flatten)]
    pub rope: RopeFields,
}

impl VisionConfig {
    /// Checks the relations the vision tower relies on (spec §10.2).
    pub fn validate(&self, text_hidden: usize) -> Result<(), String> {
        if self.num_heads == 0 || !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(format!(
                "vision hidden_size {} is not divisible by num_heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        if !(self.hidden_size / self.num_heads).is_multiple_of(4) {
            return Err("vision head_dim must be a multiple of 4 (2-D rotary halves)".into());
        }
        let side = (self.num_position_embeddings as f64).sqrt().round() as usize;
        if side * side != self.num_position_embeddings || side < 2 {
            return Err(format!("vision num_position_embeddings {} is not a square ≥ 4", self.num_position_embeddings));
        }
        if self.out_hidden_size != text_hidden {
            return Err(format!(
                "vision out_hidden_size {} differs from the text hidden_size {text_hidden}",
                self.out_hidden_size
            ));
        }
        if let Some(&bad) = self.deepstack_visual_indexes.iter().find(|&&i| i >= self.depth) {
            return Err(format!("deepstack_visual_indexes entry {bad} is not below depth {}", self.depth));
        }
        Ok(())
    }

    /// Rotary base of the vision tower (axial RoPE, default 10000).
    pub fn rope_theta(&self) -> Result<f64, String> {
        Ok(self.rope.resolve(10000.0, None)?.theta)
    }
}

fn gelu_tanh() -> Activation {
    Activation::GeluTanh
}
/// Serde default for a `usize` field of a config mirror, written in place of one function per value:
/// `#[serde(default = "crate::models::config::default_usize::<16>")]`.
pub(crate) const fn default_usize<const N: usize>() -> usize {
    N
}

/// Serde default for a `u32` field (token ids), as [`default_usize`].
pub(crate) const fn default_u32<const N: u32>() -> u32 {
    N
}

fn deepstack_default() -> Vec<usize> {
    vec![8, 16, 24]
}

/// The text decoder fields common to Omni thinker, VL dense and VL-MoE text configs.
#[derive(Debug, Clone, Deserialize)]
pub struct TextConfigFields {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Explicit in every real checkpoint (128) although `hidden/heads` is 64 (spec §11.5).
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default)]
    pub intermediate_size: Option<usize>,
    #[serde(default = "silu")]
    pub hidden_act: Activation,
    #[serde(default = "eps6")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    // MoE (absent in dense configs).
    #[serde(default, alias = "num_local_experts")]
    pub num_experts: Option<usize>,
    #[serde(default)]
    pub num_experts_per_tok: Option<usize>,
    #[serde(default)]
    pub moe_intermediate_size: Option<usize>,
    #[serde(default)]
    pub norm_topk_prob: Option<bool>,
    #[serde(default)]
    pub decoder_sparse_step: Option<usize>,
    #[serde(default)]
    pub mlp_only_layers: Option<Vec<usize>>,
    #[serde(flatten)]
    pub rope: RopeFields,
}

impl TextConfigFields {
    /// Builds a [`TextDecoderConfig`] (shared by the Omni thinker and Qwen3-VL).
    /// `moe_default_renorm` is the reference's behaviour when `norm_topk_prob` is absent.
    pub fn decoder_config(
        &self,
        storage: ExpertStorage,
        default_theta: f64,
        tie_default: bool,
        moe_default_renorm: bool,
    ) -> Result<TextDecoderConfig, String> {
        let t = self;
        for (key, v) in [
            ("vocab_size", t.vocab_size),
            ("hidden_size", t.hidden_size),
            ("num_hidden_layers", t.num_hidden_layers),
            ("num_attention_heads", t.num_attention_heads),
        ] {
            if v == 0 {
                return Err(format!("text_config.{key} must be > 0"));
            }
        }
        let head_dim = t.head_dim.unwrap_or(t.hidden_size / t.num_attention_heads);
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(format!("text_config.head_dim must be a positive even number (got {head_dim})"));
        }
        let rope = t.rope.resolve(default_theta, Some(&[24, 20, 20]))?;
        if let Some(sec) = &rope.mrope_section {
            if sec.iter().sum::<usize>() != head_dim / 2 {
                return Err(format!("mrope_section {sec:?} must sum to head_dim/2 = {}", head_dim / 2));
            }
        }
        let num_kv = t.num_key_value_heads.unwrap_or(t.num_attention_heads);
        if num_kv == 0 || !t.num_attention_heads.is_multiple_of(num_kv) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {num_kv}",
                t.num_attention_heads
            ));
        }
        let mlp_only = t.mlp_only_layers.clone().unwrap_or_default();
        let step = t.decoder_sparse_step.unwrap_or(1).max(1);
        let mut layers = Vec::with_capacity(t.num_hidden_layers);
        for i in 0..t.num_hidden_layers {
            let experts = t.num_experts.unwrap_or(0);
            let sparse = experts > 0 && !mlp_only.contains(&i) && (i + 1) % step == 0;
            layers.push(if sparse {
                let moe_i = t
                    .moe_intermediate_size
                    .filter(|&i| i > 0)
                    .ok_or("MoE config without a positive moe_intermediate_size")?;
                FfnConfig::Moe(MoeConfig {
                    hidden_size: t.hidden_size,
                    num_experts: experts,
                    top_k: t.num_experts_per_tok.ok_or("MoE config without num_experts_per_tok")?,
                    moe_intermediate_size: moe_i,
                    norm_topk_prob: t.norm_topk_prob.unwrap_or(moe_default_renorm),
                    act: t.hidden_act,
                    storage,
                    shared_expert_intermediate_size: None,
                })
            } else {
                FfnConfig::Dense {
                    intermediate_size: t.intermediate_size.ok_or("dense layer without intermediate_size")?,
                }
            });
        }
        Ok(TextDecoderConfig {
            vocab_size: t.vocab_size,
            hidden_size: t.hidden_size,
            attention: AttentionConfig {
                hidden_size: t.hidden_size,
                num_heads: t.num_attention_heads,
                num_kv_heads: num_kv,
                head_dim,
                qk_norm: true,
                rms_norm_eps: t.rms_norm_eps,
                bias: t.attention_bias,
                sliding_window: None,
            },
            rms_norm_eps: t.rms_norm_eps,
            rope_theta: rope.theta,
            mrope_section: rope.mrope_section,
            act: t.hidden_act,
            layers,
            tie_word_embeddings: t.tie_word_embeddings.unwrap_or(tie_default),
            max_position_embeddings: t.max_position_embeddings,
        })
    }
}

/// Serde default `hidden_act`, shared by every config mirror.
pub(crate) fn silu() -> Activation {
    Activation::Silu
}
/// Serde default `rms_norm_eps` of the text decoders, shared by every config mirror.
pub(crate) fn eps6() -> f64 {
    1e-6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_rope_spelling_parses() {
        // thinker_config.text_config as the published Qwen3-Omni config.json writes it.
        let t: TextConfigFields = serde_json::from_value(serde_json::json!({
            "vocab_size": 152064, "hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32,
            "num_key_value_heads": 4, "head_dim": 128, "rope_theta": 1000000,
            "rope_scaling": {"interleaved": true, "mrope_interleaved": true, "mrope_section": [24, 20, 20],
                             "rope_type": "default", "type": "default"},
            "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768, "norm_topk_prob": true
        }))
        .unwrap();
        let rope = t.rope.resolve(1.0, None).unwrap();
        assert_eq!(rope, Rope { theta: 1e6, mrope_section: Some(vec![24, 20, 20]) });
        let dec = t.decoder_config(ExpertStorage::PerExpert, 1.0, false, true).unwrap();
        assert_eq!((dec.attention.head_dim, dec.layers.len(), dec.rope_theta), (128, 48, 1e6));
    }

    #[test]
    fn transformers_5_spelling_and_unsupported_types() {
        let f: RopeFields = serde_json::from_value(serde_json::json!({
            "rope_parameters": {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [2, 2, 2]}
        }))
        .unwrap();
        assert_eq!(f.resolve(1.0, None).unwrap().theta, 5e6);
        let f: RopeFields =
            serde_json::from_value(serde_json::json!({"rope_scaling": {"type": "yarn", "factor": 4.0}})).unwrap();
        assert!(f.resolve(1.0, None).unwrap_err().contains("yarn"));
    }
}
