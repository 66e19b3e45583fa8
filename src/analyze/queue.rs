//! The daemon's video jobs: accepted jobs go into the store first (so nothing accepted is lost),
//! then to a bounded in-memory line that a fixed number of worker threads take from. On start,
//! every job the store still has queued or running (the daemon was stopped or killed) is put
//! back in line, and its finished windows are kept. Cancelling stops a running job within one
//! poll of its worker (50 ms) once the window's encoders have run; stopping the daemon leaves
//! running jobs queued for the next start.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::model::WindowModel;
use super::runner::{run_job, Progress, RunEnd, Stops};
use super::spec::JobSpec;
use super::store::{JobState, Store, StoreError};
use crate::engine::service::BATCH_QUEUE;

/// How much the queue takes on.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Jobs run at once (each has one window at the engine at a time).
    pub workers: usize,
    /// Jobs waiting to start; more are refused (the client retries later).
    pub max_waiting: usize,
}

/// Why the queue refused.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{0}")]
    Invalid(String),
    #[error("{waiting} video jobs are already waiting; retry later")]
    Busy { waiting: usize },
    #[error("no job {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It had not started.
    Waiting,
    /// It is stopping (its worker looks every 50 ms; a window's encoder pass runs to its end).
    Running,
    /// It had already ended (done, failed or cancelled): nothing to stop.
    AlreadyEnded(JobState),
}

/// The job workers.
pub struct JobQueue {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

struct Shared {
    store: Arc<Store>,
    model: Arc<dyn WindowModel>,
    waiting: Mutex<VecDeque<String>>,
    wake: Condvar,
    running: Mutex<HashMap<String, Arc<Flags>>>,
    shutdown: AtomicBool,
    max_waiting: usize,
}

#[derive(Default)]
struct Flags {
    stop: AtomicBool,
    cancel: AtomicBool,
}

impl JobQueue {
    /// Starts the workers; jobs the store has unfinished are resumed first, oldest first.
    pub fn start(store: Arc<Store>, model: Arc<dyn WindowModel>, limits: QueueLimits) -> Result<Self, QueueError> {
        if limits.workers == 0 || limits.workers > BATCH_QUEUE {
            return Err(QueueError::Invalid(format!(
                "job workers: between 1 and {BATCH_QUEUE} (got {})",
                limits.workers
            )));
        }
        let resumed: VecDeque<String> = store.unfinished()?.into();
        if !resumed.is_empty() {
            tracing::info!(jobs = resumed.len(), "resuming video jobs");
        }
        let shared = Arc::new(Shared {
            store,
            model,
            waiting: Mutex::new(resumed),
            wake: Condvar::new(),
            running: Mutex::new(HashMap::new()),
            shutdown: AtomicBool::new(false),
            max_waiting: limits.max_waiting,
        });
        let mut workers = Vec::with_capacity(limits.workers);
        for i in 0..limits.workers {
            let s = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("omnid-job-{i}"))
                .spawn(move || s.work())
                .map_err(|e| QueueError::Invalid(format!("cannot start a job worker: {e}")))?;
            workers.push(t);
        }
        Ok(Self { shared, workers })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.shared.store
    }

    /// Checks and stores a job, then queues it; returns its id.
    pub fn submit(&self, spec: &JobSpec) -> Result<String, QueueError> {
        spec.validate().map_err(QueueError::Invalid)?;
        let mut waiting = self.shared.lock_waiting();
        if waiting.len() >= self.shared.max_waiting {
            return Err(QueueError::Busy { waiting: waiting.len() });
        }
        let id = self.shared.store.create(spec)?;
        waiting.push_back(id.clone());
        self.shared.wake.notify_one();
        Ok(id)
    }

    /// Cancels job `id`.
    pub fn cancel(&self, id: &str) -> Result<Cancelled, QueueError> {
        let job = self.shared.store.job(id)?.ok_or_else(|| QueueError::NotFound(id.into()))?;
        {
            let mut waiting = self.shared.lock_waiting();
            if let Some(pos) = waiting.iter().position(|j| j == id) {
                waiting.remove(pos);
                self.shared.store.set_state(id, JobState::Cancelled, None)?;
                return Ok(Cancelled::Waiting);
            }
        }
        if let Some(flags) = self.shared.lock_running().get(id) {
            flags.cancel.store(true, Ordering::Relaxed);
            flags.stop.store(true, Ordering::Relaxed);
            return Ok(Cancelled::Running);
        }
        Ok(Cancelled::AlreadyEnded(job.state))
    }

    /// Whether a submission now would be refused as busy (checked before taking an upload).
    pub fn is_full(&self) -> bool {
        self.shared.lock_waiting().len() >= self.shared.max_waiting
    }

    /// Jobs waiting to start.
    pub fn waiting(&self) -> usize {
        self.shared.lock_waiting().len()
    }
}

impl Drop for JobQueue {
    /// Stops the workers; running jobs stay queued in the store and resume on the next start.
    fn drop(&mut self) {
        {
            // Under the line's lock (the order workers take: line, then running): a worker either
            // sees the flag before it takes a job, or has registered its job's flags, which are
            // set here; and none can start waiting after the notification below.
            let _waiting = self.shared.lock_waiting();
            self.shared.shutdown.store(true, Ordering::Relaxed);
            for flags in self.shared.lock_running().values() {
                flags.stop.store(true, Ordering::Relaxed);
            }
            self.shared.wake.notify_all();
        }
        for t in self.workers.drain(..) {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn lock_waiting(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_running(&self) -> MutexGuard<'_, HashMap<String, Arc<Flags>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker: takes jobs until shutdown.
    fn work(&self) {
        while let Some((id, flags)) = self.next_job() {
            let stops = Stops { stop: &flags.stop, cancel: &flags.cancel };
            let mut log = |p: Progress| match p {
                Progress::Planned { total, done, window_s } => {
                    tracing::info!(job = %id, total, done, window_s, "video job planned")
                }
                Progress::Window { record, done, total } => {
                    tracing::debug!(job = %id, window = record.index, done, total, "window done")
                }
                Progress::Summarizing => tracing::debug!(job = %id, "summarising"),
            };
            // A panic in a job (a bug) fails that job, not the worker or the other jobs.
            let end = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_job(&self.store, &id, self.model.as_ref(), &stops, &mut log)
            }))
            .unwrap_or_else(|_| {
                let m = "internal error while running the job (a bug); see the daemon's log".to_string();
                let _ = self.store.set_state(&id, JobState::Failed, Some(&m));
                RunEnd::Failed(m)
            });
            match &end {
                RunEnd::Failed(m) => tracing::warn!(job = %id, error = %m, "video job failed"),
                other => tracing::info!(job = %id, end = ?other, "video job ended"),
            }
            self.lock_running().remove(&id);
        }
    }

    /// The next job to run (registered as running), or `None` at shutdown.
    fn next_job(&self) -> Option<(String, Arc<Flags>)> {
        let mut waiting = self.lock_waiting();
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(id) = waiting.pop_front() {
                let flags = Arc::new(Flags::default());
                // Registered before the line's lock is released, so a cancel finds it in one place or the other.
                self.lock_running().insert(id.clone(), flags.clone());
                return Some((id, flags));
            }
            waiting = self.wake.wait(waiting).unwrap_or_else(|p| p.into_inner());
        }
    }
}
