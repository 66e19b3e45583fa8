//! The browser page at `GET /`, end to end in headless Chromium with a fake microphone: a WAV
//! file of one second of a loud voiced sound and eight of silence, looped, is the microphone; the page is
//! loaded from `omnid serve` (which has an API key: the page itself needs none), auto-connects
//! (`?autoconnect=1`) and is refused for want of the key, connects with the key, streams the
//! microphone to `/v1/realtime` with server VAD, and plays the spoken answer.
//! The test drives Chromium over the DevTools protocol (tokio-tungstenite) and polls the page's
//! `window.omnid.snapshot()` until audio has arrived and has been played by the AudioContext
//! clock.
//!
//! Needs `chromium` on PATH (scripts/install-deps.sh installs it); without it the test fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::Server;

const KEY: &str = "w3b-k3y";
/// The whole browser part (start, load, speak, answer, play); generous for a slow 2-core machine.
const OVERALL: Duration = Duration::from_secs(60);
/// The fake microphone: a loud voiced sound, then silence the server VAD ends the turn on. It
/// loops: Chromium's fake device plays the file on its own clock from the moment the browser
/// opens it, so on a slow machine a single play could be over before the page's microphone
/// listens. The long silence leaves each answer time to be heard before the next turn (which,
/// with barge-in, interrupts it).
const MIC_RATE_HZ: u32 = 48_000;
const VOICED_S: f32 = 1.0;
const SILENCE_S: f32 = 8.0;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `GET path` without credentials: (status, content type, body).
fn get(addr: &str, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the daemon");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

/// A 150 Hz sawtooth with a slow vibrato (a voiced sound: rich in harmonics), amplitude 0.5,
/// faded in and out over 20 ms, then silence; 16-bit mono.
fn write_mic_wav(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: MIC_RATE_HZ,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create the microphone WAV");
    let rate = MIC_RATE_HZ as f32;
    let voiced = (VOICED_S * rate) as usize;
    let fade = (0.02 * rate) as usize;
    let mut phase = 0.0f32;
    for i in 0..voiced {
        let t = i as f32 / rate;
        let f0 = 150.0 * (1.0 + 0.05 * (std::f32::consts::TAU * 5.0 * t).sin());
        phase = (phase + f0 / rate).fract();
        let env = (i.min(voiced - 1 - i) as f32 / fade as f32).min(1.0);
        let s = 0.5 * env * (2.0 * phase - 1.0);
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    for _ in 0..(SILENCE_S * rate) as usize {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
}

fn find_chromium() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`chromium` is not on PATH: this test drives the web page in headless Chromium. \
                 Run scripts/install-deps.sh (Debian package `chromium`)."
            )
        })
}

/// Headless Chromium with its own profile directory; both go on drop, whether the test passed or
/// panicked.
struct Browser {
    child: Child,
    dir: PathBuf,
}

impl Browser {
    fn start(mic_wav: &Path, dir: PathBuf) -> Browser {
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile).unwrap();
        let log = std::fs::File::create(dir.join("chromium.log")).unwrap();
        let child = Command::new(find_chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                &format!("--use-file-for-fake-audio-capture={}", mic_wav.display()),
                "--autoplay-policy=no-user-gesture-required",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.display()),
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start chromium");
        Browser { child, dir }
    }

    /// The browser's DevTools WebSocket URL, from `DevToolsActivePort` (port, then path).
    async fn devtools_url(&mut self) -> String {
        let file = self.dir.join("profile/DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    return format!("ws://127.0.0.1:{}{}", port.trim(), path.trim());
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromium exited at start ({status}): {}", self.log());
            }
            assert!(Instant::now() < deadline, "no DevToolsActivePort after 30 s: {}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks the browser to quit (over the browser session) and waits a moment for it.
    async fn close(&mut self, cdp: &mut Cdp) {
        let msg = json!({"id": 0, "method": "Browser.close", "params": {}});
        let _ = cdp.ws.send(Message::Text(msg.to_string().into())).await;
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("chromium.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Only the browser process, by its id: its renderer, GPU and utility processes exit when
        // their channel to it closes.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Children may still be exiting (and flushing profile files): retry for a moment.
        for _ in 0..50 {
            if std::fs::remove_dir_all(&self.dir).is_ok() || !self.dir.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A DevTools protocol client on the browser endpoint, talking to one page over a flat session.
struct Cdp {
    ws: Ws,
    next_id: u64,
    session: Option<String>,
    /// Uncaught exceptions and console errors of the page.
    page_errors: Vec<String>,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params).await.unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// A command's result, or its error.
    async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::Text(msg.to_string().into())).await.expect("send to DevTools");
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("DevTools did not answer {method} within 30 s"))
                .expect("the DevTools socket closed")
                .expect("DevTools socket error");
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).expect("DevTools sends JSON");
            if v["id"] == id {
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["result"].clone()),
                };
            }
            match v["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    let d = &v["params"]["exceptionDetails"];
                    let text = d["exception"]["description"].as_str().or(d["text"].as_str()).unwrap_or("?");
                    self.page_errors.push(format!("exception: {text}"));
                }
                Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
                    self.page_errors.push(format!("console.error: {}", v["params"]["args"]));
                }
                _ => {}
            }
        }
    }

    /// Evaluates `expression` in the page and returns its value, or what went wrong (it threw, or
    /// the page was between documents).
    async fn try_eval(&mut self, expression: &str) -> Result<Value, Value> {
        let r = self
            .try_call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true, "userGesture": true}),
            )
            .await?;
        match r.get("exceptionDetails") {
            Some(e) => Err(e.clone()),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    async fn eval(&mut self, expression: &str) -> Value {
        self.try_eval(expression).await.unwrap_or_else(|e| panic!("{expression} failed: {e}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_talks_and_plays_the_answer_in_a_browser_with_a_fake_microphone() {
    find_chromium(); // before anything else: a missing browser is the first thing to hear about
    let server = Server::start(&["--api-key", KEY]);

    // The static page needs no key; the API and its WebSocket still do.
    let (status, ctype, html) = get(&server.addr, "/");
    assert_eq!((status, ctype.as_str()), (200, "text/html; charset=utf-8"), "{html}");
    assert!(html.contains("random-weight"), "the page says the default model's speech is noise");
    for (path, want) in [
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/mic-worklet.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
    ] {
        let (status, ctype, _) = get(&server.addr, path);
        assert_eq!((status, ctype.as_str()), (200, want), "{path}");
    }
    assert_eq!(get(&server.addr, "/v1/models").0, 401, "the API stays guarded");
    assert_eq!(get(&server.addr, "/v1/realtime").0, 401, "the WebSocket stays guarded");

    let dir = std::env::temp_dir().join(format!("omnid-web-page-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let wav = dir.join("mic.wav");
    write_mic_wav(&wav);
    let started = Instant::now();
    let mut browser = Browser::start(&wav, dir);
    let url = browser.devtools_url().await;
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("connect to DevTools");
    let mut cdp = Cdp { ws, next_id: 0, session: None, page_errors: Vec::new() };
    let target = cdp.call("Target.createTarget", json!({"url": "about:blank"})).await;
    let attached = cdp.call("Target.attachToTarget", json!({"targetId": target["targetId"], "flatten": true})).await;
    cdp.session = Some(attached["sessionId"].as_str().expect("a session id").to_string());
    cdp.call("Runtime.enable", json!({})).await;
    cdp.call("Page.enable", json!({})).await;
    let page = format!("http://{}/?autoconnect=1", server.addr);
    let nav = cdp.call("Page.navigate", json!({"url": page})).await;
    assert!(nav.get("errorText").is_none(), "navigation failed: {nav}");
    let deadline = started + OVERALL;
    // Polled: an evaluation that lands while the navigation swaps documents fails, and is retried.
    while cdp.try_eval("typeof window.omnid === 'object' && document.readyState === 'complete'").await
        != Ok(json!(true))
    {
        assert!(Instant::now() < deadline, "the page did not load: {:?}", cdp.page_errors);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // `autoconnect=1` connected at once, without the key: refused, and the page says why.
    let refused = loop {
        let s = cdp.eval("omnid.snapshot()").await;
        if s["state"] == "error" && !s["lastError"].is_null() {
            break s;
        }
        assert!(Instant::now() < deadline, "autoconnect without the key was not refused: {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let why = refused["lastError"].as_str().unwrap();
    assert!(why.contains("refused the API key"), "{why}");
    // The key as a user types it; the page sends it as the `openai-insecure-api-key.` subprotocol.
    cdp.eval(&format!("omnid.connect({{key: {}}})", json!(KEY))).await;

    let snap = loop {
        let s = cdp.eval("omnid.snapshot()").await;
        let played = s["playedSeconds"].as_f64().unwrap_or(0.0);
        let said = s["assistantTranscript"].as_str().unwrap_or("");
        let transcribed = s["userTranscripts"].as_u64().unwrap_or(0) >= 1;
        if s["audioDeltas"].as_u64().unwrap_or(0) >= 1 && played > 0.1 && !said.is_empty() && transcribed {
            break s;
        }
        let failed = !s["lastError"].is_null() || s["state"] == "error" || s["state"] == "closed";
        assert!(
            !failed && Instant::now() < deadline,
            "the page did not get to play an answer: {s:#}\npage errors: {:?}\nchromium: {}",
            cdp.page_errors,
            browser.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!(
        "web page: answer played {:.1} s after the browser started: {} audio deltas, {:.2} s received, \
         {:.2} s played, mic peak {} dBFS, transcript of {} chars",
        started.elapsed().as_secs_f64(),
        snap["audioDeltas"],
        snap["secondsReceived"].as_f64().unwrap_or(0.0),
        snap["playedSeconds"].as_f64().unwrap_or(0.0),
        snap["micPeakDbfs"],
        snap["assistantTranscript"].as_str().map_or(0, |t| t.chars().count()),
    );
    assert_eq!(snap["state"], "connected", "{snap:#}");
    assert!(snap["speechStarted"].as_u64().unwrap() >= 1, "the server heard the microphone: {snap:#}");
    assert!(snap["speechStopped"].as_u64().unwrap() >= 1, "and the end of the turn: {snap:#}");
    assert!(snap["userTurns"].as_u64().unwrap() >= 1, "the user turn is in the transcript: {snap:#}");
    assert!(snap["userTranscripts"].as_u64().unwrap() >= 1, "the model transcribed the turn: {snap:#}");
    // A turn needs speech and then 500 ms of silence: at least that much was streamed.
    assert!(snap["micChunksSent"].as_u64().unwrap() >= 10, "the microphone streamed: {snap:#}");
    assert!(snap["audioDeltas"].as_u64().unwrap() >= 1, "{snap:#}");
    assert!(snap["samplesReceived"].as_u64().unwrap() > 0, "{snap:#}");
    assert!(snap["playedSeconds"].as_f64().unwrap() > 0.1, "audio played by the context clock: {snap:#}");
    assert!(!snap["assistantTranscript"].as_str().unwrap().is_empty(), "{snap:#}");
    assert!(snap["lastError"].is_null(), "{snap:#}");
    assert!(cdp.page_errors.is_empty(), "page errors: {:?}", cdp.page_errors);
    browser.close(&mut cdp).await;
}
