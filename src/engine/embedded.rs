//! The embedded default model: with no `--model`, omnid builds a tiny Qwen3-Omni of the
//! real architecture in-process — random weights from a fixed seed, a byte-level BPE
//! tokenizer and a chat template it constructs itself — so every command runs on a fresh
//! machine with no downloads. It proves the pipeline (preprocessing, encoders, TMRoPE,
//! MoE decoder, sampling, streaming), not the answers: its text is noise.

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use serde_json::json;

use super::generation_config::GenerationConfig;
use super::model_dir::{LoadError, LoadedModel};
use super::processor_settings::ProcessorSettings;
use super::rng::SplitMix64;
use crate::models::family::{Family, MultimodalModel};
use crate::models::quant::plan::QuantPlan;
use crate::models::weights::{WeightOptions, Weights};
use crate::prompt::template::ChatTemplate;
use crate::prompt::tokenizer::Tokenizer;

/// Seed of the embedded weights.
pub const EMBEDDED_SEED: u64 = 0x0_0f1d;

/// The special tokens of the embedded tokenizer, in id order after the BPE vocabulary.
const SPECIALS: &[&str] = &[
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<|audio_start|>",
    "<|audio_end|>",
    "<|audio_pad|>",
    "<tts_pad>",
    "<tts_text_bos>",
    "<tts_text_eod>",
];

/// Words that get their own token, as in the real vocabulary (the chat template's roles).
const WORDS: &[&str] = &["system", "user", "assistant"];

/// The Qwen3-Omni chat template's layout (roles, media placeholders, and the tool section,
/// calls and `<tool_response>` turns of its function calling), compacted.
const CHAT_TEMPLATE: &str = r#"{%- macro content(message) -%}
{%- if message['content'] is string -%}
{{- message['content'] -}}
{%- elif message['content'] -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'text' -%}{{- part['text'] -}}
{%- elif part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
{%- elif part['type'] == 'audio' -%}{{- '<|audio_start|><|audio_pad|><|audio_end|>' -}}
{%- elif part['type'] == 'video' -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{%- if tools -%}
{{- '<|im_start|>system\n' -}}
{%- if messages[0]['role'] == 'system' -%}{{- content(messages[0]) -}}{{- '\n\n' -}}{%- endif -%}
{{- '# Tools\n\nYou may call these functions:\n<tools>' -}}
{%- for tool in tools -%}{{- '\n' -}}{{- tool | tojson -}}{%- endfor -%}
{{- '\n</tools>\n\nCall one with:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
{%- if message['role'] == 'tool' -%}
{{- '<|im_start|>user\n<tool_response>\n' -}}{{- content(message) -}}{{- '\n</tool_response><|im_end|>\n' -}}
{%- elif not (tools and loop.first and message['role'] == 'system') -%}
{{- '<|im_start|>' + message['role'] + '\n' -}}
{{- content(message) -}}
{%- for call in message['tool_calls'] or [] -%}
{%- if not loop.first or message['content'] -%}{{- '\n' -}}{%- endif -%}
{{- '<tool_call>\n{"name": "' + call['function']['name'] + '", "arguments": ' -}}
{%- if call['function']['arguments'] is string -%}{{- call['function']['arguments'] -}}{%- else -%}{{- call['function']['arguments'] | tojson -}}{%- endif -%}
{{- '}\n</tool_call>' -}}
{%- endfor -%}
{{- '<|im_end|>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"#;

/// The Qwen regex pre-tokenizer of Qwen2/Qwen3 tokenizers.
const QWEN_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GPT-2's byte → printable character map used by byte-level BPE.
fn byte_chars() -> Vec<char> {
    let mut map = vec!['\0'; 256];
    let mut extra = 0u32;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        map[b as usize] = if printable {
            char::from_u32(b).expect("byte value")
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("in range")
        };
    }
    map
}

/// Builds the embedded `tokenizer.json` text: 256 byte tokens, merges for the role words,
/// then the special tokens. Returns the JSON and the id of every special token.
fn tokenizer_json() -> (String, std::collections::HashMap<&'static str, u32>) {
    let chars = byte_chars();
    let mut vocab = serde_json::Map::new();
    for (i, c) in chars.iter().enumerate() {
        vocab.insert(c.to_string(), json!(i));
    }
    let mut merges = Vec::new();
    let mut next = 256u32;
    for w in WORDS {
        let letters: Vec<String> = w.chars().map(|c| c.to_string()).collect();
        let mut acc = letters[0].clone();
        for l in &letters[1..] {
            merges.push(json!([acc.clone(), l]));
            acc.push_str(l);
            if !vocab.contains_key(&acc) {
                vocab.insert(acc.clone(), json!(next));
                next += 1;
            }
        }
    }
    let mut ids = std::collections::HashMap::new();
    for w in WORDS {
        ids.insert(*w, vocab[*w].as_u64().expect("every word was merged into one token") as u32);
    }
    let added: Vec<serde_json::Value> = SPECIALS
        .iter()
        .map(|s| {
            ids.insert(*s, next);
            let v = json!({"id": next, "content": s, "single_word": false, "lstrip": false,
                           "rstrip": false, "normalized": false, "special": true});
            next += 1;
            v
        })
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false});
    let tok = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN_SPLIT}, "behavior": "Isolated", "invert": false},
            byte_level.clone()]},
        "post_processor": byte_level.clone(),
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges}
    });
    (tok.to_string(), ids)
}

/// The embedded model's `config.json` (the structure of shared/docs/qwen3-omni-tiny).
fn config_json(ids: &std::collections::HashMap<&'static str, u32>, text_vocab: usize) -> serde_json::Value {
    let rope =
        json!({"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [4, 2, 2], "interleaved": true});
    json!({
        "architectures": ["Qwen3OmniMoeForConditionalGeneration"],
        "model_type": "qwen3_omni_moe",
        "enable_audio_output": true,
        "im_start_token_id": ids["<|im_start|>"], "im_end_token_id": ids["<|im_end|>"],
        "tts_pad_token_id": ids["<tts_pad>"], "tts_bos_token_id": ids["<tts_text_bos>"],
        "tts_eos_token_id": ids["<tts_text_eod>"],
        "system_token_id": ids["system"], "user_token_id": ids["user"], "assistant_token_id": ids["assistant"],
        "thinker_config": {
            "text_config": {
                "vocab_size": text_vocab, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
                "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "hidden_act": "silu",
                "rms_norm_eps": 1e-6, "rope_parameters": rope, "decoder_sparse_step": 1, "mlp_only_layers": [],
                "max_position_embeddings": 4096,
                "moe_intermediate_size": 32, "num_experts": 8, "num_experts_per_tok": 2, "norm_topk_prob": true
            },
            "vision_config": {
                "depth": 4, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "in_channels": 3,
                "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 64,
                "num_position_embeddings": 16, "deepstack_visual_indexes": [1, 2, 3], "hidden_act": "gelu_pytorch_tanh"
            },
            "audio_config": {
                "num_mel_bins": 128, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                "d_model": 32, "max_source_positions": 1500, "n_window": 50, "n_window_infer": 200,
                "downsample_hidden_size": 8, "output_dim": 64, "activation_function": "gelu"
            },
            "audio_token_id": ids["<|audio_pad|>"], "image_token_id": ids["<|image_pad|>"],
            "video_token_id": ids["<|video_pad|>"], "vision_start_token_id": ids["<|vision_start|>"],
            "vision_end_token_id": ids["<|vision_end|>"], "audio_start_token_id": ids["<|audio_start|>"],
            "audio_end_token_id": ids["<|audio_end|>"], "position_id_per_seconds": 13
        },
        // Speech: the tiny values of spec §10.1 (codebook 64, 4 codebooks per frame).
        "talker_config": {
            "text_config": {
                "vocab_size": 64 + 1024, "hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "hidden_act": "silu",
                "rms_norm_eps": 1e-6, "rope_parameters": rope, "max_position_embeddings": 8192,
                "moe_intermediate_size": 24, "num_experts": 8, "num_experts_per_tok": 2, "norm_topk_prob": true,
                "shared_expert_intermediate_size": 32
            },
            "code_predictor_config": {
                "vocab_size": 64, "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "num_code_groups": 4,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0}
            },
            "num_code_groups": 4, "accept_hidden_layer": 2, "thinker_hidden_size": 64,
            "codec_pad_id": 164, "codec_bos_id": 165, "codec_eos_token_id": 166, "codec_nothink_id": 171,
            "codec_think_bos_id": 172, "codec_think_eos_id": 173,
            "speaker_id": {"chelsie": 317, "ethan": 318, "aiden": 319},
            "audio_token_id": ids["<|audio_pad|>"], "image_token_id": ids["<|image_pad|>"],
            "video_token_id": ids["<|video_pad|>"], "vision_start_token_id": ids["<|vision_start|>"],
            "audio_start_token_id": ids["<|audio_start|>"], "position_id_per_seconds": 13, "spatial_merge_size": 2
        },
        "code2wav_config": {
            "codebook_size": 64, "num_quantizers": 4, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "sliding_window": 72,
            "rms_norm_eps": 1e-5, "layer_scale_initial_scale": 0.01, "upsample_rates": [8, 5, 4, 3],
            "upsampling_ratios": [2, 2], "decoder_dim": 32, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}
        }
    })
}

/// Deterministic pseudo-random weights, addressed by tensor name so that the values do
/// not depend on construction order.
struct RandomWeights {
    seed: u64,
}

impl RandomWeights {
    fn values(&self, name: &str, n: usize, fan_in: usize) -> Vec<f32> {
        // FNV-1a of the name, mixed with the seed, starts an independent stream per tensor.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.seed;
        for b in name.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        let mut rng = SplitMix64::new(h);
        let mut uniform = || rng.uniform();
        let is_norm = name.ends_with("norm.weight")
            || name.contains("norm1.")
            || name.contains("norm2.")
            || name.contains("ln_q.")
            || name.contains("ln_post.")
            || name.contains("layer_norm.");
        let (mean, std) = if is_norm && name.ends_with(".weight") {
            (1.0, 0.1)
        } else if name.ends_with(".bias") {
            (0.0, 0.02)
        } else {
            (0.0, 1.0 / (fan_in.max(1) as f64).sqrt())
        };
        if n >= PARALLEL_MIN_VALUES {
            return parallel_normal(h, n, mean, std);
        }
        (0..n)
            .map(|_| {
                // Box–Muller.
                let (u1, u2) = (uniform().max(1e-12), uniform());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (mean + std * z) as f32
            })
            .collect()
    }
}

/// Tensors of at least this many values (the real-width benchmark models' matrices) are drawn in
/// parallel chunks; smaller ones keep the single stream the embedded tiny model was built with, so
/// its weights, and every test that depends on them, are unchanged. Drawing Qwen3-Omni-30B-A3B at
/// full depth one value at a time takes about a quarter of an hour, too long for a GPU session.
const PARALLEL_MIN_VALUES: usize = 1 << 20;

/// Values per parallel chunk; each chunk has its own stream, so the result does not depend on the
/// thread count.
const PARALLEL_CHUNK: usize = 1 << 16;

/// `n` normal values `mean + std·z`, chunk `c` drawn from a stream seeded by `(seed, c)`, both
/// Box–Muller outputs used.
fn parallel_normal(seed: u64, n: usize, mean: f64, std: f64) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0f32; n];
    out.par_chunks_mut(PARALLEL_CHUNK).enumerate().for_each(|(c, chunk)| {
        let mut rng = SplitMix64::new(seed ^ (c as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        for pair in chunk.chunks_mut(2) {
            let (u1, u2) = (rng.uniform().max(1e-12), rng.uniform());
            let (r, angle) = ((-2.0 * u1.ln()).sqrt(), std::f64::consts::TAU * u2);
            pair[0] = (mean + std * r * angle.cos()) as f32;
            if let Some(second) = pair.get_mut(1) {
                *second = (mean + std * r * angle.sin()) as f32;
            }
        }
    });
    out
}

impl SimpleBackend for RandomWeights {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let dims = s.dims();
        let fan_in = if dims.len() >= 2 { dims[1..].iter().product() } else { 1 };
        Tensor::from_vec(self.values(name, s.elem_count(), fan_in), s, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("embedded model: {name} has no shape to generate it from; this is a bug")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// Builds the embedded model on `device` in `dtype`.
pub fn load_embedded(dtype: DType, device: &Device) -> Result<LoadedModel, LoadError> {
    load_synthetic(&EmbeddedSize::Tiny, dtype, device)
}

/// Which random-weight model to build in-process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbeddedSize {
    /// The embedded default (seconds to build, megabytes).
    Tiny,
    /// Qwen3-Omni-30B-A3B-Instruct's widths with fewer layers and thinker experts: what the
    /// speed of each stage depends on, without 70 GB of weights (spec §1.3.1; benchmarks only).
    RealWidths { thinker_layers: usize, thinker_experts: usize, talker_layers: usize },
}

/// Builds a random-weight model of the given size with the embedded tokenizer and template.
pub fn load_synthetic(size: &EmbeddedSize, dtype: DType, device: &Device) -> Result<LoadedModel, LoadError> {
    load_synthetic_quantized(size, dtype, device, None)
}

/// [`load_synthetic`] with its matrices quantized by `quant` as they are built.
pub fn load_synthetic_quantized(
    size: &EmbeddedSize,
    dtype: DType,
    device: &Device,
    quant: Option<&QuantPlan>,
) -> Result<LoadedModel, LoadError> {
    let bad = |problem: String| LoadError::Model { dir: "<embedded>".into(), problem };
    let (tok_json, ids) = tokenizer_json();
    let inner: tokenizers::Tokenizer = tok_json.parse().map_err(|e| bad(format!("tokenizer: {e}")))?;
    let tokenizer = Tokenizer::from_inner(inner);
    let text_vocab = tokenizer.vocab_size().next_multiple_of(64);
    let mut config = config_json(&ids, text_vocab);
    if let EmbeddedSize::RealWidths { thinker_layers, thinker_experts, talker_layers } = size {
        super::embedded_real_widths::widen(&mut config, *thinker_layers, *thinker_experts, *talker_layers);
    }
    let template =
        ChatTemplate::from_source(CHAT_TEMPLATE, "<embedded>", vec![("eos_token".into(), "<|im_end|>".into())])?;
    let backend: Box<dyn SimpleBackend> = Box::new(RandomWeights { seed: EMBEDDED_SEED });
    let vb = candle_nn::VarBuilder::from_backend(backend, dtype, device.clone());
    let options = WeightOptions { plan: quant.cloned(), ..Default::default() };
    let weights = Weights::new(vb, std::sync::Arc::new(options));
    let model = MultimodalModel::load(Family::Qwen3Omni, &config, weights).map_err(|e| bad(e.to_string()))?;
    LoadedModel {
        dir: None,
        family: Family::Qwen3Omni,
        model,
        tokenizer,
        template,
        processor: match size {
            EmbeddedSize::RealWidths { .. } => super::embedded_real_widths::real_processor(),
            _ => ProcessorSettings::embedded(),
        },
        generation: GenerationConfig::default(),
        dtype,
        device: device.clone(),
        quant: quant.cloned(),
        as_stored: None,
    }
    .checked()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parallel draw is deterministic, normal with the asked moments, odd lengths included, and
    /// its chunks are independent streams (not one stream repeated per chunk).
    #[test]
    fn parallel_draw_is_deterministic_and_normal() {
        let n = 3 * PARALLEL_CHUNK + 5;
        let a = parallel_normal(42, n, 0.5, 2.0);
        assert_eq!(a, parallel_normal(42, n, 0.5, 2.0));
        assert_ne!(a, parallel_normal(43, n, 0.5, 2.0));
        assert!(a[n - 1] != 0.0, "the odd last value is drawn");
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.03, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.03, "std {}", var.sqrt());
        assert_ne!(a[..64], a[PARALLEL_CHUNK..PARALLEL_CHUNK + 64]);
    }
}
