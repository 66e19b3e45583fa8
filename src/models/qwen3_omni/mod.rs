//! Qwen3-Omni (`Qwen3OmniMoeForConditionalGeneration`): config mirror, the thinker, and its
//! TMRoPE position walk. The talker, code predictor and Code2Wav join here with speech output.

pub mod config;
pub mod positions;
pub mod thinker;
