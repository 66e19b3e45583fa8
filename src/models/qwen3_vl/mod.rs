//! Qwen3-VL, dense and MoE: the shared vision tower and text decoder with VL weight names
//! (`model.visual.*`, `model.language_model.*`, `lm_head.*`) and VL position ids.

pub mod config;
pub mod model;
pub mod positions;
