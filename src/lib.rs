//! omnid: Qwen3-Omni and Qwen3-VL natively on candle.
//!
//! # Layout
//! | module | job |
//! |---|---|
//! | [`models`] | model code (candle only): layers, encoders, decoders, checkpoint loading |
pub mod models;
