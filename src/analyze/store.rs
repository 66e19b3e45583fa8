//! The persisted job queue: jobs and each window's result in one SQLite file (WAL journal,
//! `synchronous = FULL`), written as soon as they exist. A window's row is committed before the
//! next window starts, so a daemon killed at any instant loses at most the window it was working
//! on, and a finished window is never computed again: its row is the proof (`PRIMARY KEY (job,
//! window)` makes a second one an error, not a duplicate). Each window's starts are counted too,
//! so a test (and a person) can see that only the interrupted window ran twice.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use super::events::Event;
pub use super::records::{JobRecord, JobState, Plan, WindowRecord};
use super::spec::JobSpec;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job store {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("job store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("job store {path} is in use by another omnid process (lock {lock})")]
    InUse { path: String, lock: String },
    #[error("job store: a stored record does not read back ({0}); the file was changed by something else")]
    Corrupt(String),
}

/// The job store; one connection behind a lock (SQLite serialises writers anyway, and every
/// statement here is short).
pub struct Store {
    conn: Mutex<Connection>,
    /// Held open for the store's life: its exclusive lock keeps a second process from working
    /// the same jobs (both would resume them).
    _lock: Option<std::fs::File>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    windows_total INTEGER,
    window_s REAL,
    plan TEXT,
    error TEXT,
    summary TEXT,
    events TEXT
);
CREATE TABLE IF NOT EXISTS windows (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    answer TEXT NOT NULL,
    events TEXT NOT NULL,
    unparsed TEXT NOT NULL,
    frames INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    decode_ms REAL NOT NULL,
    encode_ms REAL NOT NULL,
    generate_ms REAL NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS window_starts (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (job_id, idx)
);
";

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut lock_name = path.file_name().unwrap_or_default().to_os_string();
        lock_name.push(".lock");
        let lock_path = path.with_file_name(lock_name);
        let in_use = || StoreError::InUse { path: path.display().to_string(), lock: lock_path.display().to_string() };
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Open { path: lock_path.display().to_string(), source: io_error(e) })?;
        // Released by the OS when the process ends, however it ends (kill -9 included).
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(in_use()),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Open { path: lock_path.display().to_string(), source: io_error(e) })
            }
        }
        let open_err = |source| StoreError::Open { path: path.display().to_string(), source };
        let conn = Connection::open(path).map_err(open_err)?;
        // WAL: readers never wait for the writer; FULL: a committed window survives a power
        // cut, not only a killed process.
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        Self::init(conn, Some(lock)).map_err(open_err)
    }

    /// A store that lives in memory (`omnid analyze` without `--db`).
    pub fn in_memory() -> Result<Self, StoreError> {
        Ok(Self::init(Connection::open_in_memory()?, None)?)
    }

    fn init(conn: Connection, lock: Option<std::fs::File>) -> rusqlite::Result<Self> {
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Another process (a second `omnid analyze` on the same file) may hold the write lock for
        // one statement; wait for it instead of failing.
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn: Mutex::new(conn), _lock: lock })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock left no half-written state (each statement is atomic).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a queued job; returns its id.
    pub fn create(&self, spec: &JobSpec) -> Result<String, StoreError> {
        let id = format!("job_{:016x}", crate::engine::rng::random_u64());
        let now = now();
        let c = self.conn();
        let seq: i64 = c.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs", [], |r| r.get(0))?;
        c.execute(
            "INSERT INTO jobs (id, seq, spec, state, created_at, updated_at) VALUES (?1, ?2, ?3, 'queued', ?4, ?4)",
            params![id, seq, to_json(spec), now],
        )?;
        Ok(id)
    }

    /// One job, `None` if there is no such id.
    pub fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let c = self.conn();
        let row = c.query_row(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"), [id], raw_job).optional()?;
        row.map(job_record).transpose()
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let c = self.conn();
        let mut stmt = c.prepare(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY seq"))?;
        let rows = stmt.query_map([], raw_job)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(job_record).collect()
    }

    /// Jobs with work left (queued, or running when the daemon stopped), oldest first.
    pub fn unfinished(&self) -> Result<Vec<String>, StoreError> {
        let c = self.conn();
        let mut stmt = c.prepare("SELECT id FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq")?;
        let ids = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(ids)
    }

    pub fn set_state(&self, id: &str, state: JobState, error: Option<&str>) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET state = ?2, error = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, state.as_str(), error, now()],
        )?;
        Ok(())
    }

    /// Records the plan: how many windows, laid out how.
    pub fn set_plan(&self, id: &str, windows_total: usize, plan: &Plan) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET windows_total = ?2, window_s = ?3, plan = ?4, updated_at = ?5 WHERE id = ?1",
            params![id, windows_total as i64, plan.window_s, to_json(plan), now()],
        )?;
        Ok(())
    }

    /// Counts a start of window `idx`; returns how many times it has been started.
    pub fn window_started(&self, id: &str, idx: usize) -> Result<usize, StoreError> {
        let n: i64 = self.conn().query_row(
            "INSERT INTO window_starts (job_id, idx, attempts) VALUES (?1, ?2, 1)
             ON CONFLICT (job_id, idx) DO UPDATE SET attempts = attempts + 1 RETURNING attempts",
            params![id, idx as i64],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// The indices of the job's finished windows.
    pub fn finished_indices(&self, id: &str) -> Result<Vec<usize>, StoreError> {
        let c = self.conn();
        let mut stmt = c.prepare("SELECT idx FROM windows WHERE job_id = ?1 ORDER BY idx")?;
        let rows = stmt.query_map([id], |r| r.get::<_, i64>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows.into_iter().map(|i| i as usize).collect())
    }

    /// Stores a finished window (committed before this returns).
    pub fn record_window(&self, id: &str, w: &WindowRecord) -> Result<(), StoreError> {
        let c = self.conn();
        c.execute(
            "INSERT INTO windows (job_id, idx, start_s, end_s, answer, events, unparsed, frames, prompt_tokens,
                 completion_tokens, decode_ms, encode_ms, generate_ms, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                id,
                w.index as i64,
                w.start,
                w.end,
                w.answer,
                to_json(&w.events),
                to_json(&w.unparsed),
                w.frames as i64,
                w.prompt_tokens as i64,
                w.completion_tokens as i64,
                w.decode_ms,
                w.encode_ms,
                w.generate_ms,
                w.finished_at,
            ],
        )?;
        c.execute("UPDATE jobs SET updated_at = ?2 WHERE id = ?1", params![id, now()])?;
        Ok(())
    }

    /// The job's finished windows, in order.
    pub fn windows(&self, id: &str) -> Result<Vec<WindowRecord>, StoreError> {
        let c = self.conn();
        let mut stmt = c.prepare(
            "SELECT w.idx, w.start_s, w.end_s, w.answer, w.events, w.unparsed, w.frames, w.prompt_tokens,
                    w.completion_tokens, w.decode_ms, w.encode_ms, w.generate_ms, w.finished_at,
                    COALESCE(s.attempts, 1)
             FROM windows w LEFT JOIN window_starts s ON s.job_id = w.job_id AND s.idx = w.idx
             WHERE w.job_id = ?1 ORDER BY w.idx",
        )?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, f64>(1)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    [r.get::<_, i64>(6)?, r.get::<_, i64>(7)?, r.get::<_, i64>(8)?, r.get::<_, i64>(13)?],
                    [r.get::<_, f64>(9)?, r.get::<_, f64>(10)?, r.get::<_, f64>(11)?, r.get::<_, f64>(12)?],
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(idx, start, end, answer, events, unparsed, n, t)| {
                Ok(WindowRecord {
                    index: idx as usize,
                    start,
                    end,
                    answer,
                    events: from_json(&events)?,
                    unparsed: from_json(&unparsed)?,
                    frames: n[0] as usize,
                    prompt_tokens: n[1] as usize,
                    completion_tokens: n[2] as usize,
                    attempts: n[3] as usize,
                    decode_ms: t[0],
                    encode_ms: t[1],
                    generate_ms: t[2],
                    finished_at: t[3],
                })
            })
            .collect()
    }

    /// How many windows of the job are finished.
    pub fn windows_done(&self, id: &str) -> Result<usize, StoreError> {
        let n: i64 = self.conn().query_row("SELECT COUNT(*) FROM windows WHERE job_id = ?1", [id], |r| r.get(0))?;
        Ok(n as usize)
    }

    /// Marks a job done with its merged events, its summary, and what went wrong in the summary
    /// pass (`note`), if anything.
    pub fn finish(
        &self,
        id: &str,
        events: &[Event],
        summary: Option<&str>,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET state = 'done', error = ?5, events = ?2, summary = ?3, updated_at = ?4 WHERE id = ?1",
            params![id, to_json(&events), summary, now(), note],
        )?;
        Ok(())
    }

    /// Removes a job and its windows.
    pub fn delete(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute("DELETE FROM jobs WHERE id = ?1", [id])? > 0)
    }
}

const JOB_COLUMNS: &str =
    "id, spec, state, created_at, updated_at, windows_total, window_s, error, summary, events, plan";

/// A job row: id, spec and state; created and updated; window count and length; error, summary,
/// events and plan.
type RawJob = ([String; 3], [f64; 2], Option<i64>, Option<f64>, [Option<String>; 4]);

fn raw_job(r: &rusqlite::Row) -> rusqlite::Result<RawJob> {
    Ok((
        [r.get(0)?, r.get(1)?, r.get(2)?],
        [r.get(3)?, r.get(4)?],
        r.get(5)?,
        r.get(6)?,
        [r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
    ))
}

fn job_record(raw: RawJob) -> Result<JobRecord, StoreError> {
    let ([id, spec, state], [created_at, updated_at], windows_total, window_s, [error, summary, events, plan]) = raw;
    Ok(JobRecord {
        id,
        spec: from_json(&spec)?,
        state: JobState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("job state {state:?}")))?,
        created_at,
        updated_at,
        windows_total: windows_total.map(|n| n as usize),
        window_s,
        plan: plan.as_deref().map(from_json).transpose()?,
        error,
        summary,
        events: events.as_deref().map(from_json).transpose()?,
    })
}

fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("job records serialise")
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn io_error(e: std::io::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(index: usize) -> WindowRecord {
        WindowRecord {
            index,
            start: index as f64 * 10.0,
            end: index as f64 * 10.0 + 12.0,
            answer: "00:01 - 00:02: a dog".into(),
            events: vec![Event {
                start: 1.0,
                end: 2.0,
                text: "a dog".into(),
                window: index,
                confidence: None,
                clamped: false,
            }],
            unparsed: vec!["hello".into()],
            frames: 24,
            prompt_tokens: 100,
            completion_tokens: 9,
            decode_ms: 1.0,
            encode_ms: 2.0,
            generate_ms: 3.0,
            attempts: 1,
            finished_at: 5.0,
        }
    }

    fn plan() -> Plan {
        Plan {
            window_s: 12.0,
            overlap_s: 2.0,
            to_s: 30.0,
            model: "m".into(),
            video_bytes: 9,
            video_modified_ns: 1_795_869_617_953_091_123,
        }
    }

    #[test]
    fn jobs_and_windows_survive_a_reopen_and_a_window_is_stored_once() {
        let dir = std::env::temp_dir().join(format!("omnid-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jobs.sqlite");
        let _ = std::fs::remove_file(&path);
        let spec = JobSpec::new("/v/a.mp4".into(), "find the dog");
        let id = {
            let s = Store::open(&path).unwrap();
            let id = s.create(&spec).unwrap();
            s.set_plan(&id, 3, &plan()).unwrap();
            s.set_state(&id, JobState::Running, None).unwrap();
            assert_eq!(s.window_started(&id, 0).unwrap(), 1);
            s.record_window(&id, &window(0)).unwrap();
            // A second row for the same window is refused, not added.
            assert!(s.record_window(&id, &window(0)).is_err());
            s.window_started(&id, 1).unwrap();
            id
        };
        // "Killed" here: window 1 started, never finished.
        let s = Store::open(&path).unwrap();
        // One process at a time works a store.
        assert!(matches!(Store::open(&path), Err(StoreError::InUse { .. })));
        assert_eq!(s.unfinished().unwrap(), std::slice::from_ref(&id));
        let job = s.job(&id).unwrap().unwrap();
        assert_eq!((job.state, job.windows_total, job.window_s), (JobState::Running, Some(3), Some(plan().window_s)));
        assert_eq!(job.plan, Some(plan()));
        assert_eq!(s.finished_indices(&id).unwrap(), [0]);
        assert_eq!(job.spec, spec);
        assert_eq!(s.windows(&id).unwrap(), [window(0)]);
        assert_eq!(s.window_started(&id, 1).unwrap(), 2);
        let mut w1 = window(1);
        w1.attempts = 2;
        s.record_window(&id, &w1).unwrap();
        assert_eq!(s.windows(&id).unwrap()[1].attempts, 2);
        s.finish(&id, &window(0).events, Some("one dog"), None).unwrap();
        let job = s.job(&id).unwrap().unwrap();
        assert_eq!((job.state, job.summary.as_deref()), (JobState::Done, Some("one dog")));
        assert_eq!(job.events.unwrap(), window(0).events);
        assert!(s.unfinished().unwrap().is_empty());
        assert!(s.job("job_nope").unwrap().is_none());
        assert!(s.delete(&id).unwrap());
        assert!(s.windows(&id).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
