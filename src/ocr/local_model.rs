//! The loaded model as a [`PageModel`]: each page or tile is asked through
//! [`BatchAsker`](crate::engine::batch_question::BatchAsker), which runs the vision encoder on
//! the caller's thread and decodes on the engine thread as batch work, behind interactive
//! answers.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use image::RgbImage;

use super::model::{Answer, AskError, PageModel, PageTraits};
use crate::engine::batch_question::BatchAsker;
use crate::engine::media::MediaItem;
use crate::engine::model_dir::LoadedModel;
use crate::engine::service::EngineService;

/// The loaded model behind the engine thread.
pub struct EnginePageModel {
    asker: BatchAsker,
    traits: PageTraits,
}

impl EnginePageModel {
    pub fn new(lm: Arc<LoadedModel>, engine: Arc<EngineService>) -> Self {
        let px = &lm.processor.image.pixels;
        let asker = BatchAsker::new(lm.clone(), engine);
        let context = asker.context();
        let traits = PageTraits {
            max_pixels: px.max_pixels,
            token_side: (px.patch_size * px.merge_size) as u32,
            context,
            identity: format!(
                "{} {}; context {context:?}; image pixels {}–{}",
                lm.family.name(),
                lm.dir.as_ref().map_or_else(|| "<embedded>".into(), |d| d.display().to_string()),
                px.min_pixels,
                px.max_pixels
            ),
        };
        Self { asker, traits }
    }
}

impl PageModel for EnginePageModel {
    fn traits(&self) -> &PageTraits {
        &self.traits
    }

    fn read(
        &self,
        image: RgbImage,
        prompt: String,
        max_new_tokens: usize,
        stop: &AtomicBool,
    ) -> Result<Answer, AskError> {
        self.asker.ask(prompt, Some(MediaItem::Image(image)), max_new_tokens, stop)
    }
}
