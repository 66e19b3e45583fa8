//! OpenAI Chat Completions (`POST /v1/chat/completions`): the request as the official SDKs send
//! it and the response / stream chunks they parse. Unknown request fields are ignored, as
//! OpenAI-compatible servers do; fields omnid cannot honour are refused by the server's
//! validation with a message naming them.

use serde::{Deserialize, Serialize};

/// The request body.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// Echoed back; omnid serves the one model it loaded whatever is named.
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub n: Option<u64>,
    /// `["text"]` or `["text", "audio"]`.
    #[serde(default)]
    pub modalities: Option<Vec<String>>,
    #[serde(default)]
    pub audio: Option<AudioRequest>,
    /// Functions the model may call (`{"type": "function", "function": {name, description, parameters}}`).
    #[serde(default)]
    pub tools: Option<Vec<serde_json::Value>>,
    /// `"auto"` (default) or `"none"`.
    #[serde(default)]
    pub tool_choice: Option<serde_json::Value>,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// `audio`: the voice and format of a spoken answer.
#[derive(Debug, Clone, Deserialize)]
pub struct AudioRequest {
    pub voice: String,
    pub format: String,
}

/// One message.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    /// A string, a list of parts, or null (assistant messages that only carried audio or calls).
    #[serde(default)]
    pub content: Option<MessageContent>,
    /// The calls an assistant message made.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCallIn>>,
    /// In a `tool` message: the call it answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A call in an assistant message of the history.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolCallIn {
    #[serde(default)]
    pub id: Option<String>,
    pub function: FunctionCall,
}

/// A function call: the name and the arguments as JSON text.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

/// A call in the answer.
#[derive(Debug, Clone, Serialize)]
pub struct ToolCallOut {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

/// A call in a stream chunk (sent whole, once parsed).
#[derive(Debug, Clone, Serialize)]
pub struct ToolCallDelta {
    pub index: usize,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

/// `content`: plain text or typed parts.
#[derive(Debug, Clone)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl<'de> Deserialize<'de> for MessageContent {
    /// By hand rather than `untagged`, so a bad part is reported as itself ("unknown variant
    /// `video_url`") instead of "did not match any variant".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(Self::Text(s)),
            v @ serde_json::Value::Array(_) => serde_json::from_value(v).map(Self::Parts).map_err(D::Error::custom),
            other => Err(D::Error::custom(format!("content must be a string or a list of parts, not {other}"))),
        }
    }
}

/// One content part.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    InputAudio {
        input_audio: InputAudio,
    },
    /// A video as a `data:video/…;base64,` URL (vLLM's `video_url` part).
    VideoUrl {
        video_url: VideoUrl,
    },
}

/// `video_url`: a `data:` URL (`video/mp4`, `video/webm`, `video/quicktime`, `video/x-matroska`, …).
#[derive(Debug, Clone, Deserialize)]
pub struct VideoUrl {
    pub url: String,
}

/// `image_url`: a `data:` URL (remote URLs are refused unless enabled).
#[derive(Debug, Clone, Deserialize)]
pub struct ImageUrl {
    pub url: String,
}

/// `input_audio`: base64 audio and its container (`wav`, `mp3`, …).
#[derive(Debug, Clone, Deserialize)]
pub struct InputAudio {
    pub data: String,
    pub format: String,
}

/// Token counts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

/// The non-streamed response.
#[derive(Debug, Clone, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

/// One choice (omnid answers `n = 1`).
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    pub index: usize,
    pub message: AssistantMessage,
    pub finish_reason: &'static str,
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
pub struct AssistantMessage {
    pub role: &'static str,
    /// The text; null when the answer is spoken (the text is then the audio's transcript), as OpenAI.
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallOut>>,
}

/// A spoken answer: base64 audio in the requested format and its transcript.
#[derive(Debug, Clone, Serialize)]
pub struct AudioOut {
    pub id: String,
    pub data: String,
    pub expires_at: u64,
    pub transcript: String,
}

/// A stream chunk (`chat.completion.chunk`).
#[derive(Debug, Clone, Serialize)]
pub struct ChatChunk {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    /// Only in the last chunk, with `stream_options.include_usage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// One choice of a chunk.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkChoice {
    pub index: usize,
    pub delta: Delta,
    pub finish_reason: Option<&'static str>,
}

/// What a chunk adds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<AudioDelta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A piece of a streamed spoken answer: base64 PCM16 (24 kHz mono) and/or transcript text.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AudioDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelCard>,
}

/// One model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelCard {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}
