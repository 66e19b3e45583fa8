//! Input audio transcription: with `audio.input.transcription` set, the loaded model (Qwen3-Omni
//! hears audio) transcribes each committed user audio item in a job of its own, next to the
//! answer (the engine batches them), one item at a time per session in commit order. The text
//! streams as `conversation.item.input_audio_transcription.delta` events, then `.completed` (the
//! item then carries its transcript) or `.failed`.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::events::Events;
use super::session::{Part, Session, Transcription};
use super::{AppState, ChannelSink};
use crate::engine::generate::GenerateParams;
use crate::engine::media::MediaItem;
use crate::engine::processor::{build_prompt, PromptOptions};
use crate::engine::sampling::SamplingParams;
use crate::engine::service::{Job, JobEvent};

/// Text pieces buffered between the engine and the session for one transcript.
const TRANSCRIPT_QUEUE: usize = 64;

/// Transcript tokens allowed: a fixed allowance plus a generous rate per second of speech
/// (people speak about 3 words a second).
const BASE_TOKENS: usize = 32;
const TOKENS_PER_SECOND: usize = 12;

/// A transcription in flight.
pub(super) struct Transcribing {
    pub item_id: String,
    pub rx: mpsc::Receiver<JobEvent>,
    text: String,
}

/// What the model is asked (the language and the client's prompt, when given, guide it).
fn instruction(t: &Transcription) -> String {
    let mut s = String::from("Transcribe the audio into text, word for word.");
    if let Some(l) = &t.language {
        s.push_str(&format!(" The language is {l}."));
    }
    if let Some(p) = &t.prompt {
        s.push_str(&format!(" Context: {p}"));
    }
    s
}

/// Starts transcribing `item_id`; `Err` is the failure to report for it.
pub(super) async fn start(session: &Session, item_id: &str, state: &Arc<AppState>) -> Result<Transcribing, String> {
    let cfg = session.transcription.clone().ok_or("transcription is off")?;
    let audio = session
        .items
        .iter()
        .find(|i| i.id == item_id)
        .and_then(|i| {
            i.parts.iter().find_map(|p| match p {
                Part::Audio(a) => Some(a.clone()),
                _ => None,
            })
        })
        .ok_or("the item has no audio (it was deleted?)")?;
    let seconds = audio.len() / 16_000 + 1;
    let max_new_tokens = (BASE_TOKENS + TOKENS_PER_SECOND * seconds).min(state.limits.max_tokens);
    let messages = serde_json::json!([{"role": "user", "content": [
        {"type": "audio", "audio": item_id}, {"type": "text", "text": instruction(&cfg)}]}]);
    let st = state.clone();
    let inputs = tokio::task::spawn_blocking(move || {
        let opts =
            PromptOptions { add_generation_prompt: true, use_audio_in_video: false, template_vars: Default::default() };
        build_prompt(&st.model, &messages, &[MediaItem::Audio(audio)], &opts)
            .map(|b| b.inputs)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    let params = GenerateParams {
        // A transcript is the most likely text, not a sample.
        sampling: SamplingParams::default(),
        max_new_tokens,
        stop_ids: state.model.stop_ids(),
    };
    let (tx, rx) = mpsc::channel(TRANSCRIPT_QUEUE);
    let job = Job { inputs, params, speech: None, sink: Box::new(ChannelSink(tx)), received: Instant::now() };
    state.engine.submit(job).map_err(|e| e.to_string())?;
    Ok(Transcribing { item_id: item_id.to_string(), rx, text: String::new() })
}

/// The `.failed` event for an item.
pub(super) fn failed(item_id: &str, message: &str, ev: &mut Events) -> String {
    ev.make(
        "conversation.item.input_audio_transcription.failed",
        serde_json::json!({"item_id": item_id, "content_index": 0,
            "error": {"type": "transcription_error", "code": null, "message": message, "param": null}}),
    )
}

/// One engine event of the transcription → server events; `true` once it has ended.
pub(super) fn on_event(
    t: &mut Transcribing,
    event: Option<JobEvent>,
    session: &mut Session,
    ev: &mut Events,
) -> (Vec<String>, bool) {
    match event {
        Some(JobEvent::Text(piece)) => {
            t.text.push_str(&piece);
            let delta = ev.make(
                "conversation.item.input_audio_transcription.delta",
                serde_json::json!({"item_id": t.item_id, "content_index": 0, "delta": piece}),
            );
            (vec![delta], false)
        }
        Some(JobEvent::Audio(_)) => (vec![], false),
        Some(JobEvent::Done(s)) => {
            if let Some(item) = session.items.iter_mut().find(|i| i.id == t.item_id) {
                item.transcript = Some(t.text.clone());
            }
            let done = ev.make(
                "conversation.item.input_audio_transcription.completed",
                serde_json::json!({"item_id": t.item_id, "content_index": 0, "transcript": t.text,
                    "usage": {"type": "tokens", "input_tokens": s.prompt_tokens, "output_tokens": s.completion_tokens,
                              "total_tokens": s.prompt_tokens + s.completion_tokens}}),
            );
            (vec![done], true)
        }
        Some(JobEvent::Failed(m)) => (vec![failed(&t.item_id, &m, ev)], true),
        None => (vec![failed(&t.item_id, "the engine dropped the transcription", ev)], true),
    }
}
