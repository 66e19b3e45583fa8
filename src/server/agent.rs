//! GUI-agent sessions over HTTP:
//!
//! | route | job |
//! |---|---|
//! | `POST /v1/agent/sessions` | start one: `{"goal", "display", "monitor", "max_steps", "dry_run", "confirm", "allow": [...], "forbid": ["X,Y,WxH"], "interval_ms", "history", "max_tokens"}` |
//! | `GET /v1/agent/sessions` | every session kept, newest last |
//! | `GET /v1/agent/sessions/{id}` | its state, its steps so far, the action waiting for confirmation |
//! | `GET /v1/agent/sessions/{id}/events` | server-sent events: `step` per step, `confirm` when an action waits, `ended` |
//! | `GET /v1/agent/sessions/{id}/steps/{n}/screenshot` | the screenshot the model saw at step n (PNG) |
//! | `POST /v1/agent/sessions/{id}/confirm` | `{"step": n, "approve": true}` for a session started with `"confirm": true` |
//! | `DELETE /v1/agent/sessions/{id}` | stop it (at once: the model's answer is dropped, a wait cut short) |
//!
//! The daemon drives only the displays listed in `[agent] displays` (none by default), one
//! session per display at a time. Each session runs on its own thread; its screenshots are
//! encoded there and its answers decoded on the engine thread as batch work, behind every
//! interactive request. Its step log (screenshots, steps, `timeline.html`) is written under
//! `[agent] log_dir`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;

use crate::agent::action::Tool;
use crate::agent::executor::X11Executor;
use crate::agent::model::EngineAgentModel;
use crate::agent::runner::{run_agent, Confirm, RunConfig, DEFAULT_HISTORY_SCREENS, DEFAULT_MAX_TOKENS};
use crate::agent::safety::{Policy, DEFAULT_MAX_STEPS};
use crate::agent::screen::Rect;
use crate::agent::step_log::{StepLog, StepRecord};
use crate::server::{ApiError, AppState};

/// Sessions kept for review after they end; the oldest ended one goes first.
const KEEP_SESSIONS: usize = 64;
/// Most steps a session may ask for.
const MAX_STEPS_CAP: usize = 200;
/// How long an action waits for a person to confirm it before it counts as declined.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(300);
/// Events in flight to one SSE client: steps come seconds apart, a few absorb any delay.
const EVENT_BUFFER: usize = 16;

/// The daemon's agent sessions.
pub struct AgentSessions {
    model: Arc<EngineAgentModel>,
    displays: Vec<String>,
    log_root: PathBuf,
    sessions: Mutex<Vec<Arc<Session>>>,
}

#[derive(Default)]
struct SessionState {
    steps: Vec<StepRecord>,
    /// (outcome, detail) once ended.
    ended: Option<(String, String)>,
    /// The action waiting for a person: (step, description).
    pending: Option<(usize, String)>,
}

struct Session {
    id: String,
    goal: String,
    display: String,
    log_dir: PathBuf,
    confirm: bool,
    stop: Arc<AtomicBool>,
    state: Mutex<SessionState>,
    /// Bumped on every change; SSE clients wait on it.
    changed: tokio::sync::watch::Sender<u64>,
    /// Where `POST …/confirm` sends its answer.
    answers: Mutex<Option<SyncSender<(usize, bool)>>>,
}

impl Session {
    fn update(&self, f: impl FnOnce(&mut SessionState)) {
        f(&mut self.state.lock().expect("session state"));
        self.changed.send_modify(|n| *n += 1);
    }

    fn view(&self) -> Value {
        let s = self.state.lock().expect("session state");
        json!({
            "id": self.id,
            "object": "agent.session",
            "goal": self.goal,
            "display": self.display,
            "state": if s.ended.is_some() { "ended" } else { "running" },
            "outcome": s.ended.as_ref().map(|e| &e.0),
            "detail": s.ended.as_ref().map(|e| &e.1),
            "confirm": self.confirm,
            "pending": s.pending.as_ref().map(|(step, what)| json!({"step": step, "action": what})),
            "steps": s.steps,
            "log_dir": self.log_dir.display().to_string(),
        })
    }
}

/// A person confirming over HTTP.
struct HttpConfirm {
    session: Arc<Session>,
    answers: Receiver<(usize, bool)>,
}

impl Confirm for HttpConfirm {
    fn confirm(&mut self, step: usize, what: &str) -> bool {
        self.session.update(|s| s.pending = Some((step, what.to_string())));
        let mut waited = Duration::ZERO;
        let approved = loop {
            if self.session.stop.load(Ordering::Relaxed) || waited >= CONFIRM_TIMEOUT {
                break false;
            }
            match self.answers.recv_timeout(Duration::from_millis(100)) {
                Ok((s, approve)) if s == step => break approve,
                Ok(_) => {} // an answer to another step: stale
                Err(RecvTimeoutError::Timeout) => waited += Duration::from_millis(100),
                Err(RecvTimeoutError::Disconnected) => break false,
            }
        };
        self.session.update(|s| s.pending = None);
        approved
    }
}

impl AgentSessions {
    pub fn new(model: Arc<EngineAgentModel>, displays: Vec<String>, log_root: PathBuf) -> Self {
        Self { model, displays, log_root, sessions: Mutex::new(Vec::new()) }
    }

    fn find(&self, id: &str) -> Result<Arc<Session>, ApiError> {
        self.sessions.lock().expect("sessions").iter().find(|s| s.id == id).cloned().ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", format!("no agent session {id}"), None)
        })
    }
}

fn sessions(state: &AppState) -> Result<&AgentSessions, ApiError> {
    state
        .agent
        .as_ref()
        .map_err(|why| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", why.clone(), None))
}

/// The run settings of a request body; unknown fields are errors.
fn run_config(body: &Map<String, Value>) -> Result<(String, Option<usize>, RunConfig), ApiError> {
    const KNOWN: [&str; 11] = [
        "goal",
        "display",
        "monitor",
        "max_steps",
        "dry_run",
        "confirm",
        "allow",
        "forbid",
        "interval_ms",
        "history",
        "max_tokens",
    ];
    if let Some(k) = body.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!("{k}: unknown field (known: {})", KNOWN.join(", ")), Some(k)));
    }
    let bad = |k: &str, what: &str| ApiError::bad_request(format!("{k}: {what}"), Some(k));
    let count = |k: &str, lo: u64, hi: u64| -> Result<Option<u64>, ApiError> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                _ => Err(bad(k, &format!("expected a whole number from {lo} to {hi}"))),
            },
        }
    };
    let flag = |k: &str| -> Result<bool, ApiError> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(k, "expected true or false")),
        }
    };
    let goal = body.get("goal").and_then(Value::as_str).map(str::trim).unwrap_or_default().to_string();
    if goal.is_empty() {
        return Err(bad("goal", "missing or empty: say what the agent should do"));
    }
    let display = body
        .get("display")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("display", "missing: name one of the displays this daemon may drive ([agent] displays)"))?
        .to_string();
    let tool = Tool::ComputerUse;
    let allow = match body.get("allow") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => {
            let names: Option<BTreeSet<String>> = a.iter().map(|v| v.as_str().map(str::to_string)).collect();
            let names = names.ok_or_else(|| bad("allow", "expected a list of action names"))?;
            if let Some(n) = names.iter().find(|n| !tool.actions().contains(&n.as_str())) {
                return Err(bad("allow", &format!("{n:?} is not an action ({})", tool.actions().join(", "))));
            }
            Some(names)
        }
        Some(_) => return Err(bad("allow", "expected a list of action names")),
    };
    let forbidden = match body.get("forbid") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().ok_or_else(|| "a region must be a string X,Y,WxH".to_string()).and_then(Rect::parse))
            .collect::<Result<_, _>>()
            .map_err(|e| bad("forbid", &e))?,
        Some(_) => return Err(bad("forbid", "expected a list of regions X,Y,WxH")),
    };
    let policy = Policy {
        allow,
        forbidden,
        max_steps: count("max_steps", 1, MAX_STEPS_CAP as u64)?.map_or(DEFAULT_MAX_STEPS, |n| n as usize),
        min_interval: Duration::from_millis(count("interval_ms", 0, 60_000)?.unwrap_or(500)),
        dry_run: flag("dry_run")?,
        confirm: flag("confirm")?,
        stop_keys: Vec::new(),
    };
    let cfg = RunConfig {
        tool,
        goal,
        policy,
        history_screens: count("history", 1, 8)?.map_or(DEFAULT_HISTORY_SCREENS, |n| n as usize),
        max_new_tokens: count("max_tokens", 1, 4096)?.map_or(DEFAULT_MAX_TOKENS, |n| n as usize),
    };
    Ok((display, count("monitor", 0, 64)?.map(|n| n as usize), cfg))
}

/// `POST /v1/agent/sessions`.
pub async fn create(State(state): State<Arc<AppState>>, Json(body): Json<Value>) -> Result<Response, ApiError> {
    let agents = sessions(&state)?;
    let body =
        body.as_object().cloned().ok_or_else(|| ApiError::bad_request("the body must be a JSON object", None))?;
    let (display, monitor, cfg) = run_config(&body)?;
    if !agents.displays.contains(&display) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            format!("display {display:?} is not one this daemon may drive ([agent] displays: {:?})", agents.displays),
            Some("display"),
        ));
    }
    let session = {
        let mut list = agents.sessions.lock().expect("sessions");
        let running = |s: &Session| s.state.lock().expect("session state").ended.is_none();
        if list.iter().any(|s| s.display == display && running(s)) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "invalid_request_error",
                format!("a session is already driving {display}; stop it first (DELETE) or wait for it to end"),
                Some("display"),
            ));
        }
        while list.len() >= KEEP_SESSIONS {
            match list.iter().position(|s| !running(s)) {
                Some(i) => {
                    list.remove(i);
                }
                None => {
                    return Err(ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_error",
                        format!("{KEEP_SESSIONS} sessions are running"),
                        None,
                    ))
                }
            }
        }
        let id = format!("agent-{:016x}", crate::engine::rng::random_u64());
        let (changed, _) = tokio::sync::watch::channel(0u64);
        let s = Arc::new(Session {
            log_dir: agents.log_root.join(&id),
            id,
            goal: cfg.goal.clone(),
            display: display.clone(),
            confirm: cfg.policy.confirm,
            stop: Arc::new(AtomicBool::new(false)),
            state: Mutex::new(SessionState::default()),
            changed,
            answers: Mutex::new(None),
        });
        list.push(s.clone());
        s
    };
    // The daemon stopping stops the session; the watcher ends with it.
    let (finished_tx, finished_rx) = tokio::sync::oneshot::channel::<()>();
    let (mut stopping, stop) = (state.stopping.subscribe(), session.stop.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => stop.store(true, Ordering::Relaxed),
            _ = finished_rx => {}
        }
    });
    let (model, s) = (agents.model.clone(), session.clone());
    let spawned = std::thread::Builder::new().name("omnid-agent".into()).spawn(move || {
        let _finished = finished_tx;
        let end = run_session(&model, &s, &display, monitor, &cfg);
        s.update(|st| st.ended = Some(end));
    });
    if let Err(e) = spawned {
        // Ended, so that it does not hold its display.
        let why = format!("cannot start the session's thread: {e}");
        session.update(|st| st.ended = Some(("failed".into(), why.clone())));
        return Err(ApiError::internal(why));
    }
    Ok((StatusCode::CREATED, Json(session.view())).into_response())
}

/// One session: the display opened, the log created, the loop run. Returns (outcome, detail).
fn run_session(
    model: &EngineAgentModel,
    s: &Arc<Session>,
    display: &str,
    monitor: Option<usize>,
    cfg: &RunConfig,
) -> (String, String) {
    let mut exec = match X11Executor::open(display, monitor) {
        Ok(e) => e,
        Err(e) => return ("failed".into(), e),
    };
    let run = json!({"goal": cfg.goal, "display": display, "monitor": monitor, "policy": cfg.policy, "session": s.id});
    let mut log = match StepLog::create(&s.log_dir, run) {
        Ok(l) => l,
        Err(e) => return ("failed".into(), e),
    };
    let observer = s.clone();
    log.observe(Box::new(move |rec: &StepRecord| {
        let rec = rec.clone();
        observer.update(|st| st.steps.push(rec));
    }));
    let (tx, rx) = sync_channel(1);
    *s.answers.lock().expect("answers") = Some(tx);
    let mut person = HttpConfirm { session: s.clone(), answers: rx };
    let confirm: Option<&mut dyn Confirm> = if cfg.policy.confirm { Some(&mut person) } else { None };
    let end = run_agent(model, &mut exec, cfg, &mut log, confirm, &s.stop);
    let (outcome, detail) = end.outcome();
    (outcome.to_string(), detail)
}

/// `GET /v1/agent/sessions`.
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let agents = sessions(&state)?;
    let data: Vec<Value> = agents.sessions.lock().expect("sessions").iter().map(|s| s.view()).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// `GET /v1/agent/sessions/{id}`.
pub async fn get(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(sessions(&state)?.find(&id)?.view()))
}

/// `DELETE /v1/agent/sessions/{id}`: stops it.
pub async fn stop(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Result<Json<Value>, ApiError> {
    let s = sessions(&state)?.find(&id)?;
    s.stop.store(true, Ordering::Relaxed);
    Ok(Json(s.view()))
}

/// `POST /v1/agent/sessions/{id}/confirm`.
pub async fn confirm(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let s = sessions(&state)?.find(&id)?;
    let step =
        body.get("step").and_then(Value::as_u64).ok_or_else(|| {
            ApiError::bad_request("step: the number of the step waiting (see \"pending\")", Some("step"))
        })? as usize;
    let approve = body
        .get("approve")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::bad_request("approve: true or false", Some("approve")))?;
    let pending = s.state.lock().expect("session state").pending.as_ref().map(|p| p.0);
    if pending != Some(step) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request_error",
            format!("step {step} is not waiting for confirmation (waiting: {pending:?})"),
            Some("step"),
        ));
    }
    if let Some(tx) = s.answers.lock().expect("answers").as_ref() {
        let _ = tx.try_send((step, approve));
    }
    Ok(Json(json!({"step": step, "approve": approve})))
}

/// `GET /v1/agent/sessions/{id}/steps/{n}/screenshot`.
pub async fn screenshot(
    State(state): State<Arc<AppState>>,
    UrlPath((id, n)): UrlPath<(String, usize)>,
) -> Result<Response, ApiError> {
    let s = sessions(&state)?.find(&id)?;
    let path = s.log_dir.join(format!("step-{n:04}.png"));
    let bytes = tokio::fs::read(&path).await.map_err(|_| {
        ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", format!("session {id} has no step {n}"), None)
    })?;
    Ok(([(header::CONTENT_TYPE, "image/png")], bytes).into_response())
}

/// `GET /v1/agent/sessions/{id}/events`.
pub async fn events(State(state): State<Arc<AppState>>, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let s = sessions(&state)?.find(&id)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(EVENT_BUFFER);
    let mut changed = s.changed.subscribe();
    let mut stopping = state.stopping.subscribe();
    tokio::spawn(async move {
        let (mut sent, mut pending_sent) = (0usize, None);
        loop {
            let (new, pending, ended) = {
                let st = s.state.lock().expect("session state");
                (st.steps[sent..].to_vec(), st.pending.clone(), st.ended.clone())
            };
            for rec in new {
                sent += 1;
                let ev =
                    SseEvent::default().event("step").data(serde_json::to_string(&rec).expect("a step serialises"));
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            if pending.as_ref().map(|p| p.0) != pending_sent {
                pending_sent = pending.as_ref().map(|p| p.0);
                if let Some((step, what)) = pending {
                    let ev =
                        SseEvent::default().event("confirm").data(json!({"step": step, "action": what}).to_string());
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
            if let Some((outcome, detail)) = ended {
                let _ = tx
                    .send(
                        SseEvent::default()
                            .event("ended")
                            .data(json!({"outcome": outcome, "detail": detail}).to_string()),
                    )
                    .await;
                return;
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                _ = tx.closed() => return,
                _ = stopping.wait_for(|s| *s) => return,
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Arc<Session> {
        let (changed, _) = tokio::sync::watch::channel(0u64);
        Arc::new(Session {
            id: "agent-test".into(),
            goal: "g".into(),
            display: ":1".into(),
            log_dir: PathBuf::new(),
            confirm: true,
            stop: Arc::new(AtomicBool::new(false)),
            state: Mutex::new(SessionState::default()),
            changed,
            answers: Mutex::new(None),
        })
    }

    fn wait_pending(s: &Session, step: usize) {
        for _ in 0..200 {
            if s.state.lock().unwrap().pending.as_ref().map(|p| p.0) == Some(step) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("step {step} never waited");
    }

    #[test]
    fn a_confirmation_waits_for_its_own_step_and_a_stop_declines() {
        let s = session();
        let (tx, rx) = sync_channel(1);
        let mut person = HttpConfirm { session: s.clone(), answers: rx };
        let waiting = std::thread::spawn(move || person.confirm(3, "left_click at [1, 2]"));
        wait_pending(&s, 3);
        assert_eq!(s.view()["pending"], json!({"step": 3, "action": "left_click at [1, 2]"}));
        tx.send((2, true)).unwrap(); // a stale answer for another step is ignored
        std::thread::sleep(Duration::from_millis(250));
        assert!(!waiting.is_finished());
        tx.send((3, true)).unwrap();
        assert!(waiting.join().unwrap());
        assert_eq!(s.view()["pending"], Value::Null);

        let (_tx, rx) = sync_channel(1);
        let mut person = HttpConfirm { session: s.clone(), answers: rx };
        let waiting = std::thread::spawn(move || person.confirm(4, "type"));
        wait_pending(&s, 4);
        s.stop.store(true, Ordering::Relaxed);
        assert!(!waiting.join().unwrap(), "a stopped session declines what waits");
    }
}
