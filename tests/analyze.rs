//! Video jobs through a scripted model that answers from the frames it was actually given: a
//! generated video shows a white box at known times, the stand-in reports the runs of frames in
//! which it sees the box (in the time base the real model family uses), and the job's merged
//! events must land on the known times. So windowing, seeking, time bases, merging across window
//! borders, the summary pass, resuming and cancelling are checked with numbers.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device};
use omnid::analyze::events::TimeBase;
use omnid::analyze::model::{Answer, AskError, ModelTraits, Question, WindowModel};
use omnid::analyze::queue::{Cancelled, JobQueue, QueueError, QueueLimits};
use omnid::analyze::runner::{run_job, RunEnd, Stops};
use omnid::analyze::spec::JobSpec;
use omnid::analyze::store::{JobState, Store};
use omnid::engine::media::frame_rule;

/// Where the box is on screen, seconds: inside window 0; across the border of windows 1 and 2;
/// in the overlap of windows 2 and 3 (with 30 s windows overlapping by 4 s: 0–30, 26–56, 52–82, 78–95).
const BOX: [(f64, f64); 3] = [(12.0, 18.0), (50.0, 58.0), (80.0, 83.0)];
const LENGTH_S: f64 = 95.0;

fn video(dir: &Path) -> PathBuf {
    let path = dir.join("boxes.mp4");
    if !path.exists() {
        let enable = BOX.iter().map(|(a, b)| format!("between(t,{a},{b})")).collect::<Vec<_>>().join("+");
        let draw = format!("drawbox=x=40:y=30:w=80:h=60:color=white:t=fill:enable='{enable}'");
        let src = format!("color=c=black:s=160x120:r=10:d={LENGTH_S}");
        let tone = format!("sine=frequency=440:duration={LENGTH_S}");
        // A key frame every 5 s: windows far into the file are reached by seeking.
        let tmp = dir.join("boxes.tmp.mp4");
        common::ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &src,
            "-f",
            "lavfi",
            "-i",
            &tone,
            "-vf",
            &draw,
            "-c:v",
            "libx264",
            "-g",
            "50",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            tmp.to_str().unwrap(),
        ]);
        std::fs::rename(tmp, &path).unwrap();
    }
    path
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omnid-analyze-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What the stand-in was given in one call.
#[derive(Debug, Clone)]
struct Call {
    /// First and last frame time (the file's clock), frame count, audio samples.
    first_s: f64,
    last_s: f64,
    frames: usize,
    audio: usize,
    prompt: String,
}

/// Answers like a model would if it saw the box perfectly: one `start - end: white box` line per
/// run of frames whose centre is bright.
struct Scripted {
    traits: ModelTraits,
    calls: Mutex<Vec<Call>>,
    /// Interrupt (as a shutdown would) when this many window calls have been made.
    interrupt_at: Option<usize>,
    /// Set the cancel flag at this call (cancel arrives mid-window).
    cancel_at: Option<(usize, Arc<AtomicBool>)>,
    window_calls: AtomicUsize,
}

impl Scripted {
    fn new(time_base: TimeBase) -> Self {
        let lm = omnid::engine::embedded::load_embedded(DType::F32, &Device::Cpu).unwrap();
        let traits = ModelTraits {
            video: lm.processor.video.clone(),
            rule: frame_rule(lm.family),
            audio_rate_hz: Some(16_000),
            audio_tokens_per_s: 13.0,
            time_base,
            context: Some(65_536),
            identity: format!("scripted {time_base:?}"),
        };
        Self {
            traits,
            calls: Mutex::new(Vec::new()),
            interrupt_at: None,
            cancel_at: None,
            window_calls: AtomicUsize::new(0),
        }
    }
}

impl WindowModel for Scripted {
    fn traits(&self) -> &ModelTraits {
        &self.traits
    }

    fn answer(&self, q: Question, stop: &AtomicBool) -> Result<Answer, AskError> {
        let Some(clip) = q.clip else {
            // The summary pass: count the moments it was told about.
            let n = q.prompt.lines().filter(|l| l.ends_with(": white box")).count();
            return Ok(Answer { text: format!("{n} moments"), ..Answer::default() });
        };
        let n = self.window_calls.fetch_add(1, Ordering::SeqCst);
        if let Some((at, cancel)) = &self.cancel_at {
            if n == *at {
                cancel.store(true, Ordering::SeqCst);
                stop.store(true, Ordering::SeqCst);
            }
        }
        if self.interrupt_at == Some(n) || stop.load(Ordering::SeqCst) {
            return Err(AskError::Interrupted);
        }
        let ts = &clip.frames.timestamps_s;
        self.calls.lock().unwrap().push(Call {
            first_s: ts[0],
            last_s: *ts.last().unwrap(),
            frames: ts.len(),
            audio: clip.audio.as_ref().map_or(0, Vec::len),
            prompt: q.prompt.clone(),
        });
        let origin = match self.traits.time_base {
            TimeBase::Absolute => 0.0,
            TimeBase::Relative => ts[0],
        };
        let bright: Vec<bool> =
            clip.frames.frames.iter().map(|f| f.get_pixel(f.width() / 2, f.height() / 2)[0] > 128).collect();
        let mut lines = Vec::new();
        let mut i = 0;
        while i < bright.len() {
            if bright[i] {
                let j = (i..bright.len()).take_while(|&k| bright[k]).last().unwrap();
                lines.push(format!("{:.2} - {:.2}: white box", ts[i] - origin, ts[j] - origin));
                i = j + 1;
            } else {
                i += 1;
            }
        }
        let text = if lines.is_empty() { "none".to_string() } else { lines.join("\n") };
        Ok(Answer { text, prompt_tokens: ts.len(), completion_tokens: 1, encode_ms: 1.0, generate_ms: 1.0 })
    }
}

fn spec(video: &Path) -> JobSpec {
    let mut s = JobSpec::new(video.to_path_buf(), "when is the white box shown?");
    s.window_s = 30.0;
    s.overlap_s = 4.0;
    s
}

fn run(store: &Store, id: &str, model: &dyn WindowModel) -> RunEnd {
    let (stop, cancel) = (AtomicBool::new(false), AtomicBool::new(false));
    run_job(store, id, model, &Stops { stop: &stop, cancel: &cancel }, &mut |_| {})
}

/// Each merged event lies on a box interval, to the sampling step (0.5 s at 2 fps).
fn assert_boxes(events: &[omnid::analyze::events::Event]) {
    let spans: Vec<(f64, f64)> = events.iter().map(|e| (e.start, e.end)).collect();
    assert_eq!(events.len(), BOX.len(), "one event per box, merged across windows: {spans:?}");
    for ((a, b), e) in BOX.iter().zip(events) {
        assert!((e.start - a).abs() <= 0.6 && (e.end - b).abs() <= 0.6, "box {a}–{b} s found at {spans:?}");
        assert_eq!(e.text, "white box");
    }
}

#[test]
fn events_land_on_the_video_clock_in_both_time_bases_and_merge_across_borders() {
    let dir = scratch("clock");
    let video = video(&dir);
    for base in [TimeBase::Absolute, TimeBase::Relative] {
        let model = Scripted::new(base);
        let store = Store::in_memory().unwrap();
        let mut s = spec(&video);
        s.summarize = true;
        let id = store.create(&s).unwrap();
        assert_eq!(run(&store, &id, &model), RunEnd::Done);
        let job = store.job(&id).unwrap().unwrap();
        assert_eq!((job.state, job.windows_total, job.window_s), (JobState::Done, Some(4), Some(30.0)));
        assert_boxes(job.events.as_ref().unwrap());
        assert_eq!(job.summary.as_deref(), Some("3 moments"), "the summary pass saw the merged events");
        // What the model was given: each window's frames only (decoded by seeking), at the job's
        // rate, with the sound track, and the window's clock in the prompt.
        let calls = model.calls.lock().unwrap().clone();
        let windows = [(0.0, 30.0), (26.0, 56.0), (52.0, 82.0), (78.0, 95.0)];
        assert_eq!(calls.len(), windows.len());
        for (c, (a, b)) in calls.iter().zip(windows) {
            assert!(
                c.first_s >= a - 0.05 && c.first_s <= a + 0.5 && c.last_s <= b && c.last_s >= b - 1.0,
                "{c:?} for {a}–{b}"
            );
            let expected = ((b - a) * 2.0) as usize;
            assert!(c.frames.abs_diff(expected) <= 2, "{} frames for {a}–{b} s at 2 fps", c.frames);
            let sound = ((b - a) * 16_000.0) as usize;
            assert!(c.audio.abs_diff(sound) <= 1600, "{} samples of sound for {a}–{b} s", c.audio);
            match base {
                TimeBase::Absolute => assert!(c.prompt.contains("of a longer video; the timestamps"), "{}", c.prompt),
                TimeBase::Relative => assert!(c.prompt.contains(&format!("{:.1} seconds of a longer video", b - a))),
            }
        }
        // Window 2's own view of the middle box (52–58, clipped by its start) was merged with window 1's.
        let w = store.windows(&id).unwrap();
        assert_eq!(w.len(), 4);
        assert!(w[2].events.iter().any(|e| (e.start - 52.0).abs() < 0.6), "{:?}", w[2].events);
        assert!(w.iter().all(|w| w.unparsed.is_empty()), "`none` is not a note");
    }
}

#[test]
fn a_range_and_no_audio_are_respected() {
    let dir = scratch("range");
    let video = video(&dir);
    let model = Scripted::new(TimeBase::Absolute);
    let store = Store::in_memory().unwrap();
    let mut s = spec(&video);
    s.from_s = 45.0;
    s.to_s = Some(70.0);
    s.audio = false;
    let id = store.create(&s).unwrap();
    assert_eq!(run(&store, &id, &model), RunEnd::Done);
    let events = store.job(&id).unwrap().unwrap().events.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!((events[0].start - 50.0).abs() <= 0.6 && (events[0].end - 58.0).abs() <= 0.6, "{events:?}");
    let calls = model.calls.lock().unwrap();
    assert!(calls.iter().all(|c| c.audio == 0 && c.first_s >= 44.95 && c.last_s <= 70.0), "{calls:?}");
}

#[test]
fn an_interrupted_job_resumes_at_the_unfinished_window_and_never_redoes_one() {
    let dir = scratch("resume");
    let video = video(&dir);
    let db = dir.join("jobs.sqlite");
    let id = {
        let store = Store::open(&db).unwrap();
        let id = store.create(&spec(&video)).unwrap();
        let mut model = Scripted::new(TimeBase::Absolute);
        model.interrupt_at = Some(2); // the daemon stops during window 2
        assert_eq!(run(&store, &id, &model), RunEnd::Stopped);
        let job = store.job(&id).unwrap().unwrap();
        assert_eq!(job.state, JobState::Queued, "a stopped job waits for the next start");
        assert_eq!(store.windows(&id).unwrap().len(), 2);
        assert_eq!(store.unfinished().unwrap(), std::slice::from_ref(&id));
        id
    };
    let store = Store::open(&db).unwrap();
    let model = Scripted::new(TimeBase::Absolute);
    assert_eq!(run(&store, &id, &model), RunEnd::Done);
    let calls = model.calls.lock().unwrap();
    assert_eq!(calls.len(), 2, "only windows 2 and 3 ran again");
    assert!((calls[0].first_s - 52.0).abs() < 0.5, "{calls:?}");
    let attempts: Vec<usize> = store.windows(&id).unwrap().iter().map(|w| w.attempts).collect();
    assert_eq!(attempts, [1, 1, 2, 1]);
    assert_boxes(store.job(&id).unwrap().unwrap().events.as_ref().unwrap());
}

#[test]
fn a_job_resumes_only_with_the_model_and_file_it_started_with() {
    let dir = scratch("replan");
    let video = video(&dir);
    let store = Store::in_memory().unwrap();
    let id = store.create(&spec(&video)).unwrap();
    let mut first = Scripted::new(TimeBase::Absolute);
    first.interrupt_at = Some(1);
    assert_eq!(run(&store, &id, &first), RunEnd::Stopped);
    // Another model (a smaller context would lay the windows out differently): refused by name.
    let mut other = Scripted::new(TimeBase::Absolute);
    other.traits.context = Some(4096);
    other.traits.identity = "another model".into();
    match run(&store, &id, &other) {
        RunEnd::Failed(m) => {
            assert!(m.contains("answered by scripted Absolute but the loaded model is another model"), "{m}")
        }
        end => panic!("{end:?}"),
    }
    assert!(other.calls.lock().unwrap().is_empty());
    // The file changed since: refused too.
    let id2 = store.create(&spec(&video)).unwrap();
    let mut again = Scripted::new(TimeBase::Absolute);
    again.interrupt_at = Some(1);
    assert_eq!(run(&store, &id2, &again), RunEnd::Stopped);
    std::fs::OpenOptions::new().append(true).open(&video).unwrap().write_all(b"\0").unwrap();
    match run(&store, &id2, &Scripted::new(TimeBase::Absolute)) {
        RunEnd::Failed(m) => assert!(m.contains("the video changed since the job started"), "{m}"),
        end => panic!("{end:?}"),
    }
}

#[test]
fn the_requested_overlap_is_kept_and_a_shortened_window_keeps_a_quarter() {
    let dir = scratch("overlap");
    let video = video(&dir);
    let store = Store::in_memory().unwrap();
    let mut s = spec(&video);
    s.window_s = 30.0;
    s.overlap_s = 10.0;
    let id = store.create(&s).unwrap();
    assert_eq!(run(&store, &id, &Scripted::new(TimeBase::Absolute)), RunEnd::Done);
    let plan = store.job(&id).unwrap().unwrap().plan.unwrap();
    assert_eq!((plan.window_s, plan.overlap_s, plan.to_s), (30.0, 10.0, LENGTH_S));
    let starts: Vec<f64> = store.windows(&id).unwrap().iter().map(|w| w.start).collect();
    assert_eq!(starts, [0.0, 20.0, 40.0, 60.0, 80.0]);
    // A context that fits only a shorter window: shortened, the overlap under a quarter of it.
    let mut small = Scripted::new(TimeBase::Absolute);
    small.traits.context = Some(1200);
    let id = store.create(&s).unwrap();
    assert_eq!(run(&store, &id, &small), RunEnd::Done);
    let plan = store.job(&id).unwrap().unwrap().plan.unwrap();
    assert!(plan.window_s < 30.0 && plan.window_s.fract() == 0.0, "{plan:?}");
    assert_eq!(plan.overlap_s, plan.window_s / 4.0);
    assert_boxes(store.job(&id).unwrap().unwrap().events.as_ref().unwrap());
}

#[test]
fn a_cancel_mid_window_ends_the_job_cancelled_with_its_finished_windows_kept() {
    let dir = scratch("cancel");
    let video = video(&dir);
    let store = Store::in_memory().unwrap();
    let id = store.create(&spec(&video)).unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let mut model = Scripted::new(TimeBase::Absolute);
    model.cancel_at = Some((1, cancel.clone()));
    let stop = AtomicBool::new(false);
    let end = run_job(&store, &id, &model, &Stops { stop: &stop, cancel: &cancel }, &mut |_| {});
    assert_eq!(end, RunEnd::Cancelled);
    assert_eq!(store.job(&id).unwrap().unwrap().state, JobState::Cancelled);
    assert_eq!(store.windows(&id).unwrap().len(), 1);
    assert!(store.unfinished().unwrap().is_empty());
}

#[test]
fn bad_videos_fail_their_job_with_the_reason() {
    let dir = scratch("bad");
    let video = video(&dir);
    let model = Scripted::new(TimeBase::Absolute);
    let store = Store::in_memory().unwrap();
    let garbage = dir.join("garbage.mp4");
    std::fs::write(&garbage, b"not a video at all").unwrap();
    let sound = dir.join("sound.wav");
    common::ffmpeg(&["-f", "lavfi", "-i", "sine=frequency=300:duration=2", sound.to_str().unwrap()]);
    let mut late = spec(&video);
    late.from_s = 100.0;
    let cases: [(JobSpec, &str); 4] = [
        (spec(&dir.join("missing.mp4")), "no such video file"),
        (spec(&garbage), "cannot open as media"),
        (spec(&sound), "no video stream"),
        (late, "no frames in the requested range: it starts at 100.00 s but the video ends at 95.0"),
    ];
    for (s, expected) in cases {
        let id = store.create(&s).unwrap();
        match run(&store, &id, &model) {
            RunEnd::Failed(m) => assert!(m.contains(expected), "{m:?} should say {expected:?}"),
            other => panic!("{other:?} for {expected}"),
        }
        let job = store.job(&id).unwrap().unwrap();
        assert_eq!(job.state, JobState::Failed);
        assert!(job.error.unwrap().contains(expected));
    }
    assert!(model.calls.lock().unwrap().is_empty(), "the model was never asked about a bad video");
}

#[test]
fn the_queue_runs_jobs_side_by_side_and_one_failing_harms_none() {
    let dir = scratch("queue");
    let video = video(&dir);
    let store = Arc::new(Store::in_memory().unwrap());
    let model = Arc::new(Scripted::new(TimeBase::Absolute));
    let queue = JobQueue::start(store.clone(), model.clone(), QueueLimits { workers: 2, max_waiting: 3 }).unwrap();
    let mut empty = spec(&video);
    empty.task = "   ".into();
    assert!(matches!(queue.submit(&empty), Err(QueueError::Invalid(m)) if m.starts_with("task")));
    let good = queue.submit(&spec(&video)).unwrap();
    let bad = queue.submit(&spec(&dir.join("missing.mp4"))).unwrap();
    let mut short = spec(&video);
    short.to_s = Some(20.0);
    let third = queue.submit(&short).unwrap();
    let wait = |id: &str| {
        for _ in 0..600 {
            let job = store.job(id).unwrap().unwrap();
            if !job.state.is_active() {
                return job;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("job {id} did not end");
    };
    assert_eq!(wait(&bad).state, JobState::Failed);
    let g = wait(&good);
    assert_eq!(g.state, JobState::Done);
    assert_boxes(g.events.as_ref().unwrap());
    let t = wait(&third);
    assert_eq!((t.state, t.windows_total), (JobState::Done, Some(1)));
    assert_eq!(t.events.unwrap().len(), 1, "the first box only, within 0–20 s");
    assert!(matches!(queue.cancel("job_nope"), Err(QueueError::NotFound(_))));
    assert_eq!(queue.cancel(&good).unwrap(), Cancelled::AlreadyEnded(JobState::Done));
}

#[test]
fn the_queue_bounds_what_waits_and_cancels_a_waiting_job() {
    let dir = scratch("bound");
    let video = video(&dir);
    let store = Arc::new(Store::in_memory().unwrap());
    // A model that blocks until told, so jobs stay waiting behind the first.
    struct Gate(Scripted, AtomicBool);
    impl WindowModel for Gate {
        fn traits(&self) -> &ModelTraits {
            self.0.traits()
        }
        fn answer(&self, q: Question, stop: &AtomicBool) -> Result<Answer, AskError> {
            while !self.1.load(Ordering::SeqCst) {
                if stop.load(Ordering::SeqCst) {
                    return Err(AskError::Interrupted);
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            self.0.answer(q, stop)
        }
    }
    let gate = Arc::new(Gate(Scripted::new(TimeBase::Absolute), AtomicBool::new(false)));
    let queue = JobQueue::start(store.clone(), gate.clone(), QueueLimits { workers: 1, max_waiting: 2 }).unwrap();
    let first = queue.submit(&spec(&video)).unwrap();
    // The worker takes the first; two may wait; the fourth is refused.
    while store.job(&first).unwrap().unwrap().state != JobState::Running {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = queue.submit(&spec(&video)).unwrap();
    let _third = queue.submit(&spec(&video)).unwrap();
    assert!(matches!(queue.submit(&spec(&video)), Err(QueueError::Busy { waiting: 2 })));
    assert_eq!(queue.cancel(&second).unwrap(), Cancelled::Waiting);
    assert_eq!(store.job(&second).unwrap().unwrap().state, JobState::Cancelled);
    assert_eq!(queue.cancel(&first).unwrap(), Cancelled::Running);
    for _ in 0..200 {
        if store.job(&first).unwrap().unwrap().state == JobState::Cancelled {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(store.job(&first).unwrap().unwrap().state, JobState::Cancelled);
    // Dropping the queue (daemon shutdown) leaves the third queued for the next start.
    drop(queue);
    let queued: Vec<String> = store.unfinished().unwrap();
    assert_eq!(queued.len(), 1);
}

#[test]
fn qwen3_vl_windows_carry_the_video_clock_in_their_timestamp_text() {
    use omnid::engine::batch_question::question_prompt;
    use omnid::engine::media::{load_video, MediaItem, VideoRequest};
    use omnid::engine::model_dir::{DTypeChoice, LoadedModel};
    let dir = scratch("vl");
    let video = video(&dir);
    let lm =
        LoadedModel::open(&common::fixture_dir("vl_dense_a"), DTypeChoice::Exact(DType::F32), &Device::Cpu).unwrap();
    let req = VideoRequest {
        fps: 2.0,
        rule: frame_rule(lm.family),
        processor: &lm.processor.video,
        max_tokens: None,
        audio_rate_hz: None,
        window: (52.0, Some(56.0)),
    };
    let MediaItem::Video(clip) = load_video(&video, &req).unwrap() else { panic!("a video") };
    let built = question_prompt(&lm, "when?".into(), Some(MediaItem::Video(clip))).unwrap();
    let text = lm.tokenizer.decode(&built.inputs.ids, false).unwrap();
    // Qwen3-VL samples 8 of the window's 40 frames at round(linspace(0, 39, 8)) (52.0, 52.6, 53.1, …
    // 55.9 s); each pair's mid-time, on the video's clock, formatted as the reference does.
    let stamps: Vec<&str> =
        text.match_indices(" seconds>").map(|(i, _)| &text[text[..i].rfind('<').unwrap()..i]).collect();
    assert_eq!(stamps, ["<52.3", "<53.4", "<54.5", "<55.6"], "{text}");
}
