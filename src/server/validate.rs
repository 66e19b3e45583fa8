//! Chat requests → what the engine can run: roles and parts checked, media pulled out in prompt
//! order (still encoded), sampling and limits resolved. Pure logic: every refusal names the
//! field at fault, as an OpenAI `invalid_request_error`.

use crate::engine::sampling::SamplingParams;
use crate::protocol::chat::{ChatRequest, ContentPart, MessageContent};
use crate::protocol::tool_calls::{function_tool, tool_choice, ToolChoice};

/// A request the server accepts.
#[derive(Debug, Clone)]
pub struct ValidChat {
    /// The conversation in the chat-template format (`{"role", "content": [parts]}`), media parts
    /// naming their index in `media`.
    pub messages: serde_json::Value,
    pub media: Vec<EncodedMedia>,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    pub stream: bool,
    pub include_usage: bool,
    /// `Some` when audio was asked for.
    pub audio: Option<AudioAnswer>,
    /// Tools for the template (`tools` variable), in its shape; empty: none, or `tool_choice: "none"`.
    pub tools: Vec<serde_json::Value>,
    pub model: Option<String>,
}

/// A spoken answer's voice and encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioAnswer {
    pub voice: String,
    pub format: AudioFormat,
}

/// Encodings of spoken answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// A WAV file (16-bit PCM, 24 kHz mono).
    Wav,
    /// Raw little-endian 16-bit PCM, 24 kHz mono (what streamed answers use).
    Pcm16,
}

/// A media part as received.
#[derive(Debug, Clone, PartialEq)]
pub enum EncodedMedia {
    /// The bytes after `data:image/…;base64,`.
    ImageBase64(String),
    /// Base64 audio and its container name.
    AudioBase64 {
        data: String,
        format: String,
    },
    /// Base64 video and the file extension of its container.
    VideoBase64 {
        data: String,
        ext: &'static str,
    },
    /// An `http(s)://` URL (only when the server fetches remote media).
    ImageRemote(String),
    VideoRemote(String),
}

/// A refusal: message and the offending field.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub message: String,
    pub param: Option<String>,
}

fn invalid(param: &str, message: impl Into<String>) -> Invalid {
    Invalid { message: message.into(), param: Some(param.into()) }
}

/// Limits a request must respect.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    pub max_media_items: usize,
    pub max_tokens: usize,
    /// `max_tokens` when the request names none.
    pub default_max_tokens: usize,
    /// The checkpoint's sampling defaults (used when the request names no sampling field).
    pub sampling_defaults: SamplingParams,
    /// The model takes audio input.
    pub audio_input: bool,
    /// `http(s)://` media URLs are accepted (the server fetches them).
    pub remote_media: bool,
}

/// Checks a chat request.
pub fn validate(req: &ChatRequest, limits: &RequestLimits) -> Result<ValidChat, Invalid> {
    if req.messages.is_empty() {
        return Err(invalid("messages", "messages is empty: send at least one message"));
    }
    if req.n.is_some_and(|n| n != 1) {
        return Err(invalid("n", "only n = 1 is supported"));
    }
    let mut media = Vec::new();
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let at = |f: &str| format!("messages[{i}].{f}");
        let role = match m.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            "tool" => "tool",
            other => {
                return Err(invalid(
                    &at("role"),
                    format!("role {other:?} is not supported (system, developer, user, assistant, tool)"),
                ))
            }
        };
        if m.tool_calls.as_ref().is_some_and(|c| !c.is_empty()) && role != "assistant" {
            return Err(invalid(&at("tool_calls"), "only assistant messages carry tool_calls"));
        }
        let mut parts = Vec::new();
        match &m.content {
            None => {}
            Some(MessageContent::Text(t)) => parts.push(serde_json::json!({"type": "text", "text": t})),
            Some(MessageContent::Parts(ps)) => {
                for (j, p) in ps.iter().enumerate() {
                    let at = |f: &str| format!("messages[{i}].content[{j}].{f}");
                    match p {
                        ContentPart::Text { text } => parts.push(serde_json::json!({"type": "text", "text": text})),
                        ContentPart::ImageUrl { image_url } => {
                            if role != "user" {
                                return Err(invalid(&at("image_url"), "images go in user messages"));
                            }
                            if limits.remote_media && is_remote(&image_url.url) {
                                media.push(EncodedMedia::ImageRemote(image_url.url.clone()));
                            } else {
                                let data =
                                    data_url_payload(&image_url.url).map_err(|m| invalid(&at("image_url.url"), m))?;
                                media.push(EncodedMedia::ImageBase64(data.to_string()));
                            }
                            parts.push(
                                serde_json::json!({"type": "image", "image": format!("media:{}", media.len() - 1)}),
                            );
                        }
                        ContentPart::VideoUrl { video_url } => {
                            if role != "user" {
                                return Err(invalid(&at("video_url"), "videos go in user messages"));
                            }
                            if limits.remote_media && is_remote(&video_url.url) {
                                media.push(EncodedMedia::VideoRemote(video_url.url.clone()));
                            } else {
                                let (ext, data) =
                                    video_data_url(&video_url.url).map_err(|m| invalid(&at("video_url.url"), m))?;
                                media.push(EncodedMedia::VideoBase64 { data: data.to_string(), ext });
                            }
                            parts.push(
                                serde_json::json!({"type": "video", "video": format!("media:{}", media.len() - 1)}),
                            );
                        }
                        ContentPart::InputAudio { input_audio } => {
                            if role != "user" {
                                return Err(invalid(&at("input_audio"), "audio goes in user messages"));
                            }
                            if !limits.audio_input {
                                return Err(invalid(&at("input_audio"), "this model takes no audio input"));
                            }
                            let format = input_audio.format.to_ascii_lowercase();
                            if !matches!(
                                format.as_str(),
                                "wav" | "mp3" | "flac" | "ogg" | "opus" | "m4a" | "aac" | "webm"
                            ) {
                                return Err(invalid(
                                    &at("input_audio.format"),
                                    format!("audio format {:?} is not supported (wav, mp3, flac, ogg, opus, m4a, aac, webm)", input_audio.format),
                                ));
                            }
                            media.push(EncodedMedia::AudioBase64 { data: input_audio.data.clone(), format });
                            parts.push(
                                serde_json::json!({"type": "audio", "audio": format!("media:{}", media.len() - 1)}),
                            );
                        }
                    }
                }
            }
        }
        let mut message = serde_json::json!({"role": role, "content": parts});
        if let Some(calls) = m.tool_calls.as_ref().filter(|c| !c.is_empty()) {
            let mut out = Vec::with_capacity(calls.len());
            for (j, c) in calls.iter().enumerate() {
                let args: serde_json::Value = serde_json::from_str(&c.function.arguments)
                    .ok()
                    .filter(serde_json::Value::is_object)
                    .ok_or_else(|| {
                        invalid(
                            &at(&format!("tool_calls[{j}].function.arguments")),
                            "arguments must be a JSON object in a string",
                        )
                    })?;
                // As an object, as vLLM passes it: the template prints it with `tojson`, in the
                // layout the model was trained on.
                out.push(
                    serde_json::json!({"type": "function", "function": {"name": c.function.name, "arguments": args}}),
                );
            }
            message["tool_calls"] = serde_json::Value::Array(out);
        }
        messages.push(message);
    }
    if media.len() > limits.max_media_items {
        return Err(invalid(
            "messages",
            format!("{} images and audio clips; at most {} per request", media.len(), limits.max_media_items),
        ));
    }
    let tools = match tool_choice(req.tool_choice.as_ref()).map_err(|m| invalid("tool_choice", m))? {
        ToolChoice::None => Vec::new(),
        ToolChoice::Auto => req
            .tools
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| function_tool(t).map_err(|m| invalid(&format!("tools[{i}]"), m)))
            .collect::<Result<_, _>>()?,
    };
    if req.messages.last().is_some_and(|m| m.role == "assistant") {
        return Err(invalid("messages", "the last message is the assistant's: nothing to answer"));
    }
    let max_tokens = match req.max_completion_tokens.or(req.max_tokens) {
        None => limits.default_max_tokens.min(limits.max_tokens),
        Some(0) => return Err(invalid("max_tokens", "max_tokens must be at least 1")),
        Some(n) if n as usize > limits.max_tokens => {
            return Err(invalid(
                "max_tokens",
                format!("max_tokens {n} is above this server's limit of {}", limits.max_tokens),
            ))
        }
        Some(n) => n as usize,
    };
    let mut sampling = limits.sampling_defaults.clone();
    if req.temperature.is_some() || req.top_p.is_some() {
        sampling.greedy = false;
    }
    if let Some(t) = req.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(invalid("temperature", format!("temperature must be in [0, 2] (got {t})")));
        }
        sampling.temperature = t;
        sampling.greedy = t == 0.0;
    }
    if let Some(p) = req.top_p {
        sampling.top_p = p;
    }
    sampling.seed = req.seed.unwrap_or(0);
    sampling.validate().map_err(|m| invalid("top_p", m))?;
    let wants_audio = req.modalities.as_ref().is_some_and(|m| m.iter().any(|x| x == "audio"));
    if let Some(bad) = req.modalities.iter().flatten().find(|m| !matches!(m.as_str(), "text" | "audio")) {
        return Err(invalid("modalities", format!("modality {bad:?} is not supported (text, audio)")));
    }
    let audio = match (wants_audio, &req.audio) {
        (false, _) => None,
        (true, None) => return Err(invalid("audio", "modalities asks for audio: give audio {voice, format}")),
        (true, Some(a)) => {
            let format = match a.format.as_str() {
                "wav" => AudioFormat::Wav,
                "pcm16" => AudioFormat::Pcm16,
                other => {
                    return Err(invalid(
                        "audio.format",
                        format!("audio format {other:?} is not supported (wav, pcm16)"),
                    ))
                }
            };
            if req.stream && format != AudioFormat::Pcm16 {
                return Err(invalid(
                    "audio.format",
                    "streamed audio is pcm16 (as OpenAI): set audio.format to \"pcm16\"",
                ));
            }
            Some(AudioAnswer { voice: a.voice.clone(), format })
        }
    };
    Ok(ValidChat {
        messages: serde_json::Value::Array(messages),
        media,
        sampling,
        max_tokens,
        stream: req.stream,
        include_usage: req.stream_options.as_ref().is_some_and(|o| o.include_usage),
        audio,
        tools,
        model: req.model.clone(),
    })
}

/// The base64 payload of a `data:image/…;base64,` URL.
fn data_url_payload(url: &str) -> Result<&str, String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(
            "remote image URLs are not fetched by this server ([server] remote_media is off): send the image as a data: URL (data:image/png;base64,…)"
                .into(),
        );
    }
    super::media::image_data_url_payload(url)
}

fn is_remote(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// The container and payload of a `data:video/…;base64,` URL.
fn video_data_url(url: &str) -> Result<(&'static str, &str), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Err(
            "remote video URLs are not fetched by this server ([server] remote_media is off): send the video as a data: URL"
                .into(),
        );
    }
    let (head, payload) = url
        .strip_prefix("data:")
        .and_then(|r| r.split_once(','))
        .ok_or("expected a data: URL (data:video/mp4;base64,…)")?;
    let mime =
        head.strip_suffix(";base64").ok_or_else(|| format!("data URL of type {head:?}: expected video/…;base64"))?;
    let ext = match mime {
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        "video/x-matroska" | "video/matroska" => "mkv",
        "video/x-msvideo" | "video/avi" => "avi",
        other => {
            return Err(format!(
                "video type {other:?} is not supported (video/mp4, video/webm, video/quicktime, video/x-matroska, video/x-msvideo)"
            ))
        }
    };
    Ok((ext, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits {
            max_media_items: 2,
            max_tokens: 100,
            default_max_tokens: 16,
            sampling_defaults: SamplingParams::default(),
            audio_input: true,
            remote_media: false,
        }
    }

    fn check(body: serde_json::Value) -> Result<ValidChat, Invalid> {
        validate(&serde_json::from_value(body).unwrap(), &limits())
    }

    #[test]
    fn media_come_out_in_prompt_order() {
        let v = check(serde_json::json!({"messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "WAV"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "text", "text": "What is this?"}]}],
            "temperature": 0, "max_tokens": 7}))
        .unwrap();
        assert_eq!(
            v.media,
            [
                EncodedMedia::AudioBase64 { data: "AAAA".into(), format: "wav".into() },
                EncodedMedia::ImageBase64("iVBO".into())
            ]
        );
        assert_eq!(v.messages[0]["role"], "system");
        assert_eq!(v.messages[1]["content"][1]["image"], "media:1");
        assert!(v.sampling.greedy);
        assert_eq!(v.max_tokens, 7);
    }

    #[test]
    fn refusals_name_the_field() {
        let e = check(serde_json::json!({"messages": []})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
        let e = check(serde_json::json!({"messages": [{"role": "function", "content": "x"}]})).unwrap_err();
        assert!(e.message.contains("\"function\"") && e.param.as_deref() == Some("messages[0].role"), "{e:?}");
        let e = check(serde_json::json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}))
        .unwrap_err();
        assert!(e.message.contains("remote image URLs"), "{e:?}");
        let e = check(serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1000}))
            .unwrap_err();
        assert!(e.message.contains("limit of 100"), "{e:?}");
        let e = check(serde_json::json!({"messages": [{"role": "user", "content": "hi"}],
            "modalities": ["text", "audio"], "audio": {"voice": "ethan", "format": "mp3"}}))
        .unwrap_err();
        assert!(e.message.contains("\"mp3\"") && e.param.as_deref() == Some("audio.format"), "{e:?}");
        let e = check(serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "stream": true,
            "modalities": ["text", "audio"], "audio": {"voice": "ethan", "format": "wav"}}))
        .unwrap_err();
        assert!(e.message.contains("pcm16"), "{e:?}");
        let three = serde_json::json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}});
        let e = check(
            serde_json::json!({"messages": [{"role": "user", "content": [three.clone(), three.clone(), three]}]}),
        )
        .unwrap_err();
        assert!(e.message.contains("at most 2"), "{e:?}");
        let e =
            check(serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 7})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
    }

    #[test]
    fn a_function_calling_conversation_becomes_the_template_messages_transformers_renders() {
        let fx: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tool_calls.json")).unwrap(),
        )
        .unwrap();
        // The same conversation as an OpenAI client sends it.
        let v = check(serde_json::json!({
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"}],
            "tools": fx["tools"]}))
        .unwrap();
        assert_eq!(v.messages, fx["messages"]);
        assert_eq!(v.tools, fx["tools"].as_array().unwrap().clone());
        // tool_choice "none" leaves the tools out of the prompt; forcing a call is refused.
        let none = check(
            serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "tools": fx["tools"], "tool_choice": "none"}),
        );
        assert!(none.unwrap().tools.is_empty());
        let e = check(serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "tools": fx["tools"], "tool_choice": "required"}))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tool_choice"));
        let e = check(serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "a b"}}]}))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools[0]"));
        let e = check(serde_json::json!({"messages": [
            {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "not json"}}]},
            {"role": "user", "content": "hi"}]}))
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].tool_calls[0].function.arguments"));
    }
}
