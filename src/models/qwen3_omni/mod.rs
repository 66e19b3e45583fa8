//! Qwen3-Omni (`Qwen3OmniMoeForConditionalGeneration`): config mirror, the thinker and its TMRoPE
//! position walk, and speech output — the talker LM, its prompt and decode loop, and the code
//! predictor (Code2Wav lives in `models::code2wav`).

pub mod code_predictor;
pub mod config;
pub mod positions;
pub mod speech;
pub mod talker;
pub mod talker_prompt;
pub mod talker_session;
pub mod thinker;
