//! The engine: opening models, turning requests into model inputs, generating text and speech,
//! and (for the server) the model's own thread behind a bounded job queue ([`service`]).
//!
//! | module | job |
//! |---|---|
//! | [`model_dir`] | open a checkpoint directory (or the embedded model) with clear errors |
//! | [`embedded`] | the tiny random-weight default model |
//! | [`embedded_real_widths`] | the same at Qwen3-Omni-30B-A3B's real widths, fewer layers (benchmarks) |
//! | [`processor`] | conversation + media → model inputs (template, preprocessing, expansion, tokens) |
//! | [`processor_settings`] | a checkpoint's feature-extractor / image / video processor files |
//! | [`media`] | decoded media items and loading image/audio files and folders of video frames |
//! | [`video_file`] | video and audio files through FFmpeg, windowed, sampled with the processor's rule |
//! | [`generation_config`] | `generation_config.json` |
//! | [`sampling`] | greedy / temperature / top-k / top-p / repetition penalty, seeded |
//! | [`rng`] | deterministic random streams (sampling, embedded weights) |
//! | [`generate`] | the prefill + decode loop with timings |
//! | [`ask`] | one question → streamed answer |
//! | [`batch_question`] | one question about one image or video window, answered as batch work |
//! | [`service`] | the model on its own thread behind a bounded job queue (the server's engine) |
//! | [`speech`] | spoken answers: thinker, talker and Code2Wav streaming on their own threads |

pub mod ask;
pub mod batch_question;
pub mod embedded;
pub mod embedded_real_widths;
pub mod error_message;
pub mod generate;
pub mod generation_config;
pub mod media;
pub mod model_dir;
pub mod processor;
pub mod processor_settings;
pub mod rng;
pub mod sampling;
pub mod service;
pub mod speech;
pub mod video_file;
