//! Video analysis jobs over HTTP:
//!
//! | route | job |
//! |---|---|
//! | `POST /v1/jobs` | JSON `{"video": "/path/on/server", "task": …}` (a path inside `[jobs] media_dirs`), or the video itself as the body with the settings in the query (`?task=…&fps=2&name=match.mp4`) |
//! | `GET /v1/jobs` | every job, oldest first, with its progress |
//! | `GET /v1/jobs/{id}` | state, progress, per-window figures and the events so far |
//! | `GET /v1/jobs/{id}/result?format=json\|srt\|vtt\|md` | the result (so far, while it runs) |
//! | `GET /v1/jobs/{id}/events` | progress as server-sent events until the job ends |
//! | `DELETE /v1/jobs/{id}` | cancel a waiting or running job; delete an ended one |
//!
//! Store calls run on the blocking pool; uploads stream to disk with the size limit checked as
//! they arrive (a partial file is removed).

mod create;
mod progress;

pub use create::{create, sweep_uploads};
pub use progress::events;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::analyze::formats::Format;
use crate::analyze::merge::merge_events;
use crate::analyze::queue::{Cancelled, JobQueue, QueueError};
use crate::analyze::result::job_result;
use crate::analyze::store::{JobRecord, WindowRecord};

/// The daemon's video jobs.
pub struct Jobs {
    pub queue: JobQueue,
    /// Where uploaded videos are kept (until their job is deleted).
    pub uploads: PathBuf,
    /// Folders a job may name videos in (canonical paths).
    pub media_dirs: Vec<PathBuf>,
    pub max_upload_bytes: u64,
}

fn jobs(state: &AppState) -> Result<&Jobs, ApiError> {
    state.jobs.as_ref().map_err(|why| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", why.clone(), None))
}

fn queue_error(e: QueueError) -> ApiError {
    match e {
        QueueError::Invalid(m) => ApiError::bad_request(m, None),
        QueueError::Busy { .. } => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", e.to_string(), None)
        }
        QueueError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", e.to_string(), None),
        QueueError::Store(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", e.to_string(), None),
    }
}

fn internal(m: impl std::fmt::Display) -> ApiError {
    ApiError::internal(m)
}

/// Runs store work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| internal(format!("job store task failed: {e}")))?
}

/// `GET /v1/jobs`.
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    jobs(&state)?;
    blocking(move || {
        let store = jobs(&state)?.queue.store();
        let mut data = Vec::new();
        for job in store.jobs().map_err(internal)? {
            let done = store.windows_done(&job.id).map_err(internal)?;
            data.push(job_view(&job, done, None));
        }
        Ok(Json(json!({"object": "list", "data": data})))
    })
    .await
}

/// `GET /v1/jobs/{id}`.
pub async fn get(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Result<Json<Value>, ApiError> {
    jobs(&state)?;
    Ok(Json(snapshot(state, id).await?))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", format!("no job {id}"), Some("id"))
}

#[derive(serde::Deserialize)]
pub struct ResultQuery {
    format: Option<String>,
}

/// `GET /v1/jobs/{id}/result?format=…`.
pub async fn result(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<ResultQuery>,
) -> Result<Response, ApiError> {
    jobs(&state)?;
    let format =
        Format::parse(q.format.as_deref().unwrap_or("json")).map_err(|m| ApiError::bad_request(m, Some("format")))?;
    let (job, text) = blocking(move || {
        let store = jobs(&state)?.queue.store();
        job_result(store, &id, format).map_err(internal)?.ok_or_else(|| not_found(&id))
    })
    .await?;
    let content_type = match format {
        Format::Json => "application/json",
        Format::Srt => "application/x-subrip; charset=utf-8",
        Format::Vtt => "text/vtt; charset=utf-8",
        Format::Markdown => "text/markdown; charset=utf-8",
    };
    let state_header = job.state.as_str().to_string();
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::HeaderName::from_static("x-omnid-job-state"), state_header),
        ],
        text,
    )
        .into_response())
}

/// `DELETE /v1/jobs/{id}`.
pub async fn delete(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Result<Json<Value>, ApiError> {
    jobs(&state)?;
    blocking(move || {
        let j = jobs(&state)?;
        match j.queue.cancel(&id).map_err(queue_error)? {
            Cancelled::Waiting => Ok(Json(json!({"id": id, "object": "video.job", "state": "cancelled"}))),
            Cancelled::Running => Ok(Json(json!({"id": id, "object": "video.job", "state": "cancelling"}))),
            Cancelled::AlreadyEnded(_) => {
                let job = j.queue.store().job(&id).map_err(internal)?;
                j.queue.store().delete(&id).map_err(internal)?;
                // The uploaded video goes with its job; a server path is the owner's file.
                if let Some(job) = job.filter(|job| job.spec.video.starts_with(&j.uploads)) {
                    let _ = std::fs::remove_file(&job.spec.video);
                }
                Ok(Json(json!({"id": id, "object": "video.job", "deleted": true})))
            }
        }
    })
    .await
}

/// The whole job as `GET /v1/jobs/{id}` shows it.
async fn snapshot(state: Arc<AppState>, id: String) -> Result<Value, ApiError> {
    blocking(move || {
        let store = jobs(&state)?.queue.store();
        let job = store.job(&id).map_err(internal)?.ok_or_else(|| not_found(&id))?;
        let windows = store.windows(&id).map_err(internal)?;
        Ok(job_view(&job, windows.len(), Some(&windows)))
    })
    .await
}

/// A job as the API shows it, `done` of its windows finished; with the windows, also their
/// figures and the events (so far).
fn job_view(job: &JobRecord, done: usize, windows: Option<&[WindowRecord]>) -> Value {
    let s = &job.spec;
    let progress = match job.windows_total {
        Some(t) if t > 0 => done as f64 / t as f64,
        _ => 0.0,
    };
    let mut v = json!({
        "id": job.id,
        "object": "video.job",
        "state": job.state,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "video": s.title,
        "task": s.task,
        "settings": {
            "fps": s.fps, "window": s.window_s, "overlap": s.overlap_s, "from": s.from_s, "to": s.to_s,
            "audio": s.audio, "summarize": s.summarize, "max_tokens": s.max_new_tokens,
        },
        "window_s": job.window_s,
        "windows_total": job.windows_total,
        "windows_done": done,
        "progress": progress,
        "error": job.error,
        "summary": job.summary,
    });
    if let Some(windows) = windows {
        let events = match &job.events {
            Some(e) => e.clone(),
            None => merge_events(windows.iter().flat_map(|w| w.events.iter().cloned()).collect()),
        };
        v["events"] = json!(events);
        v["windows"] = windows
            .iter()
            .map(|w| {
                json!({
                    "index": w.index, "start": w.start, "end": w.end, "frames": w.frames,
                    "events": w.events.len(), "unparsed": w.unparsed, "attempts": w.attempts,
                    "prompt_tokens": w.prompt_tokens, "completion_tokens": w.completion_tokens,
                    "decode_ms": w.decode_ms, "encode_ms": w.encode_ms, "generate_ms": w.generate_ms,
                })
            })
            .collect();
    }
    v
}
