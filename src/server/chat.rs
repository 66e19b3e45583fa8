//! `POST /v1/chat/completions`: validate, decode media and build the prompt on the blocking
//! pool, queue the job on the engine, then answer in one JSON body or as server-sent events
//! (`data: {chunk}` … `data: [DONE]`). A client that goes away closes the event channel, and
//! the engine stops that job at its next token.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;

use super::answer::{call_id, AnswerSplitter, Piece};
use super::media::{decode_all, MediaSettings};
use super::validate::{validate, AudioFormat, RequestLimits, ValidChat};
use super::{unix_now, ApiError, AppState, ChannelSink};
use crate::engine::error_message::client_message;
use crate::engine::generate::{GenerateParams, StopReason};
use crate::engine::media::{frame_rule, VideoRequest};
use crate::engine::processor::{build_prompt, PromptOptions};
use crate::engine::service::{Job, JobEvent, JobSummary, SubmitError};
use crate::engine::speech::speech_models;
use crate::models::multimodal::MultimodalInputs;
use crate::protocol::chat::{
    AssistantMessage, AudioDelta, AudioOut, ChatChunk, ChatCompletion, ChatRequest, Choice, ChunkChoice, Delta,
    FunctionCall, ToolCallDelta, ToolCallOut, Usage,
};

/// Events buffered between the engine and one response (text pieces and audio chunks); a
/// slow client slows its own job down, nobody else's.
const RESPONSE_QUEUE: usize = 64;

/// Frames per second sampled from a video part when the checkpoint's video processor names none
/// (the Qwen processors' default, as `omnid ask`).
const DEFAULT_VIDEO_FPS: f64 = 2.0;

pub async fn completions(
    State(state): State<Arc<AppState>>,
    body: Result<Json<ChatRequest>, JsonRejection>,
) -> Response {
    match answer(state, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn answer(state: Arc<AppState>, body: Result<Json<ChatRequest>, JsonRejection>) -> Result<Response, ApiError> {
    let received = Instant::now();
    let Json(req) = body.map_err(|rej| {
        // OpenAI answers 400 to any malformed body (axum says 422 for a wrong field type); an
        // oversized body stays 413.
        let status = match rej.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            s => s,
        };
        ApiError::new(status, "invalid_request_error", format!("request body: {}", rej.body_text()), None)
    })?;
    let lm = &state.model;
    let limits = RequestLimits {
        max_media_items: state.limits.max_media_items,
        max_tokens: state.limits.max_tokens,
        default_max_tokens: state.limits.default_max_tokens,
        sampling_defaults: lm.generation.sampling_defaults(),
        audio_input: lm.model.accepts_audio(),
        remote_media: state.limits.remote_media.is_some(),
    };
    let valid = validate(&req, &limits).map_err(|e| ApiError::bad_request(e.message, e.param.as_deref()))?;
    let speech = match &valid.audio {
        None => None,
        Some(a) => {
            let (_, models) =
                speech_models(lm).map_err(|e| ApiError::bad_request(client_message(&e), Some("modalities")))?;
            models.talker.config().speaker(&a.voice).map_err(|e| ApiError::bad_request(e, Some("audio.voice")))?;
            Some(state.limits.speech_options(&a.voice, valid.sampling.greedy, valid.sampling.seed))
        }
    };
    let st = state.clone();
    let v = valid.clone();
    let inputs = tokio::task::spawn_blocking(move || prepare(&st, &v))
        .await
        .map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", format!("preprocessing: {e}"), None)
        })?
        .map_err(|m| ApiError::bad_request(m, Some("messages")))?;
    let prompt_tokens = inputs.ids.len();
    let params =
        GenerateParams { sampling: valid.sampling.clone(), max_new_tokens: valid.max_tokens, stop_ids: lm.stop_ids() };
    let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
    let job = Job { inputs, params, speech, sink: Box::new(ChannelSink(tx)), received };
    state.engine.submit(job).map_err(|e| match e {
        SubmitError::Overloaded { .. } => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "overloaded_error", e.to_string(), None)
        }
        SubmitError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", e.to_string(), None),
    })?;
    let meta = ResponseMeta {
        id: format!("chatcmpl-{:016x}", rand_id()),
        created: unix_now(),
        model: valid.model.clone().unwrap_or_else(|| state.model_id.clone()),
        prompt_tokens,
    };
    if valid.stream {
        Ok(stream(rx, meta, valid).into_response())
    } else {
        collect(rx, meta, &valid).await.map(|c| Json(c).into_response())
    }
}

/// Media decoding and the processor (template, log-mel, patches, tokens): CPU work for the
/// blocking pool.
fn prepare(state: &AppState, valid: &ValidChat) -> Result<MultimodalInputs, String> {
    let lm = &state.model;
    let rate = lm.processor.audio.as_ref().map_or(16_000, |a| a.sampling_rate as u32);
    let settings = MediaSettings {
        remote: state.limits.remote_media.clone(),
        max_pixels: lm.processor.image.max_input_pixels,
        audio_rate_hz: rate,
        video: VideoRequest {
            fps: lm.processor.video.fps.unwrap_or(DEFAULT_VIDEO_FPS),
            rule: frame_rule(lm.family),
            processor: &lm.processor.video,
            max_tokens: lm.model.decoder().config().max_position_embeddings,
            audio_rate_hz: None,
            window: (0.0, None),
        },
    };
    let media = decode_all(&valid.media, &settings)?;
    let mut template_vars = serde_json::Map::new();
    if !valid.tools.is_empty() {
        template_vars.insert("tools".into(), serde_json::Value::Array(valid.tools.clone()));
    }
    let opts = PromptOptions { add_generation_prompt: true, use_audio_in_video: false, template_vars };
    let built = build_prompt(lm, &valid.messages, &media, &opts).map_err(|e| e.to_string())?;
    if let Some(max) = lm.model.decoder().config().max_position_embeddings {
        if built.inputs.ids.len() + valid.max_tokens > max {
            return Err(format!(
                "the prompt has {} tokens and max_tokens is {}: more than the model's context of {max}",
                built.inputs.ids.len(),
                valid.max_tokens
            ));
        }
    }
    Ok(built.inputs)
}

struct ResponseMeta {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: usize,
}

fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::Length => "length",
        StopReason::Eos | StopReason::Cancelled => "stop",
    }
}

fn usage(meta: &ResponseMeta, s: &JobSummary) -> Usage {
    Usage {
        prompt_tokens: meta.prompt_tokens,
        completion_tokens: s.completion_tokens,
        total_tokens: meta.prompt_tokens + s.completion_tokens,
    }
}

fn engine_failure(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message, None)
}

/// The whole answer in one body.
async fn collect(
    mut rx: mpsc::Receiver<JobEvent>,
    meta: ResponseMeta,
    valid: &ValidChat,
) -> Result<ChatCompletion, ApiError> {
    let (mut text, mut audio) = (String::new(), Vec::new());
    let mut answer = AnswerSplitter::new(!valid.tools.is_empty());
    let mut calls = Vec::new();
    let mut take = |pieces: Vec<Piece>, text: &mut String| {
        for p in pieces {
            match p {
                Piece::Text(t) => text.push_str(&t),
                Piece::Call(c) => calls.push(ToolCallOut {
                    id: call_id(),
                    kind: "function",
                    function: FunctionCall { name: c.name, arguments: c.arguments },
                }),
            }
        }
    };
    let summary = loop {
        match rx.recv().await {
            Some(JobEvent::Text(t)) => take(answer.push(&t), &mut text),
            // A call is not spoken: the audio stops where the call begins.
            Some(JobEvent::Audio(a)) if !answer.in_calls() => audio.extend(a),
            Some(JobEvent::Audio(_)) => {}
            Some(JobEvent::Done(s)) => break s,
            Some(JobEvent::Failed(m)) => return Err(engine_failure(m)),
            None => return Err(engine_failure("the engine dropped the request".into())),
        }
    };
    take(answer.finish(), &mut text);
    let (content, audio) = match &valid.audio {
        None => ((!text.is_empty() || calls.is_empty()).then_some(text), None),
        Some(a) => {
            let bytes = match a.format {
                AudioFormat::Wav => {
                    omnid_codecs::wav::encode_wav(&audio, 24_000, omnid_codecs::wav::WavSampleFormat::Pcm16)
                        .map_err(|e| engine_failure(e.to_string()))?
                }
                AudioFormat::Pcm16 => pcm16_bytes(&audio),
            };
            let out = AudioOut {
                id: format!("audio_{}", &meta.id[9..]),
                data: base64::engine::general_purpose::STANDARD.encode(bytes),
                expires_at: meta.created + 3600,
                transcript: text,
            };
            (None, Some(out))
        }
    };
    Ok(ChatCompletion {
        id: meta.id.clone(),
        object: "chat.completion",
        created: meta.created,
        model: meta.model.clone(),
        choices: vec![Choice {
            index: 0,
            finish_reason: if calls.is_empty() { finish_reason(summary.stop) } else { "tool_calls" },
            message: AssistantMessage {
                role: "assistant",
                content,
                audio,
                tool_calls: (!calls.is_empty()).then_some(calls),
            },
        }],
        usage: usage(&meta, &summary),
    })
}

/// The answer as server-sent events. A task turns engine events into chunks; when the client
/// leaves, its channel closes, the task ends and drops the engine's channel, which stops the job.
fn stream(
    mut rx: mpsc::Receiver<JobEvent>,
    meta: ResponseMeta,
    valid: ValidChat,
) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let (tx, out) = mpsc::channel::<Event>(RESPONSE_QUEUE);
    tokio::spawn(async move {
        let chunk = |delta: Delta, finish: Option<&'static str>, usage: Option<Usage>| {
            let c = ChatChunk {
                id: meta.id.clone(),
                object: "chat.completion.chunk",
                created: meta.created,
                model: meta.model.clone(),
                choices: if usage.is_some() {
                    vec![]
                } else {
                    vec![ChunkChoice { index: 0, delta, finish_reason: finish }]
                },
                usage,
            };
            Event::default().data(serde_json::to_string(&c).expect("chunks serialise"))
        };
        let spoken = valid.audio.is_some();
        let audio_id = format!("audio_{}", &meta.id[9..]);
        if tx.send(chunk(Delta { role: Some("assistant"), ..Default::default() }, None, None)).await.is_err() {
            return;
        }
        let mut answer = AnswerSplitter::new(!valid.tools.is_empty());
        let mut calls = 0;
        // Text pieces and calls → chunks.
        let mut deltas = |pieces: Vec<Piece>| -> Vec<Event> {
            pieces
                .into_iter()
                .map(|p| match p {
                    Piece::Text(t) if spoken => Delta {
                        audio: Some(AudioDelta { id: Some(audio_id.clone()), transcript: Some(t), data: None }),
                        ..Default::default()
                    },
                    Piece::Text(t) => Delta { content: Some(t), ..Default::default() },
                    Piece::Call(c) => {
                        calls += 1;
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: calls - 1,
                                id: call_id(),
                                kind: "function",
                                function: FunctionCall { name: c.name, arguments: c.arguments },
                            }]),
                            ..Default::default()
                        }
                    }
                })
                .map(|d| chunk(d, None, None))
                .collect()
        };
        while let Some(ev) = rx.recv().await {
            let events = match ev {
                JobEvent::Text(t) => deltas(answer.push(&t)),
                // A call is not spoken: the audio stops where the call begins.
                JobEvent::Audio(_) if answer.in_calls() => vec![],
                JobEvent::Audio(a) => vec![chunk(
                    Delta {
                        audio: Some(AudioDelta {
                            id: Some(audio_id.clone()),
                            data: Some(base64::engine::general_purpose::STANDARD.encode(pcm16_bytes(&a))),
                            transcript: None,
                        }),
                        ..Default::default()
                    },
                    None,
                    None,
                )],
                JobEvent::Done(s) => {
                    let mut last = deltas(answer.finish());
                    let finish = if calls > 0 { "tool_calls" } else { finish_reason(s.stop) };
                    last.push(chunk(Delta::default(), Some(finish), None));
                    if valid.include_usage {
                        last.push(chunk(Delta::default(), None, Some(usage(&meta, &s))));
                    }
                    for e in last {
                        let _ = tx.send(e).await;
                    }
                    break;
                }
                JobEvent::Failed(m) => {
                    let body = crate::protocol::errors::ErrorBody::new("server_error", m, None);
                    let _ =
                        tx.send(Event::default().data(serde_json::to_string(&body).expect("errors serialise"))).await;
                    break;
                }
            };
            for e in events {
                if tx.send(e).await.is_err() {
                    return; // the client left: dropping `rx` stops the job
                }
            }
        }
        let _ = tx.send(Event::default().data("[DONE]")).await;
    });
    Sse::new(ReceiverStream::new(out).map(Ok)).keep_alive(KeepAlive::default())
}

/// Little-endian 16-bit PCM bytes.
fn pcm16_bytes(samples: &[f32]) -> Vec<u8> {
    samples.iter().flat_map(|&s| omnid_codecs::wire::pcm::f32_to_i16(s).to_le_bytes()).collect()
}

/// A response id: clock and a process-wide counter mixed (unique per process, not secret).
pub(super) fn rand_id() -> u64 {
    crate::engine::rng::random_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sampling::SamplingParams;

    /// A request offering a tool, and the engine stand-in's answer: a call, split mid-marker.
    fn scripted() -> (ValidChat, ResponseMeta, Vec<JobEvent>) {
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}))
        .unwrap();
        let limits = RequestLimits {
            max_media_items: 1,
            max_tokens: 100,
            default_max_tokens: 10,
            sampling_defaults: SamplingParams::default(),
            audio_input: false,
            remote_media: false,
        };
        let meta =
            ResponseMeta { id: "chatcmpl-0123456789abcdef".into(), created: 0, model: "m".into(), prompt_tokens: 9 };
        let events = vec![
            JobEvent::Text("Checking.\n<tool".into()),
            JobEvent::Text(
                "_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>".into(),
            ),
            JobEvent::Done(JobSummary { prompt_tokens: 9, completion_tokens: 20, stop: StopReason::Eos, speech: None }),
        ];
        (validate(&req, &limits).unwrap(), meta, events)
    }

    async fn feed(events: Vec<JobEvent>) -> mpsc::Receiver<JobEvent> {
        let (tx, rx) = mpsc::channel(8);
        for e in events {
            tx.send(e).await.unwrap();
        }
        rx
    }

    #[tokio::test]
    async fn a_call_in_the_answer_becomes_tool_calls_streamed_or_not() {
        let (valid, meta, events) = scripted();
        let c = collect(feed(events.clone()).await, meta, &valid).await.unwrap_or_else(|_| panic!("collect failed"));
        let j = serde_json::to_value(&c).unwrap();
        let choice = &j["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Checking.\n");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!((call["type"].as_str(), call["function"]["name"].as_str()), (Some("function"), Some("get_weather")));
        let args: serde_json::Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, serde_json::json!({"city": "Paris"}));

        let (valid, meta, events) = scripted();
        let body = stream(feed(events).await, meta, valid).into_response().into_body();
        let body = String::from_utf8(axum::body::to_bytes(body, usize::MAX).await.unwrap().to_vec()).unwrap();
        let chunks: Vec<serde_json::Value> = body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let deltas: Vec<&serde_json::Value> = chunks.iter().map(|c| &c["choices"][0]["delta"]).collect();
        let text: String = deltas.iter().filter_map(|d| d["content"].as_str()).collect();
        assert_eq!(text, "Checking.\n");
        let calls: Vec<&serde_json::Value> = deltas.iter().filter_map(|d| d.get("tool_calls")).collect();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0][0]["index"], 0);
        assert_eq!(calls[0][0]["function"]["name"], "get_weather");
        assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
        assert!(body.trim_end().ends_with("data: [DONE]"));
    }
}
