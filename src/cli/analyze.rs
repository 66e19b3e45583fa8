//! `omnid analyze VIDEO --task TEXT`: a video job in this process, with a progress bar on
//! stderr and the result on stdout (or `--out`). With `--db FILE` the job and every finished
//! window are kept in that SQLite file: running the same command again after an interruption
//! (Ctrl-C, a kill, a crash) resumes at the first unfinished window, and after completion it
//! prints the stored result without computing anything.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use super::{load_model, ModelArgs};
use crate::analyze::events::parse_time;
use crate::analyze::formats::Format;
use crate::analyze::local_model::EngineModel;
use crate::analyze::result::job_result;
use crate::analyze::runner::{file_stamp, run_job, Progress, RunEnd, Stops};
use crate::analyze::spec::{default_overlap, JobSpec};
use crate::analyze::store::{JobState, Store};
use crate::config::OmnidConfig;

/// Arguments of `omnid analyze`.
#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The video file.
    pub video: PathBuf,
    /// What to find or describe ("list every time someone enters the room").
    #[arg(long)]
    pub task: String,
    /// Frames sampled per second (default 2).
    #[arg(long)]
    pub fps: Option<f64>,
    /// Window length in seconds (default 60; shortened when the model's context needs it).
    #[arg(long, value_name = "SECONDS")]
    pub window: Option<f64>,
    /// Overlap of consecutive windows in seconds (default 2, at most a quarter of the window).
    #[arg(long, value_name = "SECONDS")]
    pub overlap: Option<f64>,
    /// Start of the part to analyse: seconds or [hh:]mm:ss.
    #[arg(long, value_name = "T", value_parser = time_arg)]
    pub from: Option<f64>,
    /// End of the part to analyse (default: the end of the video).
    #[arg(long, value_name = "T", value_parser = time_arg)]
    pub to: Option<f64>,
    /// Output format: json, srt, vtt or md.
    #[arg(long, default_value = "json", value_parser = format_arg)]
    pub format: Format,
    /// Write the result here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Leave the sound track out (it goes in with the frames when the model hears).
    #[arg(long)]
    pub no_audio: bool,
    /// After the windows, ask the model for a summary of everything found.
    #[arg(long)]
    pub summarize: bool,
    /// Tokens the model may write per window (default 256).
    #[arg(long)]
    pub max_tokens: Option<usize>,
    /// Keep the job in this SQLite file so an interrupted run resumes (see above).
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// Print per-window timings (decode, encoders, generation) to stderr at the end.
    #[arg(long)]
    pub timings: bool,
}

fn time_arg(s: &str) -> Result<f64, String> {
    parse_time(s).ok_or_else(|| format!("{s:?} is not a time: seconds (90, 12.5) or [hh:]mm:ss (1:30)"))
}

fn format_arg(s: &str) -> Result<Format, String> {
    Format::parse(s)
}

/// Runs `omnid analyze`.
pub fn run(args: AnalyzeArgs, cfg: &OmnidConfig) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.video.is_file(), "{}: no such video file", args.video.display());
    // The file itself, wherever the command runs from: `--db` finds the job again by it.
    let video = args.video.canonicalize().map_err(|e| anyhow::anyhow!("{}: {e}", args.video.display()))?;
    let mut spec = JobSpec::new(video, args.task.clone());
    spec.title = args.video.display().to_string();
    spec.fps = args.fps.or(cfg.video.fps).unwrap_or(spec.fps);
    spec.window_s = args.window.unwrap_or(spec.window_s);
    spec.overlap_s = args.overlap.unwrap_or(default_overlap(spec.window_s));
    spec.from_s = args.from.unwrap_or(0.0);
    spec.to_s = args.to;
    spec.audio = !args.no_audio;
    spec.summarize = args.summarize;
    spec.max_new_tokens = args.max_tokens.unwrap_or(spec.max_new_tokens);
    spec.validate().map_err(anyhow::Error::msg)?;

    let store = match &args.db {
        Some(path) => Store::open(path).map_err(|e| match e {
            e @ crate::analyze::store::StoreError::InUse { .. } => {
                anyhow::anyhow!("{e}: another `omnid analyze` or daemon is working this --db file; wait for it, or give this run its own")
            }
            e => e.into(),
        })?,
        None => Store::in_memory()?,
    };
    // The same job already in the file: resume it, or print its stored result when the file is
    // unchanged. (A resumed job refuses another model or a changed file itself.)
    let existing =
        store.jobs()?.into_iter().rev().find(|j| j.spec.same_request(&spec) && j.state != JobState::Cancelled);
    let id = match existing {
        Some(job) if job.state == JobState::Done && unchanged(&job, &spec.video) => {
            let by = job.plan.as_ref().map_or("", |p| p.model.as_str());
            eprintln!(
                "omnid: {} was finished earlier by {by} ({}); printing the stored result",
                job.id,
                path_of(&args.db)
            );
            return write_result(&store, &job.id, &args);
        }
        Some(job) if job.state == JobState::Done => store.create(&spec)?,
        Some(job) => {
            eprintln!("omnid: resuming {} from {}", job.id, path_of(&args.db));
            job.id
        }
        None => store.create(&spec)?,
    };

    let lm = Arc::new(load_model(&args.model, cfg)?);
    let engine = super::start_single_engine(&lm)?;
    let model = EngineModel::new(lm, engine);
    let (stop, cancel) = (AtomicBool::new(false), AtomicBool::new(false));
    let mut bar = Bar::new(std::io::stderr().is_terminal());
    let end = run_job(&store, &id, &model, &Stops { stop: &stop, cancel: &cancel }, &mut |p| bar.show(&p));
    bar.finish();
    match end {
        RunEnd::Done => {}
        RunEnd::Failed(m) => anyhow::bail!("{m}"),
        RunEnd::Cancelled | RunEnd::Stopped => anyhow::bail!("the job was stopped"),
    }
    if args.timings {
        print_timings(&store, &id)?;
    }
    write_result(&store, &id, &args)
}

/// Whether the video is the file the job's plan recorded (same size and modification time).
fn unchanged(job: &crate::analyze::store::JobRecord, video: &std::path::Path) -> bool {
    let Some(plan) = &job.plan else { return false };
    file_stamp(video).is_ok_and(|(bytes, modified)| plan.video_bytes == bytes && plan.video_modified_ns == modified)
}

fn path_of(db: &Option<PathBuf>) -> String {
    db.as_ref().map_or_else(|| "memory".into(), |p| p.display().to_string())
}

fn write_result(store: &Store, id: &str, args: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let (_, text) = job_result(store, id, args.format)?.ok_or_else(|| anyhow::anyhow!("job {id} vanished"))?;
    match &args.out {
        Some(path) => std::fs::write(path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        None => std::io::stdout().write_all(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Totals per stage, then one line per window.
fn print_timings(store: &Store, id: &str) -> anyhow::Result<()> {
    let windows = store.windows(id)?;
    let sum = |f: fn(&crate::analyze::store::WindowRecord) -> f64| windows.iter().map(f).sum::<f64>() / 1e3;
    eprintln!(
        "timings: {} windows, decode {:.2} s, encoders {:.2} s, generation {:.2} s",
        windows.len(),
        sum(|w| w.decode_ms),
        sum(|w| w.encode_ms),
        sum(|w| w.generate_ms)
    );
    for w in &windows {
        eprintln!(
            "  window {} {:.1}-{:.1} s: {} frames, {} prompt tokens, {} written, decode {:.0} ms, encoders {:.0} ms, generation {:.0} ms, attempts {}",
            w.index, w.start, w.end, w.frames, w.prompt_tokens, w.completion_tokens, w.decode_ms, w.encode_ms, w.generate_ms, w.attempts
        );
    }
    Ok(())
}

/// The progress bar: redrawn in place on a terminal, one line per window otherwise (logs).
struct Bar {
    tty: bool,
    started: Instant,
    /// Windows finished by an earlier run (not counted in the rate).
    resumed: usize,
    drawn: bool,
}

impl Bar {
    fn new(tty: bool) -> Self {
        Self { tty, started: Instant::now(), resumed: 0, drawn: false }
    }

    fn show(&mut self, p: &Progress) {
        match p {
            Progress::Planned { total, done, window_s } => {
                self.resumed = *done;
                eprintln!("omnid: {total} windows of {window_s:.1} s ({done} already done)");
            }
            Progress::Window { record, done, total } => {
                let width = 30;
                let filled = width * done / total.max(&1);
                let ran = done.saturating_sub(self.resumed).max(1) as f64;
                let eta = self.started.elapsed().as_secs_f64() / ran * (total - done) as f64;
                let line = format!(
                    "[{}{}] {done}/{total} windows, video {:.0} s, {} events, eta {:.0} s",
                    "#".repeat(filled),
                    ".".repeat(width - filled),
                    record.end,
                    record.events.len(),
                    eta
                );
                if self.tty {
                    eprint!("\r{line}\x1b[K");
                    self.drawn = true;
                } else {
                    eprintln!("{line}");
                }
            }
            Progress::Summarizing => {
                self.finish();
                eprintln!("omnid: summarising");
            }
        }
    }

    fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}
