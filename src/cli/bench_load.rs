//! `omnid bench-load`: N concurrent Realtime voice sessions against the daemon, over real
//! WebSockets. Each session sends one spoken turn (1 s of a voiced 24 kHz PCM16 signal,
//! push-to-talk) and asks for a spoken answer; the client measures, per session, the first audio
//! (from `response.create` to the first `response.output_audio.delta`), the audio real-time factor
//! (time from `response.create` to `response.done` over the seconds of audio received) and whether
//! a player starting at the first delta with a [`JITTER_BUFFER_S`] buffer would ever run dry.
//! For each N it reports p50/p95 first audio and the RTFs; the highest N whose sessions all stay
//! real-time is the answer to "how many voice users does this machine serve".
//!
//! Without `--url` it starts the daemon in-process on a free loopback port (the embedded default,
//! `--model DIR`, or `--synthetic real-widths`), so one command measures a configuration. With
//! `--video-job FILE` that daemon also runs a video job on FILE for the whole measurement, which
//! shows whether batch work makes voice sessions miss real time.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::bench_model::BenchModelArgs;
use super::serve::app_state;
use crate::config::OmnidConfig;
use crate::engine::service::ServiceLimits;

/// Audio a player holds before it starts: a session "stays real-time" when, with this much
/// buffered at the first delta, every later delta arrives before the player needs it.
pub const JITTER_BUFFER_S: f64 = 0.5;

/// Longest wait for any one event before a session counts as failed.
const EVENT_TIMEOUT: Duration = Duration::from_secs(300);

/// Arguments of `omnid bench-load`.
#[derive(Debug, clap::Args)]
pub struct BenchLoadArgs {
    /// A running daemon (`http://HOST:PORT`); without it one is started in-process.
    #[arg(long)]
    pub url: Option<String>,
    /// API key of the daemon at `--url`.
    #[arg(long)]
    pub api_key: Option<String>,
    /// The in-process daemon's model.
    #[command(flatten)]
    pub model: BenchModelArgs,
    /// Concurrent sessions to try, in order (comma-separated).
    #[arg(long, default_value = "1,2,4,8", value_delimiter = ',')]
    pub sessions: Vec<usize>,
    /// Text tokens per answer (`max_output_tokens`).
    #[arg(long, default_value_t = 24)]
    pub max_output_tokens: usize,
    /// Speech frames per answer at most (80 ms each; in-process daemon only).
    #[arg(long, default_value_t = 50)]
    pub speech_frames: usize,
    /// Answers the in-process daemon generates at once (default: the most sessions tried); 1
    /// measures the engine without continuous batching.
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Voice (default: the daemon's).
    #[arg(long)]
    pub voice: Option<String>,
    /// Run a video job on this file in the in-process daemon during the measurement.
    #[arg(long, value_name = "FILE")]
    pub video_job: Option<std::path::PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One session's measurements.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionRun {
    pub first_audio_ms: f64,
    pub audio_s: f64,
    pub rtf: f64,
    /// Longest time the player would have had nothing to play.
    pub worst_stall_ms: f64,
}

/// One level of concurrency.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LevelReport {
    pub sessions: usize,
    pub first_audio_p50_ms: f64,
    pub first_audio_p95_ms: f64,
    pub rtf_mean: f64,
    pub rtf_max: f64,
    pub worst_stall_ms: f64,
    pub real_time: bool,
    pub failed: usize,
    pub runs: Vec<SessionRun>,
}

/// Runs `omnid bench-load`.
pub fn run(args: BenchLoadArgs, cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.sessions.is_empty() && args.sessions.iter().all(|&n| (1..=256).contains(&n)),
        "--sessions: counts between 1 and 256"
    );
    anyhow::ensure!(
        args.max_output_tokens > 0 && args.speech_frames > 0,
        "--max-output-tokens and --speech-frames must be positive"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("omnid-bench-load").build()?;
    let levels = runtime.block_on(async {
        let (base, key, _server, job) = match &args.url {
            Some(url) => (url.trim_end_matches('/').to_string(), args.api_key.clone(), None, None),
            None => {
                let (addr, server, job) = start_daemon(&args, cfg).await?;
                (format!("http://{addr}"), None, Some(server), job)
            }
        };
        let ws = format!("ws{}/v1/realtime", base.strip_prefix("http").unwrap_or(&base));
        let mut levels = Vec::new();
        for &n in &args.sessions {
            let level = run_level(&ws, key.as_deref(), n, &args).await;
            if !args.json {
                print_level(&level);
            }
            levels.push(level);
        }
        if let Some((state, id)) = job {
            let (store, id) = (state.jobs.as_ref().expect("started with jobs").queue.store().clone(), id);
            let report = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
                let job = store.job(&id)?.ok_or_else(|| anyhow::anyhow!("the job vanished"))?;
                Ok(format!(
                    "video job during the sessions: {} of {:?} windows done, state {:?}",
                    store.windows(&id)?.len(),
                    job.windows_total,
                    job.state
                ))
            })
            .await??;
            eprintln!("omnid bench-load: {report}");
        }
        anyhow::Ok(levels)
    })?;
    let best = levels.iter().filter(|l| l.real_time).map(|l| l.sessions).max();
    if args.json {
        println!(
            "{}",
            serde_json::json!({"levels": levels, "max_real_time_sessions": best, "jitter_buffer_s": JITTER_BUFFER_S})
        );
    } else {
        match best {
            Some(n) => println!("highest concurrency that stays real-time: {n} sessions"),
            None => println!("no tested concurrency stays real-time"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The in-process daemon's state and the id of its video job.
type BackgroundJob = (Arc<crate::server::AppState>, String);

/// The daemon on 127.0.0.1:0 in this process, its batch as wide as the widest level (and its
/// video job, with `--video-job`).
async fn start_daemon(
    args: &BenchLoadArgs,
    cfg: &OmnidConfig,
) -> anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>, Option<BackgroundJob>)> {
    let lm = args.model.load(cfg)?;
    eprintln!("omnid bench-load: in-process daemon on {}", args.model.describe(&lm));
    let widest = args.sessions.iter().copied().max().unwrap_or(1);
    let mut cfg = cfg.clone();
    cfg.speech.max_frames = args.speech_frames;
    let max_batch = args.max_batch.unwrap_or(widest).clamp(1, 256);
    eprintln!("omnid bench-load: max_batch {max_batch}");
    let jobs_dir = args.video_job.as_ref().map(|_| super::serve::JobsDir {
        path: std::env::temp_dir().join(format!("omnid-bench-load-jobs-{}", std::process::id())),
        fallible: false,
    });
    let limits = ServiceLimits { queue_capacity: widest, max_batch };
    let state = app_state(Arc::new(lm), &cfg, None, limits, jobs_dir.as_ref())?;
    let job = match &args.video_job {
        Some(video) => {
            let mut spec = crate::analyze::spec::JobSpec::new(video.clone(), "Describe what happens, with times.");
            spec.max_new_tokens = 32;
            let jobs = state.jobs.as_ref().expect("started with a job folder");
            let id = jobs.queue.submit(&spec)?;
            eprintln!("omnid bench-load: video job {id} on {} runs during the sessions", video.display());
            Some((state.clone(), id))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        if let Err(e) = crate::server::run(listener, state, std::future::pending::<()>()).await {
            eprintln!("omnid bench-load: the daemon stopped: {e:#}");
        }
    });
    Ok((addr, server, job))
}

async fn run_level(ws: &str, key: Option<&str>, n: usize, args: &BenchLoadArgs) -> LevelReport {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (ws, key, voice) = (ws.to_string(), key.map(str::to_string), args.voice.clone());
            let tokens = args.max_output_tokens;
            tokio::spawn(async move { one_session(&ws, key.as_deref(), voice.as_deref(), tokens).await })
        })
        .collect();
    let mut runs = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => runs.push(r),
            Ok(Err(e)) => {
                eprintln!("omnid bench-load: a session failed: {e:#}");
                failed += 1;
            }
            Err(e) => {
                eprintln!("omnid bench-load: a session task failed: {e}");
                failed += 1;
            }
        }
    }
    let first: Vec<f64> = runs.iter().map(|r| r.first_audio_ms).collect();
    let rtf: Vec<f64> = runs.iter().map(|r| r.rtf).collect();
    let worst_stall_ms = runs.iter().map(|r| r.worst_stall_ms).fold(0.0, f64::max);
    LevelReport {
        sessions: n,
        first_audio_p50_ms: percentile(&first, 0.5),
        first_audio_p95_ms: percentile(&first, 0.95),
        rtf_mean: if rtf.is_empty() { f64::NAN } else { rtf.iter().sum::<f64>() / rtf.len() as f64 },
        rtf_max: rtf.iter().copied().fold(f64::NAN, f64::max),
        worst_stall_ms,
        real_time: failed == 0 && worst_stall_ms == 0.0,
        failed,
        runs,
    }
}

fn print_level(l: &LevelReport) {
    println!(
        "{:>3} sessions: first audio p50 {:>8.1} ms  p95 {:>8.1} ms   RTF mean {:.3} max {:.3}   worst stall {:>7.1} ms   {}{}",
        l.sessions,
        l.first_audio_p50_ms,
        l.first_audio_p95_ms,
        l.rtf_mean,
        l.rtf_max,
        l.worst_stall_ms,
        if l.real_time { "real-time" } else { "NOT real-time" },
        if l.failed > 0 { format!(" ({} failed)", l.failed) } else { String::new() }
    );
}

/// Nearest-rank percentile (NaN for no values).
fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// 1 s of a voiced signal (a 140 Hz sawtooth with harmonics at about −12 dBFS), 24 kHz PCM16.
fn spoken_turn() -> String {
    let bytes: Vec<u8> = (0..24_000)
        .flat_map(|i| {
            let phase = (i as f64 * 140.0 / 24_000.0).fract();
            (((phase * 2.0 - 1.0) * 8000.0) as i16).to_le_bytes()
        })
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_event(ws: &mut Socket) -> anyhow::Result<serde_json::Value> {
    loop {
        let msg = tokio::time::timeout(EVENT_TIMEOUT, ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("no event for {EVENT_TIMEOUT:?}"))?
            .ok_or_else(|| anyhow::anyhow!("the daemon closed the session"))??;
        if let Message::Text(t) = msg {
            let v: serde_json::Value = serde_json::from_str(&t)?;
            if v["type"] == "error" {
                anyhow::bail!("error event: {}", v["error"]["message"]);
            }
            return Ok(v);
        }
    }
}

async fn send(ws: &mut Socket, v: serde_json::Value) -> anyhow::Result<()> {
    ws.send(Message::Text(v.to_string().into())).await?;
    Ok(())
}

/// One voice turn; the measurements of its answer.
async fn one_session(url: &str, key: Option<&str>, voice: Option<&str>, tokens: usize) -> anyhow::Result<SessionRun> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request()?;
    if let Some(k) = key {
        req.headers_mut().insert("Authorization", format!("Bearer {k}").parse()?);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    next_event(&mut ws).await?; // session.created
    let mut output = serde_json::json!({"format": {"type": "audio/pcm", "rate": 24000}});
    if let Some(v) = voice {
        output["voice"] = v.into();
    }
    send(
        &mut ws,
        serde_json::json!({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["audio"],
            "max_output_tokens": tokens, "audio": {"input": {"turn_detection": null}, "output": output}}}),
    )
    .await?;
    next_event(&mut ws).await?; // session.updated
    send(&mut ws, serde_json::json!({"type": "input_audio_buffer.append", "audio": spoken_turn()})).await?;
    send(&mut ws, serde_json::json!({"type": "input_audio_buffer.commit"})).await?;
    let t0 = Instant::now();
    send(&mut ws, serde_json::json!({"type": "response.create"})).await?;
    let mut first: Option<f64> = None;
    let mut audio_s = 0.0;
    let mut worst_stall = 0.0f64;
    loop {
        let e = next_event(&mut ws).await?;
        let now = t0.elapsed().as_secs_f64();
        match e["type"].as_str() {
            Some("response.output_audio.delta") => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(e["delta"].as_str().unwrap_or(""))?;
                let start = *first.get_or_insert(now);
                // The player started JITTER_BUFFER_S after the first delta; by `now` it needed
                // everything received so far plus this delta's start.
                let needed_at = start + JITTER_BUFFER_S + audio_s;
                worst_stall = worst_stall.max(now - needed_at);
                audio_s += bytes.len() as f64 / 2.0 / 24_000.0;
            }
            Some("response.done") => {
                let status = e["response"]["status"].as_str().unwrap_or("");
                anyhow::ensure!(status == "completed", "the response ended {status}");
                let first = first.ok_or_else(|| anyhow::anyhow!("the answer had no audio"))?;
                let _ = ws.close(None).await;
                return Ok(SessionRun {
                    first_audio_ms: first * 1e3,
                    audio_s,
                    rtf: now / audio_s,
                    worst_stall_ms: worst_stall.max(0.0) * 1e3,
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&v, 0.5), 3.0);
        assert_eq!(percentile(&v, 0.95), 5.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
