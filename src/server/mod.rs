//! `omnid serve`: the OpenAI-compatible HTTP API on tokio + axum. Handlers parse and validate
//! on async workers, decode media and build prompts on the blocking pool, and hand jobs to the
//! [`EngineService`] thread; answers stream back through bounded channels.
//!
//! | route | job |
//! |---|---|
//! | `GET /health` | liveness and queue depth |
//! | `GET /metrics` | Prometheus: responses by route and status, queue depth, Realtime sessions, tokens, first-token and first-audio latency histograms |
//! | `GET /v1/models` | the loaded model |
//! | `POST /v1/chat/completions` | text, image and audio in; text, speech on request, and tool calls out; SSE with `stream: true` |
//! | `GET /v1/realtime` | OpenAI Realtime sessions over a WebSocket (push-to-talk or server VAD, barge-in, function calls) |
//! | `/v1/jobs…` | video analysis jobs: create (server path or upload), list, progress (also as SSE), result as JSON/SRT/WebVTT/Markdown, cancel ([`jobs`]) |
//! | `GET /` | a browser voice client for `/v1/realtime` (static page, served without the key) |
//!
//! Every route but the static page (`/`, `/app.js`, `/mic-worklet.js`, `/style.css`) requires
//! `Authorization: Bearer KEY` when a key is configured. Errors use the OpenAI body
//! (`{"error": {"message", "type", "param"}}`): 400 for a bad request, 401 for a missing or wrong
//! key, 413 for an oversized body, 429 when the queue is full.

pub mod agent;
mod answer;
mod chat;
pub mod jobs;
pub(crate) mod media;
pub mod ocr;
mod realtime;
pub mod upload;
pub mod validate;
mod web;

pub use self::realtime::{replay_client_events, Replay};

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::engine::model_dir::LoadedModel;
use crate::engine::service::{Delivery, EngineService, EventSink, JobEvent};
use crate::engine::speech::SpeechOptions;
use crate::metrics::Metrics;
use crate::protocol::chat::{ModelCard, ModelList};
use crate::protocol::errors::ErrorBody;

/// What every handler shares.
pub struct AppState {
    /// Shared with the video-job workers, which submit their windows as batch work.
    pub engine: Arc<EngineService>,
    pub metrics: Arc<Metrics>,
    pub model: Arc<LoadedModel>,
    /// The id `/v1/models` reports and responses echo.
    pub model_id: String,
    pub api_key: Option<String>,
    pub limits: ServerLimits,
    pub started: u64,
    /// Video analysis jobs, or why this process runs none (`omnid bench-load` without
    /// `--video-job`; a default job store held by another daemon).
    pub jobs: Result<jobs::Jobs, String>,
    /// OCR requests (`POST /v1/ocr`).
    pub ocr: ocr::OcrService,
    /// GUI-agent sessions, or why this daemon runs none (no `[agent] displays`).
    pub agent: Result<agent::AgentSessions, String>,
    /// Set to `true` when the daemon starts shutting down: streams that would otherwise last
    /// as long as a job (job progress) end, so the graceful shutdown does not wait for them.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// Request limits.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_request_bytes: usize,
    pub max_media_items: usize,
    pub max_tokens: usize,
    pub default_max_tokens: usize,
    /// Spoken answers: longest (frames), Code2Wav chunking (`[speech]` of the config).
    pub speech_max_frames: usize,
    pub speech_chunk_frames: usize,
    pub speech_left_context: Option<usize>,
    /// Longest Realtime session.
    pub realtime_session: std::time::Duration,
    /// Remote image/video URLs: `None` refuses them.
    pub remote_media: Option<media::RemoteFetch>,
}

impl ServerLimits {
    /// Speech settings for an answer in `voice`, with the configured length and chunking.
    pub fn speech_options(&self, voice: &str, greedy: bool, seed: u64) -> SpeechOptions {
        let mut o = SpeechOptions::new(voice, greedy, seed);
        o.max_frames = self.speech_max_frames;
        o.chunk_frames = self.speech_chunk_frames;
        o.left_context = self.speech_left_context;
        o
    }
}

/// Sends a job's events into a tokio channel from the engine thread (HTTP answers and
/// Realtime responses alike).
pub(crate) struct ChannelSink(pub(crate) tokio::sync::mpsc::Sender<JobEvent>);

impl EventSink for ChannelSink {
    fn try_send(&mut self, event: JobEvent) -> Delivery {
        match self.0.try_send(event) {
            Ok(()) => Delivery::Sent,
            Err(tokio::sync::mpsc::error::TrySendError::Full(event)) => Delivery::Full(event),
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Delivery::Gone,
        }
    }

    fn send(&mut self, event: JobEvent) -> bool {
        // Called only from a spoken answer's own thread (never a tokio worker, never the engine
        // thread): blocking here is the backpressure a slow client exerts on its own answer.
        self.0.blocking_send(event).is_ok()
    }
}

/// An HTTP error in the OpenAI shape.
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>, param: Option<&str>) -> Self {
        Self { status, body: ErrorBody::new(kind, message, param) }
    }

    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message, param)
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message.to_string(), None)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// The routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.limits.max_request_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/realtime", get(realtime::upgrade))
        .route("/v1/jobs", post(jobs::create).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::delete))
        .route("/v1/jobs/{id}/result", get(jobs::result))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/ocr", post(ocr::read))
        .route("/v1/agent/sessions", post(agent::create).get(agent::list))
        .route("/v1/agent/sessions/{id}", get(agent::get).delete(agent::stop))
        .route("/v1/agent/sessions/{id}/events", get(agent::events))
        .route("/v1/agent/sessions/{id}/confirm", post(agent::confirm))
        .route("/v1/agent/sessions/{id}/steps/{n}/screenshot", get(agent::screenshot))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        // The browser client: static, no secrets, so outside the key check (its WebSocket is not).
        .route("/", get(web::index))
        .route("/app.js", get(web::app_js))
        .route("/mic-worklet.js", get(web::mic_worklet_js))
        .route("/style.css", get(web::style_css))
        .layer(middleware::from_fn_with_state(state.clone(), count_responses))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves on `listener` until `shutdown` resolves; requests in flight are finished first.
pub async fn run(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// The WebSocket subprotocol browsers use to carry the key (they cannot set headers on an
/// upgrade), as OpenAI's Realtime API accepts it: `Sec-WebSocket-Protocol: realtime,
/// openai-insecure-api-key.KEY`.
const KEY_SUBPROTOCOL: &str = "openai-insecure-api-key.";

async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.api_key {
        let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let matches = |k: &str| constant_time_eq(k.trim().as_bytes(), key.as_bytes());
        let by_header = given.and_then(|v| v.strip_prefix("Bearer ")).is_some_and(matches);
        let by_subprotocol = req
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').filter_map(|p| p.trim().strip_prefix(KEY_SUBPROTOCOL)).any(matches));
        let ok = by_header || by_subprotocol;
        if !ok {
            let message = if given.is_none() {
                "missing Authorization header: send `Authorization: Bearer <api key>`"
            } else {
                "invalid API key"
            };
            return ApiError::new(StatusCode::UNAUTHORIZED, "authentication_error", message, None).into_response();
        }
    }
    next.run(req).await
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counts every response by matched route and status (authentication failures included).
async fn count_responses(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("other", |m| m.as_str()).to_string();
    let res = next.run(req).await;
    state.metrics.request(&route, res.status().as_u16());
    res
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render(state.engine.waiting());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn health(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok", "model": state.model_id, "waiting": state.engine.waiting()}))
}

async fn models(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    Json(ModelList {
        object: "list",
        data: vec![ModelCard {
            id: state.model_id.clone(),
            object: "model",
            created: state.started,
            owned_by: "omnid",
        }],
    })
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("no route {} {}", req.method(), req.uri().path()),
        None,
    )
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
