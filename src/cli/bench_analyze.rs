//! `omnid bench-analyze VIDEO`: one video job through the same path as `omnid analyze` and the
//! daemon's jobs (job thread: decode by seeking + encoders; engine thread: generation), with the
//! wall time split into decoding, encoders and generation, scaled to an hour of video, and the
//! peak resident memory — which must not grow with the video's length (run it on a 1-minute and
//! a 30-minute file; `scripts/bench-analyze.sh` does both).

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use super::bench::peak_rss_bytes;
use super::bench_model::BenchModelArgs;
use crate::analyze::local_model::EngineModel;
use crate::analyze::runner::{run_job, Progress, RunEnd, Stops};
use crate::analyze::spec::{default_overlap, JobSpec};
use crate::analyze::store::Store;
use crate::config::OmnidConfig;

/// Arguments of `omnid bench-analyze`.
#[derive(Debug, clap::Args)]
pub struct BenchAnalyzeArgs {
    #[command(flatten)]
    pub model: BenchModelArgs,
    /// The video file.
    pub video: std::path::PathBuf,
    /// Frames sampled per second.
    #[arg(long, default_value_t = 2.0)]
    pub fps: f64,
    /// Window length, seconds (shortened to the model's context as in a job).
    #[arg(long, default_value_t = 60.0)]
    pub window: f64,
    /// Tokens written per window.
    #[arg(long, default_value_t = 32)]
    pub max_tokens: usize,
    /// Leave the sound track out.
    #[arg(long)]
    pub no_audio: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `omnid bench-analyze`.
pub fn run(args: BenchAnalyzeArgs, cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    let lm = Arc::new(args.model.load(cfg)?);
    let described = args.model.describe(&lm);
    let rss_model = peak_rss_bytes();
    let engine = super::start_single_engine(&lm)?;
    let model = EngineModel::new(lm, engine);
    let store = Store::in_memory()?;
    let mut spec = JobSpec::new(args.video.clone(), "Describe what happens, with times.");
    spec.fps = args.fps;
    spec.window_s = args.window;
    spec.overlap_s = default_overlap(args.window);
    spec.max_new_tokens = args.max_tokens;
    spec.audio = !args.no_audio;
    let id = store.create(&spec)?;
    let (stop, cancel) = (AtomicBool::new(false), AtomicBool::new(false));
    let t0 = Instant::now();
    // The peak after each window: flat once the first windows have run, if nothing grows with
    // the video.
    let mut peaks = Vec::new();
    let mut track = |p: Progress| {
        if let Progress::Window { .. } = p {
            peaks.push(peak_rss_bytes().unwrap_or(0) as f64 / (1 << 20) as f64);
        }
    };
    match run_job(&store, &id, &model, &Stops { stop: &stop, cancel: &cancel }, &mut track) {
        RunEnd::Done => {}
        RunEnd::Failed(m) => anyhow::bail!("{m}"),
        other => anyhow::bail!("the job ended {other:?}"),
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let job = store.job(&id)?.ok_or_else(|| anyhow::anyhow!("the job vanished"))?;
    let windows = store.windows(&id)?;
    let video_s = windows.last().map_or(0.0, |w| w.end) - spec.from_s;
    let total = |f: fn(&crate::analyze::store::WindowRecord) -> f64| windows.iter().map(f).sum::<f64>() / 1e3;
    let (decode_s, encode_s, generate_s) = (total(|w| w.decode_ms), total(|w| w.encode_ms), total(|w| w.generate_ms));
    let per_hour = |s: f64| s / video_s * 3600.0;
    let mb = |b: Option<u64>| b.map(|b| b as f64 / (1 << 20) as f64);
    let report = serde_json::json!({
        "model": described,
        "video": args.video.display().to_string(),
        "video_s": video_s,
        "fps": spec.fps,
        "window_s": job.window_s,
        "windows": windows.len(),
        "frames": windows.iter().map(|w| w.frames).sum::<usize>(),
        "prompt_tokens": windows.iter().map(|w| w.prompt_tokens).sum::<usize>(),
        "completion_tokens": windows.iter().map(|w| w.completion_tokens).sum::<usize>(),
        "wall_s": wall_s,
        "decode_s": decode_s,
        "encode_s": encode_s,
        "generate_s": generate_s,
        "wall_s_per_hour": per_hour(wall_s),
        "decode_s_per_hour": per_hour(decode_s),
        "encode_s_per_hour": per_hour(encode_s),
        "generate_s_per_hour": per_hour(generate_s),
        "peak_rss_mb_after_load": mb(rss_model),
        "peak_rss_mb": mb(peak_rss_bytes()),
        "peak_rss_mb_by_window": peaks,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{described}\n{:.0} s of video at {} fps in {} windows of {:.1} s: {:.1} s wall ({:.0} s per hour of video: decode {:.0}, encoders {:.0}, generation {:.0}); peak memory {:.0} MB ({:.0} MB after loading)",
            video_s,
            spec.fps,
            windows.len(),
            job.window_s.unwrap_or(0.0),
            wall_s,
            per_hour(wall_s),
            per_hour(decode_s),
            per_hour(encode_s),
            per_hour(generate_s),
            mb(peak_rss_bytes()).unwrap_or(0.0),
            mb(rss_model).unwrap_or(0.0),
        );
    }
    Ok(ExitCode::SUCCESS)
}
