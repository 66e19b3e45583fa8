//! The Qwen3-Omni thinker: audio tower + vision tower + MoE text decoder (spec §2–§5),
//! loaded from the on-disk names `thinker.audio_tower.*`, `thinker.visual.*`,
//! `thinker.model.*`, `thinker.lm_head.*` (spec §1.2).

use crate::models::weights::Weights;
use candle_core::Result;

use super::config::Qwen3OmniMoeConfig;
use super::positions::{rope_index, OmniMediaLayout, OmniPositionIds};
use super::speech::OmniSpeech;
use crate::models::audio_encoder::AudioEncoder;
use crate::models::multimodal::{merge_visual, rows_of, scatter_rows, MultimodalInputs, PreparedPrompt};
use crate::models::text_decoder::TextDecoder;
use crate::models::vision_encoder::{MergerNaming, VisionEncoder};

/// Thinker weights.
#[derive(Debug, Clone)]
pub struct Thinker {
    pub audio: AudioEncoder,
    pub vision: VisionEncoder,
    pub decoder: TextDecoder,
    /// The talker and Code2Wav that speak the answers; `None` for checkpoints without speech
    /// output (Thinking, Captioner).
    pub speech: Option<OmniSpeech>,
    cfg: Qwen3OmniMoeConfig,
}

impl Thinker {
    /// `vb` is the checkpoint root.
    pub fn new(cfg: &Qwen3OmniMoeConfig, vb: Weights) -> Result<Self> {
        let t = &cfg.thinker_config;
        t.validate().map_err(candle_core::Error::msg)?;
        let dec_cfg = t.decoder_config().map_err(candle_core::Error::msg)?;
        let speech = match cfg.speech().map_err(candle_core::Error::msg)? {
            Some((talker, code2wav)) => Some(OmniSpeech::new(&talker, &code2wav, vb.clone())?),
            None => None,
        };
        let vb = vb.pp("thinker");
        Ok(Self {
            audio: AudioEncoder::new(&t.audio_config, vb.pp("audio_tower"))?,
            vision: VisionEncoder::new(&t.vision_config, MergerNaming::Omni, vb.pp("visual"))?,
            decoder: TextDecoder::new(&dec_cfg, vb.pp("model"), vb.pp("lm_head"))?,
            speech,
            cfg: cfg.clone(),
        })
    }

    /// The checkpoint config.
    pub fn config(&self) -> &Qwen3OmniMoeConfig {
        &self.cfg
    }

    /// Embeds the prompt, runs the encoders, scatters their features into the placeholder
    /// rows, and computes TMRoPE positions.
    pub fn prepare(&self, inp: &MultimodalInputs) -> Result<PreparedPrompt> {
        let t = &self.cfg.thinker_config;
        let mut embeds = self.decoder.embed(&inp.ids)?;
        let audio_rows = rows_of(&inp.ids, t.audio_token_id);
        if !inp.audios.is_empty() || !audio_rows.is_empty() {
            if inp.audios.is_empty() {
                candle_core::bail!(
                    "the prompt has {} audio placeholder tokens but no audio was given",
                    audio_rows.len()
                )
            }
            let feats = self.audio.forward(&inp.audios)?;
            embeds = scatter_rows(&embeds, &audio_rows, &feats, "audio")?;
        }
        let (embeds, deepstack) = merge_visual(&self.vision, inp, embeds, t.image_token_id, t.video_token_id)?;
        let layout = self.media_layout(inp)?;
        let (positions, rope_delta) =
            rope_index(&inp.ids, &layout, &self.position_ids()).map_err(candle_core::Error::msg)?;
        Ok(PreparedPrompt { embeds: embeds.unsqueeze(0)?, positions, rope_delta, deepstack })
    }

    /// The prompt's media as the TMRoPE walk sees them (grids, audio token counts).
    pub fn media_layout(&self, inp: &MultimodalInputs) -> Result<OmniMediaLayout> {
        let t = &self.cfg.thinker_config;
        let frames_per_audio: Vec<usize> = inp.audios.iter().map(|a| a.dim(1)).collect::<Result<_>>()?;
        Ok(OmniMediaLayout {
            image_grids: inp.images.iter().map(|i| i.grid_thw).collect(),
            video_grids: inp.videos.iter().map(|v| v.visual.grid_thw).collect(),
            video_second_per_grid: inp.videos.iter().map(|v| v.second_per_grid).collect(),
            audio_tokens: frames_per_audio
                .iter()
                .map(|&f| crate::models::audio_encoder::audio_token_count(f, t.audio_config.n_window))
                .collect(),
            use_audio_in_video: inp.use_audio_in_video,
        })
    }

    fn position_ids(&self) -> OmniPositionIds {
        let t = &self.cfg.thinker_config;
        OmniPositionIds {
            image_token_id: t.image_token_id,
            video_token_id: t.video_token_id,
            audio_token_id: t.audio_token_id,
            vision_start_token_id: t.vision_start_token_id.expect("validated at load; this is a bug"),
            audio_start_token_id: t.audio_start_token_id,
            position_id_per_seconds: t.position_id_per_seconds,
            spatial_merge_size: t.vision_config.spatial_merge_size,
        }
    }
}
