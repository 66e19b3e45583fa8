//! Model code: candle only — no server, async runtime or protocol types.
//!
//! | module | job |
//! |---|---|
//! | [`layers`] | one copy of every shared layer (attention, norms, rotary, MoE, KV cache) |
//! | [`checkpoint`] | memory-mapped (sharded) safetensors with clear errors |
//! | [`config`] | config pieces shared by Omni and VL (RoPE, vision, text fields) |
//! | [`text_decoder`] | the Qwen3 decoder used by the thinker, VL and the talker; its layer stack alone for the code predictor |
//! | [`audio_encoder`], [`vision_encoder`] | the encoders |
//! | [`code2wav`] | Qwen3-Omni's codec decoder (codes → 24 kHz waveform), full and streaming |
//! | [`multimodal`] | prompt inputs and the merge of encoder features into the prompt |
//! | [`qwen3_omni`], [`qwen3_vl`] | model assemblies and their position walks; Qwen3-Omni's code predictor |
//! | [`family`] | recognising a checkpoint and building the right model |

pub mod audio_encoder;
pub mod checkpoint;
pub mod code2wav;
pub mod config;
pub mod device;
pub mod family;
pub mod layers;
pub mod multimodal;
pub mod quant;
pub mod qwen3_omni;
pub mod qwen3_vl;
pub mod text_decoder;
pub mod vision_encoder;
pub mod weights;
