//! The engine service: the loaded model on one named OS thread, fed by a bounded queue of jobs,
//! each answering through its own event sink. Request threads (the server's async workers and
//! blocking pool) do all parsing, decoding and preprocessing; this thread only generates.
//!
//! Scheduling ([`scheduler`]): up to `max_batch` answers run at once. Between two decode steps
//! the engine admits at most one new job (its media encoders) and runs one chunk of at most
//! [`scheduler::PREFILL_CHUNK`] rows of a pending prompt pass, then moves every running answer by
//! one token in a single batched decode step, so neither a long answer nor a long prompt holds
//! the others up, and each weight matrix is read once per step for all of them (continuous
//! batching). Jobs are
//! admitted in arrival order. A spoken answer's talker and Code2Wav run on threads of their
//! own per answer ([`speech_job`]), fed by the batched thinker.
//!
//! Admission control: the queue holds at most `queue_capacity` waiting jobs; beyond that
//! [`EngineService::submit`] answers [`SubmitError::Overloaded`] at once (HTTP 429) instead of
//! queueing without bound. The engine never waits for a client: events go out with
//! [`EventSink::try_send`], an answer whose client is behind sits out the decode steps until it
//! catches up (and is dropped after [`scheduler::STALL_LIMIT`]), one whose client is gone stops.
//! Dropping the service closes the queue, lets every accepted job finish and joins the threads.
//!
//! Batch work (video-job windows) comes through a second, small queue
//! ([`EngineService::submit_batch`]) with its prompt already merged by the submitting thread, so
//! the engine thread never runs a window's vision encoder. Interactive jobs go first: a batch job
//! is admitted only when no interactive one waits and a batch slot is free (batch answers hold at
//! most half the slots, and never the last free one: one is always left for an interactive
//! request, except with `max_batch` 1), and an interactive prompt pass runs before a batch one.

mod outbox;
mod scheduler;
mod speech_job;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use super::generate::{GenerateParams, StopReason};
use super::model_dir::LoadedModel;
use super::speech::{SpeechOptions, SpeechReport};
use crate::metrics::Metrics;
use crate::models::multimodal::{MultimodalInputs, PreparedPrompt};

/// Where a job's events go.
pub trait EventSink: Send {
    /// Hands `event` over without waiting (the engine thread serves every client and must never
    /// block on one).
    fn try_send(&mut self, event: JobEvent) -> Delivery;
    /// Waits until the receiver takes `event`; `false` once nobody listens. Only threads that
    /// serve a single job (a spoken answer's) call this: the wait is that job's backpressure.
    fn send(&mut self, event: JobEvent) -> bool;
}

/// Events into a bounded std channel, read by a thread that serves one job (a video job's
/// worker; tests).
pub struct StdSink(pub SyncSender<JobEvent>);

impl EventSink for StdSink {
    fn try_send(&mut self, event: JobEvent) -> Delivery {
        match self.0.try_send(event) {
            Ok(()) => Delivery::Sent,
            Err(TrySendError::Full(e)) => Delivery::Full(e),
            Err(TrySendError::Disconnected(_)) => Delivery::Gone,
        }
    }

    fn send(&mut self, event: JobEvent) -> bool {
        self.0.send(event).is_ok()
    }
}

/// What became of an event handed to [`EventSink::try_send`].
#[derive(Debug)]
pub enum Delivery {
    Sent,
    /// The receiver is behind; the event is given back.
    Full(JobEvent),
    /// Nobody listens any more (the client left or cancelled).
    Gone,
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

/// A batch job: a text answer whose prompt was merged (encoders run) by the submitter.
pub struct BatchJob {
    pub inputs: MultimodalInputs,
    /// `model.prepare(&inputs)`.
    pub prepared: PreparedPrompt,
    pub params: GenerateParams,
    pub sink: Box<dyn EventSink>,
    pub received: Instant,
    /// Set by the submitter to drop the job: checked at admission and every round, so a
    /// cancelled window neither waits for its turn nor finishes its prompt pass.
    pub cancelled: Arc<AtomicBool>,
}

/// Batch jobs waiting for the engine: each video-job worker has at most one window in flight,
/// and workers are capped at this many.
pub const BATCH_QUEUE: usize = 8;

/// Why a job was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the server is busy: {queued} requests are already waiting; retry later")]
    Overloaded { queued: usize },
    #[error("the engine has stopped")]
    Stopped,
}

/// How much the engine takes on.
#[derive(Debug, Clone, Copy)]
pub struct ServiceLimits {
    /// Jobs waiting behind the running ones before new ones are refused.
    pub queue_capacity: usize,
    /// Answers generated at once (rows of a decode step; also the most spoken answers whose
    /// talker threads run at once).
    pub max_batch: usize,
}

/// Handle to the engine thread.
pub struct EngineService {
    tx: Option<SyncSender<Job>>,
    batch_tx: Option<SyncSender<BatchJob>>,
    thread: Option<JoinHandle<()>>,
    waiting: Arc<AtomicUsize>,
}

impl EngineService {
    /// Starts the engine thread over `lm`.
    pub fn start(lm: Arc<LoadedModel>, limits: ServiceLimits, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        if limits.queue_capacity == 0 || limits.max_batch == 0 {
            return Err(std::io::Error::other("the engine needs a queue capacity and a batch size of at least 1"));
        }
        let (tx, rx) = sync_channel::<Job>(limits.queue_capacity);
        let (batch_tx, batch_rx) = sync_channel::<BatchJob>(BATCH_QUEUE);
        let waiting = Arc::new(AtomicUsize::new(0));
        let count = waiting.clone();
        let thread = std::thread::Builder::new()
            .name("omnid-engine".into())
            .spawn(move || scheduler::Scheduler::new(lm, limits.max_batch, metrics).run(rx, batch_rx, &count))?;
        Ok(Self { tx: Some(tx), batch_tx: Some(batch_tx), thread: Some(thread), waiting })
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

    /// Queues a batch job behind every interactive one. It waits while the batch queue is full:
    /// only omnid's video-job workers and OCR requests submit batch work, one question each, at
    /// most [`BATCH_QUEUE`] of each kind, and cancelled questions leave the queue at once, so a
    /// wait lasts until the engine takes one (it takes batch work whenever no interactive
    /// request waits).
    pub fn submit_batch(&self, job: BatchJob) -> Result<(), SubmitError> {
        let tx = self.batch_tx.as_ref().ok_or(SubmitError::Stopped)?;
        tx.send(job).map_err(|_| SubmitError::Stopped)
    }

    /// Jobs waiting to be admitted.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

impl Drop for EngineService {
    fn drop(&mut self) {
        self.tx.take();
        self.batch_tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
