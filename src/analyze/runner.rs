//! Runs one job to its end: open the video, plan the windows (shortened to the model's context),
//! then for every window not yet in the store decode it by seeking, ask the model, parse the
//! events and commit the window before starting the next; finally merge the events of all
//! windows (stored ones included, so a resumed job's result is whole) and, when asked, summarise.
//! Only the window being worked on can be lost to a kill, and a finished window is never redone.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::budget::{fit_window, VideoShape};
use super::events::{parse_events, Event};
use super::merge::merge_events;
use super::model::{AskError, ModelTraits, Question, WindowModel};
use super::prompt::{says_nothing, summary_prompt, window_prompt};
use super::spec::JobSpec;
use super::store::{now, JobRecord, JobState, Plan, Store, WindowRecord};
use super::windows::{plan_windows, Window};
use crate::engine::media::{load_video, MediaItem, VideoClip, VideoRequest};

/// What a running job reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// The windows are planned; `done` of them were finished by an earlier run.
    Planned { total: usize, done: usize, window_s: f64 },
    /// A window was committed.
    Window { record: &'a WindowRecord, done: usize, total: usize },
    /// The final summary pass started.
    Summarizing,
}

/// How a run ended (errors are stored on the job as well).
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    Done,
    /// Cancelled by the user: the job is marked so.
    Cancelled,
    /// The daemon is stopping: the job stays queued and resumes on the next start.
    Stopped,
    Failed(String),
}

/// Flags a run watches between windows and, through the model, inside one.
pub struct Stops<'a> {
    /// Stop now (set for a cancel and when the daemon shuts down).
    pub stop: &'a AtomicBool,
    /// Set before `stop` when the stop is the user's cancel: the job ends cancelled instead of
    /// staying queued for the next start.
    pub cancel: &'a AtomicBool,
}

/// Runs job `id` (its spec is in `store`) and records the outcome in the store.
pub fn run_job(
    store: &Store,
    id: &str,
    model: &dyn WindowModel,
    stops: &Stops,
    on_progress: &mut dyn FnMut(Progress),
) -> RunEnd {
    let end = match store.job(id) {
        Ok(Some(job)) => run(store, id, &job, model, stops, on_progress),
        Ok(None) => Err(Halt::Failed(format!("no job {id}"))),
        Err(e) => Err(Halt::Failed(e.to_string())),
    };
    let (state, error, outcome) = match end {
        Ok(()) => return RunEnd::Done, // `finish` stored the result
        Err(Halt::Interrupted) if stops.cancel.load(Ordering::Relaxed) => {
            (JobState::Cancelled, None, RunEnd::Cancelled)
        }
        Err(Halt::Interrupted) => (JobState::Queued, None, RunEnd::Stopped),
        Err(Halt::Failed(m)) => (JobState::Failed, Some(m.clone()), RunEnd::Failed(m)),
    };
    if let Err(e) = store.set_state(id, state, error.as_deref()) {
        tracing::error!(job = id, error = %e, "cannot record the end of a job");
    }
    outcome
}

enum Halt {
    Interrupted,
    Failed(String),
}

impl From<super::store::StoreError> for Halt {
    fn from(e: super::store::StoreError) -> Self {
        Halt::Failed(e.to_string())
    }
}

fn run(
    store: &Store,
    id: &str,
    job: &JobRecord,
    model: &dyn WindowModel,
    stops: &Stops,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<(), Halt> {
    let spec = &job.spec;
    let stopped = || stops.stop.load(Ordering::Relaxed);
    spec.validate().map_err(Halt::Failed)?;
    store.set_state(id, JobState::Running, None)?;
    let traits = model.traits();
    let (shape, duration, has_audio) = open_video(&spec.video, &spec.title)?;
    let audio = spec.audio && has_audio && traits.audio_rate_hz.is_some();
    let file = file_stamp(&spec.video).map_err(|e| Halt::Failed(format!("{}: {e}", spec.title)))?;
    let plan = match &job.plan {
        Some(plan) => check_plan(plan, traits, file, &spec.title)?,
        None => new_plan(spec, traits, shape, duration, audio, file)?,
    };
    let windows = plan_windows(spec.from_s, plan.to_s, plan.window_s, plan.overlap_s).map_err(Halt::Failed)?;
    if job.plan.is_none() {
        store.set_plan(id, windows.len(), &plan)?;
    }
    let mut finished: HashSet<usize> = store.finished_indices(id)?.into_iter().collect();
    if let Some(bad) = finished.iter().find(|&&i| i >= windows.len()) {
        return Err(Halt::Failed(format!(
            "the store holds window {bad} of a {}-window plan (an edited store?)",
            windows.len()
        )));
    }
    on_progress(Progress::Planned { total: windows.len(), done: finished.len(), window_s: plan.window_s });

    for w in &windows {
        if finished.contains(&w.index) {
            continue;
        }
        if stopped() {
            return Err(Halt::Interrupted);
        }
        let attempts = store.window_started(id, w.index)?;
        let mut record = analyse_window(spec, w, audio, model, stops.stop)?;
        store.record_window(id, &record)?;
        record.attempts = attempts;
        finished.insert(w.index);
        on_progress(Progress::Window { record: &record, done: finished.len(), total: windows.len() });
    }

    let stored = store.windows(id)?;
    let events = merge_events(stored.iter().flat_map(|r| r.events.iter().cloned()).collect());
    let (summary, note) = if spec.summarize {
        if stopped() {
            return Err(Halt::Interrupted);
        }
        on_progress(Progress::Summarizing);
        summarize(spec, &events, model, stops.stop)?
    } else {
        (None, None)
    };
    store.finish(id, &events, summary.as_deref(), note.as_deref())?;
    Ok(())
}

/// Lays out a new job's windows: the requested length shortened to the model's context, the
/// overlap kept under a quarter of a shortened window.
fn new_plan(
    spec: &JobSpec,
    traits: &ModelTraits,
    shape: VideoShape,
    duration: f64,
    audio: bool,
    (video_bytes, video_modified_ns): (u64, u64),
) -> Result<Plan, Halt> {
    let to_s = spec.to_s.map_or(duration, |t| t.min(duration));
    if spec.from_s >= to_s {
        return Err(Halt::Failed(format!(
            "{}: no frames in the requested range: it starts at {:.2} s but the video ends at {duration:.2} s",
            spec.title, spec.from_s
        )));
    }
    let window_s = fit_window(traits, shape, spec.fps, spec.window_s, audio, spec.max_new_tokens, spec.task.len())
        .map_err(|e| Halt::Failed(format!("{}: {e}", spec.title)))?;
    let overlap_s = if window_s < spec.window_s { spec.overlap_s.min(window_s / 4.0) } else { spec.overlap_s };
    Ok(Plan { window_s, overlap_s, to_s, model: traits.identity.clone(), video_bytes, video_modified_ns })
}

/// A resumed job keeps its windows; it refuses another model or a changed file (its stored
/// windows were answered under the first).
fn check_plan(plan: &Plan, traits: &ModelTraits, (bytes, modified): (u64, u64), title: &str) -> Result<Plan, Halt> {
    if plan.model != traits.identity {
        return Err(Halt::Failed(format!(
            "this job's finished windows were answered by {} but the loaded model is {}: resume it with that model, or start a new job",
            plan.model, traits.identity
        )));
    }
    if plan.video_bytes != bytes || plan.video_modified_ns != modified {
        return Err(Halt::Failed(format!(
            "{title}: the video changed since the job started ({} bytes then, {bytes} now): start a new job",
            plan.video_bytes
        )));
    }
    Ok(plan.clone())
}

/// Size and modification time (nanoseconds since the epoch) of a file: what a plan records of it.
pub fn file_stamp(path: &Path) -> std::io::Result<(u64, u64)> {
    let meta = std::fs::metadata(path)?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    Ok((meta.len(), modified))
}

/// Prompt text a summary may spend on the events list, in characters: a token is three or more
/// characters of English, so a third of the context left after the answer and the instructions.
fn summary_chars(context: Option<usize>, max_new_tokens: usize) -> usize {
    context.map_or(usize::MAX, |c| c.saturating_sub(max_new_tokens + 512) * 3)
}

/// The summary pass. A failure is noted on the finished job, not fatal: the windows' events
/// stand on their own.
fn summarize(
    spec: &JobSpec,
    events: &[Event],
    model: &dyn WindowModel,
    stop: &AtomicBool,
) -> Result<(Option<String>, Option<String>), Halt> {
    let max_new_tokens = spec.max_new_tokens.max(SUMMARY_TOKENS);
    let prompt = summary_prompt(&spec.task, events, summary_chars(model.traits().context, max_new_tokens));
    let q = Question { prompt, clip: None, max_new_tokens };
    match model.answer(q, stop) {
        Ok(a) => Ok((Some(a.text.trim().to_string()), None)),
        Err(AskError::Interrupted) => Err(Halt::Interrupted),
        Err(AskError::Failed(m)) => Ok((None, Some(format!("the summary pass failed: {m}")))),
    }
}

/// Tokens the summary may take at least (a window's answer budget is often smaller).
const SUMMARY_TOKENS: usize = 256;

/// The video's shape, duration and whether it has sound; a clear error for a missing, corrupt
/// or frameless file.
fn open_video(path: &Path, title: &str) -> Result<(VideoShape, f64, bool), Halt> {
    if !path.is_file() {
        return Err(Halt::Failed(format!("{title}: no such video file")));
    }
    let (shape, duration, has_audio) = probe(path, title).map_err(Halt::Failed)?;
    if !(duration.is_finite() && duration > 0.0) {
        return Err(Halt::Failed(format!("{title}: the video has no duration (no frames?)")));
    }
    Ok((shape, duration, has_audio))
}

#[cfg(feature = "media")]
fn probe(path: &Path, title: &str) -> Result<(VideoShape, f64, bool), String> {
    // The codec error names the file already.
    let info = omnid_codecs::av::probe::probe(path).map_err(|e| e.to_string())?;
    let video = info.video.as_ref().ok_or_else(|| format!("{title}: the file has no video stream"))?;
    let shape = VideoShape { width: video.width, height: video.height, fps: video.fps };
    Ok((shape, video.duration_s.max(info.duration_s), info.audio.is_some()))
}

#[cfg(not(feature = "media"))]
fn probe(_path: &Path, title: &str) -> Result<(VideoShape, f64, bool), String> {
    Err(format!("{title}: this build of omnid has no FFmpeg (built without the `media` feature); video jobs need it"))
}

/// Decodes window `w` by seeking, asks the model, parses its answer.
fn analyse_window(
    spec: &JobSpec,
    w: &Window,
    audio: bool,
    model: &dyn WindowModel,
    stop: &AtomicBool,
) -> Result<WindowRecord, Halt> {
    let traits = model.traits();
    let where_ = format!("window {} ({:.2}–{:.2} s)", w.index, w.start, w.end);
    let t0 = Instant::now();
    let req = VideoRequest {
        fps: spec.fps,
        rule: traits.rule,
        processor: &traits.video,
        max_tokens: traits.context,
        audio_rate_hz: traits.audio_rate_hz.filter(|_| audio),
        window: (w.start, Some(w.end)),
    };
    let clip: VideoClip = match load_video(&spec.video, &req) {
        Ok(MediaItem::Video(clip)) => clip,
        Ok(_) => return Err(Halt::Failed(format!("{where_}: the loader returned no video (a bug)"))),
        Err(e) => return Err(Halt::Failed(format!("{where_}: {e}"))),
    };
    let decode_ms = t0.elapsed().as_secs_f64() * 1e3;
    let frames = clip.frames.frames.len();
    if frames == 0 {
        return Err(Halt::Failed(format!("{where_}: no frames decoded")));
    }
    let q = Question {
        prompt: window_prompt(&spec.task, w, traits.time_base),
        clip: Some(clip),
        max_new_tokens: spec.max_new_tokens,
    };
    let answer = ask(model, q, stop, &where_)?;
    let mut parsed = parse_events(&answer.text, w, traits.time_base);
    parsed.unparsed.retain(|l| !says_nothing(l));
    Ok(WindowRecord {
        index: w.index,
        start: w.start,
        end: w.end,
        answer: answer.text,
        events: parsed.events,
        unparsed: parsed.unparsed,
        frames,
        prompt_tokens: answer.prompt_tokens,
        completion_tokens: answer.completion_tokens,
        decode_ms,
        encode_ms: answer.encode_ms,
        generate_ms: answer.generate_ms,
        attempts: 1,
        finished_at: now(),
    })
}

fn ask(model: &dyn WindowModel, q: Question, stop: &AtomicBool, what: &str) -> Result<super::model::Answer, Halt> {
    model.answer(q, stop).map_err(|e| match e {
        AskError::Interrupted => Halt::Interrupted,
        AskError::Failed(m) => Halt::Failed(format!("{what}: {m}")),
    })
}
