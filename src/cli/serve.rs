//! `omnid serve`: load the model, start the engine thread and the HTTP API, serve until Ctrl-C
//! (or SIGTERM): requests in flight are finished, then the engine thread is joined.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::{load_model, ModelArgs};
use crate::analyze::local_model::EngineModel;
use crate::analyze::queue::{JobQueue, QueueLimits};
use crate::analyze::store::Store;
use crate::config::{JobsSection, OmnidConfig};
use crate::engine::model_dir::LoadedModel;
use crate::engine::service::{EngineService, ServiceLimits};
use crate::metrics::Metrics;
use crate::server::jobs::Jobs;
use crate::server::{run, unix_now, AppState, ServerLimits};

/// Arguments of `omnid serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to listen on (default: `[server] bind` of the config, 127.0.0.1:8080). Port 0 picks a free port.
    #[arg(long, value_name = "ADDR:PORT")]
    pub bind: Option<String>,
    /// Require `Authorization: Bearer KEY` on every request (default: OMNID_API_KEY, then the config's).
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Requests that may wait behind the running ones (default: the config's, 8); more get HTTP 429.
    #[arg(long)]
    pub max_queued: Option<usize>,
    /// Answers generated at once, decode steps batched (default: the config's, 8).
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Folder of the video-job store and uploads (default: `[jobs] dir`, else $XDG_STATE_HOME/omnid).
    #[arg(long, value_name = "DIR")]
    pub jobs_dir: Option<std::path::PathBuf>,
}

/// Runs `omnid serve`.
pub fn run_serve(args: ServeArgs, cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    let s = &cfg.server;
    let bind = args.bind.clone().unwrap_or_else(|| s.bind.clone());
    let addr: std::net::SocketAddr =
        bind.parse().map_err(|_| anyhow::anyhow!("--bind {bind:?}: expected ADDRESS:PORT such as 127.0.0.1:8080"))?;
    let api_key = args.api_key.clone().or_else(|| std::env::var("OMNID_API_KEY").ok()).or_else(|| s.api_key.clone());
    anyhow::ensure!(api_key.as_deref().is_none_or(|k| !k.trim().is_empty()), "the API key is empty");
    let max_queued = args.max_queued.unwrap_or(s.max_queued);
    anyhow::ensure!(max_queued > 0, "--max-queued must be at least 1");
    let max_batch = args.max_batch.unwrap_or(s.max_batch);
    anyhow::ensure!((1..=256).contains(&max_batch), "--max-batch must be between 1 and 256");
    // A store named on the command line or in the config must open; the default one may be
    // held by another daemon on this machine, which then keeps it (see `JobsDir::fallible`).
    let jobs_dir = match (&args.jobs_dir, &cfg.jobs.dir) {
        (Some(d), _) | (None, Some(d)) => JobsDir { path: d.clone(), fallible: false },
        (None, None) => JobsDir { path: cfg.jobs.resolved_dir().map_err(anyhow::Error::msg)?, fallible: true },
    };
    let lm = Arc::new(load_model(&args.model, cfg)?);
    let state = app_state(lm, cfg, api_key, ServiceLimits { queue_capacity: max_queued, max_batch }, Some(&jobs_dir))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("omnid-http").build()?;
    runtime.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr()?;
        if state.api_key.is_none() && !local.ip().is_loopback() {
            eprintln!("omnid: warning: serving {local} without an API key: anyone who can reach it can use it");
        }
        // The address goes to stdout (scripts and tests read it); everything else to stderr.
        println!("omnid: listening on http://{local}");
        eprintln!("omnid: voice page (browser microphone ↔ the model): http://{local}/");
        let st = state.clone();
        let shutdown = async move {
            shutdown_signal().await;
            st.stopping.send_replace(true);
        };
        run(listener, state, shutdown).await?;
        anyhow::Ok(())
    })?;
    eprintln!("omnid: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Where a daemon keeps its video jobs.
pub(super) struct JobsDir {
    pub path: std::path::PathBuf,
    /// The default folder: when another daemon holds its store, this one runs without video
    /// jobs (saying so at start and on `/v1/jobs`) instead of refusing to start.
    pub fallible: bool,
}

/// The daemon's state over a loaded model: the engine thread started, limits from the config.
pub(super) fn app_state(
    lm: Arc<LoadedModel>,
    cfg: &OmnidConfig,
    api_key: Option<String>,
    engine_limits: ServiceLimits,
    jobs_dir: Option<&JobsDir>,
) -> anyhow::Result<Arc<AppState>> {
    let s = &cfg.server;
    let model_id = match &lm.dir {
        Some(d) => d.file_name().map_or_else(|| d.display().to_string(), |n| n.to_string_lossy().into_owned()),
        None => "omnid-embedded-tiny".into(),
    };
    let metrics = Arc::new(Metrics::default());
    let engine = Arc::new(EngineService::start(lm.clone(), engine_limits, metrics.clone())?);
    let jobs = match jobs_dir {
        None => Err("video jobs are not enabled in this process".to_string()),
        Some(dir) => match start_jobs(&dir.path, &cfg.jobs, &lm, &engine) {
            Ok(jobs) => Ok(jobs),
            Err(JobsError::InUse(why)) if dir.fallible => {
                eprintln!("omnid: warning: video jobs are off in this daemon: {why}");
                Err(format!("video jobs are off in this daemon: {why}"))
            }
            Err(JobsError::InUse(why)) => anyhow::bail!("{why}"),
            Err(JobsError::Other(e)) => return Err(e),
        },
    };
    let ocr = crate::server::ocr::OcrService::new(lm.clone(), engine.clone(), &cfg.ocr)?;
    let agent = if cfg.agent.displays.is_empty() {
        Err("agent sessions are off: list the X displays this daemon may drive in [agent] displays".to_string())
    } else {
        let log_root = match (&cfg.agent.log_dir, jobs_dir) {
            (Some(d), _) => d.clone(),
            (None, Some(j)) => j.path.join("agent-logs"),
            (None, None) => std::env::temp_dir().join(format!("omnid-agent-logs-{}", std::process::id())),
        };
        let model = Arc::new(crate::agent::model::EngineAgentModel::new(lm.clone(), engine.clone()));
        Ok(crate::server::agent::AgentSessions::new(model, cfg.agent.displays.clone(), log_root))
    };
    Ok(Arc::new(AppState {
        ocr,
        agent,
        engine,
        metrics,
        model: lm,
        model_id,
        api_key,
        limits: ServerLimits {
            max_request_bytes: s.max_request_bytes,
            max_media_items: s.max_media_items,
            max_tokens: s.max_tokens,
            default_max_tokens: cfg.limits.max_new_tokens.min(s.max_tokens),
            speech_max_frames: cfg.speech.max_frames,
            speech_chunk_frames: cfg.speech.chunk_frames,
            speech_left_context: cfg.speech.left_context,
            realtime_session: std::time::Duration::from_secs(s.realtime_session_s),
            remote_media: s.remote_media.then(|| crate::server::media::RemoteFetch {
                max_bytes: s.max_request_bytes,
                timeout: std::time::Duration::from_secs(10),
                allow_private: s.remote_media_allow_private,
            }),
        },
        started: unix_now(),
        jobs,
        stopping: tokio::sync::watch::Sender::new(false),
    }))
}

/// Why the video jobs did not start.
enum JobsError {
    /// Another daemon holds the store.
    InUse(String),
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for JobsError {
    fn from(e: E) -> Self {
        JobsError::Other(e.into())
    }
}

/// Opens the job store in `dir` and starts the job workers; unfinished jobs resume.
fn start_jobs(
    dir: &Path,
    cfg: &JobsSection,
    lm: &Arc<LoadedModel>,
    engine: &Arc<EngineService>,
) -> Result<Jobs, JobsError> {
    let uploads = dir.join("uploads");
    std::fs::create_dir_all(&uploads).map_err(|e| anyhow::anyhow!("job folder {}: {e}", uploads.display()))?;
    let store = Arc::new(Store::open(&dir.join("jobs.sqlite")).map_err(|e| match e {
        e @ crate::analyze::store::StoreError::InUse { .. } => {
            JobsError::InUse(format!("{e}: give each daemon its own --jobs-dir (or [jobs] dir)"))
        }
        e => JobsError::Other(e.into()),
    })?);
    let model = Arc::new(EngineModel::new(lm.clone(), engine.clone()));
    let limits = QueueLimits { workers: cfg.workers, max_waiting: cfg.max_waiting };
    let media_dirs = cfg
        .media_dirs
        .iter()
        .map(|d| d.canonicalize().map_err(|e| anyhow::anyhow!("[jobs] media_dirs: {}: {e}", d.display())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Canonical, so that the delete handler recognises uploads by prefix.
    let uploads = uploads.canonicalize()?;
    let queue = JobQueue::start(store, model, limits)?;
    let swept = crate::server::jobs::sweep_uploads(&uploads, &queue).map_err(anyhow::Error::msg)?;
    if swept > 0 {
        eprintln!("omnid: removed {swept} uploads that no job refers to (cut off by a crash or a client that left)");
    }
    Ok(Jobs { queue, uploads, media_dirs, max_upload_bytes: cfg.max_upload_bytes })
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
