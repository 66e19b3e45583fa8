//! What a video job needs from a model: how it samples and sizes frames, whether it hears, how
//! its answers express time, its context; and one question about one window. The loaded model
//! answers through the engine ([`super::local_model`]); tests use a scripted stand-in that
//! answers from the frames it was actually given.

use std::sync::atomic::AtomicBool;

use super::events::TimeBase;
use crate::engine::media::VideoClip;
use crate::preprocess::{FrameSamplingRule, VideoProcessorConfig};

/// The model's side of a job.
#[derive(Debug, Clone)]
pub struct ModelTraits {
    /// Frame budget, patch geometry and frame limits of the model's video processor.
    pub video: VideoProcessorConfig,
    /// Its processor's frame-sampling rule.
    pub rule: FrameSamplingRule,
    /// Sampling rate of its audio input, when it hears (audio-in-video).
    pub audio_rate_hz: Option<u32>,
    /// Audio tokens per second of sound (Qwen3-Omni's audio encoder: 13).
    pub audio_tokens_per_s: f64,
    /// Whether the model sees the window's absolute times (Qwen3-VL's timestamp text) or a clip
    /// starting at 0 (Qwen3-Omni's TMRoPE positions start at the clip).
    pub time_base: TimeBase,
    /// Prompt + answer tokens it takes (`max_position_embeddings`).
    pub context: Option<usize>,
    /// The model and the budgets that shape a job's windows, as text: a job resumes only with
    /// the same (its stored windows were laid out and answered under it).
    pub identity: String,
}

/// One question: the window's clip (none for the summary pass) and the text.
pub struct Question {
    pub prompt: String,
    pub clip: Option<VideoClip>,
    pub max_new_tokens: usize,
}

pub use crate::engine::batch_question::{Answer, AskError};

/// A model that answers questions about windows.
pub trait WindowModel: Send + Sync {
    fn traits(&self) -> &ModelTraits;
    /// Answers `q`; returns [`AskError::Interrupted`] soon after `stop` is set.
    fn answer(&self, q: Question, stop: &AtomicBool) -> Result<Answer, AskError>;
}
