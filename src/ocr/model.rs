//! What OCR needs from a model: the pixel budget of one image, and one question about one
//! image. The loaded model answers through the engine ([`super::local_model`]); tests use a
//! scripted stand-in that answers from the pixels it was actually given.

use std::sync::atomic::AtomicBool;

use image::RgbImage;

pub use crate::engine::batch_question::{Answer, AskError};

/// The model's side of OCR.
#[derive(Debug, Clone)]
pub struct PageTraits {
    /// Most pixels of one image the model reads without shrinking it (its image processor's
    /// `max_pixels`, lowered so the image's tokens fit the context).
    pub max_pixels: u64,
    /// Pixels per vision token side after merging (patch × merge: 32 for Qwen3-VL and Omni).
    pub token_side: u32,
    /// Prompt + answer tokens it takes (`max_position_embeddings`).
    pub context: Option<usize>,
    /// The model and its budgets as text: a resumed run reuses pages only read by the same.
    pub identity: String,
}

/// A model that reads images.
pub trait PageModel: Send + Sync {
    fn traits(&self) -> &PageTraits;
    /// Answers `prompt` about `image`; returns [`AskError::Interrupted`] soon after `stop` is set.
    fn read(
        &self,
        image: RgbImage,
        prompt: String,
        max_new_tokens: usize,
        stop: &AtomicBool,
    ) -> Result<Answer, AskError>;
}

/// Tokens of prompt text around the image (the chat template, the question, a language hint).
pub const PROMPT_TOKENS: usize = 160;

impl PageTraits {
    /// The pixels one image may have for `max_new_tokens` of answer to fit the context with it.
    pub fn pixels_for(&self, max_new_tokens: usize) -> u64 {
        self.context_pixels(max_new_tokens).map_or(self.max_pixels, |room| self.max_pixels.min(room))
    }

    /// The pixels the context leaves for an image beside `max_new_tokens` of answer.
    pub fn context_pixels(&self, max_new_tokens: usize) -> Option<u64> {
        let per_token = u64::from(self.token_side) * u64::from(self.token_side);
        self.context.map(|c| c.saturating_sub(max_new_tokens + PROMPT_TOKENS) as u64 * per_token)
    }
}
