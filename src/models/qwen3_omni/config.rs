//! `config.json` of `Qwen3OmniMoeForConditionalGeneration` (Instruct, Thinking, Captioner),
//! mirrored field by field from transformers 5.23 `configuration_qwen3_omni_moe.py`.
//! Defaults are the transformers class defaults (Qwen2.5-Omni-era values, spec §1.4);
//! the real checkpoints carry their own values and those always win.

use serde::Deserialize;

use crate::models::audio_encoder::AudioEncoderConfig;
use crate::models::code2wav::Code2WavConfig;
use crate::models::config::{RopeFields, TextConfigFields, VisionConfig};
use crate::models::layers::activation::Activation;
use crate::models::layers::attention::AttentionConfig;
use crate::models::layers::moe::ExpertStorage;
use crate::models::text_decoder::{FfnConfig, TextDecoderConfig};

/// Top-level config.
#[derive(Debug, Clone, Deserialize)]
pub struct Qwen3OmniMoeConfig {
    pub thinker_config: ThinkerConfig,
    /// The speech-token generator (talker LM + code predictor); `None` in configs without one.
    #[serde(default)]
    pub talker_config: Option<TalkerConfig>,
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

/// `talker_config` (`Qwen3OmniMoeTalkerConfig`). Typed where the speech path reads it so far
/// (the code predictor, the code-group count); the talker LM's own fields stay verbatim in
/// `text_config` and `rest` until the talker is built.
#[derive(Debug, Clone, Deserialize)]
pub struct TalkerConfig {
    /// The MTP that turns each talker token into a full codec frame (spec §7.5).
    #[serde(default)]
    pub code_predictor_config: CodePredictorConfig,
    /// Codebooks per 80 ms frame: codebook 0 from the talker, the rest from the code predictor
    /// (16 in the real model; the class default is 32).
    #[serde(default = "crate::models::config::default_usize::<32>")]
    pub num_code_groups: usize,
    /// The talker LM (`Qwen3OmniMoeTalkerTextConfig`), verbatim.
    #[serde(default)]
    pub text_config: Option<serde_json::Value>,
    /// Every other field, verbatim.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl TalkerConfig {
    /// `text_config.{key}` of the talker LM as an integer.
    pub fn text_usize(&self, key: &str) -> Result<usize, String> {
        self.text_config
            .as_ref()
            .and_then(|t| t.get(key))
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .ok_or_else(|| format!("talker_config.text_config.{key} is missing or not a non-negative integer"))
    }
}

/// `talker_config.code_predictor_config` (`Qwen3OmniMoeTalkerCodePredictorConfig`, transformers
/// 5.23): a small dense Qwen3 decoder with q/k norm and plain 1-D RoPE. Defaults are the class
/// defaults; `max_position_embeddings`, `initializer_range`, `use_cache` and the token ids are
/// not read by inference.
#[derive(Debug, Clone, Deserialize)]
pub struct CodePredictorConfig {
    /// Entries per residual codebook (2048; equals Code2Wav's `codebook_size`).
    #[serde(default = "crate::models::config::default_usize::<2048>")]
    pub vocab_size: usize,
    /// Must equal the talker's hidden size: the talker's hidden state is its first input row.
    #[serde(default = "crate::models::config::default_usize::<1024>")]
    pub hidden_size: usize,
    #[serde(default = "crate::models::config::default_usize::<3072>")]
    pub intermediate_size: usize,
    #[serde(default = "crate::models::config::default_usize::<5>")]
    pub num_hidden_layers: usize,
    #[serde(default = "crate::models::config::default_usize::<16>")]
    pub num_attention_heads: usize,
    /// `None` means `num_attention_heads` (transformers' `__post_init__`).
    #[serde(default = "some8")]
    pub num_key_value_heads: Option<usize>,
    #[serde(default = "some128")]
    pub head_dim: Option<usize>,
    #[serde(default = "crate::models::config::silu")]
    pub hidden_act: Activation,
    #[serde(default = "crate::models::config::eps6")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub attention_bias: bool,
    /// Only consulted for `sliding_attention` layers, which omnid does not support.
    #[serde(default)]
    pub sliding_window: Option<usize>,
    #[serde(default = "crate::models::config::default_usize::<28>")]
    pub max_window_layers: usize,
    /// `full_attention` / `sliding_attention` per layer; derived from `sliding_window` and
    /// `max_window_layers` when absent, as transformers does.
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
    /// Codebooks per frame including codebook 0 (heads and tables: `num_code_groups − 1`).
    #[serde(default = "crate::models::config::default_usize::<32>")]
    pub num_code_groups: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    /// Only the base is read: the code predictor's rotary is 1-D whatever `mrope_section` says
    /// (`Qwen3OmniMoeRotaryEmbedding`).
    #[serde(flatten)]
    pub rope: RopeFields,
}

impl Default for CodePredictorConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every field has a default; this is a bug")
    }
}

/// transformers' `PreTrainedConfig` default RoPE base, used when the config names none.
const DEFAULT_ROPE_THETA: f64 = 10000.0;

impl CodePredictorConfig {
    /// Query/key/value head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Layer types, resolved as transformers' `__post_init__` does.
    pub fn layer_types(&self) -> Vec<String> {
        self.layer_types.clone().unwrap_or_else(|| {
            (0..self.num_hidden_layers)
                .map(|i| {
                    if self.sliding_window.is_some() && i >= self.max_window_layers {
                        "sliding_attention".to_string()
                    } else {
                        "full_attention".to_string()
                    }
                })
                .collect()
        })
    }

    /// Checks the fields and their relation to the talker (spec §10.2): `talker_hidden` is the
    /// talker LM's hidden size, `talker_groups` its `num_code_groups`.
    pub fn validate(&self, talker_hidden: usize, talker_groups: usize) -> Result<(), String> {
        for (key, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
        ] {
            if v == 0 {
                return Err(format!("code_predictor_config.{key} must be positive"));
            }
        }
        if self.num_code_groups < 2 {
            return Err(format!(
                "code_predictor_config.num_code_groups {} leaves no residual codebook to predict",
                self.num_code_groups
            ));
        }
        if self.num_code_groups != talker_groups {
            return Err(format!(
                "code_predictor_config.num_code_groups {} differs from talker_config.num_code_groups {talker_groups}",
                self.num_code_groups
            ));
        }
        if self.hidden_size != talker_hidden {
            return Err(format!(
                "code_predictor_config.hidden_size {} differs from the talker's hidden_size {talker_hidden} \
                 (the talker's hidden state is the predictor's first input row)",
                self.hidden_size
            ));
        }
        let types = self.layer_types();
        if types.len() != self.num_hidden_layers {
            return Err(format!(
                "code_predictor_config.layer_types has {} entries for {} layers",
                types.len(),
                self.num_hidden_layers
            ));
        }
        if let Some(t) = types.iter().find(|t| t.as_str() != "full_attention") {
            return Err(format!("code_predictor_config.layer_types: {t:?} layers are not supported"));
        }
        if self.tie_word_embeddings {
            return Err("code_predictor_config.tie_word_embeddings: the predictor has no table to tie to".into());
        }
        self.decoder_config().map(|_| ())
    }

    /// The shared decoder's settings: dense SwiGLU layers, q/k norm, plain 1-D RoPE.
    pub fn decoder_config(&self) -> Result<TextDecoderConfig, String> {
        let head_dim = self.head_dim();
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(format!("code_predictor_config.head_dim must be a positive even number (got {head_dim})"));
        }
        let num_kv = self.num_key_value_heads.unwrap_or(self.num_attention_heads);
        if num_kv == 0 || !self.num_attention_heads.is_multiple_of(num_kv) {
            return Err(format!(
                "code_predictor_config.num_attention_heads {} is not a multiple of num_key_value_heads {num_kv}",
                self.num_attention_heads
            ));
        }
        let theta = self.rope.resolve(DEFAULT_ROPE_THETA, None)?.theta;
        Ok(TextDecoderConfig {
            vocab_size: self.vocab_size,
            hidden_size: self.hidden_size,
            attention: AttentionConfig {
                hidden_size: self.hidden_size,
                num_heads: self.num_attention_heads,
                num_kv_heads: num_kv,
                head_dim,
                qk_norm: true,
                rms_norm_eps: self.rms_norm_eps,
                bias: self.attention_bias,
                sliding_window: None,
            },
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: theta,
            mrope_section: None,
            act: self.hidden_act,
            layers: vec![FfnConfig::Dense { intermediate_size: self.intermediate_size }; self.num_hidden_layers],
            tie_word_embeddings: false,
            max_position_embeddings: self.max_position_embeddings,
        })
    }
}

fn some8() -> Option<usize> {
    Some(8)
}
fn some128() -> Option<usize> {
    Some(128)
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
