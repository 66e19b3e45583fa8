//! The engine thread's loop: continuous batching of decode steps across answers.
//!
//! Each round: admit at most one waiting job (its media encoders), run one chunk of the oldest
//! pending prompt pass ([`PREFILL_CHUNK`] rows), let every running answer choose
//! its next token and hand it on (text to the client's outbox, or to the answer's speech
//! threads), then run one decode step for all answers that chose a token, as one batch. An
//! answer whose client is behind sits out until it catches up; one whose client is gone stops.
//!
//! Faults stay with their answer: a failing prompt pass fails that job; a failing batched step
//! is rolled back and retried per answer, so only the answer at fault fails; a panic in model
//! code is caught and fails the answers of that step instead of the engine.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::outbox::{Flow, Outbox};
use super::speech_job::{self, SpeechFeed};
use super::{BatchJob, Job, JobEvent, JobSummary};
use crate::engine::error_message::{candle_message, client_message};
use crate::engine::generate::{decode_step, GenerateParams, Sequence, StopReason};
use crate::engine::model_dir::LoadedModel;
use crate::engine::speech::ThinkerFeed;
use crate::metrics::{JobOutcome, Metrics};
use crate::models::multimodal::MultimodalInputs;
use crate::prompt::tokenizer::StreamDecoder;

/// How long a client may leave its answer's events untaken before the answer is dropped: long
/// enough for any network hiccup, short enough that a client that never reads frees its slot.
pub const STALL_LIMIT: Duration = Duration::from_secs(30);

/// Prompt rows one round runs for an answer in its prompt pass: a long prompt (a picture, a
/// minute of audio) is interleaved with the running answers' decode steps instead of holding
/// them up for its whole pass. 512 rows keep a round's extra time to one short pass.
pub const PREFILL_CHUNK: usize = 512;

/// Pause of a round in which nothing could move (every client behind, or speech slots full):
/// short against an 80 ms audio frame, long enough not to spin a core.
const IDLE_POLL: Duration = Duration::from_millis(5);

/// How long an idle engine waits for an interactive job before it looks at the batch queue:
/// interactive jobs still wake it at once; a batch job waits at most this long to start.
const BATCH_POLL: Duration = Duration::from_millis(20);

pub(super) struct Scheduler {
    lm: Arc<LoadedModel>,
    max_batch: usize,
    metrics: Arc<Metrics>,
}

/// One answer being generated.
struct Running<'lm> {
    seq: Sequence,
    route: Route<'lm>,
    /// Time from arrival to admission.
    queued_s: f64,
    failure: Option<String>,
    /// A batch job's answer (video-job window): it yields to interactive ones.
    batch: bool,
    /// A batch job's cancel flag (its submitter stopped listening).
    cancelled: Option<Arc<AtomicBool>>,
}

/// Where an answer's tokens go.
enum Route<'lm> {
    Text { decoder: StreamDecoder<'lm>, outbox: Outbox },
    Speech(SpeechFeed),
}

/// The loop's state; borrows the model (text decoders borrow its tokenizer).
struct Batch<'lm> {
    /// The model (spoken answers' threads hold a share of it).
    lm: &'lm Arc<LoadedModel>,
    max_batch: usize,
    metrics: &'lm Arc<Metrics>,
    running: Vec<Running<'lm>>,
    /// Ended text answers whose last events the client has not taken yet.
    draining: Vec<Outbox>,
    speech_threads: Vec<JoinHandle<()>>,
}

impl Scheduler {
    pub(super) fn new(lm: Arc<LoadedModel>, max_batch: usize, metrics: Arc<Metrics>) -> Self {
        Self { lm, max_batch, metrics }
    }

    /// Serves jobs until both queues close and every accepted job has ended.
    pub(super) fn run(self, rx: Receiver<Job>, batch_rx: Receiver<BatchJob>, waiting: &AtomicUsize) {
        let mut b = Batch {
            lm: &self.lm,
            max_batch: self.max_batch,
            metrics: &self.metrics,
            running: Vec::new(),
            draining: Vec::new(),
            speech_threads: Vec::new(),
        };
        // A job taken from the queue that waits for a free speech slot (it still counts as
        // waiting). Jobs are only taken when the batch has room, so the queue's bound holds.
        let mut held: Option<Job> = None;
        let mut open = true;
        let mut batch_open = true;
        loop {
            b.speech_threads.retain(|t| !t.is_finished());
            if held.is_none() && open && b.running.len() < b.max_batch {
                let idle = b.running.is_empty() && b.draining.is_empty();
                let taken = if idle && !batch_open {
                    rx.recv().map_err(|_| TryRecvError::Disconnected)
                } else if idle {
                    rx.recv_timeout(BATCH_POLL).map_err(|e| match e {
                        RecvTimeoutError::Timeout => TryRecvError::Empty,
                        RecvTimeoutError::Disconnected => TryRecvError::Disconnected,
                    })
                } else {
                    rx.try_recv()
                };
                match taken {
                    Ok(job) => held = Some(job),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            if let Some(job) = held.take() {
                if b.has_room(&job) {
                    waiting.fetch_sub(1, Ordering::Relaxed);
                    b.admit(job);
                } else {
                    held = Some(job);
                }
            }
            // Batch work only when no interactive job waits and batch answers hold under half
            // the slots, so an interactive job always finds room.
            if batch_open && held.is_none() && waiting.load(Ordering::Relaxed) == 0 && b.batch_has_room() {
                match batch_rx.try_recv() {
                    Ok(job) => b.admit_batch(job),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => batch_open = false,
                }
            }
            b.metrics.set_running(b.running.len());
            if !open && !batch_open && held.is_none() && b.running.is_empty() && b.draining.is_empty() {
                break;
            }
            if !b.round() {
                std::thread::sleep(IDLE_POLL);
            }
        }
        b.metrics.set_running(0);
        for t in b.speech_threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Model code behind a wall: an error or a panic becomes a message for the client.
fn guarded<T>(f: impl FnOnce() -> candle_core::Result<T>) -> Result<T, Fault> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Fault { message: candle_message(&e), panicked: false }),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            tracing::error!(what, "panic in model code");
            Err(Fault { message: format!("internal error in the engine (a bug): {what}"), panicked: true })
        }
    }
}

struct Fault {
    message: String,
    panicked: bool,
}

impl<'lm> Batch<'lm> {
    fn has_room(&self, job: &Job) -> bool {
        self.running.len() < self.max_batch && (job.speech.is_none() || self.speech_threads.len() < self.max_batch)
    }

    /// Room for one more batch answer: at most half the slots go to batch work, and never the
    /// last free one, so an interactive request always finds a slot (with `max_batch` 1 the one
    /// slot is shared: a batch answer runs only when nothing else does).
    fn batch_has_room(&self) -> bool {
        let batch = self.running.iter().filter(|r| r.batch).count();
        if self.max_batch == 1 {
            return self.running.is_empty();
        }
        self.running.len() + 1 < self.max_batch && batch < self.max_batch / 2
    }

    /// Starts a batch job (its prompt already merged); it joins the decode steps once its
    /// prompt pass has run.
    fn admit_batch(&mut self, job: BatchJob) {
        if job.cancelled.load(Ordering::Relaxed) {
            return; // its submitter is gone: nobody reads the answer
        }
        let queued_s = job.received.elapsed().as_secs_f64();
        let prompt_tokens = job.inputs.ids.len();
        let started =
            guarded(|| Sequence::start_prepared(&self.lm.model, &job.inputs, job.prepared, &job.params, None))
                .map_err(|f| f.message);
        self.start_text(Outbox::new(job.sink), started, prompt_tokens, queued_s, Some(job.cancelled));
    }

    /// A text answer joins the batch, or fails at once. `cancelled`: a batch job's flag.
    fn start_text(
        &mut self,
        mut outbox: Outbox,
        started: Result<Sequence, String>,
        prompt_tokens: usize,
        queued_s: f64,
        cancelled: Option<Arc<AtomicBool>>,
    ) {
        match started {
            Ok(seq) => {
                let decoder = StreamDecoder::new(&self.lm.tokenizer);
                let route = Route::Text { decoder, outbox };
                let batch = cancelled.is_some();
                self.running.push(Running { seq, route, queued_s, failure: None, batch, cancelled });
            }
            Err(message) => {
                self.metrics.job(JobOutcome::Failed, prompt_tokens, 0);
                self.finish_outbox(outbox.send(JobEvent::Failed(message)), outbox);
            }
        }
    }

    /// Starts a job: its prompt pass, then it joins the decode steps.
    fn admit(&mut self, job: Job) {
        let queued_s = job.received.elapsed().as_secs_f64();
        let _span = tracing::debug_span!("engine.admit", prompt_tokens = job.inputs.ids.len()).entered();
        let Some(opts) = &job.speech else {
            let started = self.start(&job.inputs, &job.params, None);
            self.start_text(Outbox::new(job.sink), started, job.inputs.ids.len(), queued_s, None);
            return;
        };
        let accept = match speech_job::check(self.lm, opts) {
            Ok(layer) => layer,
            Err(e) => {
                self.metrics.job(JobOutcome::Failed, job.inputs.ids.len(), 0);
                let mut outbox = Outbox::new(job.sink);
                self.finish_outbox(outbox.send(JobEvent::Failed(client_message(&e))), outbox);
                return;
            }
        };
        let (inputs, params) = (job.inputs.clone(), job.params.clone());
        let (feed, thread) = match speech_job::start(self.lm.clone(), job, self.metrics.clone()) {
            Ok(started) => started,
            Err(e) => {
                // The job (and its sink) went with the closure; its client sees the stream end.
                tracing::error!(error = %e, "cannot start the threads of a spoken answer");
                return;
            }
        };
        self.speech_threads.push(thread);
        match self.start(&inputs, &params, Some(accept)) {
            Ok(seq) => {
                let route = Route::Speech(feed);
                self.running.push(Running { seq, route, queued_s, failure: None, batch: false, cancelled: None })
            }
            Err(message) => {
                let _ = feed.tx.try_send(ThinkerFeed::Done(Err(message)));
            }
        }
    }

    /// Checks a job and merges its prompt (the media encoders run here); the decoder's prompt
    /// pass follows in chunks, one per round ([`Batch::prefill_chunk`]).
    fn start(
        &self,
        inputs: &MultimodalInputs,
        params: &GenerateParams,
        capture: Option<usize>,
    ) -> Result<Sequence, String> {
        guarded(|| Sequence::start(&self.lm.model, inputs, params, capture)).map_err(|f| f.message)
    }

    /// Runs the next [`PREFILL_CHUNK`] prompt rows of the oldest answer still in its prompt
    /// pass, interactive answers before batch ones; `false` when none is. A spoken answer's
    /// talker gets the captured thinker states once the pass is complete.
    fn prefill_chunk(&mut self) -> bool {
        let lm = self.lm;
        let prefilling = |r: &Running| r.failure.is_none() && r.seq.stop_reason().is_none() && r.seq.is_prefilling();
        let next = self
            .running
            .iter()
            .position(|r| !r.batch && prefilling(r))
            .or_else(|| self.running.iter().position(prefilling));
        let Some(r) = next.map(|i| &mut self.running[i]) else {
            return false;
        };
        match guarded(|| r.seq.prefill_chunk(&lm.model, PREFILL_CHUNK)) {
            Ok(None) => {}
            Ok(Some(captured)) => {
                if let Route::Speech(feed) = &r.route {
                    match captured {
                        Some(hidden) => {
                            if feed.tx.try_send(ThinkerFeed::Prompt(hidden)).is_err() {
                                r.seq.cancel(); // its speech threads are gone
                            }
                        }
                        None => r.failure = Some("the talker's thinker states were not captured (a bug)".into()),
                    }
                }
            }
            Err(f) => r.failure = Some(f.message),
        }
        true
    }

    /// One round; `false` when nothing could move.
    fn round(&mut self) -> bool {
        for r in &mut self.running {
            if r.cancelled.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) && r.seq.stop_reason().is_none() {
                r.seq.cancel();
            }
        }
        let mut moved = self.prefill_chunk();
        for r in &mut self.running {
            moved |= r.advance();
        }
        let stepping: Vec<&mut Running> =
            self.running.iter_mut().filter(|r| r.failure.is_none() && r.seq.wants_step()).collect();
        if !stepping.is_empty() {
            self.metrics.decode_step(stepping.len());
            step(self.lm, stepping);
            moved = true;
        }
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].failure.is_some() || self.running[i].seq.stop_reason().is_some() {
                let r = self.running.remove(i);
                self.retire(r);
                moved = true;
            } else {
                i += 1;
            }
        }
        self.draining.retain_mut(|o| matches!(o.flush(), Flow::Behind(d) if d < STALL_LIMIT));
        moved
    }

    /// An answer has ended: its last events, its metrics.
    fn retire(&mut self, r: Running<'lm>) {
        let Running { seq, route, queued_s, failure, .. } = r;
        let (prompt_tokens, generated) = seq.token_counts();
        let outcome = match failure {
            Some(message) => Err(message),
            None => Ok(seq.finish()),
        };
        if let Ok(g) = &outcome {
            if !g.token_ids.is_empty() {
                self.metrics.first_token.observe(queued_s + g.first_token_ms / 1e3);
            }
        }
        match route {
            Route::Speech(feed) => {
                let _ = feed.tx.try_send(ThinkerFeed::Done(outcome));
            }
            Route::Text { mut decoder, mut outbox } => {
                let last = match outcome.and_then(|g| decoder.finish().map(|rest| (g, rest)).map_err(|e| e.to_string()))
                {
                    Ok((g, rest)) => {
                        if let Some(rest) = rest {
                            outbox.send(JobEvent::Text(rest));
                        }
                        let cancelled = g.stop_reason == StopReason::Cancelled;
                        self.metrics.job(
                            if cancelled { JobOutcome::Cancelled } else { JobOutcome::Completed },
                            g.prompt_tokens,
                            g.token_ids.len(),
                        );
                        JobEvent::Done(JobSummary {
                            prompt_tokens: g.prompt_tokens,
                            completion_tokens: g.token_ids.len(),
                            stop: g.stop_reason,
                            speech: None,
                        })
                    }
                    Err(message) => {
                        self.metrics.job(JobOutcome::Failed, prompt_tokens, generated);
                        JobEvent::Failed(message)
                    }
                };
                let flow = outbox.send(last);
                self.finish_outbox(flow, outbox);
            }
        }
    }

    /// Keeps an ended answer's outbox while the client still has events to take.
    fn finish_outbox(&mut self, flow: Flow, outbox: Outbox) {
        if matches!(flow, Flow::Behind(_)) {
            self.draining.push(outbox);
        }
    }
}

impl Running<'_> {
    /// Chooses the next token and hands it on; `false` when this answer could not move.
    fn advance(&mut self) -> bool {
        if self.failure.is_some() || self.seq.stop_reason().is_some() {
            return false;
        }
        match &mut self.route {
            Route::Text { decoder, outbox } => {
                match outbox.flush() {
                    Flow::Open => {}
                    Flow::Gone => {
                        self.seq.cancel();
                        return true;
                    }
                    Flow::Behind(d) if d >= STALL_LIMIT => {
                        tracing::warn!(stalled_s = d.as_secs(), "a client stopped reading its answer; dropping it");
                        self.seq.cancel();
                        return true;
                    }
                    Flow::Behind(_) => return false,
                }
                let Some(id) = self.seq.next_token() else { return false };
                match decoder.push(id) {
                    Ok(Some(chunk)) => {
                        if outbox.send(JobEvent::Text(chunk)) == Flow::Gone {
                            self.seq.cancel();
                        }
                    }
                    Ok(None) => {}
                    Err(e) => self.failure = Some(e.to_string()),
                }
                true
            }
            Route::Speech(feed) => {
                if feed.cancel.load(Ordering::Relaxed) {
                    self.seq.cancel();
                    return true;
                }
                let Some(id) = self.seq.next_token() else { return false };
                if feed.tx.try_send(ThinkerFeed::Token(id)).is_err() {
                    self.seq.cancel();
                }
                true
            }
        }
    }
}

/// One batched decode step; on an error each answer is retried alone so only the one at fault
/// fails (the step rolled every cache back). After a panic the caches cannot be trusted, so
/// every answer of the step fails.
fn step(lm: &LoadedModel, mut rows: Vec<&mut Running>) {
    let result = {
        let mut seqs: Vec<&mut Sequence> = rows.iter_mut().map(|r| &mut r.seq).collect();
        guarded(|| decode_step(&lm.model, &mut seqs))
    };
    match result {
        Ok(()) => {}
        Err(f) if f.panicked || rows.len() == 1 => rows.iter_mut().for_each(|r| r.failure = Some(f.message.clone())),
        Err(_) => {
            for r in rows {
                if let Err(f) = guarded(|| decode_step(&lm.model, &mut [&mut r.seq])) {
                    r.failure = Some(f.message);
                }
            }
        }
    }
}
