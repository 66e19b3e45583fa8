//! `omnid serve` over a real socket: the binary is started on port 0, and requests are written
//! as raw HTTP/1.1, so these tests are the protocol as clients see it — answers equal to
//! `omnid ask` on the same input, SSE framing, spoken answers, every refusal with its status and
//! OpenAI error body, authentication, overload, and a client that leaves mid-answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

mod common;
use common::{fixture, Server};

/// Raw HTTP on top of the shared server helper.
impl Server {
    /// One request; returns (status, body). Chunked bodies (SSE) are de-chunked.
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        parse_response(&raw)
    }

    fn post(&self, body: &Value) -> (u16, Value) {
        let (status, text) =
            self.request("POST", "/v1/chat/completions", &[("Content-Type", "application/json")], &body.to_string());
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
    }
}

fn parse_response(raw: &[u8]) -> (u16, String) {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("headers end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = &rest[eol + 2 + n + 2..];
        }
        body = out;
    }
    (status, String::from_utf8(body).unwrap())
}

/// The `data:` payloads of an SSE body.
fn sse_data(body: &str) -> Vec<String> {
    body.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_string).collect()
}

fn omnid_ask(args: &[&str]) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_omnid")).arg("ask").args(args).arg("--json").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn b64_file(rel: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(fixture(rel)).unwrap())
}

fn assert_error(status: u16, body: &Value, want_status: u16, kind: &str, needle: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    let m = body["error"]["message"].as_str().unwrap();
    assert!(m.contains(needle), "{needle:?} not in {m:?}");
}

#[test]
fn answers_equal_omnid_ask_streamed_and_not() {
    let server = Server::start(&["--model", &fixture("omni_a")]);
    let (status, health) = server.request("GET", "/health", &[], "");
    assert_eq!(status, 200, "{health}");
    let (_, models) = server.request("GET", "/v1/models", &[], "");
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["id"], "omni_a");

    // Image + audio + text, greedy: the same answer as `omnid ask` on the same files.
    let want = omnid_ask(&[
        "--model",
        &fixture("omni_a"),
        "--greedy",
        "--max-tokens",
        "10",
        "--image",
        &fixture("omni_a/inputs/img_1.png"),
        "--audio",
        &fixture("omni_a/inputs/aud_short.wav"),
        "Describe the sound.",
    ]);
    let body = json!({
        "model": "anything",
        "temperature": 0,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", b64_file("omni_a/inputs/img_1.png"))}},
            {"type": "input_audio", "input_audio": {"data": b64_file("omni_a/inputs/aud_short.wav"), "format": "wav"}},
            {"type": "text", "text": "Describe the sound."}]}]
    });
    let (status, c) = server.post(&body);
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["object"], "chat.completion");
    assert_eq!(c["model"], "anything");
    assert_eq!(c["choices"][0]["message"]["content"], want["text"], "server vs omnid ask");
    let n = want["token_ids"].as_array().unwrap().len();
    assert_eq!(c["usage"]["completion_tokens"], n);
    assert_eq!(c["usage"]["prompt_tokens"], want["prompt_tokens"]);
    let finish = if want["stop_reason"] == "eos" { "stop" } else { "length" };
    assert_eq!(c["choices"][0]["finish_reason"], finish);

    // The same request streamed: deltas concatenate to the same text, usage last, then [DONE].
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, sse) =
        server.request("POST", "/v1/chat/completions", &[("Content-Type", "application/json")], &streamed.to_string());
    assert_eq!(status, 200, "{sse}");
    let data = sse_data(&sse);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect::<Vec<_>>().concat();
    assert_eq!(text, want["text"].as_str().unwrap());
    assert_eq!(chunks[chunks.len() - 2]["choices"][0]["finish_reason"], finish);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], n);
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
}

#[test]
fn spoken_answers_as_wav_and_as_streamed_pcm16() {
    let cfg = std::env::temp_dir().join(format!("omnid-serve-speech-{}.toml", std::process::id()));
    std::fs::write(&cfg, "[speech]\nmax_frames = 12\nchunk_frames = 4\n").unwrap();
    let server = Server::start(&["--model", &fixture("omni_c"), "--config", cfg.to_str().unwrap()]);
    let image = format!("data:image/png;base64,{}", b64_file("omni_a/inputs/img_0.png"));
    let body = json!({
        "temperature": 0, "max_tokens": 8,
        "modalities": ["text", "audio"], "audio": {"voice": "Serena", "format": "wav"},
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": "Describe the image."}]}]
    });
    let (status, c) = server.post(&body);
    assert_eq!(status, 200, "{c}");
    let msg = &c["choices"][0]["message"];
    assert!(msg["content"].is_null(), "a spoken answer carries its text as the transcript");
    let wav = base64::engine::general_purpose::STANDARD.decode(msg["audio"]["data"].as_str().unwrap()).unwrap();
    let mut r = hound::WavReader::new(std::io::Cursor::new(wav)).unwrap();
    assert_eq!((r.spec().sample_rate, r.spec().channels, r.spec().bits_per_sample), (24_000, 1, 16));
    let samples: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    assert!(!samples.is_empty() && (samples.len() + 555).is_multiple_of(1920), "{} samples", samples.len());
    assert!(samples.len() <= 1920 * 12 - 555, "the [speech] max_frames limit holds");
    let transcript = msg["audio"]["transcript"].as_str().unwrap().to_string();

    // Streamed: pcm16 deltas add up to the same samples, transcript deltas to the same text.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["audio"]["format"] = json!("pcm16");
    let (status, sse) =
        server.request("POST", "/v1/chat/completions", &[("Content-Type", "application/json")], &streamed.to_string());
    assert_eq!(status, 200, "{sse}");
    let chunks: Vec<Value> =
        sse_data(&sse).iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
    let mut pcm = Vec::new();
    let mut text = String::new();
    for c in &chunks {
        let a = &c["choices"][0]["delta"]["audio"];
        if let Some(d) = a["data"].as_str() {
            pcm.extend(base64::engine::general_purpose::STANDARD.decode(d).unwrap());
        }
        text.push_str(a["transcript"].as_str().unwrap_or(""));
    }
    let streamed_samples: Vec<i16> = pcm.chunks(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    assert_eq!(streamed_samples, samples, "greedy: streamed speech = the WAV's");
    assert_eq!(text, transcript);

    // Voices the checkpoint lacks, and speech from a model without a talker.
    let mut bad = body.clone();
    bad["audio"]["voice"] = json!("alloy");
    let (status, e) = server.post(&bad);
    assert_error(status, &e, 400, "invalid_request_error", "aiden, chelsie, ethan, serena");
    assert_eq!(e["error"]["param"], "audio.voice");
    let _ = std::fs::remove_file(&cfg);
}

#[test]
fn bad_requests_get_clear_errors_and_the_server_lives_on() {
    let cfg = std::env::temp_dir().join(format!("omnid-serve-limits-{}.toml", std::process::id()));
    std::fs::write(&cfg, "[server]\nmax_request_bytes = 200000\nmax_tokens = 64\n").unwrap();
    let server = Server::start(&["--config", cfg.to_str().unwrap()]);
    let post_raw = |body: &str| {
        let (s, t) = server.request("POST", "/v1/chat/completions", &[("Content-Type", "application/json")], body);
        (s, serde_json::from_str::<Value>(&t).unwrap_or_else(|_| panic!("{t}")))
    };
    let (s, e) = post_raw("{\"messages\": [");
    assert_error(s, &e, 400, "invalid_request_error", "EOF while parsing");
    let (s, e) = post_raw("{\"messages\": 5}");
    assert_error(s, &e, 400, "invalid_request_error", "messages");
    let (s, e) = server
        .post(&json!({"messages": [{"role": "user", "content": [{"type": "input_file", "file": {"file_id": "x"}}]}]}));
    assert_error(s, &e, 400, "invalid_request_error", "input_file");
    let (s, e) = server.post(&json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}));
    assert_error(s, &e, 400, "invalid_request_error", "remote image URLs");
    let (s, e) = server.post(&json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!not base64"}}]}]}));
    assert_error(s, &e, 400, "invalid_request_error", "media item 0: image data is not valid base64");
    let (s, e) = server.post(&json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}]}));
    assert_error(s, &e, 400, "invalid_request_error", "media item 0: image");
    let (s, e) = server.post(&json!({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "aGVsbG8=", "format": "wav"}}]}]}));
    assert_error(s, &e, 400, "invalid_request_error", "media item 0: audio");
    let (s, e) = server.post(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 65}));
    assert_error(s, &e, 400, "invalid_request_error", "limit of 64");
    let big = "x".repeat(300_000);
    let (s, e) = server.post(&json!({"messages": [{"role": "user", "content": big}]}));
    assert_error(s, &e, 413, "invalid_request_error", "length limit");
    let (s, t) = server.request("GET", "/v2/nothing", &[], "");
    assert_eq!(s, 404, "{t}");
    let (s, e) = server.post(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}));
    assert_eq!(s, 200, "after all that the server still answers: {e}");
    assert_eq!(e["usage"]["completion_tokens"], 3);
    let _ = std::fs::remove_file(&cfg);
}

#[test]
fn api_key_guards_every_route() {
    let server = Server::start(&["--api-key", "s3cret"]);
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).to_string();
    let json_ct = ("Content-Type", "application/json");
    for (headers, want) in [
        (vec![json_ct], 401),
        (vec![json_ct, ("Authorization", "Bearer wrong")], 401),
        (vec![json_ct, ("Authorization", "s3cret")], 401),
        (vec![json_ct, ("Authorization", "Bearer s3cret")], 200),
    ] {
        let (s, t) = server.request("POST", "/v1/chat/completions", &headers, &body);
        assert_eq!(s, want, "{headers:?}: {t}");
        if want == 401 {
            let e: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(e["error"]["type"], "authentication_error");
        }
    }
    assert_eq!(server.request("GET", "/health", &[], "").0, 401);
    assert_eq!(server.request("GET", "/v1/models", &[("Authorization", "Bearer s3cret")], "").0, 200);
}

#[test]
fn a_full_queue_answers_429_and_a_departed_client_frees_the_engine() {
    let server = Server::start(&["--max-queued", "1", "--max-batch", "1"]);
    // Each of these runs ~700 tokens on the embedded model: one runs, one waits, the rest are refused.
    let long = json!({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4000, "temperature": 0});
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| server.post(&long))).collect();
        handles
            .into_iter()
            .map(|h| {
                let (status, body) = h.join().unwrap();
                if status == 429 {
                    assert_eq!(body["error"]["type"], "overloaded_error", "{body}");
                }
                status
            })
            .collect()
    });
    // One runs and at most one waits (it may be refused too if it came before the engine took
    // the first off the queue); the others are refused at once.
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    assert!((1..=2).contains(&ok) && ok + statuses.iter().filter(|&&s| s == 429).count() == 4, "{statuses:?}");

    // A streaming client that leaves after its first chunk: its job stops, the next request
    // is not stuck behind it.
    let mut streamed = long.clone();
    streamed["stream"] = json!(true);
    drop(open_stream(&server, &streamed));
    let t = Instant::now();
    let (status, b) = server.post(&json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}));
    assert_eq!(status, 200, "{b} after {statuses:?}");
    let short = t.elapsed();
    // The departed stream's whole answer, for scale (the engine is idle now).
    let t = Instant::now();
    let (status, _) = server.post(&long);
    assert_eq!(status, 200);
    let full = t.elapsed();
    assert!(
        short < full / 2,
        "a 2-token answer took {short:?} after the departed stream; its full answer takes {full:?}"
    );
}

#[test]
fn metrics_count_requests_tokens_and_latencies() {
    let server = Server::start(&[]);
    let mut tokens = 0;
    for n in [3, 4] {
        let (status, c) =
            server.post(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": n, "temperature": 0}));
        assert_eq!(status, 200, "{c}");
        tokens += c["usage"]["completion_tokens"].as_u64().unwrap();
    }
    let (status, _) = server.post(&json!({"messages": []}));
    assert_eq!(status, 400);
    assert_eq!(server.request("GET", "/nowhere", &[], "").0, 404);
    let (status, text) = server.request("GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    let has = |line: &str| assert!(text.lines().any(|l| l == line), "{line:?} missing from\n{text}");
    has("omnid_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2");
    has("omnid_requests_total{route=\"/v1/chat/completions\",status=\"400\"} 1");
    has("omnid_requests_total{route=\"other\",status=\"404\"} 1");
    has(&format!("omnid_generated_tokens_total {tokens}"));
    has("omnid_jobs_total{outcome=\"completed\"} 2");
    has("omnid_first_token_seconds_count 2");
    has("omnid_first_token_seconds_bucket{le=\"+Inf\"} 2");
    has("omnid_queue_waiting 0");
    has("omnid_realtime_sessions 0");
    has("omnid_first_audio_seconds_count 0");
}

/// Starts a streamed chat request on a raw socket (closed by the server at the end) and reads
/// until its `200` status line and the first event have arrived: the engine has taken the job
/// off the queue and is answering it.
fn open_stream(server: &Server, body: &Value) -> TcpStream {
    let body = body.to_string();
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("data: ") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream ended before its first event: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    s
}

#[test]
fn a_short_request_is_answered_while_a_long_one_runs() {
    let server = Server::start(&[]);
    let long = json!({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4000, "temperature": 0, "stream": true});
    // The long answer is streaming; now a short request arrives.
    let mut s = open_stream(&server, &long);
    let (status, body) = server.post(&json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}));
    assert_eq!(status, 200, "{body}");
    // Continuous batching: the short answer joined the running one's decode steps instead of
    // waiting for its ~700 tokens, which are still streaming.
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let rest = String::from_utf8_lossy(&rest);
    let chunks_after = rest.matches("data: {").count();
    assert!(rest.contains("data: [DONE]"), "the long answer completes");
    assert!(chunks_after > 100, "only {chunks_after} chunks of the long answer came after the short one");
}

#[test]
fn a_video_part_is_answered_as_omnid_ask_answers_the_file() {
    let dir = std::env::temp_dir().join(format!("omnid-serve-video-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("clip.mp4");
    let made = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=96x64:rate=10:duration=2",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:v", "mpeg4"])
        .arg(&clip)
        .status()
        .expect("the ffmpeg CLI (scripts/install-deps.sh)");
    assert!(made.success());
    let want = omnid_ask(&[
        "--model",
        &fixture("omni_a"),
        "--greedy",
        "--max-tokens",
        "6",
        "--video",
        clip.to_str().unwrap(),
        "What happens?",
    ]);
    let server = Server::start(&["--model", &fixture("omni_a")]);
    let data = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&clip).unwrap());
    let request = |url: String| {
        json!({"temperature": 0, "max_tokens": 6, "messages": [{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": "What happens?"}]}]})
    };
    let (status, c) = server.post(&request(format!("data:video/mp4;base64,{data}")));
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["choices"][0]["message"]["content"], want["text"], "server vs omnid ask");
    assert_eq!(c["usage"]["prompt_tokens"], want["prompt_tokens"]);

    let (status, e) = server.post(&request("data:video/ogg;base64,AAAA".into()));
    assert_error(status, &e, 400, "invalid_request_error", "video/ogg");
    assert_eq!(e["error"]["param"], "messages[0].content[0].video_url.url");
    let (status, e) = server.post(&request("data:video/mp4;base64,AAAAAAAAAAAA".into()));
    assert_error(status, &e, 400, "invalid_request_error", "media item 0: mp4 video");
    std::fs::remove_dir_all(&dir).ok();
}

/// Serves `body` to every HTTP request on a loopback port, on a thread of its own.
fn file_server(body: Vec<u8>, content_type: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    addr
}

#[test]
fn remote_image_urls_are_fetched_only_when_enabled_and_never_from_private_addresses() {
    let png = std::fs::read(fixture("omni_a/inputs/img_1.png")).unwrap();
    let at = file_server(png, "image/png");
    let ask = |url: String| {
        json!({"temperature": 0, "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is it?"}]}]})
    };
    let dir = std::env::temp_dir().join(format!("omnid-remote-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };

    // Off (the default): refused, naming the setting.
    let server = Server::start(&["--model", &fixture("omni_a")]);
    let (status, e) = server.post(&ask(format!("http://{at}/a.png")));
    assert_error(status, &e, 400, "invalid_request_error", "remote_media is off");
    let (status, by_data) = server.post(&ask(format!("data:image/png;base64,{}", b64_file("omni_a/inputs/img_1.png"))));
    assert_eq!(status, 200, "{by_data}");
    drop(server);

    // On, but a loopback address: refused as private.
    let on = config("on.toml", "[server]\nremote_media = true\n");
    let server = Server::start(&["--model", &fixture("omni_a"), "--config", &on]);
    let (status, e) = server.post(&ask(format!("http://{at}/a.png")));
    assert_error(status, &e, 400, "invalid_request_error", "private");
    drop(server);

    // On with private addresses allowed: the same answer as the data: URL.
    let open = config("open.toml", "[server]\nremote_media = true\nremote_media_allow_private = true\n");
    let server = Server::start(&["--model", &fixture("omni_a"), "--config", &open]);
    let (status, by_url) = server.post(&ask(format!("http://{at}/a.png")));
    assert_eq!(status, 200, "{by_url}");
    assert_eq!(by_url["choices"][0]["message"]["content"], by_data["choices"][0]["message"]["content"]);
    assert_eq!(by_url["usage"], by_data["usage"]);
    // A server that is not there: a clear error, not a hang.
    let (status, e) = server.post(&ask("http://127.0.0.1:9/a.png".into()));
    assert_error(status, &e, 400, "invalid_request_error", "127.0.0.1:9");
    std::fs::remove_dir_all(&dir).ok();
}
