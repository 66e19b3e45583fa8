//! The engine service: the loaded model on one named OS thread, fed by a bounded queue of jobs,
//! each answering through its own event sink. Request threads (the server's async workers and
//! blocking pool) do all parsing, decoding and preprocessing; this thread only generates.
//!
//! Admission control: the queue holds at most `queue_capacity` waiting jobs; beyond that
//! [`EngineService::submit`] answers [`SubmitError::Overloaded`] at once (HTTP 429) instead of
//! queueing without bound. Jobs run one at a time, in arrival order (batching decode steps
//! across requests is not built yet). A job whose sink reports its receiver gone (the client
//! left) stops at its next token. Dropping the service closes the queue and joins the thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::ask::generate_text;
use super::generate::{GenerateParams, StopReason};
use super::model_dir::LoadedModel;
use super::speech::{respond_spoken, ResponseEvent, SpeechOptions, SpeechReport};
use crate::metrics::{JobOutcome, Metrics};
use crate::models::multimodal::MultimodalInputs;

/// Where a job's events go. `send` returns `false` once nobody listens (the job then stops).
pub trait EventSink: Send {
    fn send(&mut self, event: JobEvent) -> bool;
}

/// What a job produces, in order: text and audio as they come, then exactly one `Done` or
/// `Failed`.
#[derive(Debug, Clone)]
pub enum JobEvent {
    Text(String),
    /// 24 kHz mono samples in [−1, 1].
    Audio(Vec<f32>),
    Done(JobSummary),
    Failed(String),
}

/// The end of a job.
#[derive(Debug, Clone)]
pub struct JobSummary {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub stop: StopReason,
    pub speech: Option<SpeechReport>,
}

/// One generation request, validated and preprocessed.
pub struct Job {
    pub inputs: MultimodalInputs,
    pub params: GenerateParams,
    /// Speak the answer too.
    pub speech: Option<SpeechOptions>,
    pub sink: Box<dyn EventSink>,
    /// When the request arrived (latencies are measured from here).
    pub received: Instant,
}

/// Why a job was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the server is busy: {queued} requests are already waiting; retry later")]
    Overloaded { queued: usize },
    #[error("the engine has stopped")]
    Stopped,
}

/// Handle to the engine thread.
pub struct EngineService {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
    waiting: Arc<AtomicUsize>,
}

impl EngineService {
    /// Starts the engine thread over `lm`; at most `queue_capacity` jobs wait behind the running one.
    pub fn start(lm: Arc<LoadedModel>, queue_capacity: usize, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(queue_capacity);
        let waiting = Arc::new(AtomicUsize::new(0));
        let count = waiting.clone();
        let thread = std::thread::Builder::new().name("omnid-engine".into()).spawn(move || {
            for job in rx.iter() {
                count.fetch_sub(1, Ordering::Relaxed);
                run_job(&lm, job, &metrics);
            }
        })?;
        Ok(Self { tx: Some(tx), thread: Some(thread), waiting })
    }

    /// Queues a job, or refuses it at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let tx = self.tx.as_ref().ok_or(SubmitError::Stopped)?;
        self.waiting.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                let queued = self.waiting.fetch_sub(1, Ordering::Relaxed) - 1;
                Err(match e {
                    TrySendError::Full(_) => SubmitError::Overloaded { queued },
                    TrySendError::Disconnected(_) => SubmitError::Stopped,
                })
            }
        }
    }

    /// Jobs waiting behind the running one.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

impl Drop for EngineService {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run_job(lm: &LoadedModel, mut job: Job, metrics: &Metrics) {
    let _span = tracing::debug_span!("engine.job", prompt_tokens = job.inputs.ids.len()).entered();
    // Time spent waiting in the queue counts towards the latencies clients see.
    let queued_s = job.received.elapsed().as_secs_f64();
    let sink = &mut job.sink;
    let result = match &job.speech {
        Some(opts) => respond_spoken(lm, &job.inputs, &job.params, opts, job.received, |ev| match ev {
            ResponseEvent::Text(t) => sink.send(JobEvent::Text(t)),
            ResponseEvent::Audio(a) => sink.send(JobEvent::Audio(a)),
        })
        .map(|a| (a.generation, Some(a.speech))),
        None => generate_text(lm, &job.inputs, &job.params, |t| sink.send(JobEvent::Text(t.to_string())))
            .map(|a| (a.generation, None)),
    };
    match &result {
        Ok((g, speech)) => {
            let outcome =
                if g.stop_reason == StopReason::Cancelled { JobOutcome::Cancelled } else { JobOutcome::Completed };
            metrics.job(outcome, g.prompt_tokens, g.token_ids.len());
            if !g.token_ids.is_empty() {
                metrics.first_token.observe(queued_s + g.first_token_ms / 1e3);
            }
            if let Some(ms) = speech.as_ref().and_then(|s| s.first_audio_ms) {
                metrics.first_audio.observe(ms / 1e3);
            }
        }
        Err(_) => metrics.job(JobOutcome::Failed, job.inputs.ids.len(), 0),
    }
    let last = match result {
        Ok((g, speech)) => JobEvent::Done(JobSummary {
            prompt_tokens: g.prompt_tokens,
            completion_tokens: g.token_ids.len(),
            stop: g.stop_reason,
            speech,
        }),
        Err(e) => JobEvent::Failed(format!("{e:#}")),
    };
    job.sink.send(last);
}
