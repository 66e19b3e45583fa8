//! Conversation types in the Hugging Face chat format, which is what chat templates read:
//! `{"role": "user", "content": [{"type": "image", "image": "cat.png"}, {"type": "text", "text": "What is this?"}]}`.

use serde::{Deserialize, Serialize};

/// One turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    pub content: Vec<ContentPart>,
}

/// A typed part of a turn. Media parts name where the media comes from; the engine loads
/// them before the prompt is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ContentPart {
    Text { text: String },
    Image { image: String },
    Audio { audio: String },
    Video { video: String },
}

impl Message {
    /// A turn with plain text only.
    pub fn text(role: &str, text: &str) -> Self {
        Self { role: role.into(), content: vec![ContentPart::Text { text: text.into() }] }
    }
}
