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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;

use super::{ApiError, AppState};
use crate::analyze::events::parse_time;
use crate::analyze::formats::Format;
use crate::analyze::merge::merge_events;
use crate::analyze::queue::{Cancelled, JobQueue, QueueError};
use crate::analyze::result::job_result;
use crate::analyze::spec::{default_overlap, JobSpec};
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

/// How often the progress stream looks at the store: a window takes seconds at least.
const PROGRESS_POLL: Duration = Duration::from_millis(250);
/// Progress events buffered for a slow client: it only ever needs the latest.
const PROGRESS_BUFFER: usize = 4;

fn jobs(state: &AppState) -> Result<&Jobs, ApiError> {
    state.jobs.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "video jobs are not enabled in this process",
            None,
        )
    })
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
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", m.to_string(), None)
}

/// Runs store work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| internal(format!("job store task failed: {e}")))?
}

/// `POST /v1/jobs`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let j = jobs(&state)?;
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (spec, upload) = if json_body {
        let bytes = axum::body::to_bytes(body, state.limits.max_request_bytes).await.map_err(|_| {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", "the JSON body is too large", None)
        })?;
        let fields: Map<String, Value> = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not a JSON object: {e}"), None))?;
        let video = fields.get("video").and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad_request(
                "video: give a path on the server, or upload the file as the request body",
                Some("video"),
            )
        })?;
        let path = permitted_path(video, &j.media_dirs)?;
        (spec_from_fields(&fields, path, video.to_string())?, None)
    } else {
        let fields: Map<String, Value> = query.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        if fields.contains_key("video") {
            return Err(ApiError::bad_request(
                "video: with an upload the body is the video; name a server path only in a JSON body",
                Some("video"),
            ));
        }
        let name = fields.get("name").and_then(Value::as_str).unwrap_or("upload").to_string();
        // Check the settings before taking a possibly huge upload.
        spec_from_fields(&fields, PathBuf::new(), name.clone())?;
        let file = receive_upload(body, &j.uploads, &name, j.max_upload_bytes).await?;
        match spec_from_fields(&fields, file.clone(), name) {
            Ok(spec) => (spec, Some(file)),
            Err(e) => {
                let _ = tokio::fs::remove_file(&file).await;
                return Err(e);
            }
        }
    };
    let st = state.clone();
    let created = blocking(move || {
        let j = jobs(&st)?;
        let id = j.queue.submit(&spec).map_err(queue_error)?;
        let job = j.queue.store().job(&id).map_err(internal)?.ok_or_else(|| internal("the new job vanished"))?;
        Ok(job_view(&job, 0, None))
    })
    .await;
    match created {
        Ok(view) => Ok((StatusCode::CREATED, Json(view)).into_response()),
        Err(e) => {
            if let Some(file) = upload {
                let _ = tokio::fs::remove_file(file).await;
            }
            Err(e)
        }
    }
}

/// A path a job may read: absolute, existing, inside one of `[jobs] media_dirs` (after resolving
/// links and `..`).
fn permitted_path(video: &str, dirs: &[PathBuf]) -> Result<PathBuf, ApiError> {
    let forbidden = |m: String| ApiError::new(StatusCode::FORBIDDEN, "permission_error", m, Some("video"));
    if dirs.is_empty() {
        return Err(forbidden(
            "video: naming files on the server is off ([jobs] media_dirs is empty); upload the video as the request body instead"
                .into(),
        ));
    }
    let path = Path::new(video);
    if !path.is_absolute() {
        return Err(ApiError::bad_request(format!("video {video:?}: give an absolute path"), Some("video")));
    }
    let real = path
        .canonicalize()
        .map_err(|_| ApiError::bad_request(format!("video {video:?}: no such file"), Some("video")))?;
    if !dirs.iter().any(|d| real.starts_with(d)) {
        return Err(forbidden(format!("video {video:?}: outside the folders jobs may read ([jobs] media_dirs)")));
    }
    if !real.is_file() {
        return Err(ApiError::bad_request(format!("video {video:?}: not a file"), Some("video")));
    }
    Ok(real)
}

/// The job settings of a JSON body or an upload's query: numbers as numbers or strings, times as
/// seconds or `[hh:]mm:ss`; an unknown field is an error, not ignored.
fn spec_from_fields(fields: &Map<String, Value>, video: PathBuf, title: String) -> Result<JobSpec, ApiError> {
    const KNOWN: [&str; 12] = [
        "video",
        "name",
        "task",
        "fps",
        "window",
        "overlap",
        "from",
        "to",
        "audio",
        "summarize",
        "max_tokens",
        "model",
    ];
    if let Some(k) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!("{k}: unknown field (known: {})", KNOWN.join(", ")), Some(k)));
    }
    let bad = |k: &str, what: &str| ApiError::bad_request(format!("{k}: expected {what}"), Some(k));
    let number = |k: &str| -> Result<Option<f64>, ApiError> {
        match fields.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(|| bad(k, "a number")),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad(k, "a number")),
            Some(_) => Err(bad(k, "a number")),
        }
    };
    let time = |k: &str| -> Result<Option<f64>, ApiError> {
        match fields.get(k) {
            Some(Value::String(s)) => parse_time(s).map(Some).ok_or_else(|| bad(k, "seconds or [hh:]mm:ss")),
            _ => number(k),
        }
    };
    let flag = |k: &str| -> Result<Option<bool>, ApiError> {
        match fields.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if matches!(s.as_str(), "true" | "1") => Ok(Some(true)),
            Some(Value::String(s)) if matches!(s.as_str(), "false" | "0") => Ok(Some(false)),
            Some(_) => Err(bad(k, "true or false")),
        }
    };
    let task = match fields.get("task") {
        Some(Value::String(s)) => s.clone(),
        None => return Err(ApiError::bad_request("task: missing; say what to look for", Some("task"))),
        Some(_) => return Err(bad("task", "a string")),
    };
    let mut spec = JobSpec::new(video, task);
    spec.title = title;
    if let Some(v) = number("fps")? {
        spec.fps = v;
    }
    if let Some(v) = number("window")? {
        spec.window_s = v;
    }
    spec.overlap_s = number("overlap")?.unwrap_or(default_overlap(spec.window_s));
    spec.from_s = time("from")?.unwrap_or(0.0);
    spec.to_s = time("to")?;
    spec.audio = flag("audio")?.unwrap_or(true);
    spec.summarize = flag("summarize")?.unwrap_or(false);
    if let Some(v) = number("max_tokens")? {
        if v.fract() != 0.0 || v < 1.0 {
            return Err(bad("max_tokens", "a whole number of tokens"));
        }
        spec.max_new_tokens = v as usize;
    }
    spec.validate().map_err(|m| ApiError::bad_request(m, None))?;
    Ok(spec)
}

/// Streams an upload to `dir`, refusing it (and removing the partial file) past `limit` bytes.
async fn receive_upload(body: Body, dir: &Path, name: &str, limit: u64) -> Result<PathBuf, ApiError> {
    let ext = Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or("bin");
    let path = dir.join(format!("upload-{:016x}.{ext}", crate::engine::rng::random_u64()));
    let mut file =
        tokio::fs::File::create(&path).await.map_err(|e| internal(format!("cannot store the upload: {e}")))?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    let outcome: Result<(), ApiError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request(format!("the upload broke off: {e}"), None))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request_error",
                    format!("the upload is larger than the limit of {limit} bytes ([jobs] max_upload_bytes)"),
                    None,
                ));
            }
            file.write_all(&chunk).await.map_err(|e| internal(format!("cannot store the upload: {e}")))?;
        }
        if size == 0 {
            return Err(ApiError::bad_request("the upload is empty: send the video as the request body", None));
        }
        file.sync_all().await.map_err(|e| internal(format!("cannot store the upload: {e}")))
    }
    .await;
    if let Err(e) = outcome {
        drop(file);
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }
    Ok(path)
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
    blocking(move || {
        let store = jobs(&state)?.queue.store();
        let job = store.job(&id).map_err(internal)?.ok_or_else(|| not_found(&id))?;
        let windows = store.windows(&id).map_err(internal)?;
        Ok(Json(job_view(&job, windows.len(), Some(&windows))))
    })
    .await
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
    let state_header =
        serde_json::to_value(job.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
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

/// `GET /v1/jobs/{id}/events`: a `progress` event whenever a window finishes or the state
/// changes, then one event named after the final state (`done`, `failed`, `cancelled`) with the
/// whole job, and the stream ends.
pub async fn events(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    jobs(&state)?;
    let first = snapshot(state.clone(), id.clone()).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(PROGRESS_BUFFER);
    tokio::spawn(async move {
        let mut last: Option<(String, usize)> = None;
        let mut current = Some(first);
        loop {
            let job = match current.take() {
                Some(j) => j,
                None => match snapshot(state.clone(), id.clone()).await {
                    Ok(j) => j,
                    Err(_) => return, // deleted meanwhile
                },
            };
            let done = job["windows_done"].as_u64().unwrap_or(0) as usize;
            let st = job["state"].as_str().unwrap_or_default().to_string();
            let ended = !matches!(st.as_str(), "queued" | "running");
            if ended {
                let _ = tx.send(SseEvent::default().event(st).data(job.to_string())).await;
                return;
            }
            if last.as_ref() != Some(&(st.clone(), done)) {
                let ev = SseEvent::default().event("progress").data(
                    json!({"id": job["id"], "state": st, "windows_done": done, "windows_total": job["windows_total"], "progress": job["progress"]})
                        .to_string(),
                );
                if tx.send(ev).await.is_err() {
                    return; // the client left
                }
                last = Some((st, done));
            }
            tokio::time::sleep(PROGRESS_POLL).await;
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response())
}

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
