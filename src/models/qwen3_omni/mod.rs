//! Qwen3-Omni (`Qwen3OmniMoeForConditionalGeneration`): config mirror, the thinker, its TMRoPE
//! position walk, and the talker's code predictor. The talker LM joins here with speech output.

pub mod code_predictor;
pub mod config;
pub mod positions;
pub mod thinker;
