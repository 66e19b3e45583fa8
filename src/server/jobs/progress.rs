//! `GET /v1/jobs/{id}/events`: a job's progress as server-sent events.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;

use super::{blocking, internal, jobs, not_found, snapshot};
use crate::server::{ApiError, AppState};

/// How often the progress stream looks at the store: a window takes seconds at least.
const PROGRESS_POLL: Duration = Duration::from_millis(250);
/// Progress events buffered for a slow client: it only ever needs the latest.
const PROGRESS_BUFFER: usize = 4;

/// `GET /v1/jobs/{id}/events`: a `progress` event whenever a window finishes or the state
/// changes, then one event named after the final state (`done`, `failed`, `cancelled`) with the
/// whole job, and the stream ends. It also ends when the client leaves or the daemon stops.
pub async fn events(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    jobs(&state)?;
    let mut now = brief(state.clone(), id.clone()).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(PROGRESS_BUFFER);
    let mut stopping = state.stopping.subscribe();
    tokio::spawn(async move {
        let mut sent: Option<(String, usize)> = None;
        loop {
            if sent.as_ref() != Some(&now) {
                let (st, done) = now.clone();
                let ended = !matches!(st.as_str(), "queued" | "running");
                let Ok(job) = snapshot(state.clone(), id.clone()).await else { return };
                let ev = if ended {
                    SseEvent::default().event(st).data(job.to_string())
                } else {
                    let brief = json!({"id": job["id"], "state": st, "windows_done": done,
                        "windows_total": job["windows_total"], "progress": job["progress"]});
                    SseEvent::default().event("progress").data(brief.to_string())
                };
                if tx.send(ev).await.is_err() || ended {
                    return;
                }
                sent = Some(now.clone());
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = stopping.changed() => return,
                _ = tokio::time::sleep(PROGRESS_POLL) => {}
            }
            // A cheap look (state and count); the whole job is read only when they changed.
            now = match brief(state.clone(), id.clone()).await {
                Ok(b) => b,
                Err(_) => return, // deleted meanwhile
            };
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// A job's state and finished windows.
async fn brief(state: Arc<AppState>, id: String) -> Result<(String, usize), ApiError> {
    blocking(move || {
        let store = jobs(&state)?.queue.store();
        let job = store.job(&id).map_err(internal)?.ok_or_else(|| not_found(&id))?;
        let st = job.state.as_str().to_string();
        Ok((st, store.windows_done(&id).map_err(internal)?))
    })
    .await
}
