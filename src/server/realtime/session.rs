//! One Realtime session's state: its settings, the conversation items, and the input audio
//! buffer (wire audio decoded and resampled to the model's 16 kHz as it arrives). Pure logic:
//! no sockets, no engine; the handler in `super` drives it.

use base64::Engine as _;
use image::RgbImage;
use omnid_codecs::wire::{WireFormat, WireInput};

use super::vad::{EnergyVad, VadConfig, VadEvent};
use crate::engine::media::MediaItem;
use crate::protocol::realtime::{ItemIn, SessionPatch};
use crate::protocol::tool_calls::{function_tool, tool_choice, ToolChoice};

/// Longest input audio buffer, seconds (at 16 kHz: 4.8 M samples, 19 MB).
pub const MAX_BUFFER_S: usize = 300;
/// Items a conversation may hold.
pub const MAX_ITEMS: usize = 512;
/// Audio a conversation may hold in all, seconds (16 kHz f32: 38 MB), so a session's memory
/// stays bounded whatever its length; older items can be deleted to make room.
pub const MAX_CONVERSATION_AUDIO_S: usize = 600;

/// Who said an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    /// A function's result.
    Tool,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// What an item holds.
#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    /// 16 kHz mono.
    Audio(Vec<f32>),
    Image(RgbImage),
    /// An assistant's spoken answer (its transcript).
    SpokenText(String),
    /// A function call of the model (an item of its own, `function_call`).
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    /// What the client's function returned (`function_call_output`).
    FunctionOutput {
        call_id: String,
        output: String,
    },
}

/// A conversation item.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub role: Role,
    pub parts: Vec<Part>,
    /// For spoken answers: the text as it was streamed (pieces) and the audio length, so a
    /// truncation can keep only what was heard.
    pub spoken: Option<Spoken>,
    /// For committed user audio with input transcription on: the transcript, once made.
    pub transcript: Option<String>,
}

/// What a spoken answer said.
#[derive(Debug, Clone)]
pub struct Spoken {
    pub pieces: Vec<String>,
    pub audio_ms: u64,
}

/// The talker takes one text token per 80 ms codec frame, so by audio time t the answer has
/// voiced about `t / 80 ms` of its text pieces.
const MS_PER_TEXT_TOKEN: u64 = 80;

/// `audio.input.transcription`: the loaded model transcribes committed audio (the `model` a
/// client names is echoed, not used); `language` (ISO-639-1) and `prompt` guide it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcription {
    pub model: String,
    pub language: Option<String>,
    pub prompt: Option<String>,
}

/// A refusal for the client: `error` event fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionError {
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
}

fn err(code: &'static str, message: impl Into<String>, param: Option<&str>) -> SessionError {
    SessionError { code, message: message.into(), param: param.map(str::to_string) }
}

/// Session state.
pub struct Session {
    pub id: String,
    pub instructions: Option<String>,
    pub output_audio: bool,
    pub voice: String,
    pub input_format: WireFormat,
    pub output_format: WireFormat,
    pub max_output_tokens: usize,
    /// Input audio transcription (`audio.input.transcription`); `None`: off.
    pub transcription: Option<Transcription>,
    /// Committed audio items waiting for their transcript, oldest first.
    pub pending_transcriptions: std::collections::VecDeque<String>,
    /// Declared tools, in the chat template's shape.
    pub tools: Vec<serde_json::Value>,
    pub tool_choice: ToolChoice,
    pub items: Vec<Item>,
    buffer: Vec<f32>,
    /// Input time (ms since the session began) of `buffer[0]`.
    buffer_start_ms: u64,
    /// Input audio received so far, in 16 kHz samples.
    received: u64,
    pub vad: Option<EnergyVad>,
    /// The id the item of the turn in progress will get (announced by `speech_started`).
    pending_item: Option<String>,
    /// Start of the turn in progress (server VAD).
    turn_start_ms: Option<u64>,
    /// A server-VAD turn ended while an answer was in flight: answer it next.
    pub response_pending: bool,
    wire_in: WireInput,
    next_id: u64,
    /// Voices of the checkpoint (empty: no speech output).
    voices: Vec<String>,
    max_tokens_cap: usize,
}

impl Session {
    pub fn new(
        id: String,
        voices: Vec<String>,
        default_voice: String,
        max_tokens_cap: usize,
        default_tokens: usize,
    ) -> Self {
        let input_format = WireFormat::parse("audio/pcm").expect("a known format");
        Self {
            id,
            instructions: None,
            output_audio: !voices.is_empty(),
            voice: default_voice,
            input_format,
            output_format: input_format,
            max_output_tokens: default_tokens,
            transcription: None,
            pending_transcriptions: Default::default(),
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            items: Vec::new(),
            buffer: Vec::new(),
            buffer_start_ms: 0,
            received: 0,
            vad: None,
            pending_item: None,
            turn_start_ms: None,
            response_pending: false,
            wire_in: WireInput::new(input_format, 16_000).expect("24 kHz PCM → 16 kHz is supported"),
            next_id: 0,
            voices,
            max_tokens_cap,
        }
    }

    /// A new id with `prefix` (`item_…`, `resp_…`).
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{}_{:04}", &self.id[5..], self.next_id)
    }

    /// `session.update`: validates everything first, then applies (nothing changes on error).
    pub fn update(&mut self, p: &SessionPatch) -> Result<(), SessionError> {
        let mut output_audio = self.output_audio;
        if let Some(m) = &p.output_modalities {
            output_audio = match m.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["audio"] | ["text", "audio"] | ["audio", "text"] => true,
                ["text"] => false,
                _ => {
                    return Err(err(
                        "invalid_value",
                        format!("output_modalities {m:?}: use [\"audio\"] or [\"text\"]"),
                        Some("session.output_modalities"),
                    ))
                }
            };
            if output_audio && self.voices.is_empty() {
                return Err(err(
                    "invalid_value",
                    "this model has no speech output (no talker): use output_modalities [\"text\"]",
                    Some("session.output_modalities"),
                ));
            }
        }
        let (mut input_format, mut output_format, mut voice) =
            (self.input_format, self.output_format, self.voice.clone());
        let mut turn: Option<Option<VadConfig>> = None;
        let mut transcription: Option<Option<Transcription>> = None;
        if let Some(a) = &p.audio {
            if let Some(i) = &a.input {
                if let Some(f) = &i.format {
                    input_format = WireFormat::from_mime(&f.mime, f.rate)
                        .map_err(|e| err("invalid_value", e.to_string(), Some("session.audio.input.format")))?;
                }
                if let Some(td) = &i.turn_detection {
                    turn = Some(parse_turn_detection(td)?);
                }
                if let Some(t) = &i.transcription {
                    transcription = Some(parse_transcription(t)?);
                }
            }
            if let Some(o) = &a.output {
                if let Some(f) = &o.format {
                    output_format = WireFormat::from_mime(&f.mime, f.rate)
                        .map_err(|e| err("invalid_value", e.to_string(), Some("session.audio.output.format")))?;
                }
                if let Some(v) = &o.voice {
                    if !self.voices.iter().any(|x| x.eq_ignore_ascii_case(v)) {
                        return Err(err(
                            "invalid_value",
                            format!("unknown voice {v:?}: this model has {}", self.voices.join(", ")),
                            Some("session.audio.output.voice"),
                        ));
                    }
                    voice = v.clone();
                }
            }
        }
        let max_output_tokens = match &p.max_output_tokens {
            None => self.max_output_tokens,
            Some(serde_json::Value::String(s)) if s == "inf" => self.max_tokens_cap,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 && n as usize <= self.max_tokens_cap => n as usize,
                _ => {
                    return Err(err(
                        "invalid_value",
                        format!("max_output_tokens {v}: 1..={} or \"inf\"", self.max_tokens_cap),
                        Some("session.max_output_tokens"),
                    ))
                }
            },
        };
        let tools = match &p.tools {
            None => None,
            Some(list) => Some(
                list.iter()
                    .enumerate()
                    .map(|(i, t)| {
                        function_tool(t).map_err(|m| err("invalid_value", m, Some(&format!("session.tools[{i}]"))))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let choice = match &p.tool_choice {
            None => self.tool_choice,
            Some(v) => tool_choice(Some(v)).map_err(|m| err("invalid_value", m, Some("session.tool_choice")))?,
        };
        if input_format != self.input_format {
            self.wire_in = WireInput::new(input_format, 16_000)
                .map_err(|e| err("invalid_value", e.to_string(), Some("session.audio.input.format")))?;
            self.buffer.clear();
        }
        self.input_format = input_format;
        self.output_format = output_format;
        self.voice = voice;
        self.output_audio = output_audio;
        self.max_output_tokens = max_output_tokens;
        if let Some(t) = tools {
            self.tools = t;
        }
        if let Some(t) = transcription {
            self.transcription = t;
        }
        self.tool_choice = choice;
        if let Some(t) = turn {
            if t.as_ref() != self.vad.as_ref().map(|v| v.config()) {
                self.vad = t.map(|cfg| {
                    let mut v = EnergyVad::new(cfg);
                    v.skip_to(self.received * 1000 / 16_000);
                    v
                });
            }
        }
        if let Some(i) = &p.instructions {
            self.instructions = Some(i.clone());
        }
        Ok(())
    }

    /// `input_audio_buffer.append`; returns the turn boundaries the new audio completes.
    pub fn append_audio(&mut self, b64: &str) -> Result<Vec<VadEvent>, SessionError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| err("invalid_value", format!("audio is not valid base64 ({e})"), Some("audio")))?;
        let mut out = Vec::new();
        self.wire_in.push(&bytes, &mut out).map_err(|e| err("invalid_value", e.to_string(), Some("audio")))?;
        if self.buffer.len() + out.len() > MAX_BUFFER_S * 16_000 {
            return Err(err(
                "input_audio_buffer_full",
                format!("the input audio buffer holds at most {MAX_BUFFER_S} s: commit or clear it"),
                None,
            ));
        }
        self.received += out.len() as u64;
        let events = match &mut self.vad {
            Some(v) => v.push(&out),
            None => Vec::new(),
        };
        self.buffer.extend(out);
        Ok(events)
    }

    /// The id the current turn's item will get (announced by `speech_started`).
    pub fn pending_item_id(&mut self) -> String {
        match &self.pending_item {
            Some(id) => id.clone(),
            None => {
                let id = self.new_id("item");
                self.pending_item = Some(id.clone());
                id
            }
        }
    }

    /// The turn detector heard speech start at `audio_start_ms`.
    pub fn turn_started(&mut self, audio_start_ms: u64) {
        self.turn_start_ms = Some(audio_start_ms);
    }

    /// The turn detector found the end of the turn in progress: the buffer from its start
    /// − `prefix_padding_ms` on becomes a user item (index returned).
    pub fn commit_turn(&mut self) -> Result<usize, SessionError> {
        let start_ms = self.turn_start_ms.take().unwrap_or(0);
        let prefix = self.vad.as_ref().map_or(0, |v| v.config().prefix_padding_ms);
        let from_ms = start_ms.saturating_sub(prefix).max(self.buffer_start_ms);
        let skip = (((from_ms - self.buffer_start_ms) * 16) as usize).min(self.buffer.len());
        self.buffer.drain(..skip);
        self.buffer_start_ms = from_ms;
        self.commit_audio()
    }

    /// `input_audio_buffer.clear`.
    pub fn clear_audio(&mut self) {
        self.buffer.clear();
        self.buffer_start_ms = self.received * 1000 / 16_000;
        self.pending_item = None;
        if let Some(v) = &mut self.vad {
            v.reset_turn();
        }
    }

    /// `input_audio_buffer.commit`: the buffer becomes a user item; returns its index.
    pub fn commit_audio(&mut self) -> Result<usize, SessionError> {
        let mut tail = Vec::new();
        self.wire_in.finish(&mut tail).map_err(|e| err("invalid_value", e.to_string(), None))?;
        self.buffer.extend(tail);
        // The audio encoder needs at least one 10 ms hop of 16 kHz audio.
        if self.buffer.len() < 1600 {
            return Err(err(
                "input_audio_buffer_commit_empty",
                format!("the buffer holds {} ms of audio: at least 100 ms is needed", self.buffer.len() / 16),
                None,
            ));
        }
        let audio = std::mem::take(&mut self.buffer);
        self.buffer_start_ms = self.received * 1000 / 16_000;
        let id = self.pending_item.take().unwrap_or_else(|| self.new_id("item"));
        if let Some(v) = &mut self.vad {
            v.reset_turn();
        }
        let i = self.push_item(Item {
            id,
            role: Role::User,
            parts: vec![Part::Audio(audio)],
            spoken: None,
            transcript: None,
        })?;
        if self.transcription.is_some() {
            self.pending_transcriptions.push_back(self.items[i].id.clone());
        }
        Ok(i)
    }

    /// `conversation.item.create`: checks the item; images are decoded by the caller (`images`,
    /// one per `input_image` part, in order).
    pub fn create_item(&mut self, item: &ItemIn, mut images: Vec<RgbImage>) -> Result<usize, SessionError> {
        match item.kind.as_str() {
            "message" => {}
            "function_call" | "function_call_output" => return self.create_call_item(item),
            other => {
                return Err(err(
                    "unsupported",
                    format!("item type {other:?}: message, function_call or function_call_output"),
                    Some("item.type"),
                ))
            }
        }
        let role = match item.role.as_deref() {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some("system") => Role::System,
            other => {
                return Err(err(
                    "invalid_value",
                    format!("item role {other:?}: user, assistant or system"),
                    Some("item.role"),
                ))
            }
        };
        let mut parts = Vec::new();
        images.reverse();
        for (i, c) in item.content.iter().enumerate() {
            let at = format!("item.content[{i}]");
            parts.push(match (c.kind.as_str(), role) {
                ("input_text", _) | ("text", _) | ("output_text", Role::Assistant) => {
                    Part::Text(c.text.clone().ok_or_else(|| err("missing_field", "text part without text", Some(&at)))?)
                }
                ("output_audio", Role::Assistant) | ("audio", Role::Assistant) => {
                    Part::SpokenText(c.transcript.clone().unwrap_or_default())
                }
                ("input_audio", Role::User) => {
                    let b64 = c
                        .audio
                        .as_deref()
                        .ok_or_else(|| err("missing_field", "input_audio part without audio", Some(&at)))?;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64.trim())
                        .map_err(|e| err("invalid_value", format!("audio is not valid base64 ({e})"), Some(&at)))?;
                    let mut input = WireInput::new(self.input_format, 16_000)
                        .map_err(|e| err("invalid_value", e.to_string(), Some(&at)))?;
                    let mut out = Vec::new();
                    input.push(&bytes, &mut out).map_err(|e| err("invalid_value", e.to_string(), Some(&at)))?;
                    input.finish(&mut out).map_err(|e| err("invalid_value", e.to_string(), Some(&at)))?;
                    Part::Audio(out)
                }
                ("input_image", Role::User) => Part::Image(
                    images.pop().ok_or_else(|| err("invalid_value", "image part without an image", Some(&at)))?,
                ),
                (kind, _) => {
                    return Err(err(
                        "invalid_value",
                        format!("content type {kind:?} in a {} item", role.name()),
                        Some(&at),
                    ))
                }
            });
        }
        let id = self.item_id(item)?;
        self.push_item(Item { id, role, parts, spoken: None, transcript: None })
    }

    /// A `function_call` (history the client supplies) or a `function_call_output` (the result
    /// of a call, which the next response continues from).
    fn create_call_item(&mut self, item: &ItemIn) -> Result<usize, SessionError> {
        let call_id = item.call_id.clone().filter(|c| !c.is_empty()).ok_or_else(|| {
            err("missing_field", format!("a {} item needs a call_id", item.kind), Some("item.call_id"))
        })?;
        let part = if item.kind == "function_call" {
            let name = item
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| err("missing_field", "a function_call item needs a name", Some("item.name")))?;
            let arguments = item.arguments.clone().unwrap_or_else(|| "{}".into());
            if !serde_json::from_str::<serde_json::Value>(&arguments).is_ok_and(|v| v.is_object()) {
                return Err(err(
                    "invalid_value",
                    "arguments must be a JSON object in a string",
                    Some("item.arguments"),
                ));
            }
            Part::FunctionCall { call_id, name, arguments }
        } else {
            if !self
                .items
                .iter()
                .any(|i| matches!(&i.parts[..], [Part::FunctionCall { call_id: c, .. }] if *c == call_id))
            {
                return Err(err(
                    "invalid_value",
                    format!("no function_call with call_id {call_id:?} in the conversation"),
                    Some("item.call_id"),
                ));
            }
            let output = item.output.clone().ok_or_else(|| {
                err("missing_field", "a function_call_output item needs an output", Some("item.output"))
            })?;
            Part::FunctionOutput { call_id, output }
        };
        let id = self.item_id(item)?;
        let role = if matches!(part, Part::FunctionCall { .. }) { Role::Assistant } else { Role::Tool };
        self.push_item(Item { id, role, parts: vec![part], spoken: None, transcript: None })
    }

    /// The id a created item gets: the client's (unless already taken) or a new one.
    fn item_id(&mut self, item: &ItemIn) -> Result<String, SessionError> {
        let id = item.id.clone().unwrap_or_else(|| self.new_id("item"));
        if self.items.iter().any(|i| i.id == id) {
            return Err(err(
                "invalid_value",
                format!("item id {id:?} is already in the conversation"),
                Some("item.id"),
            ));
        }
        Ok(id)
    }

    fn push_item(&mut self, item: Item) -> Result<usize, SessionError> {
        if self.items.len() >= MAX_ITEMS {
            return Err(err(
                "conversation_full",
                format!("the conversation holds at most {MAX_ITEMS} items: delete some"),
                None,
            ));
        }
        let audio =
            |i: &Item| -> usize { i.parts.iter().map(|p| if let Part::Audio(a) = p { a.len() } else { 0 }).sum() };
        let held: usize = self.items.iter().map(audio).sum();
        if held + audio(&item) > MAX_CONVERSATION_AUDIO_S * 16_000 {
            return Err(err(
                "conversation_full",
                format!(
                    "the conversation would hold more than {MAX_CONVERSATION_AUDIO_S} s of audio ({} s now): delete older items",
                    held / 16_000
                ),
                None,
            ));
        }
        self.items.push(item);
        Ok(self.items.len() - 1)
    }

    /// `conversation.item.truncate`: keeps the part of a spoken answer heard by `audio_end_ms`.
    pub fn truncate_item(&mut self, id: &str, audio_end_ms: u64) -> Result<(), SessionError> {
        let item = self
            .items
            .iter_mut()
            .find(|x| x.id == id)
            .ok_or_else(|| err("item_not_found", format!("no item {id:?}"), Some("item_id")))?;
        let Some(spoken) = &mut item.spoken else {
            return Err(err(
                "invalid_value",
                format!("item {id:?} is not a spoken answer: only assistant audio can be truncated"),
                Some("item_id"),
            ));
        };
        if audio_end_ms > spoken.audio_ms {
            return Err(err(
                "invalid_value",
                format!("audio_end_ms {audio_end_ms} is past the end of the item's audio ({} ms)", spoken.audio_ms),
                Some("audio_end_ms"),
            ));
        }
        let heard = (audio_end_ms / MS_PER_TEXT_TOKEN) as usize;
        spoken.pieces.truncate(heard);
        spoken.audio_ms = audio_end_ms;
        item.parts = vec![Part::SpokenText(spoken.pieces.concat())];
        Ok(())
    }

    /// `conversation.item.delete`.
    pub fn delete_item(&mut self, id: &str) -> Result<(), SessionError> {
        let i = self
            .items
            .iter()
            .position(|x| x.id == id)
            .ok_or_else(|| err("item_not_found", format!("no item {id:?}"), Some("item_id")))?;
        self.items.remove(i);
        self.pending_transcriptions.retain(|p| p != id);
        Ok(())
    }

    /// The conversation as chat-template messages and its media in order.
    pub fn prompt(&self) -> (serde_json::Value, Vec<MediaItem>) {
        let mut messages = Vec::new();
        let mut media = Vec::new();
        if let Some(i) = &self.instructions {
            messages.push(serde_json::json!({"role": "system", "content": [{"type": "text", "text": i}]}));
        }
        for item in &self.items {
            match &item.parts[..] {
                [Part::FunctionCall { name, arguments, .. }] => {
                    // As an object, printed by the template's `tojson` (as vLLM passes it).
                    let args: serde_json::Value = serde_json::from_str(arguments).unwrap_or_default();
                    let call = serde_json::json!({"type": "function", "function": {"name": name, "arguments": args}});
                    // A call belongs to the assistant turn that made it (the template prints the
                    // turn's text, then its calls).
                    match messages.last_mut().filter(|m| m["role"] == "assistant") {
                        Some(turn) => match turn.get_mut("tool_calls").and_then(|c| c.as_array_mut()) {
                            Some(calls) => calls.push(call),
                            None => turn["tool_calls"] = serde_json::json!([call]),
                        },
                        None => {
                            messages.push(serde_json::json!({"role": "assistant", "content": [], "tool_calls": [call]}))
                        }
                    }
                    continue;
                }
                [Part::FunctionOutput { output, .. }] => {
                    messages.push(serde_json::json!({"role": "tool", "content": [{"type": "text", "text": output}]}));
                    continue;
                }
                _ => {}
            }
            let mut content = Vec::new();
            for p in &item.parts {
                match p {
                    Part::Text(t) | Part::SpokenText(t) => content.push(serde_json::json!({"type": "text", "text": t})),
                    Part::Audio(a) => {
                        media.push(MediaItem::Audio(a.clone()));
                        content.push(serde_json::json!({"type": "audio", "audio": item.id}));
                    }
                    Part::Image(img) => {
                        media.push(MediaItem::Image(img.clone()));
                        content.push(serde_json::json!({"type": "image", "image": item.id}));
                    }
                    Part::FunctionCall { .. } | Part::FunctionOutput { .. } => {}
                }
            }
            messages.push(serde_json::json!({"role": item.role.name(), "content": content}));
        }
        (serde_json::Value::Array(messages), media)
    }

    /// The item as the server events show it.
    pub fn item_json(item: &Item) -> serde_json::Value {
        match &item.parts[..] {
            [Part::FunctionCall { call_id, name, arguments }] => {
                return serde_json::json!({"id": item.id, "type": "function_call", "object": "realtime.item",
                    "status": "completed", "call_id": call_id, "name": name, "arguments": arguments})
            }
            [Part::FunctionOutput { call_id, output }] => {
                return serde_json::json!({"id": item.id, "type": "function_call_output", "object": "realtime.item",
                    "call_id": call_id, "output": output})
            }
            _ => {}
        }
        let content: Vec<serde_json::Value> = item
            .parts
            .iter()
            .map(|p| match (p, item.role) {
                (Part::Text(t), Role::Assistant) => serde_json::json!({"type": "output_text", "text": t}),
                (Part::Text(t), _) => serde_json::json!({"type": "input_text", "text": t}),
                (Part::SpokenText(t), _) => serde_json::json!({"type": "output_audio", "transcript": t}),
                (Part::Audio(_), _) => serde_json::json!({"type": "input_audio", "transcript": item.transcript}),
                (Part::Image(_), _) => serde_json::json!({"type": "input_image"}),
                (Part::FunctionCall { .. } | Part::FunctionOutput { .. }, _) => serde_json::Value::Null,
            })
            .collect();
        serde_json::json!({"id": item.id, "type": "message", "object": "realtime.item", "status": "completed",
                           "role": item.role.name(), "content": content})
    }

    /// The session as `session.created` / `session.updated` show it.
    pub fn json(&self) -> serde_json::Value {
        let fmt = |f: WireFormat| match f.mime_type() {
            "audio/pcm" => serde_json::json!({"type": "audio/pcm", "rate": f.sample_rate_hz()}),
            m => serde_json::json!({"type": m}),
        };
        let turn = match &self.vad {
            None => serde_json::Value::Null,
            Some(v) => {
                let c = v.config();
                serde_json::json!({"type": "server_vad", "threshold": c.threshold, "prefix_padding_ms": c.prefix_padding_ms,
                    "silence_duration_ms": c.silence_duration_ms, "create_response": c.create_response,
                    "interrupt_response": c.interrupt_response})
            }
        };
        serde_json::json!({
            "type": "realtime", "object": "realtime.session", "id": self.id,
            "instructions": self.instructions.clone().unwrap_or_default(),
            "output_modalities": if self.output_audio { vec!["audio"] } else { vec!["text"] },
            "max_output_tokens": self.max_output_tokens,
            "tools": self.tools.iter().map(|t| {
                // The Realtime shape is flat.
                let mut f = t["function"].clone();
                f["type"] = serde_json::json!("function");
                f
            }).collect::<Vec<_>>(),
            "tool_choice": if self.tool_choice == ToolChoice::None { "none" } else { "auto" },
            "audio": {
                "input": {"format": fmt(self.input_format), "turn_detection": turn, "transcription": self.transcription.as_ref().map(|t|
                    serde_json::json!({"model": t.model, "language": t.language, "prompt": t.prompt}))},
                "output": {"format": fmt(self.output_format), "voice": self.voice},
            },
        })
    }
}

/// `transcription`: `null` (off) or `{"model", "language", "prompt"}` (every field optional).
fn parse_transcription(v: &serde_json::Value) -> Result<Option<Transcription>, SessionError> {
    let at = Some("session.audio.input.transcription");
    if v.is_null() {
        return Ok(None);
    }
    if !v.is_object() {
        return Err(err("invalid_value", "transcription must be an object or null", at));
    }
    let text = |k: &str| -> Result<Option<String>, SessionError> {
        match v.get(k) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(x) => Err(err("invalid_value", format!("transcription.{k} {x}: a string"), at)),
        }
    };
    let language = text("language")?;
    if let Some(l) = &language {
        if !(2..=3).contains(&l.len()) || !l.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(err(
                "invalid_value",
                format!("transcription.language {l:?}: an ISO-639-1 code such as \"en\""),
                at,
            ));
        }
    }
    let prompt = text("prompt")?;
    if prompt.as_ref().is_some_and(|p| p.len() > 4096) {
        return Err(err("invalid_value", "transcription.prompt is longer than 4096 bytes", at));
    }
    Ok(Some(Transcription { model: text("model")?.unwrap_or_else(|| "omnid".into()), language, prompt }))
}

/// `turn_detection`: `null` or `{"type": "server_vad", …}` with OpenAI's defaults for absent fields.
fn parse_turn_detection(v: &serde_json::Value) -> Result<Option<VadConfig>, SessionError> {
    let at = Some("session.audio.input.turn_detection");
    if v.is_null() {
        return Ok(None);
    }
    match v.get("type").and_then(|t| t.as_str()) {
        Some("server_vad") => {}
        Some(other) => {
            return Err(err(
                "unsupported",
                format!("turn_detection type {other:?} is not available: use \"server_vad\" or null"),
                at,
            ))
        }
        None => return Err(err("invalid_value", "turn_detection needs a \"type\"", at)),
    }
    let d = VadConfig::default();
    let num = |k: &str, dflt: f64, max: f64| -> Result<f64, SessionError> {
        match v.get(k) {
            None | Some(serde_json::Value::Null) => Ok(dflt),
            Some(x) => x
                .as_f64()
                .filter(|n| (0.0..=max).contains(n))
                .ok_or_else(|| err("invalid_value", format!("turn_detection.{k} {x}: a number in 0..={max}"), at)),
        }
    };
    let flag = |k: &str, dflt: bool| -> Result<bool, SessionError> {
        match v.get(k) {
            None | Some(serde_json::Value::Null) => Ok(dflt),
            Some(x) => {
                x.as_bool().ok_or_else(|| err("invalid_value", format!("turn_detection.{k} {x}: true or false"), at))
            }
        }
    };
    Ok(Some(VadConfig {
        threshold: num("threshold", d.threshold as f64, 1.0)? as f32,
        prefix_padding_ms: num("prefix_padding_ms", d.prefix_padding_ms as f64, 10_000.0)? as u64,
        silence_duration_ms: num("silence_duration_ms", d.silence_duration_ms as f64, 10_000.0)?.max(20.0) as u64,
        create_response: flag("create_response", d.create_response)?,
        interrupt_response: flag("interrupt_response", d.interrupt_response)?,
    }))
}
