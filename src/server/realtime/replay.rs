//! Client events applied to a session without a socket or an engine: what the fuzzer drives
//! (`fuzz/fuzz_targets/realtime_events.rs`) and the tests replay. Parsing and every session change
//! are the socket handler's own code; only answering (the engine) is left out.

use super::session::Session;
use super::{decode_image_url, vad::VadEvent};
use crate::protocol::realtime::ClientEvent;

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Events that parsed.
    pub parsed: usize,
    /// Events refused (bad JSON, bad fields, refused by the session).
    pub refused: usize,
    /// Turn boundaries the server VAD found.
    pub turns: usize,
    /// Items in the conversation at the end.
    pub items: usize,
}

/// Applies each line of `lines` (one JSON client event per line) to a fresh session.
pub fn replay_client_events(lines: &str) -> Replay {
    let mut s = Session::new("sess_replay".into(), vec!["ethan".into()], "ethan".into(), 4096, 16);
    let mut r = Replay::default();
    for line in lines.lines() {
        let event: ClientEvent = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(_) => {
                r.refused += 1;
                continue;
            }
        };
        r.parsed += 1;
        let ok = match event {
            ClientEvent::SessionUpdate { session } => s.update(&session).is_ok(),
            ClientEvent::AudioAppend { audio } => match s.append_audio(&audio) {
                Ok(turns) => {
                    for t in turns {
                        r.turns += 1;
                        match t {
                            VadEvent::Started { audio_start_ms } => s.turn_started(audio_start_ms),
                            VadEvent::Stopped { .. } => {
                                let _ = s.commit_turn();
                            }
                        }
                    }
                    true
                }
                Err(_) => false,
            },
            ClientEvent::AudioCommit {} => s.commit_audio().is_ok(),
            ClientEvent::AudioClear {} => {
                s.clear_audio();
                true
            }
            ClientEvent::ItemCreate { item } => {
                let images: Result<Vec<_>, _> = item
                    .content
                    .iter()
                    .filter(|c| c.kind == "input_image")
                    .map(|c| decode_image_url(c.image_url.as_deref().unwrap_or(""), 1 << 20))
                    .collect();
                images.is_ok_and(|images| s.create_item(&item, images).is_ok())
            }
            ClientEvent::ItemRetrieve { item_id } => s.items.iter().any(|i| i.id == item_id),
            ClientEvent::ItemDelete { item_id } => s.delete_item(&item_id).is_ok(),
            ClientEvent::ItemTruncate { item_id, audio_end_ms, .. } => s.truncate_item(&item_id, audio_end_ms).is_ok(),
            ClientEvent::ResponseCreate {} | ClientEvent::ResponseCancel {} => true,
        };
        if !ok {
            r.refused += 1;
        }
        // What a response would be built from.
        let _ = s.prompt();
        let _ = s.json();
    }
    r.items = s.items.len();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_events_are_refused_and_good_ones_still_work() {
        let loud: Vec<u8> = (0..24_000).flat_map(|i: i32| (((i % 48) as i16 - 24) * 1200).to_le_bytes()).collect();
        let quiet = vec![0u8; 48_000];
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
        let lines = [
            "not json".to_string(),
            "{}".into(),
            r#"{"type": "nope"}"#.into(),
            r#"{"type": "session.update", "session": {"max_output_tokens": -1}}"#.into(),
            r#"{"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 0}}}}}"#.into(),
            r#"{"type": "session.update", "session": {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 1e309}}}}}"#.into(),
            r#"{"type": "input_audio_buffer.append", "audio": "@@@"}"#.into(),
            r#"{"type": "input_audio_buffer.append", "audio": "AAA"}"#.into(),
            r#"{"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}}"#.into(),
            r#"{"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "x", "output": "y"}}"#.into(),
            r#"{"type": "conversation.item.truncate", "item_id": "nope", "audio_end_ms": 18446744073709551615}"#.into(),
            r#"{"type": "conversation.item.delete", "item_id": ""}"#.into(),
            // Then a good turn with server VAD: speech, then silence.
            r#"{"type": "session.update", "session": {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 200}}}}}"#.into(),
            format!(r#"{{"type": "input_audio_buffer.append", "audio": "{}"}}"#, b64(&loud)),
            format!(r#"{{"type": "input_audio_buffer.append", "audio": "{}"}}"#, b64(&quiet)),
            r#"{"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}}"#.into(),
        ];
        let r = replay_client_events(&lines.join("\n"));
        // Not JSON, no type, an unknown type, and a number out of f64's range do not parse; the
        // next eight are refused by the session.
        assert_eq!(r.parsed + 4, lines.len(), "{r:?}");
        assert_eq!(r.refused, 4 + 8, "{r:?}");
        assert_eq!(r.turns, 2, "speech started and stopped: {r:?}");
        assert_eq!(r.items, 2, "the VAD turn and the text item: {r:?}");
    }
}
