//! Qwen3-VL model: vision tower + text decoder (dense or MoE), with DeepStack.

use crate::models::weights::Weights;
use candle_core::Result;

use super::config::Qwen3VlConfig;
use super::positions::rope_index;
use crate::models::multimodal::{merge_visual, MultimodalInputs, PreparedPrompt};
use crate::models::text_decoder::TextDecoder;
use crate::models::vision_encoder::{MergerNaming, VisionEncoder};

/// Qwen3-VL weights.
#[derive(Debug, Clone)]
pub struct Qwen3Vl {
    pub vision: VisionEncoder,
    pub decoder: TextDecoder,
    cfg: Qwen3VlConfig,
}

impl Qwen3Vl {
    /// `vb` is the checkpoint root; `moe` selects `Qwen3VLMoeForConditionalGeneration`.
    pub fn new(cfg: &Qwen3VlConfig, moe: bool, vb: Weights) -> Result<Self> {
        let dec_cfg = cfg.decoder_config(moe).map_err(candle_core::Error::msg)?;
        let model = vb.pp("model");
        Ok(Self {
            vision: VisionEncoder::new(&cfg.vision_config, MergerNaming::Vl, model.pp("visual"))?,
            decoder: TextDecoder::new(&dec_cfg, model.pp("language_model"), vb.pp("lm_head"))?,
            cfg: cfg.clone(),
        })
    }

    /// The checkpoint config.
    pub fn config(&self) -> &Qwen3VlConfig {
        &self.cfg
    }

    /// Embeds the prompt, scatters image/video features and computes positions.
    pub fn prepare(&self, inp: &MultimodalInputs) -> Result<PreparedPrompt> {
        if !inp.audios.is_empty() {
            candle_core::bail!("Qwen3-VL has no audio encoder: this model cannot take audio input")
        }
        let c = &self.cfg;
        let embeds = self.decoder.embed(&inp.ids)?;
        let (embeds, deepstack) = merge_visual(&self.vision, inp, embeds, c.image_token_id, c.video_token_id)?;
        let (positions, rope_delta) = rope_index(
            &inp.ids,
            c.image_token_id,
            c.video_token_id,
            &inp.images.iter().map(|i| i.grid_thw).collect::<Vec<_>>(),
            &inp.videos.iter().map(|v| v.visual.grid_thw).collect::<Vec<_>>(),
            c.vision_config.spatial_merge_size,
        )
        .map_err(candle_core::Error::msg)?;
        Ok(PreparedPrompt { embeds: embeds.unsqueeze(0)?, positions, rope_delta, deepstack })
    }
}
