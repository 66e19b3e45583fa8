//! `omnid bench-agent --display :N`: agent steps through the same loop as `omnid agent`
//! (screenshot, prompt with the last screenshots, the model's answer through the engine, parsing,
//! checks), as a dry run so nothing on the display moves, reporting seconds per step split into
//! capture, encoders (preprocessing included), generation and execution, and peak memory.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::bench::peak_rss_bytes;
use super::bench_model::BenchModelArgs;
use crate::agent::action::Tool;
use crate::agent::executor::{Executor, X11Executor};
use crate::agent::model::EngineAgentModel;
use crate::agent::runner::{run_agent, RunConfig, DEFAULT_HISTORY_SCREENS};
use crate::agent::safety::Policy;
use crate::agent::step_log::{StepLog, StepRecord};
use crate::config::OmnidConfig;

/// Arguments of `omnid bench-agent`.
#[derive(Debug, clap::Args)]
pub struct BenchAgentArgs {
    #[command(flatten)]
    pub model: BenchModelArgs,
    /// The X display to look at (nothing on it is touched: a dry run).
    #[arg(long)]
    pub display: String,
    /// Steps to run.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Tokens the model writes per step.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Screenshots per turn.
    #[arg(long, default_value_t = DEFAULT_HISTORY_SCREENS)]
    pub history: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `omnid bench-agent`.
pub fn run(args: BenchAgentArgs, cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.steps >= 1, "--steps must be at least 1");
    let mut exec = X11Executor::open(&args.display, None).map_err(anyhow::Error::msg)?;
    let lm = Arc::new(args.model.load(cfg)?);
    let described = args.model.describe(&lm);
    let rss_model = peak_rss_bytes();
    let engine = super::start_single_engine(&lm)?;
    let model = EngineAgentModel::new(lm, engine);
    let dir = std::env::temp_dir().join(format!("omnid-bench-agent-{}", std::process::id()));
    let mut log = StepLog::create(&dir, serde_json::json!({"bench": true})).map_err(anyhow::Error::msg)?;
    let records: Arc<Mutex<Vec<StepRecord>>> = Arc::default();
    let seen = records.clone();
    log.observe(Box::new(move |r: &StepRecord| seen.lock().expect("records").push(r.clone())));
    // The answers of a random-weight model are refused; refusals must not end the run early.
    let policy = Policy { dry_run: true, max_steps: args.steps, min_interval: Duration::ZERO, ..Policy::default() };
    let run_cfg = RunConfig {
        tool: Tool::ComputerUse,
        goal: "Open the settings and turn on dark mode.".into(),
        policy,
        history_screens: args.history,
        max_new_tokens: args.max_tokens,
    };
    let mut steps = Vec::new();
    while steps.len() < args.steps {
        let end = run_agent(&model, &mut exec, &run_cfg, &mut log, None, &AtomicBool::new(false));
        let mut got = records.lock().expect("records").drain(..).collect::<Vec<_>>();
        if got.is_empty() {
            anyhow::bail!("the run ended without a step: {end:?}");
        }
        steps.append(&mut got);
    }
    let _ = std::fs::remove_dir_all(&dir);
    steps.truncate(args.steps);
    let n = steps.len() as f64;
    let mean = |f: fn(&StepRecord) -> f64| steps.iter().map(f).sum::<f64>() / n / 1e3;
    let (capture, encode, generate, execute) =
        (mean(|s| s.capture_ms), mean(|s| s.encode_ms), mean(|s| s.generate_ms), mean(|s| s.execute_ms));
    let area = exec.area();
    let mb = |b: u64| b as f64 / (1 << 20) as f64;
    let report = serde_json::json!({
        "model": described,
        "display": args.display,
        "screen": [area.width, area.height],
        "steps": steps.len(),
        "history_screens": args.history,
        "s_per_step": capture + encode + generate + execute,
        "capture_s": capture,
        "encode_s": encode,
        "generate_s": generate,
        "execute_s": execute,
        "peak_rss_mb_after_load": rss_model.map(mb),
        "peak_rss_mb": peak_rss_bytes().map(mb),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{described}\n{} steps on a {}×{} screen, {} screenshot(s) per turn: {:.2} s per step (capture {:.3}, encoders {:.2}, generation {:.2}, execution {:.3}); peak memory {:.0} MB",
            steps.len(),
            area.width,
            area.height,
            args.history,
            capture + encode + generate + execute,
            capture,
            encode,
            generate,
            execute,
            peak_rss_bytes().map_or(0.0, mb)
        );
    }
    Ok(ExitCode::SUCCESS)
}
