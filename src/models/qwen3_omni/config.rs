//! `config.json` of `Qwen3OmniMoeForConditionalGeneration` (Instruct, Thinking, Captioner),
//! mirrored field by field from transformers 5.23 `configuration_qwen3_omni_moe.py`.
//! Defaults are the transformers class defaults (Qwen2.5-Omni-era values, spec §1.4);
//! the real checkpoints carry their own values and those always win.

use serde::Deserialize;

use crate::models::audio_encoder::AudioEncoderConfig;
use crate::models::code2wav::Code2WavConfig;
use crate::models::config::{TextConfigFields, VisionConfig};
use crate::models::layers::moe::ExpertStorage;
use crate::models::text_decoder::TextDecoderConfig;

/// Top-level config.
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen3OmniMoeConfig {
    pub thinker_config: ThinkerConfig,
    /// Parsed by the speech path; kept verbatim here.
    #[serde(default)]
    pub talker_config: Option<serde_json::Value>,
    /// The codec decoder (present, with defaults, even in thinker-only checkpoints).
    #[serde(default)]
    pub code2wav_config: Option<Code2WavConfig>,
    /// False for the Thinking and Captioner checkpoints (thinker weights only).
    #[serde(default = "yes")]
    pub enable_audio_output: bool,
    #[serde(default = "im_start")]
    pub im_start_token_id: u32,
    #[serde(default = "im_end")]
    pub im_end_token_id: u32,
    #[serde(default = "tts_pad")]
    pub tts_pad_token_id: u32,
    #[serde(default = "tts_bos")]
    pub tts_bos_token_id: u32,
    #[serde(default = "tts_eos")]
    pub tts_eos_token_id: u32,
    #[serde(default = "system_id")]
    pub system_token_id: u32,
    #[serde(default = "user_id")]
    pub user_token_id: u32,
    #[serde(default = "assistant_id")]
    pub assistant_token_id: u32,
}

/// `thinker_config`.
#[derive(Debug, Clone, Deserialize)]
pub struct ThinkerConfig {
    pub text_config: OmniTextConfig,
    pub audio_config: AudioEncoderConfig,
    pub vision_config: VisionConfig,
    /// `<|audio_pad|>` (151675 in the real model; the class default is Qwen2.5-Omni's 151646).
    #[serde(default = "audio_pad")]
    pub audio_token_id: u32,
    #[serde(default = "image_pad")]
    pub image_token_id: u32,
    #[serde(default = "video_pad")]
    pub video_token_id: u32,
    #[serde(default = "audio_start")]
    pub audio_start_token_id: u32,
    /// Not a declared field in transformers, but read by `get_rope_index` and present in
    /// every real config.
    #[serde(default)]
    pub vision_start_token_id: Option<u32>,
    #[serde(default)]
    pub vision_end_token_id: Option<u32>,
    #[serde(default)]
    pub audio_end_token_id: Option<u32>,
    #[serde(default = "user_id")]
    pub user_token_id: u32,
    /// TMRoPE time resolution (13 in the real model; class default 25).
    #[serde(default = "pos_per_s")]
    pub position_id_per_seconds: f32,
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

/// `thinker_config.text_config` (`qwen3_omni_moe_text`).
#[derive(Debug, Clone, Deserialize)]
pub struct OmniTextConfig {
    #[serde(flatten)]
    pub fields: TextConfigFields,
}

impl ThinkerConfig {
    /// Decoder settings for the thinker LLM (per-expert tensors on disk).
    pub fn decoder_config(&self) -> Result<TextDecoderConfig, String> {
        self.text_config.fields.decoder_config(ExpertStorage::PerExpert, 1e6, self.tie_word_embeddings, true)
    }

    /// Checks cross-field relations (spec §10.2).
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.text_config.fields;
        self.vision_config.validate(t.hidden_size)?;
        self.audio_config.validate(t.hidden_size).map_err(|e| e.to_string())?;
        if self.vision_start_token_id.is_none() {
            return Err("thinker_config.vision_start_token_id is missing".into());
        }
        for (name, id) in [
            ("audio_token_id", self.audio_token_id),
            ("image_token_id", self.image_token_id),
            ("video_token_id", self.video_token_id),
            ("audio_start_token_id", self.audio_start_token_id),
        ] {
            if id as usize >= t.vocab_size {
                return Err(format!("thinker_config.{name} {id} is outside the text vocabulary ({})", t.vocab_size));
            }
        }
        self.decoder_config().map(|_| ())
    }
}

fn yes() -> bool {
    true
}
fn im_start() -> u32 {
    151644
}
fn im_end() -> u32 {
    151645
}
fn tts_pad() -> u32 {
    151671
}
fn tts_bos() -> u32 {
    151672
}
fn tts_eos() -> u32 {
    151673
}
fn system_id() -> u32 {
    8948
}
fn user_id() -> u32 {
    872
}
fn assistant_id() -> u32 {
    77091
}
fn audio_pad() -> u32 {
    151646
}
fn image_pad() -> u32 {
    151655
}
fn video_pad() -> u32 {
    151656
}
fn audio_start() -> u32 {
    151647
}
fn pos_per_s() -> f32 {
    25.0
}
