//! `omnid agent --goal TEXT --display :N`: the GUI agent on an X11 display (or `--mobile`, a phone
//! through adb), in this process. It never picks a display by itself: `--display` must name one
//! (`$DISPLAY` is not read). Ctrl-C stops it at once, and so does Ctrl+Alt+Escape on the display
//! when the key can be grabbed. Every step is logged under `--log` (a timeline page to review).
//! The exit status is 0 when the model reports the task done (or answers it), 1 otherwise.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{load_model, ModelArgs};
use crate::agent::action::Tool;
use crate::agent::adb::AdbExecutor;
use crate::agent::executor::{Executor, X11Executor};
use crate::agent::model::EngineAgentModel;
use crate::agent::runner::{run_agent, Confirm, RunConfig, RunEnd, DEFAULT_HISTORY_SCREENS, DEFAULT_MAX_TOKENS};
use crate::agent::safety::{Policy, DEFAULT_MAX_STEPS};
use crate::agent::screen::Rect;
use crate::agent::step_log::StepLog;
use crate::agent::x11::{watch_stop_key, STOP_KEYS};
use crate::config::OmnidConfig;

/// Arguments of `omnid agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// What to do, in words.
    #[arg(long)]
    pub goal: String,
    /// The X display to work on (`:99`); required unless --mobile.
    #[arg(long)]
    pub display: Option<String>,
    /// Only this monitor of the display (0 = the primary; RandR order), not the whole screen.
    #[arg(long)]
    pub monitor: Option<usize>,
    /// Drive an Android device through adb instead (the mobile_use actions).
    #[arg(long)]
    pub mobile: bool,
    /// The device's serial when several are attached.
    #[arg(long)]
    pub serial: Option<String>,
    /// The adb program.
    #[arg(long, default_value = "adb")]
    pub adb: String,
    /// Steps (model answers) at most.
    #[arg(long, default_value_t = DEFAULT_MAX_STEPS)]
    pub max_steps: usize,
    /// Log every action without executing any.
    #[arg(long)]
    pub dry_run: bool,
    /// Ask on the terminal before each action.
    #[arg(long)]
    pub confirm: bool,
    /// Only these actions (comma-separated: left_click,type,key,…); terminate and answer always.
    #[arg(long, value_delimiter = ',')]
    pub allow: Vec<String>,
    /// A screen region never clicked or dragged across: X,Y,WIDTHxHEIGHT (repeatable).
    #[arg(long, value_parser = |s: &str| Rect::parse(s))]
    pub forbid: Vec<Rect>,
    /// Least milliseconds between two actions.
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
    /// Screenshots shown to the model per step (the current one and those before it).
    #[arg(long, default_value_t = DEFAULT_HISTORY_SCREENS)]
    pub history: usize,
    /// Tokens the model may write per step.
    #[arg(long, default_value_t = DEFAULT_MAX_TOKENS)]
    pub max_tokens: usize,
    /// The log folder (default: omnid-agent-<time> here).
    #[arg(long)]
    pub log: Option<PathBuf>,
}

/// Asks on the terminal.
struct TerminalConfirm;

impl Confirm for TerminalConfirm {
    fn confirm(&mut self, step: usize, what: &str) -> bool {
        eprint!("omnid: step {step}: {what} — execute? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes")
    }
}

/// Sets `stop` on Ctrl-C (SIGINT) or SIGTERM.
fn stop_on_signal(stop: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new().name("omnid-agent-signal".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            #[cfg(unix)]
            {
                let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
        });
        stop.store(true, Ordering::Relaxed);
    });
}

/// Runs `omnid agent`.
pub fn run(args: AgentArgs, cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!args.goal.trim().is_empty(), "--goal is empty: say what the agent should do");
    anyhow::ensure!(args.max_steps >= 1, "--max-steps must be at least 1");
    anyhow::ensure!(args.history >= 1, "--history must be at least 1 (the current screenshot)");
    let tool = if args.mobile { Tool::MobileUse } else { Tool::ComputerUse };
    if let Some(bad) = args.allow.iter().find(|a| !tool.actions().contains(&a.as_str())) {
        anyhow::bail!("--allow {bad}: not an action of {} ({})", tool.name(), tool.actions().join(", "));
    }
    let mut exec: Box<dyn Executor> = match (&args.display, args.mobile) {
        (Some(_), true) => anyhow::bail!("--display and --mobile exclude each other"),
        (None, false) => anyhow::bail!(
            "no display given: name the X display the agent may use with --display (it never picks one itself)"
        ),
        (Some(d), false) => Box::new(X11Executor::open(d, args.monitor).map_err(anyhow::Error::msg)?),
        (None, true) => Box::new(AdbExecutor::open(&args.adb, args.serial.as_deref()).map_err(anyhow::Error::msg)?),
    };
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(stop.clone());
    let watcher_done = Arc::new(AtomicBool::new(false));
    let mut stop_keys = Vec::new();
    if let Some(d) = &args.display {
        match watch_stop_key(d, stop.clone(), watcher_done.clone()) {
            Ok(_) => {
                stop_keys.push(STOP_KEYS.iter().map(|k| k.to_string()).collect());
                eprintln!("omnid: Ctrl+Alt+Escape on {d} or Ctrl-C here stops the agent");
            }
            Err(e) => eprintln!("omnid: warning: {e}; Ctrl-C here stops the agent"),
        }
    }
    let policy = Policy {
        allow: (!args.allow.is_empty()).then(|| args.allow.iter().cloned().collect::<BTreeSet<_>>()),
        forbidden: args.forbid.clone(),
        max_steps: args.max_steps,
        min_interval: Duration::from_millis(args.interval_ms),
        dry_run: args.dry_run,
        confirm: args.confirm,
        stop_keys,
    };
    let run_cfg = RunConfig {
        tool,
        goal: args.goal.clone(),
        policy: policy.clone(),
        history_screens: args.history,
        max_new_tokens: args.max_tokens,
    };
    let log_dir = args.log.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        PathBuf::from(format!("omnid-agent-{secs}"))
    });
    let area = exec.area();
    let mut log = StepLog::create(
        &log_dir,
        serde_json::json!({
            "goal": args.goal, "tool": tool, "display": args.display, "monitor": args.monitor,
            "serial": args.serial, "area": area, "policy": policy,
        }),
    )
    .map_err(anyhow::Error::msg)?;

    let lm = Arc::new(load_model(&args.model, cfg)?);
    let engine = super::start_single_engine(&lm)?;
    let model = EngineAgentModel::new(lm, engine);
    let mut terminal = TerminalConfirm;
    let confirm: Option<&mut dyn Confirm> = if args.confirm { Some(&mut terminal) } else { None };
    let end = run_agent(&model, exec.as_mut(), &run_cfg, &mut log, confirm, &stop);
    watcher_done.store(true, Ordering::Relaxed);
    let (outcome, detail) = end.outcome();
    eprintln!("omnid: the run ended: {outcome}: {detail}; log: {}", log.dir().join("timeline.html").display());
    if let RunEnd::Answered(a) = &end {
        println!("{a}");
    }
    Ok(match end {
        RunEnd::Terminated { success: true } | RunEnd::Answered(_) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}
