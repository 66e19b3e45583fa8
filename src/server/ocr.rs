//! `POST /v1/ocr`: an image, multi-page TIFF or PDF as the request body, the settings in the
//! query (`mode`, `lang`, `pages`, `dpi`, `max_tokens`, `max_pixels`, `name`, `stream`,
//! `response_format`). The upload streams to a scratch file; the document is read page by page
//! on its own thread, each page's vision encoding there and its decoding on the engine thread
//! behind every interactive request. The answer is one JSON document (or the mode's text, or
//! hOCR), or with `stream=true` server-sent events: one `page` event per page as it finishes,
//! then `done`. A client that leaves stops the work at the next token.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;

use crate::config::OcrSection;
use crate::engine::model_dir::LoadedModel;
use crate::engine::service::EngineService;
use crate::ocr::formats::{self, PageResult};
use crate::ocr::local_model::EnginePageModel;
use crate::ocr::mode::{check_lang, Mode};
use crate::ocr::page_range::PageRange;
use crate::ocr::page_store::render;
use crate::ocr::runner::{read_document, DocumentResult, Interrupted, OcrRequest, Progress};
use crate::server::upload::receive_upload;
use crate::server::{ApiError, AppState};

/// Pages in flight between a document's thread and its response: a page takes seconds to read
/// and its event is sent at once, so a few absorb any delay; a slow client makes the reader wait.
const PAGE_BUFFER: usize = 4;

/// The daemon's OCR: the model, the concurrency bound and the scratch folder for uploads.
pub struct OcrService {
    model: Arc<EnginePageModel>,
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    max_upload_bytes: u64,
    max_pages: usize,
    scratch: PathBuf,
}

impl OcrService {
    pub fn new(lm: Arc<LoadedModel>, engine: Arc<EngineService>, cfg: &OcrSection) -> anyhow::Result<Self> {
        // Uploads live only while their request runs; a folder of this process's own.
        let scratch = std::env::temp_dir().join(format!("omnid-ocr-{}", std::process::id()));
        std::fs::create_dir_all(&scratch)
            .map_err(|e| anyhow::anyhow!("OCR scratch folder {}: {e}", scratch.display()))?;
        Ok(Self {
            model: Arc::new(EnginePageModel::new(lm, engine)),
            permits: Arc::new(Semaphore::new(cfg.max_concurrent)),
            max_concurrent: cfg.max_concurrent,
            max_upload_bytes: cfg.max_upload_bytes,
            max_pages: cfg.max_pages,
            scratch,
        })
    }
}

impl Drop for OcrService {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// What the response carries.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ResponseFormat {
    /// The JSON document (pages, text, the mode's document, failures, usage).
    Json,
    /// The mode's own format: text, Markdown, HTML or the JSON of `omnid ocr`.
    Raw,
    Hocr,
}

struct Params {
    req: OcrRequest,
    name: String,
    stream: bool,
    format: ResponseFormat,
}

const KNOWN: [&str; 9] =
    ["mode", "lang", "pages", "dpi", "max_tokens", "max_pixels", "name", "stream", "response_format"];

fn params(query: &[(String, String)], max_tokens_cap: usize) -> Result<Params, ApiError> {
    let mut p =
        Params { req: OcrRequest::default(), name: "upload".into(), stream: false, format: ResponseFormat::Json };
    for (k, v) in query {
        let bad = |m: String| ApiError::bad_request(format!("{k}: {m}"), Some(k));
        let whole = |v: &str| v.trim().parse::<u64>().map_err(|_| bad(format!("{v:?} is not a whole number")));
        match k.as_str() {
            "mode" => p.req.mode = v.parse::<Mode>().map_err(bad)?,
            "lang" => p.req.lang = Some(check_lang(v).map_err(bad)?),
            "pages" => p.req.pages = PageRange::parse(v).map_err(bad)?,
            "dpi" => {
                let dpi = whole(v)?;
                if !(18..=1200).contains(&dpi) {
                    return Err(bad(format!("{dpi} is outside 18–1200")));
                }
                p.req.dpi = dpi as u32;
            }
            "max_tokens" => {
                let n = whole(v)? as usize;
                if n == 0 || n > max_tokens_cap {
                    return Err(bad(format!("{n} is outside 1–{max_tokens_cap} ([server] max_tokens)")));
                }
                p.req.max_new_tokens = Some(n);
            }
            "max_pixels" => p.req.max_pixels = Some(whole(v)?),
            "name" => p.name = v.chars().filter(|c| !c.is_control()).take(200).collect(),
            "stream" => {
                p.stream = match v.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad("expected true or false".into())),
                }
            }
            "response_format" => {
                p.format = match v.as_str() {
                    "json" => ResponseFormat::Json,
                    "raw" => ResponseFormat::Raw,
                    "hocr" => ResponseFormat::Hocr,
                    _ => return Err(bad("expected json, raw or hocr".into())),
                }
            }
            _ => return Err(bad(format!("unknown field (known: {})", KNOWN.join(", ")))),
        }
    }
    if p.stream && p.format != ResponseFormat::Json {
        return Err(ApiError::bad_request(
            "stream: a stream sends JSON page events; leave response_format out",
            Some("response_format"),
        ));
    }
    Ok(p)
}

/// What a document's thread sends its response.
enum OcrEvent {
    Page { done: usize, of: usize, result: Box<PageResult> },
    End(Result<DocumentResult, Interrupted>),
}

/// Sets the stop flag when the response is dropped (the client left, or the daemon stops).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Removes an upload when its document is done with it.
struct Upload(PathBuf);

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `POST /v1/ocr`.
pub async fn read(
    State(state): State<Arc<AppState>>,
    Query(query): Query<Vec<(String, String)>>,
    body: Body,
) -> Result<Response, ApiError> {
    let o = &state.ocr;
    let mut p = params(&query, state.limits.max_tokens)?;
    p.req.max_pages = Some(o.max_pages);
    // Refused before the upload is taken.
    let permit = o.permits.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            format!("{} documents are being read ([ocr] max_concurrent); retry later", o.max_concurrent),
            None,
        )
    })?;
    let file = Upload(receive_upload(body, &o.scratch, &p.name, o.max_upload_bytes, "[ocr] max_upload_bytes").await?);
    let stop = Arc::new(AtomicBool::new(false));
    let guard = StopOnDrop(stop.clone());
    let (tx, mut rx) = mpsc::channel::<OcrEvent>(PAGE_BUFFER);
    let model = o.model.clone();
    let (req, name) = (p.req.clone(), p.name.clone());
    // The daemon stopping stops the reading too (graceful shutdown waits for open requests);
    // the watcher ends with the document's thread.
    let (finished_tx, finished_rx) = tokio::sync::oneshot::channel::<()>();
    let (mut stopping, stop_on_shutdown) = (state.stopping.subscribe(), stop.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => stop_on_shutdown.store(true, Ordering::Relaxed),
            _ = finished_rx => {}
        }
    });
    std::thread::Builder::new()
        .name("omnid-ocr".into())
        .spawn(move || {
            let _finished = finished_tx;
            let upload = file;
            let mut progress = |ev: Progress| {
                if let Progress::Page { done, of, result, .. } = ev {
                    let _ = tx.blocking_send(OcrEvent::Page { done, of, result });
                }
            };
            let end = read_document(&*model, &upload.0, &name, &req, None, &mut progress, &stop);
            let end = end.map(|d| without_path(d, &upload.0, &name));
            // The slot and the upload are released before the answer goes out: a client that
            // sends its next document on receiving this one finds the slot free.
            drop(permit);
            drop(upload);
            let _ = tx.blocking_send(OcrEvent::End(end));
        })
        .map_err(|e| ApiError::internal(format!("cannot start the OCR thread: {e}")))?;

    let model_id = state.model_id.clone();
    if p.stream {
        let mode = p.req.mode;
        let events = ReceiverStream::new(rx).map(move |ev| {
            let _keep = &guard; // dropped with the stream: a client that leaves stops the reading
            Ok::<_, std::convert::Infallible>(match ev {
                OcrEvent::Page { done, of, result } => {
                    let mut page = formats::json_value("", std::slice::from_ref(&*result))["pages"][0].take();
                    page["done"] = json!(done);
                    page["of"] = json!(of);
                    SseEvent::default().event("page").data(page.to_string())
                }
                OcrEvent::End(Ok(doc)) if doc.error.is_none() => {
                    let mut body = envelope(&model_id, mode, &doc);
                    body.as_object_mut().expect("an object").remove("pages");
                    SseEvent::default().event("done").data(body.to_string())
                }
                OcrEvent::End(Ok(doc)) => SseEvent::default()
                    .event("error")
                    .data(json!({"message": doc.error, "type": "invalid_request_error"}).to_string()),
                OcrEvent::End(Err(Interrupted)) => SseEvent::default()
                    .event("error")
                    .data(json!({"message": "stopped", "type": "server_error"}).to_string()),
            })
        });
        return Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response());
    }
    let doc = loop {
        match rx.recv().await {
            Some(OcrEvent::Page { .. }) => {}
            Some(OcrEvent::End(end)) => break end,
            None => return Err(ApiError::internal("the OCR thread ended without a result")),
        }
    };
    drop(guard);
    let doc = doc.map_err(|_| ApiError::internal("the daemon is stopping"))?;
    if let Some(e) = &doc.error {
        return Err(ApiError::bad_request(e.clone(), None));
    }
    Ok(match p.format {
        ResponseFormat::Json => Json(envelope(&state.model_id, p.req.mode, &doc)).into_response(),
        ResponseFormat::Raw => {
            let kind = match p.req.mode {
                Mode::Text | Mode::Lines => "text/plain; charset=utf-8",
                Mode::Markdown => "text/markdown; charset=utf-8",
                Mode::Html => "text/html; charset=utf-8",
                Mode::Json => "application/json",
            };
            ([(header::CONTENT_TYPE, kind)], render(p.req.mode, &doc.name, &doc.pages)).into_response()
        }
        ResponseFormat::Hocr => {
            ([(header::CONTENT_TYPE, "application/xhtml+xml; charset=utf-8")], formats::hocr(&doc.name, &doc.pages))
                .into_response()
        }
    })
}

/// The JSON answer: every page with its lines and boxes, the whole text, the mode's document,
/// the pages that failed and the tokens used.
fn envelope(model_id: &str, mode: Mode, doc: &DocumentResult) -> Value {
    let pages = formats::json_value(&doc.name, &doc.pages)["pages"].take();
    let failed: Vec<Value> =
        doc.pages.iter().filter_map(|p| p.error.as_ref().map(|e| json!({"page": p.page, "error": e}))).collect();
    let document = matches!(mode, Mode::Markdown | Mode::Html).then(|| render(mode, &doc.name, &doc.pages));
    json!({
        "object": "ocr.document",
        "model": model_id,
        "source": doc.name,
        "mode": mode,
        "pages": pages,
        "text": formats::text(&doc.pages),
        "document": document,
        "failed_pages": failed,
        "usage": {
            "pages": doc.pages.len(),
            "prompt_tokens": doc.pages.iter().map(|p| p.prompt_tokens).sum::<usize>(),
            "completion_tokens": doc.pages.iter().map(|p| p.completion_tokens).sum::<usize>(),
        },
    })
}

/// Errors name the upload as the client called it, not the daemon's scratch file.
fn without_path(mut doc: DocumentResult, upload: &Path, name: &str) -> DocumentResult {
    let path = upload.display().to_string();
    let fix = |s: &mut String| *s = s.replace(&path, name);
    if let Some(e) = doc.error.as_mut() {
        fix(e);
    }
    for p in &mut doc.pages {
        if let Some(e) = p.error.as_mut() {
            fix(e);
        }
    }
    doc
}
