//! What the agent needs from a model: the next step's answer for a turn. The loaded model
//! answers through the engine as batch work (the screenshots are encoded on the agent's thread);
//! tests use a scripted stand-in that answers from the screenshot it was actually given.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::engine::batch_question::BatchAsker;
pub use crate::engine::batch_question::{Answer, AskError};
use crate::engine::media::MediaItem;
use crate::engine::model_dir::LoadedModel;
use crate::engine::service::EngineService;

use super::prompt::{messages, tool_declaration, Turn};

/// A model that decides the next step.
pub trait AgentModel: Send + Sync {
    fn decide(&self, turn: &Turn, max_new_tokens: usize, stop: &AtomicBool) -> Result<Answer, AskError>;
}

/// The loaded model behind the engine thread.
pub struct EngineAgentModel {
    asker: BatchAsker,
}

impl EngineAgentModel {
    pub fn new(lm: Arc<LoadedModel>, engine: Arc<EngineService>) -> Self {
        Self { asker: BatchAsker::new(lm, engine) }
    }
}

impl AgentModel for EngineAgentModel {
    fn decide(&self, turn: &Turn, max_new_tokens: usize, stop: &AtomicBool) -> Result<Answer, AskError> {
        let media: Vec<MediaItem> = turn.screenshots.iter().cloned().map(MediaItem::Image).collect();
        let tools = serde_json::Value::Array(vec![tool_declaration(turn.tool)]);
        self.asker.ask_conversation(&messages(turn), &media, Some(tools), max_new_tokens, stop)
    }
}
