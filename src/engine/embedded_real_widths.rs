//! The real Qwen3-Omni-30B-A3B-Instruct widths (spec §1.3.1) on top of the embedded model's
//! config: every matrix a token passes through has its real shape, only the layer and expert
//! counts are smaller, so per-layer costs (and first-audio latency per layer) are measured on
//! the real dimensions. The audio and vision encoders get their real widths with fewer blocks
//! (vision 4 of 27, audio 2 of 32) and the processor its real pixel budget, so that video-job
//! benchmarks see real token counts and real per-block encoder costs.

use serde_json::json;

/// Rewrites the embedded config in place.
pub fn widen(config: &mut serde_json::Value, thinker_layers: usize, thinker_experts: usize, talker_layers: usize) {
    let rope =
        json!({"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [24, 20, 20], "interleaved": true});
    let t = &mut config["thinker_config"];
    for (k, v) in [
        ("hidden_size", json!(2048)),
        ("num_hidden_layers", json!(thinker_layers)),
        ("num_attention_heads", json!(32)),
        ("num_key_value_heads", json!(4)),
        ("head_dim", json!(128)),
        ("intermediate_size", json!(768)),
        ("moe_intermediate_size", json!(768)),
        ("num_experts", json!(thinker_experts)),
        ("num_experts_per_tok", json!(8.min(thinker_experts))),
        ("rope_parameters", rope.clone()),
    ] {
        t["text_config"][k] = v;
    }
    t["text_config"]["max_position_embeddings"] = json!(65536);
    for (k, v) in [
        ("hidden_size", json!(1152)),
        ("intermediate_size", json!(4304)),
        ("num_heads", json!(16)),
        ("num_position_embeddings", json!(2304)),
        ("out_hidden_size", json!(2048)),
    ] {
        t["vision_config"][k] = v;
    }
    for (k, v) in [
        ("d_model", json!(1280)),
        ("encoder_attention_heads", json!(20)),
        ("encoder_ffn_dim", json!(5120)),
        ("downsample_hidden_size", json!(480)),
        ("output_dim", json!(2048)),
    ] {
        t["audio_config"][k] = v;
    }
    let tk = &mut config["talker_config"];
    for (k, v) in [
        ("vocab_size", json!(3072)),
        ("hidden_size", json!(1024)),
        ("intermediate_size", json!(2048)),
        ("num_hidden_layers", json!(talker_layers)),
        ("num_attention_heads", json!(16)),
        ("num_key_value_heads", json!(2)),
        ("head_dim", json!(128)),
        ("moe_intermediate_size", json!(384)),
        ("num_experts", json!(128)),
        ("num_experts_per_tok", json!(6)),
        ("shared_expert_intermediate_size", json!(768)),
        ("rope_parameters", rope),
    ] {
        tk["text_config"][k] = v;
    }
    for (k, v) in [
        ("vocab_size", json!(2048)),
        ("hidden_size", json!(1024)),
        ("intermediate_size", json!(3072)),
        ("num_hidden_layers", json!(5)),
        ("num_attention_heads", json!(16)),
        ("num_key_value_heads", json!(8)),
        ("head_dim", json!(128)),
        ("num_code_groups", json!(16)),
    ] {
        tk["code_predictor_config"][k] = v;
    }
    for (k, v) in [
        ("num_code_groups", json!(16)),
        ("accept_hidden_layer", json!(24.min(thinker_layers))),
        ("thinker_hidden_size", json!(2048)),
        ("codec_pad_id", json!(2148)),
        ("codec_bos_id", json!(2149)),
        ("codec_eos_token_id", json!(2150)),
        ("codec_nothink_id", json!(2155)),
        ("codec_think_bos_id", json!(2156)),
        ("codec_think_eos_id", json!(2157)),
        ("speaker_id", json!({"chelsie": 2301, "ethan": 2302, "aiden": 2303})),
    ] {
        tk[k] = v;
    }
    config["code2wav_config"] = json!({
        "codebook_size": 2048, "num_quantizers": 16, "hidden_size": 1024, "intermediate_size": 3072,
        "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 16, "sliding_window": 72,
        "rms_norm_eps": 1e-5, "layer_scale_initial_scale": 0.01, "upsample_rates": [8, 5, 4, 3],
        "upsampling_ratios": [2, 2], "decoder_dim": 1536, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}
    });
}

/// The real checkpoint's processor budget (spec §5): images 3136–12845056 pixels, video frames
/// 131072–786432 pixels each (the HF Omni processor's per-frame bounds).
pub fn real_processor() -> super::processor_settings::ProcessorSettings {
    let mut p = super::processor_settings::ProcessorSettings::embedded();
    p.image.pixels.min_pixels = 3136;
    p.image.pixels.max_pixels = 12_845_056;
    p.video.pixels.min_pixels = 131_072;
    p.video.pixels.max_pixels = 786_432;
    p
}
