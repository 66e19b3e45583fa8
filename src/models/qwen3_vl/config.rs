//! `config.json` of `Qwen3VLForConditionalGeneration` (dense 2B–32B) and
//! `Qwen3VLMoeForConditionalGeneration` (30B-A3B, 235B-A22B), as in transformers 5.23
//! `configuration_qwen3_vl{,_moe}.py`.

use serde::Deserialize;

use crate::models::config::{TextConfigFields, VisionConfig};
use crate::models::layers::moe::ExpertStorage;
use crate::models::text_decoder::{FfnConfig, TextDecoderConfig};

/// Top-level config (dense and MoE share the layout).
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen3VlConfig {
    pub text_config: TextConfigFields,
    pub vision_config: VisionConfig,
    #[serde(default = "image_pad")]
    pub image_token_id: u32,
    #[serde(default = "video_pad")]
    pub video_token_id: u32,
    #[serde(default = "vision_start")]
    pub vision_start_token_id: u32,
    #[serde(default = "vision_end")]
    pub vision_end_token_id: u32,
    /// True for 2B/4B (no `lm_head.weight` in the checkpoint).
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
}

impl Qwen3VlConfig {
    /// Decoder settings. `moe` selects the MoE text model (fused experts on disk); its
    /// router always renormalises the top-k in transformers 5.23, whatever `norm_topk_prob` says.
    pub fn decoder_config(&self, moe: bool) -> Result<TextDecoderConfig, String> {
        let tie = self.tie_word_embeddings.or(self.text_config.tie_word_embeddings).unwrap_or(false);
        let mut text = self.text_config.clone();
        text.tie_word_embeddings = Some(tie);
        if !moe {
            text.num_experts = None;
            // Qwen3VLTextConfig declares head_dim = 128 as its class default (the MoE config and
            // the Omni thinker fall back to hidden / heads instead).
            text.head_dim = text.head_dim.or(Some(128));
        }
        let mut cfg = text.decoder_config(ExpertStorage::Fused, 500_000.0, tie, true)?;
        for l in &mut cfg.layers {
            if let FfnConfig::Moe(m) = l {
                m.norm_topk_prob = true;
            }
        }
        if moe && !cfg.layers.iter().any(|l| matches!(l, FfnConfig::Moe(_))) {
            return Err("Qwen3VLMoe config has no MoE layers (num_experts missing or 0)".into());
        }
        self.vision_config.validate(self.text_config.hidden_size)?;
        Ok(cfg)
    }
}

fn image_pad() -> u32 {
    151655
}
fn video_pad() -> u32 {
    151656
}
fn vision_start() -> u32 {
    151652
}
fn vision_end() -> u32 {
    151653
}
