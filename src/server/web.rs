//! `GET /`: a small browser client for Realtime voice sessions, embedded in the binary (no build
//! step, no external scripts). The page captures the microphone in an AudioWorklet, streams it to
//! `GET /v1/realtime` as 24 kHz PCM16 with server VAD, plays the spoken answer with WebAudio and
//! shows a live transcript; `window.omnid` exposes counters for tests (`tests/web_page.rs`).
//!
//! These routes are static and hold no secrets, so they are served without the API key; the
//! page sends the key as the WebSocket subprotocol `openai-insecure-api-key.KEY`, and the
//! WebSocket stays guarded.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const MIC_WORKLET_JS: &str = include_str!("web/mic-worklet.js");
const STYLE_CSS: &str = include_str!("web/style.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The assets change with the binary: revalidate rather than run a stale script.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the page.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /app.js`: the page's script.
pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /mic-worklet.js`: the AudioWorklet that resamples the microphone to 24 kHz PCM16.
pub async fn mic_worklet_js() -> Response {
    asset("text/javascript; charset=utf-8", MIC_WORKLET_JS)
}

/// `GET /style.css`.
pub async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}
