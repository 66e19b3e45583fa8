//! OpenAI Realtime (GA) client events, as the official SDKs send them over the WebSocket at
//! `GET /v1/realtime`. Server events are built by the server (`server::realtime::events`).
//! Fields omnid does not use are ignored; fields it cannot honour are refused by the session
//! with an `error` event naming them.

use serde::Deserialize;

/// Every client event.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
pub enum ClientEvent {
    #[serde(rename = "session.update")]
    SessionUpdate { session: Box<SessionPatch> },
    #[serde(rename = "input_audio_buffer.append")]
    AudioAppend { audio: String },
    #[serde(rename = "input_audio_buffer.commit")]
    AudioCommit {},
    #[serde(rename = "input_audio_buffer.clear")]
    AudioClear {},
    #[serde(rename = "conversation.item.create")]
    ItemCreate { item: ItemIn },
    #[serde(rename = "conversation.item.retrieve")]
    ItemRetrieve { item_id: String },
    #[serde(rename = "conversation.item.delete")]
    ItemDelete { item_id: String },
    #[serde(rename = "conversation.item.truncate")]
    ItemTruncate {
        item_id: String,
        #[serde(default)]
        content_index: u32,
        audio_end_ms: u64,
    },
    #[serde(rename = "response.create")]
    ResponseCreate {},
    #[serde(rename = "response.cancel")]
    ResponseCancel {},
}

/// `session.update`'s `session` (every field optional: only what is given changes).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SessionPatch {
    #[serde(default)]
    pub instructions: Option<String>,
    /// `["audio"]` (speech with its transcript) or `["text"]`.
    #[serde(default)]
    pub output_modalities: Option<Vec<String>>,
    #[serde(default)]
    pub audio: Option<AudioPatch>,
    /// A number or `"inf"`.
    #[serde(default)]
    pub max_output_tokens: Option<serde_json::Value>,
    /// Functions the model may call (`{"type": "function", "name", "description", "parameters"}`).
    #[serde(default)]
    pub tools: Option<Vec<serde_json::Value>>,
    /// `"auto"` or `"none"`.
    #[serde(default)]
    pub tool_choice: Option<serde_json::Value>,
}

/// `session.audio`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AudioPatch {
    #[serde(default)]
    pub input: Option<AudioInPatch>,
    #[serde(default)]
    pub output: Option<AudioOutPatch>,
}

/// `session.audio.input`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AudioInPatch {
    #[serde(default)]
    pub format: Option<FormatSpec>,
    /// `null` (push-to-talk) or `{"type": "server_vad", …}`; absent leaves it unchanged.
    #[serde(default, deserialize_with = "present")]
    pub turn_detection: Option<serde_json::Value>,
    /// `null` (off) or `{"model", "language", "prompt"}`; absent leaves it unchanged.
    #[serde(default, deserialize_with = "present")]
    pub transcription: Option<serde_json::Value>,
}

/// `session.audio.output`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AudioOutPatch {
    #[serde(default)]
    pub format: Option<FormatSpec>,
    #[serde(default)]
    pub voice: Option<String>,
}

/// `{"type": "audio/pcm", "rate": 24000}` / `{"type": "audio/pcmu"}` / `{"type": "audio/pcma"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct FormatSpec {
    #[serde(rename = "type")]
    pub mime: String,
    #[serde(default)]
    pub rate: Option<u32>,
}

/// A conversation item sent by the client.
#[derive(Debug, Clone, Deserialize)]
pub struct ItemIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Vec<ContentIn>,
    /// `function_call` and `function_call_output` items: the call they belong to.
    #[serde(default)]
    pub call_id: Option<String>,
    /// `function_call`: the function and its arguments (JSON text).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
    /// `function_call_output`: what the function returned.
    #[serde(default)]
    pub output: Option<String>,
}

/// One content part of an item.
#[derive(Debug, Clone, Deserialize)]
pub struct ContentIn {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    /// Base64 audio in the session's input format (`input_audio`).
    #[serde(default)]
    pub audio: Option<String>,
    /// A `data:image/…;base64,` URL (`input_image`).
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub transcript: Option<String>,
}

/// Distinguishes `"turn_detection": null` (Some(Null)) from an absent field (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}
