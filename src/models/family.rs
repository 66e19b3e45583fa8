//! Recognising a checkpoint from its `config.json` and building the matching model.

use crate::models::weights::Weights;
use candle_core::Result;

use super::audio_encoder::AudioEncoderConfig;
use super::config::VisionConfig;
use super::multimodal::{encode_visual, MultimodalInputs, PreparedPrompt, VisualInput};
use super::qwen3_omni::config::Qwen3OmniMoeConfig;
use super::qwen3_omni::thinker::Thinker;
use super::qwen3_vl::config::Qwen3VlConfig;
use super::qwen3_vl::model::Qwen3Vl;
use super::text_decoder::TextDecoder;
use super::vision_encoder::VisionOutput;

/// The checkpoint families omnid runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `Qwen3OmniMoeForConditionalGeneration` (Instruct, Thinking, Captioner).
    Qwen3Omni,
    /// `Qwen3VLForConditionalGeneration` (dense 2B–32B).
    Qwen3Vl,
    /// `Qwen3VLMoeForConditionalGeneration` (30B-A3B, 235B-A22B).
    Qwen3VlMoe,
}

/// The architectures table printed in errors and the README.
pub const SUPPORTED: &[(&str, &str)] = &[
    ("Qwen3OmniMoeForConditionalGeneration", "qwen3_omni_moe"),
    ("Qwen3VLForConditionalGeneration", "qwen3_vl"),
    ("Qwen3VLMoeForConditionalGeneration", "qwen3_vl_moe"),
];

impl Family {
    /// Reads `architectures[0]` (or `model_type`) of a parsed `config.json`.
    pub fn detect(config: &serde_json::Value) -> std::result::Result<Self, String> {
        let arch = config.get("architectures").and_then(|a| a.get(0)).and_then(|a| a.as_str());
        let model_type = config.get("model_type").and_then(|a| a.as_str());
        let by_arch = |a: &str| match a {
            "Qwen3OmniMoeForConditionalGeneration" => Some(Family::Qwen3Omni),
            "Qwen3VLForConditionalGeneration" => Some(Family::Qwen3Vl),
            "Qwen3VLMoeForConditionalGeneration" => Some(Family::Qwen3VlMoe),
            _ => None,
        };
        let by_type = |t: &str| match t {
            "qwen3_omni_moe" => Some(Family::Qwen3Omni),
            "qwen3_vl" => Some(Family::Qwen3Vl),
            "qwen3_vl_moe" => Some(Family::Qwen3VlMoe),
            _ => None,
        };
        if let Some(f) = arch.and_then(by_arch).or_else(|| model_type.and_then(by_type)) {
            return Ok(f);
        }
        let names: Vec<&str> = SUPPORTED.iter().map(|(a, _)| *a).collect();
        Err(format!(
            "architecture {} (model_type {}) is not supported; omnid runs {}",
            arch.unwrap_or("<none>"),
            model_type.unwrap_or("<none>"),
            names.join(", ")
        ))
    }

    /// Human name for logs and `--json` output.
    pub fn name(self) -> &'static str {
        match self {
            Family::Qwen3Omni => "Qwen3-Omni",
            Family::Qwen3Vl => "Qwen3-VL",
            Family::Qwen3VlMoe => "Qwen3-VL-MoE",
        }
    }
}

/// Ids of the media placeholder and delimiter tokens, from the model config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaTokenIds {
    pub image_pad: u32,
    pub video_pad: u32,
    pub vision_start: u32,
    pub vision_end: Option<u32>,
    /// `None` for models without an audio encoder.
    pub audio_pad: Option<u32>,
    pub audio_start: Option<u32>,
    pub audio_end: Option<u32>,
}

/// A loaded understanding model (the Omni thinker or Qwen3-VL).
#[derive(Debug, Clone)]
pub enum MultimodalModel {
    Omni(Box<Thinker>),
    Vl(Box<Qwen3Vl>),
}

impl MultimodalModel {
    /// Builds the model of `family` from the parsed config and the checkpoint root.
    pub fn load(family: Family, config: &serde_json::Value, vb: Weights) -> Result<Self> {
        let parse_err = |e: serde_json::Error| candle_core::Error::msg(format!("config.json: {e}"));
        Ok(match family {
            Family::Qwen3Omni => {
                let cfg: Qwen3OmniMoeConfig = serde_json::from_value(config.clone()).map_err(parse_err)?;
                MultimodalModel::Omni(Box::new(Thinker::new(&cfg, vb)?))
            }
            Family::Qwen3Vl | Family::Qwen3VlMoe => {
                let cfg: Qwen3VlConfig = serde_json::from_value(config.clone()).map_err(parse_err)?;
                MultimodalModel::Vl(Box::new(Qwen3Vl::new(&cfg, family == Family::Qwen3VlMoe, vb)?))
            }
        })
    }

    /// The text decoder.
    pub fn decoder(&self) -> &TextDecoder {
        match self {
            MultimodalModel::Omni(t) => &t.decoder,
            MultimodalModel::Vl(v) => &v.decoder,
        }
    }

    /// Merges the media into the prompt (encoders, scatter, positions, DeepStack).
    pub fn prepare(&self, inputs: &MultimodalInputs) -> Result<PreparedPrompt> {
        match self {
            MultimodalModel::Omni(t) => t.prepare(inputs),
            MultimodalModel::Vl(v) => v.prepare(inputs),
        }
    }

    /// Placeholder and delimiter ids.
    pub fn media_tokens(&self) -> MediaTokenIds {
        match self {
            MultimodalModel::Omni(t) => {
                let c = &t.config().thinker_config;
                MediaTokenIds {
                    image_pad: c.image_token_id,
                    video_pad: c.video_token_id,
                    vision_start: c.vision_start_token_id.expect("validated at load; this is a bug"),
                    vision_end: c.vision_end_token_id,
                    audio_pad: Some(c.audio_token_id),
                    audio_start: Some(c.audio_start_token_id),
                    audio_end: c.audio_end_token_id,
                }
            }
            MultimodalModel::Vl(v) => {
                let c = v.config();
                MediaTokenIds {
                    image_pad: c.image_token_id,
                    video_pad: c.video_token_id,
                    vision_start: c.vision_start_token_id,
                    vision_end: Some(c.vision_end_token_id),
                    audio_pad: None,
                    audio_start: None,
                    audio_end: None,
                }
            }
        }
    }

    /// True when the model takes audio input.
    pub fn accepts_audio(&self) -> bool {
        matches!(self, MultimodalModel::Omni(_))
    }

    /// Runs the vision tower over a list of images or videos in one call.
    pub fn encode_visual(&self, items: &[&VisualInput]) -> Result<Option<VisionOutput>> {
        let vision = match self {
            MultimodalModel::Omni(t) => &t.vision,
            MultimodalModel::Vl(v) => &v.vision,
        };
        encode_visual(vision, items)
    }

    /// The vision tower's config.
    pub fn vision_config(&self) -> &VisionConfig {
        match self {
            MultimodalModel::Omni(t) => &t.config().thinker_config.vision_config,
            MultimodalModel::Vl(v) => &v.config().vision_config,
        }
    }

    /// The audio tower's config (models with audio input).
    pub fn audio_config(&self) -> Option<&AudioEncoderConfig> {
        match self {
            MultimodalModel::Omni(t) => Some(t.audio.config()),
            MultimodalModel::Vl(_) => None,
        }
    }
}
