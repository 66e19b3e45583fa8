//! A spoken answer in the service. The thinker's side runs in the engine's batched decode loop
//! like any answer; the talker, its code predictor and Code2Wav run on threads of this answer
//! alone ([`respond_spoken`] fed by the engine), so they keep their pace whatever else the
//! engine does, and only this answer waits when its client is slow to take the audio.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Job, JobEvent, JobSummary};
use crate::engine::error_message::client_message;
use crate::engine::generate::StopReason;
use crate::engine::model_dir::LoadedModel;
use crate::engine::speech::{check_speech, respond_spoken, ResponseEvent, SpeechOptions, ThinkerFeed, ThinkerSource};
use crate::metrics::{JobOutcome, Metrics};

/// The engine's end of a spoken answer.
pub(super) struct SpeechFeed {
    /// Sized for the prompt pass, every token of the budget and `Done`: never full.
    pub tx: SyncSender<ThinkerFeed>,
    /// Raised by the answer's threads when it must stop (client gone, a stage failed).
    pub cancel: Arc<AtomicBool>,
}

/// Checks that the model can speak with `opts`, before any work; returns the thinker layer the
/// talker reads (`accept_hidden_layer`).
pub(super) fn check(lm: &LoadedModel, opts: &SpeechOptions) -> anyhow::Result<usize> {
    let (_, speech, _) = check_speech(lm, opts)?;
    Ok(speech.talker.config().accept_hidden_layer)
}

/// Starts the answer's threads; they deliver text, audio and the final `Done`/`Failed` to the
/// job's sink and record the job's metrics.
pub(super) fn start(
    lm: Arc<LoadedModel>,
    job: Job,
    metrics: Arc<Metrics>,
) -> std::io::Result<(SpeechFeed, JoinHandle<()>)> {
    let (tx, feed) = sync_channel(job.params.max_new_tokens + 2);
    let cancel = Arc::new(AtomicBool::new(false));
    let source = ThinkerSource::Fed { feed, cancel: cancel.clone() };
    let thread = std::thread::Builder::new().name("omnid-speech-job".into()).spawn(move || {
        let Job { inputs, params, speech, mut sink, received } = job;
        let opts = speech.expect("only spoken answers start a speech job; this is a bug");
        let result = respond_spoken(&lm, &inputs, &params, &opts, received, source, |ev| {
            sink.send(match ev {
                ResponseEvent::Text(t) => JobEvent::Text(t),
                ResponseEvent::Audio(a) => JobEvent::Audio(a),
            })
        });
        let last = match result {
            Ok(answer) => {
                let g = &answer.generation;
                let cancelled = g.stop_reason == StopReason::Cancelled;
                metrics.job(
                    if cancelled { JobOutcome::Cancelled } else { JobOutcome::Completed },
                    g.prompt_tokens,
                    g.token_ids.len(),
                );
                if let Some(ms) = answer.speech.first_audio_ms {
                    metrics.first_audio.observe(ms / 1e3);
                }
                JobEvent::Done(JobSummary {
                    prompt_tokens: g.prompt_tokens,
                    completion_tokens: g.token_ids.len(),
                    stop: g.stop_reason,
                    speech: Some(answer.speech),
                })
            }
            Err(e) => {
                metrics.job(JobOutcome::Failed, inputs.ids.len(), 0);
                JobEvent::Failed(client_message(&e))
            }
        };
        sink.send(last);
    })?;
    Ok((SpeechFeed { tx, cancel }, thread))
}
