//! The agent loop: screenshot → the model's next step → parsed into one action → mapped from the
//! 0–1000 grid to the screen → checked against the run's rules → confirmed by a person (when
//! asked) → executed (unless a dry run) → logged → told back to the model in the next turn. A
//! step the model got wrong (no call, a malformed call, an unknown action, a point off the
//! screen, a forbidden action) is refused, never guessed at, and the model may try again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::action::{parse_answer, Action, Tool};
use super::executor::{Executor, Placed};
use super::model::{AgentModel, AskError};
use super::prompt::Turn;
use super::safety::{Policy, MAX_REFUSALS_IN_A_ROW};
use super::screen::to_screen;
use super::step_log::{StepLog, StepRecord};

/// Screenshots shown per turn unless asked otherwise: the screen now and the one before.
pub const DEFAULT_HISTORY_SCREENS: usize = 2;
/// Tokens the model may write per step (a thought and one call).
pub const DEFAULT_MAX_TOKENS: usize = 512;

/// One run's settings.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub tool: Tool,
    pub goal: String,
    pub policy: Policy,
    /// Screenshots in each turn (1 = only the current one).
    pub history_screens: usize,
    pub max_new_tokens: usize,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// The model called `terminate`.
    Terminated {
        success: bool,
    },
    /// The model answered the question in the goal.
    Answered(String),
    StepLimit,
    /// Stopped from outside (Ctrl-C, the hotkey, a cancelled session).
    Stopped,
    /// Too many refused steps in a row.
    Refusals,
    /// The screen or the model failed (the display went away, an action could not be done).
    Failed(String),
}

impl RunEnd {
    pub fn outcome(&self) -> (&'static str, String) {
        match self {
            RunEnd::Terminated { success: true } => ("success", "the model reported the task done".into()),
            RunEnd::Terminated { success: false } => ("failure", "the model reported the task cannot be done".into()),
            RunEnd::Answered(a) => ("answered", a.clone()),
            RunEnd::StepLimit => ("step_limit", "the step limit was reached".into()),
            RunEnd::Stopped => ("stopped", "stopped from outside (Ctrl-C, the stop key or a cancel)".into()),
            RunEnd::Refusals => {
                ("refused", format!("{MAX_REFUSALS_IN_A_ROW} steps in a row were refused; the run was ended"))
            }
            RunEnd::Failed(m) => ("failed", m.clone()),
        }
    }
}

/// Asks a person before an action runs.
pub trait Confirm {
    /// `true` to execute `what` (a one-line description of step `step`'s action).
    fn confirm(&mut self, step: usize, what: &str) -> bool;
}

/// Sleeps `d`, waking early when `stop` is set; returns whether it was.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
    }
    stop.load(Ordering::Relaxed)
}

/// Runs the loop until the model ends it, a limit is reached, or `stop` is set.
pub fn run_agent(
    model: &dyn AgentModel,
    exec: &mut dyn Executor,
    cfg: &RunConfig,
    log: &mut StepLog,
    mut confirm: Option<&mut dyn Confirm>,
    stop: &AtomicBool,
) -> RunEnd {
    let end = run_steps(model, exec, cfg, log, &mut confirm, stop);
    let (outcome, detail) = end.outcome();
    if let Err(e) = log.end(outcome, &detail) {
        return RunEnd::Failed(e);
    }
    end
}

fn run_steps(
    model: &dyn AgentModel,
    exec: &mut dyn Executor,
    cfg: &RunConfig,
    log: &mut StepLog,
    confirm: &mut Option<&mut dyn Confirm>,
    stop: &AtomicBool,
) -> RunEnd {
    let started = Instant::now();
    let area = exec.area();
    let mut history: Vec<String> = Vec::new();
    let mut screens: VecDeque<image::RgbImage> = VecDeque::new();
    let mut refused_in_a_row = 0;
    let mut last_executed: Option<Instant> = None;
    for step in 1..=cfg.policy.max_steps {
        if stop.load(Ordering::Relaxed) {
            return RunEnd::Stopped;
        }
        let t0 = Instant::now();
        let shot = match exec.capture() {
            Ok(s) => s,
            Err(e) => return RunEnd::Failed(format!("step {step}: the screenshot failed: {e}")),
        };
        let capture_ms = t0.elapsed().as_secs_f64() * 1e3;
        screens.push_back(shot.clone());
        while screens.len() > cfg.history_screens.max(1) {
            screens.pop_front();
        }
        let turn = Turn {
            tool: cfg.tool,
            goal: cfg.goal.clone(),
            history: history.clone(),
            screenshots: screens.iter().cloned().collect(),
        };
        let answer = match model.decide(&turn, cfg.max_new_tokens, stop) {
            Ok(a) => a,
            Err(AskError::Interrupted) => return RunEnd::Stopped,
            Err(AskError::Failed(m)) => return RunEnd::Failed(format!("step {step}: the model failed: {m}")),
        };
        let mut record = StepRecord {
            step,
            at_s: started.elapsed().as_secs_f64(),
            executed_at_s: None,
            model_output: answer.text.clone(),
            action: None,
            points: Vec::new(),
            outcome: String::new(),
            reason: None,
            capture_ms,
            encode_ms: answer.encode_ms,
            generate_ms: answer.generate_ms,
            execute_ms: 0.0,
            screen: [area.x.into(), area.y.into(), area.width.into(), area.height.into()],
        };
        let decided = decide(&answer.text, cfg, &area, step, confirm);
        let mut ended = None;
        match decided {
            Decision::Refuse { action, points, outcome, reason } => {
                record.action = action.as_ref().map(Action::to_json);
                record.points = points;
                history.push(format!("{outcome}: {reason}"));
                record.outcome = outcome.into();
                record.reason = Some(reason);
                refused_in_a_row += 1;
            }
            Decision::Act { action, points } => {
                record.action = Some(action.to_json());
                record.points = points.clone();
                refused_in_a_row = 0;
                let placed = Placed { action: action.clone(), points };
                if cfg.policy.dry_run {
                    record.outcome = "dry_run".into();
                    record.reason = Some("dry run: logged, not executed".into());
                    history.push(format!("{}: done", describe(&action)));
                } else {
                    // The rate limit: actions are spaced by at least `min_interval`.
                    if let Some(last) = last_executed {
                        let wait = cfg.policy.min_interval.saturating_sub(last.elapsed());
                        if sleep_unless_stopped(wait, stop) {
                            return RunEnd::Stopped;
                        }
                    }
                    let t1 = Instant::now();
                    record.executed_at_s = Some(started.elapsed().as_secs_f64());
                    let result = match &action {
                        // Waited here, where a stop is seen, not inside the executor.
                        Action::Wait { seconds } => {
                            if sleep_unless_stopped(Duration::from_secs_f64(*seconds), stop) {
                                return RunEnd::Stopped;
                            }
                            Ok(())
                        }
                        _ => exec.execute(&placed),
                    };
                    record.execute_ms = t1.elapsed().as_secs_f64() * 1e3;
                    last_executed = Some(Instant::now());
                    match result {
                        Ok(()) => {
                            record.outcome = "executed".into();
                            history.push(format!("{}: done", describe(&action)));
                        }
                        Err(e) => {
                            record.outcome = "failed".into();
                            record.reason = Some(e.clone());
                            ended =
                                Some(RunEnd::Failed(format!("step {step}: {} could not be done: {e}", action.kind())));
                        }
                    }
                }
                if ended.is_none() {
                    ended = match action {
                        Action::Terminate { success } => Some(RunEnd::Terminated { success }),
                        Action::Answer { text } => Some(RunEnd::Answered(text)),
                        _ => None,
                    };
                }
            }
        }
        if let Err(e) = log.step(record, &shot) {
            return RunEnd::Failed(e);
        }
        if let Some(end) = ended {
            return end;
        }
        if refused_in_a_row >= MAX_REFUSALS_IN_A_ROW {
            return RunEnd::Refusals;
        }
    }
    RunEnd::StepLimit
}

enum Decision {
    Act { action: Action, points: Vec<(i32, i32)> },
    Refuse { action: Option<Action>, points: Vec<(i32, i32)>, outcome: &'static str, reason: String },
}

/// Parses, maps, checks and (when asked) confirms the step's action.
fn decide(
    answer: &str,
    cfg: &RunConfig,
    area: &super::screen::Rect,
    step: usize,
    confirm: &mut Option<&mut dyn Confirm>,
) -> Decision {
    let refuse = |action, points, reason| Decision::Refuse { action, points, outcome: "refused", reason };
    let action = match parse_answer(answer, cfg.tool) {
        Ok(a) => a,
        Err(reason) => return refuse(None, vec![], reason),
    };
    let points: Vec<(i32, i32)> = match action.points().into_iter().map(|p| to_screen(p, area)).collect() {
        Ok(p) => p,
        Err(reason) => {
            let why = format!("{}: {reason}", action.kind());
            return refuse(Some(action), vec![], why);
        }
    };
    if let Err(reason) = cfg.policy.check(&action, &points) {
        return refuse(Some(action), points, reason);
    }
    if cfg.policy.confirm && !action.ends_run() {
        if let Some(c) = confirm.as_mut() {
            if !c.confirm(step, &describe_at(&action, &points)) {
                return Decision::Refuse {
                    action: Some(action),
                    points,
                    outcome: "declined",
                    reason: "the person at the keyboard declined this action".into(),
                };
            }
        }
    }
    Decision::Act { action, points }
}

/// A step as the model is told it happened.
fn describe(a: &Action) -> String {
    let p = |g: &super::action::GridPoint| format!("[{}, {}]", g.x, g.y);
    match a {
        Action::Key { keys } => format!("key {}", keys.join("+")),
        Action::Type { text } => format!("type {text:?}"),
        Action::MouseMove { at } | Action::Click { at, .. } | Action::LongPress { at, .. } => {
            format!("{} at {}", a.kind(), p(at))
        }
        Action::Drag { to, .. } => format!("{} to {}", a.kind(), p(to)),
        Action::Swipe { from, to } => format!("swipe from {} to {}", p(from), p(to)),
        Action::Scroll { pixels, .. } => format!("{} {pixels}", a.kind()),
        Action::Wait { seconds } => format!("wait {seconds} s"),
        Action::Terminate { success } => format!("terminate ({})", if *success { "success" } else { "failure" }),
        Action::Answer { text } => format!("answer {text:?}"),
        Action::SystemButton { button } => format!("system_button {button}"),
        Action::Open { app } => format!("open {app}"),
    }
}

/// A step for the person confirming it, with its screen pixels.
fn describe_at(a: &Action, points: &[(i32, i32)]) -> String {
    if points.is_empty() {
        describe(a)
    } else {
        let at: Vec<String> = points.iter().map(|(x, y)| format!("({x}, {y})")).collect();
        format!("{} → screen {}", describe(a), at.join(" → "))
    }
}
