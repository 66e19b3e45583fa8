//! `GET /v1/realtime` over a real WebSocket (tokio-tungstenite as the client): the OpenAI
//! Realtime GA event flow of a push-to-talk turn with a spoken answer, cancelling a response,
//! and errors that leave the session usable.

use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{fixture, Server};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{addr}/v1/realtime")).await.expect("connect").0
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .expect("an event within 60 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Events until (and including) the first of type `until`.
async fn until(ws: &mut Ws, until: &str) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let e = next(ws).await;
        let done = e["type"] == until;
        out.push(e);
        if done {
            return out;
        }
    }
}

fn types(evs: &[Value]) -> Vec<String> {
    evs.iter().map(|e| e["type"].as_str().unwrap().to_string()).collect()
}

fn pcm24k_b64(seconds: f32) -> String {
    let n = (24_000.0 * seconds) as usize;
    let bytes: Vec<u8> = (0..n)
        .flat_map(|i| (((i as f32 * 440.0 * std::f32::consts::TAU / 24_000.0).sin() * 8000.0) as i16).to_le_bytes())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_to_talk_turn_with_a_spoken_answer() {
    let server = Server::start(&["--model", &fixture("omni_c")]);
    let mut ws = connect(&server.addr).await;
    let created = next(&mut ws).await;
    assert_eq!(created["type"], "session.created");
    assert_eq!(created["session"]["audio"]["output"]["format"]["rate"], 24000);

    send(
        &mut ws,
        json!({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["audio"],
        "max_output_tokens": 8, "instructions": "Be brief.",
        "audio": {"input": {"turn_detection": null}, "output": {"voice": "Serena"}}}}),
    )
    .await;
    let updated = next(&mut ws).await;
    assert_eq!(updated["type"], "session.updated", "{updated}");
    assert_eq!(updated["session"]["audio"]["output"]["voice"], "Serena");

    // Audio in chunks, committed: one user item.
    for _ in 0..4 {
        send(&mut ws, json!({"type": "input_audio_buffer.append", "audio": pcm24k_b64(0.25)})).await;
    }
    send(&mut ws, json!({"type": "input_audio_buffer.commit"})).await;
    let evs = until(&mut ws, "conversation.item.done").await;
    assert_eq!(types(&evs), ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]);
    assert_eq!(evs[2]["item"]["content"][0]["type"], "input_audio");
    let audio_item = evs[0]["item_id"].clone();
    assert_eq!(evs[2]["item"]["id"], audio_item);
    send(
        &mut ws,
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "What did you hear?"}]}}),
    )
    .await;
    let evs = until(&mut ws, "conversation.item.done").await;
    assert_eq!(evs[0]["previous_item_id"], audio_item, "items are chained in order");

    send(&mut ws, json!({"type": "response.create"})).await;
    let evs = until(&mut ws, "response.done").await;
    let t = types(&evs);
    assert_eq!(
        &t[..4],
        ["response.created", "response.output_item.added", "conversation.item.added", "response.content_part.added"]
    );
    let tail: Vec<&str> = t.iter().map(String::as_str).filter(|k| !k.ends_with(".delta")).collect();
    assert_eq!(
        &tail[4..],
        [
            "response.output_audio.done",
            "response.output_audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done"
        ]
    );
    let done = evs.last().unwrap();
    assert_eq!(done["response"]["status"], "completed", "{done}");
    assert!(done["response"]["usage"]["output_tokens"].as_u64().unwrap() >= 1);
    let transcript: String = evs
        .iter()
        .filter(|e| e["type"] == "response.output_audio_transcript.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect::<Vec<_>>()
        .concat();
    let done_t = evs.iter().find(|e| e["type"] == "response.output_audio_transcript.done").unwrap();
    assert_eq!(done_t["transcript"], transcript);
    let bytes: usize = evs
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .map(|e| base64::engine::general_purpose::STANDARD.decode(e["delta"].as_str().unwrap()).unwrap().len())
        .sum();
    let samples = bytes / 2;
    assert!(samples > 0 && (samples + 555).is_multiple_of(1920), "{samples} samples of 24 kHz PCM16");
    let ids: std::collections::HashSet<&str> = evs.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), evs.len(), "event ids are unique");

    // The answer is now part of the conversation.
    let item_id = done["response"]["output"][0]["id"].as_str().unwrap().to_string();
    send(&mut ws, json!({"type": "conversation.item.retrieve", "item_id": item_id})).await;
    let r = next(&mut ws).await;
    assert_eq!(r["item"]["content"][0]["transcript"], transcript, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_errors_keep_the_session_usable() {
    let server = Server::start(&[]);
    let mut ws = connect(&server.addr).await;
    assert_eq!(next(&mut ws).await["type"], "session.created");
    let expect_error = |e: &Value, needle: &str| {
        assert_eq!(e["type"], "error", "{e}");
        let m = e["error"]["message"].as_str().unwrap();
        assert!(m.contains(needle), "{needle:?} not in {m:?}");
    };
    ws.send(Message::Text("{not json".into())).await.unwrap();
    expect_error(&next(&mut ws).await, "not JSON");
    send(&mut ws, json!({"type": "session.teleport", "event_id": "e1"})).await;
    let e = next(&mut ws).await;
    expect_error(&e, "session.teleport");
    assert_eq!(e["error"]["event_id"], "e1");
    send(&mut ws, json!({"type": "input_audio_buffer.append", "audio": "%%%"})).await;
    expect_error(&next(&mut ws).await, "not valid base64");
    send(&mut ws, json!({"type": "input_audio_buffer.commit"})).await;
    expect_error(&next(&mut ws).await, "at least 100 ms");
    send(&mut ws, json!({"type": "session.update", "session": {"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}}))
        .await;
    expect_error(&next(&mut ws).await, "\"semantic_vad\" is not available");
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 3}}}}}),
    )
    .await;
    expect_error(&next(&mut ws).await, "turn_detection.threshold");
    send(&mut ws, json!({"type": "session.update", "session": {"audio": {"output": {"voice": "alloy"}}}})).await;
    expect_error(&next(&mut ws).await, "unknown voice \"alloy\"");
    send(&mut ws, json!({"type": "response.create"})).await;
    expect_error(&next(&mut ws).await, "no user item");
    send(&mut ws, json!({"type": "response.cancel"})).await;
    expect_error(&next(&mut ws).await, "no response is in progress");

    // A long text answer, cancelled as soon as it starts: status cancelled, partial text kept.
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"output_modalities": ["text"], "max_output_tokens": 4000}}),
    )
    .await;
    assert_eq!(next(&mut ws).await["type"], "session.updated");
    send(
        &mut ws,
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "Hello"}]}}),
    )
    .await;
    until(&mut ws, "conversation.item.done").await;
    send(&mut ws, json!({"type": "response.create"})).await;
    assert_eq!(next(&mut ws).await["type"], "response.created");
    send(&mut ws, json!({"type": "response.create"})).await;
    send(&mut ws, json!({"type": "response.cancel"})).await;
    let evs = until(&mut ws, "response.done").await;
    assert!(evs
        .iter()
        .any(|e| e["type"] == "error" && e["error"]["message"].as_str().unwrap().contains("already in progress")));
    let done = evs.last().unwrap();
    assert_eq!(done["response"]["status"], "cancelled", "{done}");
    // The session still answers.
    send(&mut ws, json!({"type": "session.update", "session": {"max_output_tokens": 2}})).await;
    let e = next(&mut ws).await;
    assert_eq!(e["type"], "session.updated", "{e}");
    send(&mut ws, json!({"type": "response.create"})).await;
    let evs = until(&mut ws, "response.done").await;
    assert_eq!(evs.last().unwrap()["response"]["status"], "completed", "{}", evs.last().unwrap());
    assert_eq!(evs.last().unwrap()["response"]["usage"]["output_tokens"], 2);
}

/// `ms` of a loud 200 Hz tone (or silence) as base64 24 kHz PCM16.
fn tone_b64(ms: usize, loud: bool) -> String {
    let amp = if loud { 12_000.0 } else { 0.0 };
    let bytes: Vec<u8> = (0..ms * 24)
        .flat_map(|i| ((amp * (i as f32 * 200.0 * std::f32::consts::TAU / 24_000.0).sin()) as i16).to_le_bytes())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_vad_answers_turns_and_truncates_what_was_not_heard() {
    let server = Server::start(&["--model", &fixture("omni_c")]);
    let mut ws = connect(&server.addr).await;
    next(&mut ws).await;
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"max_output_tokens": 8, "audio": {"input": {"turn_detection":
        {"type": "server_vad", "silence_duration_ms": 200, "prefix_padding_ms": 100}}}}}),
    )
    .await;
    let u = next(&mut ws).await;
    assert_eq!(u["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"], 200, "{u}");
    // 300 ms of silence, 600 ms of speech, 400 ms of silence, in 100 ms chunks as a client streams.
    for (ms, loud) in [(300, false), (600, true), (400, false)] {
        for _ in 0..ms / 100 {
            send(&mut ws, json!({"type": "input_audio_buffer.append", "audio": tone_b64(100, loud)})).await;
        }
    }
    let evs = until(&mut ws, "response.done").await;
    let t = types(&evs);
    assert_eq!(
        &t[..6],
        [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            "conversation.item.added",
            "conversation.item.done",
            "response.created"
        ]
    );
    assert_eq!(evs[0]["audio_start_ms"], 300);
    assert_eq!(evs[1]["audio_end_ms"], 900);
    assert_eq!(evs[0]["item_id"], evs[2]["item_id"], "speech_started announces the committed item's id");
    let done = evs.last().unwrap();
    assert_eq!(done["response"]["status"], "completed", "{done}");
    // The user item holds the speech from 100 ms before its start: 200..1300 ms = 1.1 s at 16 kHz.
    // Truncation keeps what was heard: one text token per 80 ms frame.
    let answer = done["response"]["output"][0]["id"].as_str().unwrap().to_string();
    let transcript = done["response"]["output"][0]["content"][0]["transcript"].as_str().unwrap().to_string();
    let audio_ms: u64 = evs
        .iter()
        .filter(|e| e["type"] == "response.output_audio.delta")
        .map(|e| {
            base64::engine::general_purpose::STANDARD.decode(e["delta"].as_str().unwrap()).unwrap().len() as u64 / 48
        })
        .sum();
    send(&mut ws, json!({"type": "conversation.item.truncate", "item_id": answer, "content_index": 0, "audio_end_ms": audio_ms + 80})).await;
    let e = next(&mut ws).await;
    assert_eq!(e["type"], "error", "{e}");
    send(
        &mut ws,
        json!({"type": "conversation.item.truncate", "item_id": answer, "content_index": 0, "audio_end_ms": 160}),
    )
    .await;
    assert_eq!(next(&mut ws).await["type"], "conversation.item.truncated");
    send(&mut ws, json!({"type": "conversation.item.retrieve", "item_id": answer})).await;
    let r = next(&mut ws).await;
    let kept = r["item"]["content"][0]["transcript"].as_str().unwrap();
    assert!(transcript.starts_with(kept) && kept.len() < transcript.len(), "kept {kept:?} of {transcript:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaking_over_an_answer_interrupts_it() {
    let server = Server::start(&[]);
    let mut ws = connect(&server.addr).await;
    next(&mut ws).await;
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"output_modalities": ["text"], "max_output_tokens": 4000,
        "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 200}}}}}),
    )
    .await;
    next(&mut ws).await;
    for (ms, loud) in [(400, true), (300, false)] {
        for _ in 0..ms / 100 {
            send(&mut ws, json!({"type": "input_audio_buffer.append", "audio": tone_b64(100, loud)})).await;
        }
    }
    until(&mut ws, "response.created").await;
    // The user speaks again while the (long) answer is being written.
    send(&mut ws, json!({"type": "input_audio_buffer.append", "audio": tone_b64(200, true)})).await;
    let evs = until(&mut ws, "response.done").await;
    let started = evs.iter().position(|e| e["type"] == "input_audio_buffer.speech_started").expect("barge-in detected");
    assert_eq!(evs.last().unwrap()["response"]["status"], "cancelled");
    assert!(
        evs[started..].iter().all(|e| !e["type"].as_str().unwrap().ends_with(".delta")),
        "no output after the user started speaking"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_guards_the_upgrade_by_header_or_browser_subprotocol() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = Server::start(&["--api-key", "k3y"]);
    let url = format!("ws://{}/v1/realtime", server.addr);
    let with = |name: &'static str, value: &str| {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert(name, value.parse().unwrap());
        req
    };
    let refused = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
        Ok(_) => 101,
    };
    assert_eq!(refused(tokio_tungstenite::connect_async(url.clone()).await.map(|_| ())), 401);
    assert_eq!(refused(tokio_tungstenite::connect_async(with("authorization", "Bearer nope")).await.map(|_| ())), 401);
    let sub = "realtime, openai-insecure-api-key.nope";
    assert_eq!(refused(tokio_tungstenite::connect_async(with("sec-websocket-protocol", sub)).await.map(|_| ())), 401);

    let (mut ws, _) = tokio_tungstenite::connect_async(with("authorization", "Bearer k3y")).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "session.created");
    let sub = "realtime, openai-insecure-api-key.k3y";
    let (mut ws, resp) = tokio_tungstenite::connect_async(with("sec-websocket-protocol", sub)).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "realtime", "the key is never echoed");
    assert_eq!(next(&mut ws).await["type"], "session.created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_and_function_results_over_the_socket() {
    let server = Server::start(&[]);
    let mut ws = connect(&server.addr).await;
    next(&mut ws).await;
    let tool = json!({"type": "function", "name": "get_weather", "description": "Weather of a city",
                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}});
    send(&mut ws, json!({"type": "session.update", "session": {"output_modalities": ["text"], "max_output_tokens": 4, "tools": [tool]}}))
        .await;
    let updated = next(&mut ws).await;
    assert_eq!(updated["session"]["tools"][0]["name"], "get_weather", "{updated}");
    assert_eq!(updated["session"]["tool_choice"], "auto");
    // Bad tools are refused by name; the session keeps its tools.
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"tools": [{"type": "function", "name": "no spaces allowed"}]}}),
    )
    .await;
    let e = next(&mut ws).await;
    assert_eq!((e["type"].as_str(), e["error"]["param"].as_str()), (Some("error"), Some("session.tools[0]")), "{e}");

    // History with a call (as a client replays it) and the function's result; then a response.
    send(
        &mut ws,
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [{"type": "input_text", "text": "Weather in Paris?"}]}}),
    )
    .await;
    until(&mut ws, "conversation.item.done").await;
    send(
        &mut ws,
        json!({"type": "conversation.item.create", "item": {"type": "function_call", "call_id": "call_7",
        "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}),
    )
    .await;
    let call = until(&mut ws, "conversation.item.done").await.pop().unwrap();
    assert_eq!(
        (call["item"]["type"].as_str(), call["item"]["call_id"].as_str()),
        (Some("function_call"), Some("call_7"))
    );
    send(&mut ws, json!({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_8", "output": "{}"}}))
        .await;
    let e = next(&mut ws).await;
    assert!(e["error"]["message"].as_str().unwrap().contains("no function_call with call_id \"call_8\""), "{e}");
    send(
        &mut ws,
        json!({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_7",
        "output": "{\"temp\": 21}"}}),
    )
    .await;
    let out = until(&mut ws, "conversation.item.done").await.pop().unwrap();
    assert_eq!(out["item"]["type"], "function_call_output");
    send(&mut ws, json!({"type": "response.create"})).await;
    let done = until(&mut ws, "response.done").await.pop().unwrap();
    assert_eq!(done["response"]["status"], "completed", "{done}");
    // The prompt held the tools, the call and its result: more tokens than the question alone.
    assert!(done["response"]["usage"]["input_tokens"].as_u64().unwrap() > 100, "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_at_their_time_limit_and_items_have_an_image_limit() {
    let dir = std::env::temp_dir().join(format!("omnid-rt-limit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("short.toml");
    std::fs::write(&cfg, "[server]\nrealtime_session_s = 2\nmax_media_items = 2\n").unwrap();
    let server = Server::start(&["--config", cfg.to_str().unwrap()]);
    let mut ws = connect(&server.addr).await;
    next(&mut ws).await;
    let image = json!({"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="});
    send(
        &mut ws,
        json!({"type": "conversation.item.create", "item": {"type": "message", "role": "user",
        "content": [image, image, image]}}),
    )
    .await;
    let e = next(&mut ws).await;
    assert_eq!((e["type"].as_str(), e["error"]["code"].as_str()), (Some("error"), Some("too_many_images")), "{e}");
    // Session-level refusals carry their code too.
    send(&mut ws, json!({"type": "conversation.item.delete", "item_id": "nope"})).await;
    let e = next(&mut ws).await;
    assert_eq!(e["error"]["code"], "item_not_found", "{e}");
    // Then the session expires: an error naming the limit, and the socket closes.
    let t = std::time::Instant::now();
    let e = next(&mut ws).await;
    assert_eq!(e["error"]["code"], "session_expired", "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let closed = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("closed promptly");
    assert!(matches!(closed, None | Some(Ok(Message::Close(_))) | Some(Err(_))), "{closed:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_audio_is_transcribed_when_asked() {
    let server = Server::start(&[]);
    let mut ws = connect(&server.addr).await;
    next(&mut ws).await;
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"audio": {"input": {"transcription": {"language": "English"}}}}}),
    )
    .await;
    let e = next(&mut ws).await;
    assert_eq!(e["error"]["param"], "session.audio.input.transcription", "{e}");
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"output_modalities": ["text"], "max_output_tokens": 4,
            "audio": {"input": {"turn_detection": null, "transcription": {"model": "whisper-1", "language": "en"}}}}}),
    )
    .await;
    let updated = next(&mut ws).await;
    assert_eq!(updated["session"]["audio"]["input"]["transcription"]["model"], "whisper-1", "{updated}");

    send(&mut ws, json!({"type": "input_audio_buffer.append", "audio": pcm24k_b64(1.0)})).await;
    send(&mut ws, json!({"type": "input_audio_buffer.commit"})).await;
    let evs = until(&mut ws, "conversation.item.input_audio_transcription.completed").await;
    let item_id = evs.iter().find(|e| e["type"] == "input_audio_buffer.committed").unwrap()["item_id"].clone();
    let done = evs.last().unwrap();
    assert_eq!(done["item_id"], item_id);
    let deltas: String = evs
        .iter()
        .filter(|e| e["type"] == "conversation.item.input_audio_transcription.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(done["transcript"].as_str().unwrap(), deltas);
    assert!(done["usage"]["output_tokens"].as_u64().unwrap() >= 1, "{done}");
    // The item now carries its transcript.
    send(&mut ws, json!({"type": "conversation.item.retrieve", "item_id": item_id})).await;
    let r = next(&mut ws).await;
    assert_eq!(r["item"]["content"][0]["transcript"], done["transcript"], "{r}");

    // Off again: a committed turn gets no transcription; the answer still comes.
    send(&mut ws, json!({"type": "session.update", "session": {"audio": {"input": {"transcription": null}}}})).await;
    next(&mut ws).await;
    send(&mut ws, json!({"type": "input_audio_buffer.append", "audio": pcm24k_b64(0.5)})).await;
    send(&mut ws, json!({"type": "input_audio_buffer.commit"})).await;
    send(&mut ws, json!({"type": "response.create"})).await;
    let evs = until(&mut ws, "response.done").await;
    assert!(!types(&evs).iter().any(|t| t.contains("input_audio_transcription")), "{:?}", types(&evs));
}

/// 400 ms of speech then 300 ms of silence, in 100 ms appends: one server-VAD turn.
async fn speak_turn(ws: &mut Ws) {
    for (ms, loud) in [(400, true), (300, false)] {
        for _ in 0..ms / 100 {
            send(ws, json!({"type": "input_audio_buffer.append", "audio": tone_b64(100, loud)})).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_that_ends_during_an_uninterrupted_answer_is_answered_next() {
    let server = Server::start(&[]);
    let mut ws = connect(&server.addr).await;
    next(&mut ws).await;
    send(
        &mut ws,
        json!({"type": "session.update", "session": {"output_modalities": ["text"], "max_output_tokens": 150,
        "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 200, "interrupt_response": false}}}}}),
    )
    .await;
    next(&mut ws).await;
    speak_turn(&mut ws).await;
    let first = until(&mut ws, "response.created").await.pop().unwrap();
    // The user speaks again during the (long) answer, which goes on.
    speak_turn(&mut ws).await;
    let evs = until(&mut ws, "response.done").await;
    assert_eq!(evs.last().unwrap()["response"]["id"], first["response"]["id"]);
    assert_eq!(evs.last().unwrap()["response"]["status"], "completed", "{}", evs.last().unwrap());
    assert!(types(&evs).contains(&"input_audio_buffer.committed".to_string()), "{:?}", types(&evs));
    // Then the second turn gets its own answer.
    let second = until(&mut ws, "response.created").await.pop().unwrap();
    assert_ne!(second["response"]["id"], first["response"]["id"]);
    let done = until(&mut ws, "response.done").await.pop().unwrap();
    assert_eq!(done["response"]["status"], "completed", "{done}");
}
