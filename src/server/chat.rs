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

use super::media::decode_all;
use super::validate::{validate, AudioFormat, RequestLimits, ValidChat};
use super::{unix_now, ApiError, AppState, ChannelSink};
use crate::engine::generate::{GenerateParams, StopReason};
use crate::engine::processor::{build_prompt, PromptOptions};
use crate::engine::service::{Job, JobEvent, JobSummary, SubmitError};
use crate::engine::speech::speech_models;
use crate::models::multimodal::MultimodalInputs;
use crate::protocol::chat::{
    AssistantMessage, AudioDelta, AudioOut, ChatChunk, ChatCompletion, ChatRequest, Choice, ChunkChoice, Delta, Usage,
};

/// Events buffered between the engine and one response (text pieces and audio chunks); a
/// slow client slows its own job down, nobody else's.
const RESPONSE_QUEUE: usize = 64;

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
    };
    let valid = validate(&req, &limits).map_err(|e| ApiError::bad_request(e.message, e.param.as_deref()))?;
    let speech = match &valid.audio {
        None => None,
        Some(a) => {
            let (_, models) =
                speech_models(lm).map_err(|e| ApiError::bad_request(format!("{e:#}"), Some("modalities")))?;
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
    let media = decode_all(&valid.media, lm.processor.image.max_input_pixels, rate)?;
    let opts =
        PromptOptions { add_generation_prompt: true, use_audio_in_video: false, template_vars: Default::default() };
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
    let summary = loop {
        match rx.recv().await {
            Some(JobEvent::Text(t)) => text.push_str(&t),
            Some(JobEvent::Audio(a)) => audio.extend(a),
            Some(JobEvent::Done(s)) => break s,
            Some(JobEvent::Failed(m)) => return Err(engine_failure(m)),
            None => return Err(engine_failure("the engine dropped the request".into())),
        }
    };
    let (content, audio) = match &valid.audio {
        None => (Some(text), None),
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
            message: AssistantMessage { role: "assistant", content, audio },
            finish_reason: finish_reason(summary.stop),
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
        while let Some(ev) = rx.recv().await {
            let event = match ev {
                JobEvent::Text(t) if spoken => chunk(
                    Delta {
                        audio: Some(AudioDelta { id: Some(audio_id.clone()), transcript: Some(t), data: None }),
                        ..Default::default()
                    },
                    None,
                    None,
                ),
                JobEvent::Text(t) => chunk(Delta { content: Some(t), ..Default::default() }, None, None),
                JobEvent::Audio(a) => chunk(
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
                ),
                JobEvent::Done(s) => {
                    let _ = tx.send(chunk(Delta::default(), Some(finish_reason(s.stop)), None)).await;
                    if valid.include_usage {
                        let _ = tx.send(chunk(Delta::default(), None, Some(usage(&meta, &s)))).await;
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
            if tx.send(event).await.is_err() {
                return; // the client left: dropping `rx` stops the job
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
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    crate::engine::rng::SplitMix64::new(nanos ^ n.rotate_left(32)).next_u64()
}
