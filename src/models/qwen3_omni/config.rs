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
    /// The speech-token generator (talker LM + code predictor), kept verbatim: thinker-only
    /// checkpoints may carry an incomplete one, and it is parsed only when speech is loaded
    /// ([`Qwen3OmniMoeConfig::speech`]).
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

impl Qwen3OmniMoeConfig {
    /// The talker and Code2Wav configs, checked against the thinker; `Ok(None)` for checkpoints
    /// without speech output (`enable_audio_output: false`: Thinking, Captioner).
    pub fn speech(&self) -> Result<Option<(TalkerConfig, Code2WavConfig)>, String> {
        if !self.enable_audio_output {
            return Ok(None);
        }
        let raw = self.talker_config.clone().ok_or("enable_audio_output is true but talker_config is missing")?;
        let talker: TalkerConfig = serde_json::from_value(raw).map_err(|e| format!("talker_config: {e}"))?;
        let code2wav =
            self.code2wav_config.clone().ok_or("enable_audio_output is true but code2wav_config is missing")?;
        let t = &self.thinker_config.text_config.fields;
        talker.validate(t.hidden_size, t.num_hidden_layers)?;
        code2wav.validate()?;
        if code2wav.num_quantizers != talker.num_code_groups || code2wav.codebook_size != talker.codebook_size() {
            return Err(format!(
                "code2wav_config ({} quantizers × {}) does not fit the talker's frames ({} codebooks × {})",
                code2wav.num_quantizers,
                code2wav.codebook_size,
                talker.num_code_groups,
                talker.codebook_size()
            ));
        }
        Ok(Some((talker, code2wav)))
    }
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

/// `talker_config` (`Qwen3OmniMoeTalkerConfig`, transformers 5.23): the speech-token generator.
/// Defaults are the class defaults (Qwen2.5-Omni-era ids, spec §1.4); real checkpoints carry
/// their own values. `initializer_range` and `seconds_per_chunk` are not read by inference.
#[derive(Debug, Clone, Deserialize)]
pub struct TalkerConfig {
    /// The MTP that turns each talker token into a full codec frame (spec §7.5).
    #[serde(default)]
    pub code_predictor_config: CodePredictorConfig,
    /// The talker LM (`Qwen3OmniMoeTalkerTextConfig`).
    pub text_config: TalkerTextConfig,
    /// Codebooks per 80 ms frame: codebook 0 from the talker, the rest from the code predictor
    /// (16 in the real model; the class default is 32).
    #[serde(default = "crate::models::config::default_usize::<32>")]
    pub num_code_groups: usize,
    /// Which thinker hidden state feeds the multimodal rows: `hidden_states[k]` in transformers'
    /// numbering (0 = embeddings, k = output of layer k−1, the layer count = the final-norm state).
    #[serde(default = "crate::models::config::default_usize::<18>")]
    pub accept_hidden_layer: usize,
    /// Width of the thinker's hidden states (input of the two resize MLPs).
    #[serde(default = "crate::models::config::default_usize::<2048>")]
    pub thinker_hidden_size: usize,
    #[serde(default = "crate::models::config::default_u32::<4196>")]
    pub codec_pad_id: u32,
    #[serde(default = "crate::models::config::default_u32::<4197>")]
    pub codec_bos_id: u32,
    #[serde(default = "crate::models::config::default_u32::<4198>")]
    pub codec_eos_token_id: u32,
    #[serde(default = "crate::models::config::default_u32::<4203>")]
    pub codec_nothink_id: u32,
    #[serde(default = "crate::models::config::default_u32::<4204>")]
    pub codec_think_bos_id: u32,
    #[serde(default = "crate::models::config::default_u32::<4205>")]
    pub codec_think_eos_id: u32,
    /// Speaker name (lower case) → codec id of its voice token.
    #[serde(default)]
    pub speaker_id: std::collections::BTreeMap<String, u32>,
    // The talker's own TMRoPE walk (spec §7.4 step 5) reads these, not the thinker's.
    #[serde(default = "audio_pad")]
    pub audio_token_id: u32,
    #[serde(default = "image_pad")]
    pub image_token_id: u32,
    #[serde(default = "video_pad")]
    pub video_token_id: u32,
    #[serde(default)]
    pub vision_start_token_id: Option<u32>,
    #[serde(default = "audio_start")]
    pub audio_start_token_id: u32,
    #[serde(default = "pos_per_s")]
    pub position_id_per_seconds: f32,
    /// Required: the talker module reads it, and transformers has no default for it (spec §10.2).
    #[serde(default)]
    pub spatial_merge_size: Option<usize>,
}

/// `talker_config.text_config` (`qwen3_omni_moe_talker_text`): a Qwen3 MoE decoder whose every
/// layer also has a gated shared expert (transformers builds a thinker-style block and then
/// overwrites it, so `mlp_only_layers` / `decoder_sparse_step` have no effect, spec §7.3).
#[derive(Debug, Clone, Deserialize)]
pub struct TalkerTextConfig {
    #[serde(flatten)]
    pub fields: TextConfigFields,
    /// Required: the module reads it although transformers declares no default (spec §1.4).
    #[serde(default)]
    pub shared_expert_intermediate_size: Option<usize>,
}

impl TalkerConfig {
    /// The talker LM's decoder: every layer sparse MoE + shared expert, per-expert tensors.
    pub fn decoder_config(&self) -> Result<TextDecoderConfig, String> {
        let t = &self.text_config;
        let shared = t.shared_expert_intermediate_size.filter(|&w| w > 0).ok_or(
            "talker_config.text_config.shared_expert_intermediate_size is missing (the talker's shared expert width)",
        )?;
        let mut fields = t.fields.clone();
        // Every talker layer is sparse, whatever these say (see the type's doc).
        fields.mlp_only_layers = None;
        fields.decoder_sparse_step = Some(1);
        if fields.num_experts.unwrap_or(0) == 0 {
            return Err("talker_config.text_config.num_experts must be positive (every talker layer is MoE)".into());
        }
        let mut cfg = fields
            .decoder_config(ExpertStorage::PerExpert, 1e6, false, true)
            .map_err(|e| format!("talker_config.{e}"))?;
        for layer in &mut cfg.layers {
            if let FfnConfig::Moe(m) = layer {
                m.shared_expert_intermediate_size = Some(shared);
            }
        }
        Ok(cfg)
    }

    /// Talker LM hidden size.
    pub fn hidden_size(&self) -> usize {
        self.text_config.fields.hidden_size
    }

    /// Talker vocabulary (codebook 0 + the control tokens).
    pub fn vocab_size(&self) -> usize {
        self.text_config.fields.vocab_size
    }

    /// Entries of codebook 0: the talker vocabulary minus the 1024 control slots at its top
    /// (transformers suppresses `[vocab − 1024, vocab)` except codec_eos while sampling).
    pub fn codebook_size(&self) -> usize {
        self.vocab_size().saturating_sub(CONTROL_SLOTS)
    }

    /// The codec id of a speaker, looked up case-insensitively as transformers does.
    pub fn speaker(&self, name: &str) -> Result<u32, String> {
        self.speaker_id.get(&name.to_lowercase()).copied().ok_or_else(|| {
            let names: Vec<&str> = self.speaker_id.keys().map(String::as_str).collect();
            format!("unknown speaker {name:?}: this checkpoint has {}", names.join(", "))
        })
    }

    /// Checks the relations the speech path relies on (spec §10.2); `thinker_hidden` is the
    /// thinker text hidden size, `thinker_layers` its layer count.
    pub fn validate(&self, thinker_hidden: usize, thinker_layers: usize) -> Result<(), String> {
        let cfg = self.decoder_config()?;
        if self.thinker_hidden_size != thinker_hidden {
            return Err(format!(
                "talker_config.thinker_hidden_size {} differs from the thinker's hidden_size {thinker_hidden}",
                self.thinker_hidden_size
            ));
        }
        if self.accept_hidden_layer > thinker_layers {
            return Err(format!(
                "talker_config.accept_hidden_layer {} is past the thinker's {thinker_layers} layers",
                self.accept_hidden_layer
            ));
        }
        if self.text_config.fields.intermediate_size.unwrap_or(0) == 0 {
            return Err("talker_config.text_config.intermediate_size (the resize MLPs' width) is missing".into());
        }
        if self.vocab_size() <= CONTROL_SLOTS {
            return Err(format!(
                "talker_config.text_config.vocab_size {} leaves no codebook below the {CONTROL_SLOTS} control slots",
                self.vocab_size()
            ));
        }
        let lo = self.codebook_size() as u32;
        let mut ids = vec![
            ("codec_pad_id", self.codec_pad_id),
            ("codec_bos_id", self.codec_bos_id),
            ("codec_eos_token_id", self.codec_eos_token_id),
            ("codec_nothink_id", self.codec_nothink_id),
            ("codec_think_bos_id", self.codec_think_bos_id),
            ("codec_think_eos_id", self.codec_think_eos_id),
        ];
        ids.extend(self.speaker_id.iter().map(|(_, &id)| ("speaker_id", id)));
        if let Some((name, id)) = ids.iter().find(|(_, id)| *id < lo || *id as usize >= cfg.vocab_size) {
            return Err(format!(
                "talker_config.{name} {id} is not a control token (expected {lo}..{})",
                cfg.vocab_size
            ));
        }
        if self.speaker_id.is_empty() {
            return Err("talker_config.speaker_id lists no speakers".into());
        }
        if self.vision_start_token_id.is_none() {
            return Err("talker_config.vision_start_token_id is missing".into());
        }
        if self.spatial_merge_size.unwrap_or(0) == 0 {
            return Err("talker_config.spatial_merge_size is missing".into());
        }
        self.code_predictor_config.validate(self.hidden_size(), self.num_code_groups)?;
        if self.code_predictor_config.vocab_size != self.codebook_size() {
            return Err(format!(
                "code_predictor_config.vocab_size {} differs from the talker's codebook ({} = vocab − {CONTROL_SLOTS})",
                self.code_predictor_config.vocab_size,
                self.codebook_size()
            ));
        }
        Ok(())
    }
}

/// Control-token slots at the top of the talker vocabulary.
pub const CONTROL_SLOTS: usize = 1024;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// omni_c's config.json with `edit` applied.
    fn config_with(edit: impl FnOnce(&mut serde_json::Value)) -> Qwen3OmniMoeConfig {
        let mut v: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/omni_c/config.json")).unwrap();
        edit(&mut v);
        serde_json::from_value(v).unwrap()
    }

    fn speech_error(edit: impl FnOnce(&mut serde_json::Value)) -> String {
        config_with(edit).speech().unwrap_err()
    }

    #[test]
    fn the_committed_speech_config_is_valid() {
        let (talker, code2wav) = config_with(|_| {}).speech().unwrap().unwrap();
        assert_eq!((talker.num_code_groups, talker.codebook_size(), code2wav.num_quantizers), (6, 24, 6));
        assert_eq!(talker.speaker("SERENA"), Ok(24 + 503));
        let e = talker.speaker("nova").unwrap_err();
        assert!(e.contains("unknown speaker \"nova\"") && e.contains("aiden, chelsie, ethan, serena"), "{e}");
        // Every talker layer is MoE with the shared expert, whatever mlp_only_layers says.
        let cfg = config_with(|v| v["talker_config"]["text_config"]["mlp_only_layers"] = serde_json::json!([0, 1]));
        let dec = cfg.speech().unwrap().unwrap().0.decoder_config().unwrap();
        assert!(dec
            .layers
            .iter()
            .all(|l| matches!(l, FfnConfig::Moe(m) if m.shared_expert_intermediate_size == Some(14))));
    }

    #[test]
    fn speech_configs_that_cannot_work_are_named() {
        let e = speech_error(|v| {
            v["talker_config"]["text_config"].as_object_mut().unwrap().remove("shared_expert_intermediate_size");
        });
        assert!(e.contains("shared_expert_intermediate_size"), "{e}");
        let e = speech_error(|v| v["talker_config"]["accept_hidden_layer"] = 9.into());
        assert!(e.contains("accept_hidden_layer 9") && e.contains("3 layers"), "{e}");
        let e = speech_error(|v| v["talker_config"]["thinker_hidden_size"] = 64.into());
        assert!(e.contains("thinker_hidden_size 64"), "{e}");
        let e = speech_error(|v| v["talker_config"]["codec_eos_token_id"] = 5.into());
        assert!(e.contains("codec_eos_token_id 5") && e.contains("not a control token"), "{e}");
        let e = speech_error(|v| v["talker_config"]["speaker_id"] = serde_json::json!({}));
        assert!(e.contains("no speakers"), "{e}");
        let e = speech_error(|v| v["code2wav_config"]["num_quantizers"] = 4.into());
        assert!(e.contains("code2wav_config") && e.contains("6 codebooks"), "{e}");
        let e = speech_error(|v| v["talker_config"]["code_predictor_config"]["vocab_size"] = 32.into());
        assert!(e.contains("vocab_size 32"), "{e}");
        let e = speech_error(|v| {
            v.as_object_mut().unwrap().remove("talker_config");
        });
        assert!(e.contains("talker_config is missing"), "{e}");
        // A thinker-only checkpoint needs no talker config at all.
        let cfg = config_with(|v| {
            v["enable_audio_output"] = false.into();
            v["talker_config"] = serde_json::json!({"broken": true});
        });
        assert!(cfg.speech().unwrap().is_none());
    }
}
