//! The loaded model as a [`WindowModel`]: each window is asked through
//! [`BatchAsker`](crate::engine::batch_question::BatchAsker), which runs the encoders on the
//! job's worker thread and decodes on the engine thread as batch work, behind interactive
//! answers.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::events::TimeBase;
use super::model::{Answer, AskError, ModelTraits, Question, WindowModel};
use crate::engine::batch_question::BatchAsker;
use crate::engine::media::{frame_rule, MediaItem};
use crate::engine::model_dir::LoadedModel;
use crate::engine::service::EngineService;
use crate::models::family::Family;

/// Qwen3-Omni's audio encoder: 100 mel frames a second, downsampled to 13 tokens.
const OMNI_AUDIO_TOKENS_PER_S: f64 = 13.0;

/// The loaded model behind the engine thread.
pub struct EngineModel {
    asker: BatchAsker,
    traits: ModelTraits,
}

impl EngineModel {
    pub fn new(lm: Arc<LoadedModel>, engine: Arc<EngineService>) -> Self {
        let audio_rate_hz =
            lm.processor.audio.as_ref().filter(|_| lm.model.accepts_audio()).map(|a| a.sampling_rate as u32);
        let traits = ModelTraits {
            video: lm.processor.video.clone(),
            rule: frame_rule(lm.family),
            audio_rate_hz,
            audio_tokens_per_s: OMNI_AUDIO_TOKENS_PER_S,
            // Qwen3-VL writes the frames' times as text between them; Qwen3-Omni's time
            // positions start at the clip.
            time_base: match lm.family {
                Family::Qwen3Omni => TimeBase::Relative,
                Family::Qwen3Vl | Family::Qwen3VlMoe => TimeBase::Absolute,
            },
            context: lm.model.decoder().config().max_position_embeddings,
            identity: String::new(),
        };
        let identity = format!(
            "{} {}; context {:?}; video pixels {}–{} per {}",
            lm.family.name(),
            lm.dir.as_ref().map_or_else(|| "<embedded>".into(), |d| d.display().to_string()),
            traits.context,
            traits.video.pixels.min_pixels,
            traits.video.pixels.max_pixels,
            if matches!(lm.family, Family::Qwen3Omni) { "frame" } else { "clip" },
        );
        let traits = ModelTraits { identity, ..traits };
        Self { asker: BatchAsker::new(lm, engine), traits }
    }
}

impl WindowModel for EngineModel {
    fn traits(&self) -> &ModelTraits {
        &self.traits
    }

    fn answer(&self, q: Question, stop: &AtomicBool) -> Result<Answer, AskError> {
        self.asker.ask(q.prompt, q.clip.map(MediaItem::Video), q.max_new_tokens, stop)
    }
}
