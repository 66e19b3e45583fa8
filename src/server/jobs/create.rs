//! `POST /v1/jobs`: a job from a JSON body naming a permitted server path, or from an upload
//! streamed to disk with the settings in the query; and the start-up sweep of orphaned uploads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use super::{blocking, internal, job_view, jobs, queue_error};
use crate::analyze::events::parse_time;
use crate::analyze::queue::{JobQueue, QueueError};
use crate::analyze::spec::{default_overlap, JobSpec};
use crate::server::upload::receive_upload;
use crate::server::{ApiError, AppState};

/// Removes files in `uploads` that no stored job refers to (uploads cut off by a crash or a
/// client that left before its job was stored); returns how many.
pub fn sweep_uploads(uploads: &Path, queue: &JobQueue) -> Result<usize, String> {
    let owned: std::collections::HashSet<PathBuf> =
        queue.store().jobs().map_err(|e| e.to_string())?.into_iter().map(|j| j.spec.video).collect();
    let mut removed = 0;
    let entries = std::fs::read_dir(uploads).map_err(|e| format!("{}: {e}", uploads.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_file() && !owned.contains(&path) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
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
        let path = permitted_path(video, &j.media_dirs, &j.uploads)?;
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
        // Check the settings and the queue before taking a possibly huge upload.
        spec_from_fields(&fields, PathBuf::new(), name.clone())?;
        if j.queue.is_full() {
            return Err(queue_error(QueueError::Busy { waiting: j.queue.waiting() }));
        }
        let file = receive_upload(body, &j.uploads, &name, j.max_upload_bytes, "[jobs] max_upload_bytes").await?;
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
fn permitted_path(video: &str, dirs: &[PathBuf], uploads: &Path) -> Result<PathBuf, ApiError> {
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
    let outside = || forbidden(format!("video {video:?}: outside the folders jobs may read ([jobs] media_dirs)"));
    // Uploads belong to their jobs (deleted with them): another job may not name one.
    let permitted = |p: &Path| dirs.iter().any(|d| p.starts_with(d)) && !p.starts_with(uploads);
    let Ok(real) = path.canonicalize() else {
        // Whether a file exists is only said inside the permitted folders.
        return Err(if permitted(path) {
            ApiError::bad_request(format!("video {video:?}: no such file"), Some("video"))
        } else {
            outside()
        });
    };
    if !permitted(&real) {
        return Err(outside());
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
