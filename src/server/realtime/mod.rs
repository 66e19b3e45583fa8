//! `GET /v1/realtime`: OpenAI Realtime (GA) sessions over a WebSocket (axum's, on
//! tokio-tungstenite). One task per connection reads client events, keeps the [`Session`], and
//! runs at most one response at a time through the engine, translating its text and audio into
//! `response.*` events as they come.
//!
//! Turns come from push-to-talk (`turn_detection: null`: `input_audio_buffer.append` → `commit`
//! → `response.create`) or from server VAD ([`vad`]), which commits and answers a turn when its
//! silence lasts long enough and cancels the answer in flight when the user speaks over it
//! (barge-in). With tools declared, the model's calls become `function_call` items and a
//! `function_call_output` continues the turn. A response in flight stops at once on
//! `response.cancel` (its partial answer stays in the conversation) or when the client goes away.
//! A client that does not read for [`SEND_TIMEOUT`] is disconnected, so its job cannot hold the engine.

mod events;
mod replay;
mod session;
mod transcribe;
mod vad;

pub use self::replay::{replay_client_events, Replay};

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use base64::Engine as _;
use omnid_codecs::wire::WireOutput;
use tokio::sync::mpsc;

use self::events::{coded_error_event, error_event, Events};
use self::session::{Item, Part, Role, Session, SessionError, Spoken};
use self::vad::VadEvent;
use super::answer::{call_id, AnswerSplitter, Piece};
use super::{AppState, ChannelSink};
use crate::engine::generate::GenerateParams;
use crate::engine::processor::{build_prompt, PromptOptions};
use crate::engine::service::{Job, JobEvent, SubmitError};
use crate::engine::speech::speech_models;
use crate::protocol::realtime::ClientEvent;
use crate::protocol::tool_calls::ToolChoice;

/// Longest wait for a client to take an event before the session is closed.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest client message (base64 audio chunks, images), bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Events buffered between the engine and the session task.
const RESPONSE_QUEUE: usize = 64;

pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<Arc<AppState>>) -> Response {
    // Browsers send `realtime` plus the key subprotocol; answer with `realtime` (never echo the key).
    ws.protocols(["realtime"]).max_message_size(MAX_MESSAGE_BYTES).on_upgrade(move |socket| async move {
        if let Err(e) = run_session(socket, state).await {
            tracing::debug!("realtime session ended: {e}");
        }
    })
}

/// A response in flight.
struct Active {
    id: String,
    item_id: String,
    rx: mpsc::Receiver<JobEvent>,
    transcript: String,
    /// The text as streamed, and the 24 kHz samples sent (for truncation).
    pieces: Vec<String>,
    samples: usize,
    audio_out: WireOutput,
    audio: bool,
    /// Takes the model's function calls out of its text (when the session has tools).
    answer: AnswerSplitter,
    /// The `function_call` items this response made, in order (output indexes 1, 2, …).
    calls: Vec<Item>,
}

async fn send(socket: &mut WebSocket, text: String) -> anyhow::Result<()> {
    tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into())))
        .await
        .map_err(|_| anyhow::anyhow!("the client has not read for {SEND_TIMEOUT:?}"))??;
    Ok(())
}

async fn run_session(mut socket: WebSocket, state: Arc<AppState>) -> anyhow::Result<()> {
    let _open = state.metrics.session_opened();
    let lm = &state.model;
    let voices: Vec<String> =
        speech_models(lm).map(|(_, s)| s.speakers().iter().map(|v| v.to_string()).collect()).unwrap_or_default();
    let default_voice = if voices.iter().any(|v| v == "ethan") {
        "ethan".to_string()
    } else {
        voices.first().cloned().unwrap_or_default()
    };
    let mut ev = Events::default();
    let mut session = Session::new(
        format!("sess_{:016x}", super::chat::rand_id()),
        voices,
        default_voice,
        state.limits.max_tokens,
        state.limits.default_max_tokens,
    );
    send(&mut socket, ev.make("session.created", serde_json::json!({"session": session.json()}))).await?;
    let mut active: Option<Active> = None;
    let mut transcribing: Option<transcribe::Transcribing> = None;
    let expiry = tokio::time::sleep(state.limits.realtime_session);
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            () = &mut expiry => {
                // The answer in flight stops with the session (dropping its receiver stops the job).
                drop(active.take());
                let secs = state.limits.realtime_session.as_secs();
                let msg = format!("the session reached its {secs} s limit (configurable: [server] realtime_session_s); open a new one");
                send(&mut socket, coded_error_event(&mut ev, "invalid_request_error", Some("session_expired"), &msg, None, None)).await?;
                let _ = socket.send(Message::Close(None)).await;
                return Ok(());
            }
            msg = socket.recv() => {
                let Some(msg) = msg else { return Ok(()) };
                let text = match msg? {
                    Message::Text(t) => t.to_string(),
                    Message::Binary(_) => {
                        send(&mut socket, error_event(&mut ev, "invalid_request_error", "binary messages are not part of the protocol: send JSON text", None, None)).await?;
                        continue;
                    }
                    Message::Close(_) => return Ok(()),
                    _ => continue,
                };
                for out in handle_client(&text, &mut session, &mut active, &state, &mut ev).await {
                    send(&mut socket, out).await?;
                }
            }
            event = async { match active.as_mut() { Some(a) => a.rx.recv().await, None => std::future::pending().await } } => {
                for out in on_engine_event(event, &mut session, &mut active, &mut ev) {
                    send(&mut socket, out).await?;
                }
            }
            event = async { match transcribing.as_mut() { Some(t) => t.rx.recv().await, None => std::future::pending().await } } => {
                let t = transcribing.as_mut().expect("the branch runs only with a transcription");
                let (events, ended) = transcribe::on_event(t, event, &mut session, &mut ev);
                if ended {
                    transcribing = None;
                }
                for out in events {
                    send(&mut socket, out).await?;
                }
            }
        }
        // A turn that ended during an answer is answered once that answer is done.
        if active.is_none() && session.response_pending {
            session.response_pending = false;
            for out in respond(&mut session, &mut active, &state, &mut ev, None).await {
                send(&mut socket, out).await?;
            }
        }
        // The next committed item's transcription, once the previous one has ended.
        while transcribing.is_none() {
            let Some(item_id) = session.pending_transcriptions.pop_front() else { break };
            match transcribe::start(&session, &item_id, &state).await {
                Ok(t) => transcribing = Some(t),
                Err(m) => send(&mut socket, transcribe::failed(&item_id, &m, &mut ev)).await?,
            }
        }
    }
}

/// One client event → the server events it causes.
async fn handle_client(
    text: &str,
    session: &mut Session,
    active: &mut Option<Active>,
    state: &Arc<AppState>,
    ev: &mut Events,
) -> Vec<String> {
    let raw: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![error_event(ev, "invalid_request_error", &format!("not JSON: {e}"), None, None)],
    };
    let event_id = raw.get("event_id").and_then(|v| v.as_str()).map(str::to_string);
    let kind = raw.get("type").and_then(|v| v.as_str()).unwrap_or("").to_string();
    let parsed: ClientEvent = match serde_json::from_value(raw) {
        Ok(p) => p,
        Err(e) => {
            let msg = if kind.is_empty() { "the event has no \"type\"".to_string() } else { format!("{kind}: {e}") };
            return vec![error_event(ev, "invalid_request_error", &msg, None, event_id.as_deref())];
        }
    };
    let fail = |ev: &mut Events, e: SessionError| {
        vec![coded_error_event(
            ev,
            "invalid_request_error",
            Some(e.code),
            &e.message,
            e.param.as_deref(),
            event_id.as_deref(),
        )]
    };
    match parsed {
        ClientEvent::SessionUpdate { session: patch } => match session.update(&patch) {
            Ok(()) => vec![ev.make("session.updated", serde_json::json!({"session": session.json()}))],
            Err(e) => fail(ev, e),
        },
        ClientEvent::AudioAppend { audio } => match session.append_audio(&audio) {
            Ok(turns) => {
                let mut out = Vec::new();
                for t in turns {
                    out.extend(on_turn(t, session, active, state, ev).await);
                }
                out
            }
            Err(e) => fail(ev, e),
        },
        ClientEvent::ItemTruncate { item_id, content_index, audio_end_ms } => {
            match session.truncate_item(&item_id, audio_end_ms) {
                Ok(()) => vec![ev.make(
                    "conversation.item.truncated",
                    serde_json::json!({"item_id": item_id, "content_index": content_index, "audio_end_ms": audio_end_ms}),
                )],
                Err(e) => fail(ev, e),
            }
        }
        ClientEvent::AudioClear {} => {
            session.clear_audio();
            vec![ev.make("input_audio_buffer.cleared", serde_json::json!({}))]
        }
        ClientEvent::AudioCommit {} => match session.commit_audio() {
            Ok(i) => committed(session, i, ev),
            Err(e) => fail(ev, e),
        },
        ClientEvent::ItemCreate { item } => {
            // Images are decoded off the async workers.
            let urls: Vec<String> = item
                .content
                .iter()
                .filter(|c| c.kind == "input_image")
                .map(|c| c.image_url.clone().unwrap_or_default())
                .collect();
            let most = state.limits.max_media_items;
            if urls.len() > most {
                return vec![coded_error_event(
                    ev,
                    "invalid_request_error",
                    Some("too_many_images"),
                    &format!("{} images in one item; at most {most} ([server] max_media_items)", urls.len()),
                    Some("item.content"),
                    event_id.as_deref(),
                )];
            }
            let max_pixels = state.model.processor.image.max_input_pixels;
            let images = tokio::task::spawn_blocking(move || {
                urls.iter()
                    .enumerate()
                    .map(|(k, u)| decode_image_url(u, max_pixels).map_err(|m| format!("image {k}: {m}")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let images = match images {
                Ok(i) => i,
                Err(m) => {
                    return vec![error_event(
                        ev,
                        "invalid_request_error",
                        &m,
                        Some("item.content"),
                        event_id.as_deref(),
                    )]
                }
            };
            match session.create_item(&item, images) {
                Ok(i) => item_added(session, i, ev),
                Err(e) => fail(ev, e),
            }
        }
        ClientEvent::ItemRetrieve { item_id } => match session.items.iter().find(|i| i.id == item_id) {
            Some(i) => vec![ev.make("conversation.item.retrieved", serde_json::json!({"item": Session::item_json(i)}))],
            None => fail(
                ev,
                SessionError {
                    code: "item_not_found",
                    message: format!("no item {item_id:?}"),
                    param: Some("item_id".into()),
                },
            ),
        },
        ClientEvent::ItemDelete { item_id } => match session.delete_item(&item_id) {
            Ok(()) => vec![ev.make("conversation.item.deleted", serde_json::json!({"item_id": item_id}))],
            Err(e) => fail(ev, e),
        },
        ClientEvent::ResponseCancel {} => match active.take() {
            // Dropping the receiver stops the job at its next token.
            Some(a) => finish(session, a, Ending::Cancelled, ev),
            None => fail(
                ev,
                SessionError {
                    code: "response_cancel_not_active",
                    message: "no response is in progress".into(),
                    param: None,
                },
            ),
        },
        ClientEvent::ResponseCreate {} => {
            if active.is_some() {
                return fail(
                    ev,
                    SessionError {
                        code: "conversation_already_has_active_response",
                        message: "a response is already in progress: cancel it first".into(),
                        param: None,
                    },
                );
            }
            respond(session, active, state, ev, event_id.as_deref()).await
        }
    }
}

/// The events of a committed audio item.
fn committed(session: &Session, i: usize, ev: &mut Events) -> Vec<String> {
    let prev = i.checked_sub(1).map(|p| session.items[p].id.clone());
    let mut out = vec![ev.make(
        "input_audio_buffer.committed",
        serde_json::json!({"previous_item_id": prev, "item_id": session.items[i].id}),
    )];
    out.extend(item_added(session, i, ev));
    out
}

/// `conversation.item.added` and `.done` for item `i`, new in the conversation.
fn item_added(session: &Session, i: usize, ev: &mut Events) -> Vec<String> {
    let prev = i.checked_sub(1).map(|p| session.items[p].id.clone());
    let item = Session::item_json(&session.items[i]);
    vec![
        ev.make("conversation.item.added", serde_json::json!({"previous_item_id": prev, "item": item})),
        ev.make("conversation.item.done", serde_json::json!({"previous_item_id": prev, "item": item})),
    ]
}

/// Starts a response and returns its opening events (or the error event).
async fn respond(
    session: &mut Session,
    active: &mut Option<Active>,
    state: &Arc<AppState>,
    ev: &mut Events,
    client_event: Option<&str>,
) -> Vec<String> {
    match start_response(session, state).await {
        Ok((a, out)) => {
            // It answers the whole conversation, a turn waiting for an answer included.
            session.response_pending = false;
            let mut events = vec![ev.make(
                "response.created",
                serde_json::json!({"response": {"id": a.id, "object": "realtime.response", "status": "in_progress", "output": []}}),
            )];
            events.extend(out.into_iter().map(|(k, v)| ev.make(k, v)));
            *active = Some(a);
            events
        }
        Err((code, m)) => vec![error_event(ev, code, &m, None, client_event)],
    }
}

/// A turn boundary from server VAD: announce it; at the start of speech interrupt the answer
/// in progress (barge-in: its audio stops with this event), at the end commit the turn and
/// answer it.
async fn on_turn(
    t: VadEvent,
    session: &mut Session,
    active: &mut Option<Active>,
    state: &Arc<AppState>,
    ev: &mut Events,
) -> Vec<String> {
    let cfg = session.vad.as_ref().map(|v| v.config().clone()).unwrap_or_default();
    let item_id = session.pending_item_id();
    let mut out = Vec::new();
    match t {
        VadEvent::Started { audio_start_ms } => {
            session.turn_started(audio_start_ms);
            out.push(ev.make(
                "input_audio_buffer.speech_started",
                serde_json::json!({"audio_start_ms": audio_start_ms, "item_id": item_id}),
            ));
            if cfg.interrupt_response {
                if let Some(a) = active.take() {
                    out.extend(finish(session, a, Ending::Cancelled, ev));
                }
            }
        }
        VadEvent::Stopped { audio_end_ms } => {
            out.push(ev.make(
                "input_audio_buffer.speech_stopped",
                serde_json::json!({"audio_end_ms": audio_end_ms, "item_id": item_id}),
            ));
            match session.commit_turn() {
                Ok(i) => out.extend(committed(session, i, ev)),
                Err(e) => {
                    out.push(coded_error_event(
                        ev,
                        "invalid_request_error",
                        Some(e.code),
                        &e.message,
                        e.param.as_deref(),
                        None,
                    ));
                    return out;
                }
            }
            if cfg.create_response {
                if active.is_none() {
                    out.extend(respond(session, active, state, ev, None).await);
                } else {
                    // The answer in flight was not interrupted (`interrupt_response: false`): this
                    // turn is answered when it ends.
                    session.response_pending = true;
                }
            }
        }
    }
    out
}

/// An `input_image` part's `data:image/…;base64,` URL, decoded (Realtime fetches no remote URLs).
fn decode_image_url(url: &str, max_pixels: u64) -> Result<image::RgbImage, String> {
    super::media::decode_image_base64(super::media::image_data_url_payload(url)?, max_pixels)
}

/// Builds the prompt from the conversation and queues the job.
async fn start_response(
    session: &mut Session,
    state: &Arc<AppState>,
) -> Result<(Active, Vec<(&'static str, serde_json::Value)>), (&'static str, String)> {
    if !session.items.iter().any(|i| i.role == Role::User) {
        return Err(("invalid_request_error", "the conversation has no user item to answer".into()));
    }
    let (messages, media) = session.prompt();
    let mut template_vars = serde_json::Map::new();
    let tools = session.tool_choice == ToolChoice::Auto && !session.tools.is_empty();
    if tools {
        template_vars.insert("tools".into(), serde_json::Value::Array(session.tools.clone()));
    }
    let st = state.clone();
    let inputs = tokio::task::spawn_blocking(move || {
        let opts = PromptOptions { add_generation_prompt: true, use_audio_in_video: false, template_vars };
        build_prompt(&st.model, &messages, &media, &opts).map(|b| b.inputs).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| ("server_error", e.to_string()))?
    .map_err(|m| ("invalid_request_error", m))?;
    let lm = &state.model;
    let sampling = lm.generation.sampling_defaults();
    let speech = session.output_audio.then(|| state.limits.speech_options(&session.voice, sampling.greedy, 0));
    let params = GenerateParams { sampling, max_new_tokens: session.max_output_tokens, stop_ids: lm.stop_ids() };
    let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
    let job = Job { inputs, params, speech, sink: Box::new(ChannelSink(tx)), received: Instant::now() };
    state.engine.submit(job).map_err(|e| match e {
        SubmitError::Overloaded { .. } => ("overloaded_error", e.to_string()),
        SubmitError::Stopped => ("server_error", e.to_string()),
    })?;
    let id = session.new_id("resp");
    let item_id = session.new_id("item");
    let audio = session.output_audio;
    let part = if audio {
        serde_json::json!({"type": "audio", "transcript": ""})
    } else {
        serde_json::json!({"type": "text", "text": ""})
    };
    let item = serde_json::json!({"id": item_id, "type": "message", "object": "realtime.item", "status": "in_progress", "role": "assistant", "content": []});
    let out = vec![
        ("response.output_item.added", serde_json::json!({"response_id": id, "output_index": 0, "item": item})),
        ("conversation.item.added", serde_json::json!({"item": item})),
        (
            "response.content_part.added",
            serde_json::json!({"response_id": id, "item_id": item_id, "output_index": 0, "content_index": 0, "part": part}),
        ),
    ];
    let audio_out = WireOutput::new(24_000, session.output_format).map_err(|e| ("server_error", e.to_string()))?;
    let answer = AnswerSplitter::new(tools);
    let active = Active {
        id,
        item_id,
        rx,
        transcript: String::new(),
        pieces: Vec::new(),
        samples: 0,
        audio_out,
        audio,
        answer,
        calls: Vec::new(),
    };
    Ok((active, out))
}

/// One engine event of the active response → server events.
fn on_engine_event(
    event: Option<JobEvent>,
    session: &mut Session,
    active: &mut Option<Active>,
    ev: &mut Events,
) -> Vec<String> {
    let Some(a) = active.as_mut() else { return vec![] };
    let ids = serde_json::json!({"response_id": a.id, "item_id": a.item_id, "output_index": 0, "content_index": 0});
    let with = |extra: serde_json::Value| {
        let mut v = ids.clone();
        v.as_object_mut().expect("an object").extend(extra.as_object().expect("an object").clone());
        v
    };
    match event {
        Some(JobEvent::Text(t)) => {
            let pieces = a.answer.push(&t);
            piece_events(pieces, a, session, ev)
        }
        // A call is not spoken: the audio stops where the call begins.
        Some(JobEvent::Audio(_)) if a.answer.in_calls() => vec![],
        Some(JobEvent::Audio(samples)) => {
            a.samples += samples.len();
            let mut bytes = Vec::new();
            if let Err(e) = a.audio_out.push(&samples, &mut bytes) {
                let a = active.take().expect("checked above");
                return finish(session, a, Ending::Failed(e.to_string()), ev);
            }
            if bytes.is_empty() {
                return vec![];
            }
            vec![ev.make(
                "response.output_audio.delta",
                with(serde_json::json!({"delta": base64::engine::general_purpose::STANDARD.encode(bytes)})),
            )]
        }
        Some(JobEvent::Done(s)) => {
            let a = active.take().expect("checked above");
            let usage = serde_json::json!({"input_tokens": s.prompt_tokens, "output_tokens": s.completion_tokens, "total_tokens": s.prompt_tokens + s.completion_tokens});
            finish(session, a, Ending::Completed { usage }, ev)
        }
        Some(JobEvent::Failed(m)) => {
            let a = active.take().expect("checked above");
            finish(session, a, Ending::Failed(m), ev)
        }
        None => {
            let a = active.take().expect("checked above");
            finish(session, a, Ending::Failed("the engine dropped the response".into()), ev)
        }
    }
}

/// How a response ended.
enum Ending {
    Completed { usage: serde_json::Value },
    Cancelled,
    Failed(String),
}

/// Text pieces and function calls of the answer → their events.
fn piece_events(pieces: Vec<Piece>, a: &mut Active, session: &mut Session, ev: &mut Events) -> Vec<String> {
    let mut out = Vec::new();
    for p in pieces {
        match p {
            Piece::Text(t) => {
                a.transcript.push_str(&t);
                a.pieces.push(t.clone());
                let kind =
                    if a.audio { "response.output_audio_transcript.delta" } else { "response.output_text.delta" };
                out.push(ev.make(
                    kind,
                    serde_json::json!({"response_id": a.id, "item_id": a.item_id, "output_index": 0, "content_index": 0, "delta": t}),
                ));
            }
            Piece::Call(call) => {
                let item = Item {
                    id: session.new_id("item"),
                    role: Role::Assistant,
                    parts: vec![Part::FunctionCall { call_id: call_id(), name: call.name, arguments: call.arguments }],
                    spoken: None,
                    transcript: None,
                };
                let output_index = 1 + a.calls.len();
                let done = Session::item_json(&item);
                let mut added = done.clone();
                added["status"] = "in_progress".into();
                added["arguments"] = "".into();
                let ids = serde_json::json!({"response_id": a.id, "item_id": item.id, "output_index": output_index, "call_id": done["call_id"]});
                let with = |extra: serde_json::Value| {
                    let mut v = ids.clone();
                    v.as_object_mut().expect("an object").extend(extra.as_object().expect("an object").clone());
                    v
                };
                out.push(ev.make(
                    "response.output_item.added",
                    serde_json::json!({"response_id": a.id, "output_index": output_index, "item": added}),
                ));
                out.push(ev.make("conversation.item.added", serde_json::json!({"item": added})));
                // The call is parsed whole, so its arguments come in one delta.
                out.push(ev.make(
                    "response.function_call_arguments.delta",
                    with(serde_json::json!({"delta": done["arguments"]})),
                ));
                out.push(ev.make(
                    "response.function_call_arguments.done",
                    with(serde_json::json!({"name": done["name"], "arguments": done["arguments"]})),
                ));
                out.push(ev.make(
                    "response.output_item.done",
                    serde_json::json!({"response_id": a.id, "output_index": output_index, "item": done}),
                ));
                out.push(ev.make("conversation.item.done", serde_json::json!({"item": done})));
                a.calls.push(item);
            }
        }
    }
    out
}

/// Closes a response: the `*.done` events, the assistant item (with what was said so far) in
/// the conversation, then `response.done` with its status (and usage, once completed).
fn finish(session: &mut Session, mut a: Active, ending: Ending, ev: &mut Events) -> Vec<String> {
    drop(std::mem::replace(&mut a.rx, mpsc::channel(1).1));
    let rest = a.answer.finish();
    let mut out = piece_events(rest, &mut a, session, ev);
    let ids = serde_json::json!({"response_id": a.id, "item_id": a.item_id, "output_index": 0, "content_index": 0});
    let mut tail = Vec::new();
    if a.audio {
        let _ = a.audio_out.finish(&mut tail);
        if !tail.is_empty() {
            let mut v = ids.clone();
            v["delta"] = serde_json::json!(base64::engine::general_purpose::STANDARD.encode(&tail));
            out.push(ev.make("response.output_audio.delta", v));
        }
        out.push(ev.make("response.output_audio.done", ids.clone()));
        let mut v = ids.clone();
        v["transcript"] = serde_json::json!(a.transcript);
        out.push(ev.make("response.output_audio_transcript.done", v));
    } else {
        let mut v = ids.clone();
        v["text"] = serde_json::json!(a.transcript);
        out.push(ev.make("response.output_text.done", v));
    }
    let part = if a.audio { Part::SpokenText(a.transcript.clone()) } else { Part::Text(a.transcript.clone()) };
    let spoken =
        a.audio.then(|| Spoken { pieces: std::mem::take(&mut a.pieces), audio_ms: (a.samples as u64 * 1000) / 24_000 });
    let item = Item { id: a.item_id.clone(), role: Role::Assistant, parts: vec![part], spoken, transcript: None };
    let item_json = Session::item_json(&item);
    let mut v = ids.clone();
    v["part"] = item_json["content"][0].clone();
    out.push(ev.make("response.content_part.done", v));
    out.push(ev.make(
        "response.output_item.done",
        serde_json::json!({"response_id": a.id, "output_index": 0, "item": item_json}),
    ));
    out.push(ev.make("conversation.item.done", serde_json::json!({"item": item_json})));
    // A full conversation keeps its earlier items; the answer was still delivered.
    let calls: Vec<serde_json::Value> = a.calls.iter().map(Session::item_json).collect();
    for item in std::iter::once(item).chain(a.calls) {
        if session.items.len() < session::MAX_ITEMS {
            session.items.push(item);
        }
    }
    let output: Vec<serde_json::Value> = std::iter::once(item_json).chain(calls).collect();
    let mut response = serde_json::json!({"id": a.id, "object": "realtime.response", "output": output});
    match ending {
        Ending::Completed { usage } => {
            response["status"] = "completed".into();
            response["usage"] = usage;
        }
        Ending::Cancelled => response["status"] = "cancelled".into(),
        Ending::Failed(m) => {
            response["status"] = "failed".into();
            response["status_details"] =
                serde_json::json!({"type": "failed", "error": {"type": "server_error", "message": m}});
        }
    }
    out.push(ev.make("response.done", serde_json::json!({"response": response})));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::generate::StopReason;
    use crate::engine::service::JobSummary;
    use crate::protocol::realtime::{ItemIn, SessionPatch};

    fn fixture() -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tool_calls.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn item(v: serde_json::Value) -> ItemIn {
        serde_json::from_value(v).unwrap()
    }

    /// The engine stand-in answers with a call; the client returns the function's result.
    #[test]
    fn a_call_in_the_answer_becomes_a_function_call_item_and_its_output_continues_the_turn() {
        let fx = fixture();
        let mut s = Session::new("sess_0123456789abcdef".into(), vec![], String::new(), 100, 10);
        let patch: SessionPatch = serde_json::from_value(serde_json::json!({
            "instructions": "Be brief.",
            "tools": [{"type": "function", "name": "get_weather", "description": "Weather of a city",
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
        }))
        .unwrap();
        s.update(&patch).unwrap();
        assert_eq!(s.tools, fx["tools"].as_array().unwrap().clone());
        let user = item(
            serde_json::json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]}),
        );
        s.create_item(&user, vec![]).unwrap();

        let (_tx, rx) = mpsc::channel(4);
        let mut active = Some(Active {
            id: "resp_1".into(),
            item_id: s.new_id("item"),
            rx,
            transcript: String::new(),
            pieces: Vec::new(),
            samples: 0,
            audio_out: WireOutput::new(24_000, s.output_format).unwrap(),
            audio: false,
            answer: AnswerSplitter::new(true),
            calls: Vec::new(),
        });
        let mut ev = Events::default();
        let mut out = Vec::new();
        // The marker split across pieces, as the tokenizer streams it.
        for piece in [
            "Checking.",
            "\n<tool_",
            "call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
        ] {
            out.extend(on_engine_event(Some(JobEvent::Text(piece.into())), &mut s, &mut active, &mut ev));
        }
        let done = JobSummary { prompt_tokens: 50, completion_tokens: 30, stop: StopReason::Eos, speech: None };
        out.extend(on_engine_event(Some(JobEvent::Done(done)), &mut s, &mut active, &mut ev));
        let events: Vec<serde_json::Value> = out.iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        // Only the text before the call is text (in whatever pieces it streamed).
        let text: String = events
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(text, "Checking.\n");
        let events: Vec<serde_json::Value> =
            events.into_iter().filter(|e| e["type"] != "response.output_text.delta").collect();
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.output_item.added",
                "conversation.item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "conversation.item.done",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "conversation.item.done",
                "response.done",
            ]
        );
        assert_eq!(events[6]["text"], "Checking.\n");
        let args = &events[3];
        assert_eq!((args["name"].as_str(), args["output_index"].as_u64()), (Some("get_weather"), Some(1)));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(args["arguments"].as_str().unwrap()).unwrap(),
            serde_json::json!({"city": "Paris"})
        );
        let call_id = args["call_id"].as_str().unwrap().to_string();
        assert!(call_id.starts_with("call_"));
        let output = &events[10]["response"]["output"];
        assert_eq!((output[0]["type"].as_str(), output[1]["type"].as_str()), (Some("message"), Some("function_call")));
        assert_eq!(events[10]["response"]["usage"]["output_tokens"], 30);

        // An output for a call that was never made is refused; the right one is taken.
        let wrong = item(serde_json::json!({"type": "function_call_output", "call_id": "call_nope", "output": "{}"}));
        assert!(s.create_item(&wrong, vec![]).unwrap_err().message.contains("no function_call"));
        let result =
            item(serde_json::json!({"type": "function_call_output", "call_id": call_id, "output": "{\"temp\": 21}"}));
        s.create_item(&result, vec![]).unwrap();
        // The next prompt is what transformers renders the same conversation from (the message
        // text keeps the newline the model wrote before its call; the template prints the call
        // on its own line after it).
        let (messages, _) = s.prompt();
        let mut want = fx["messages"].clone();
        want[2]["content"][0]["text"] = "Checking.\n".into();
        assert_eq!(messages, want);
    }
}
