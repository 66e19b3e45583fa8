//! omnid: Qwen3-Omni and Qwen3-VL natively on candle.
//!
//! # Layout
//! | module | job |
//! |---|---|
//! | [`models`] | model code (candle only): layers, encoders, decoders, checkpoint loading |
//! | [`preprocess`] | model-input preprocessing: log-mel, image/video resize and patchify (plain vectors) |
//! | [`prompt`] | messages, chat templates, tokenizer, placeholder expansion |
//! | [`engine`] | opening models, the processor, sampling, the generation loop, speech, the engine thread |
//! | [`protocol`] | wire types only (OpenAI chat DTOs, error bodies) |
//! | [`server`] | `omnid serve`: the HTTP API on tokio + axum |
//! | [`agent`] | the GUI agent: screen → model → checked action → X11/adb, logged |
//! | [`analyze`] | video analysis jobs: windows, events, the persisted queue |
//! | [`ocr`] | OCR's model-free parts: box mapping, answer parsing, tiling, formats |
//! | [`metrics`] | counters and latency histograms for `GET /metrics` |
//! | [`config`] | the TOML configuration (`configs/*.toml`) |
//! | [`cli`] | the `omnid` command line |

pub mod agent;
pub mod analyze;
pub mod cli;
pub mod config;
pub mod engine;
pub mod metrics;
pub mod models;
pub mod ocr;
pub mod preprocess;
pub mod prompt;
pub mod protocol;
pub mod server;
