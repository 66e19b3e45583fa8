//! OpenAI Realtime client events from an untrusted client: any text, one event per line, applied to
//! a session exactly as the WebSocket handler applies them (parsing, `session.update`, audio
//! append/commit with server VAD, item create/delete/truncate, prompt building), without an engine.
//! Checks that nothing panics, hangs or grows without bound: the session's own limits hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let r = omnid::server::replay_client_events(text);
        assert!(r.items <= 512, "the conversation outgrew its limit: {r:?}");
    }
});
