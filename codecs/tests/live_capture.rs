//! Black-box tests for `omnid_codecs::av::live`: sampling rate and timestamps on lavfi test patterns, an
//! X11 screen captured through x11grab from an Xvfb server the test starts itself, clear errors for
//! absent devices, prompt stop, and a slow consumer that never blocks the device.
//!
//! The screen test needs Xvfb and xsetroot (Debian packages `xvfb` and `x11-xserver-utils`) and fails,
//! rather than skipping, when they are missing.
#![cfg(feature = "ffmpeg")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use omnid_codecs::av::live::{LiveCapture, LiveFrame, LiveOptions, LiveRecvError, LiveSource};
use omnid_codecs::CodecError;

/// Generous per-frame wait: a loaded CI machine may be slow, a hang still fails the test.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

fn source(text: &str) -> LiveSource {
    LiveSource::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// Receives `n` frames, then checks that the capture ends (max_frames) without an error.
fn collect(capture: &LiveCapture, n: usize) -> Vec<LiveFrame> {
    let frames: Vec<LiveFrame> =
        (0..n).map(|i| capture.recv_timeout(FRAME_TIMEOUT).unwrap_or_else(|e| panic!("frame {i}: {e}"))).collect();
    match capture.recv_timeout(FRAME_TIMEOUT) {
        Err(LiveRecvError::Ended) => {}
        other => panic!("expected the end after {n} frames, got {other:?}"),
    }
    frames
}

fn assert_colour(frame: &LiveFrame, rgb: [u8; 3], skip: impl Fn(u32, u32) -> bool) {
    for (x, y, p) in frame.image.enumerate_pixels() {
        if skip(x, y) {
            continue;
        }
        let off = p.0.iter().zip(rgb).any(|(&got, want)| got.abs_diff(want) > 3);
        assert!(!off, "frame {} pixel ({x},{y}) is {:?}, expected {rgb:?} ± 3", frame.index, p.0);
    }
}

fn start_error(text: &str) -> String {
    match LiveCapture::start(source(text), LiveOptions::default()) {
        Ok(_) => panic!("{text} opened"),
        Err(e @ CodecError::VideoDevice { .. }) => e.to_string(),
        Err(other) => panic!("{text}: expected a VideoDevice error, got {other:?}"),
    }
}

fn red_at_5_fps(size: Option<(u32, u32)>, expected: (u32, u32)) {
    let options = LiveOptions { fps: 5.0, size, max_frames: Some(10), ..Default::default() };
    let started = Instant::now();
    let capture = LiveCapture::start(source("lavfi:color=c=red:size=64x48:rate=25"), options).unwrap();
    eprintln!("lavfi color: started in {:?}", started.elapsed());
    assert_eq!(capture.native_size(), (64, 48));
    let frames = collect(&capture, 10);
    let mut worst = 0.0f64;
    for (k, frame) in frames.iter().enumerate() {
        assert_eq!(frame.index, k as u64);
        assert_eq!(frame.image.dimensions(), expected);
        assert_colour(frame, [255, 0, 0], |_, _| false);
        worst = worst.max((frame.t_s - k as f64 * 0.2).abs());
    }
    assert!(worst < 1e-3, "timestamps {:?}", frames.iter().map(|f| f.t_s).collect::<Vec<_>>());
    // Paced like a device: ten frames at 5 fps take about 1.8 s from the first to the last.
    let span = frames[9].wall.duration_since(frames[0].wall).unwrap();
    assert!(span >= Duration::from_millis(1700), "frames came {span:?} apart");
    eprintln!("lavfi color {expected:?}: worst timestamp error {worst:e} s, wall span {span:?}");
    assert_eq!(capture.dropped_frames(), 0);
}

#[test]
fn colour_pattern_sampled_at_5_fps() {
    red_at_5_fps(None, (64, 48));
}

#[test]
fn colour_pattern_sampled_and_scaled() {
    red_at_5_fps(Some((32, 24)), (32, 24));
}

#[test]
fn testsrc_at_30_fps_sampled_at_2_fps() {
    let options = LiveOptions { fps: 2.0, max_frames: Some(5), ..Default::default() };
    let capture = LiveCapture::start(source("lavfi:testsrc=size=320x240:rate=30"), options).unwrap();
    let frames = collect(&capture, 5);
    for pair in frames.windows(2) {
        let step = pair[1].t_s - pair[0].t_s;
        assert!((step - 0.5).abs() <= 1.0 / 30.0 + 1e-9, "step {step}");
    }
    assert_eq!(frames[4].image.dimensions(), (320, 240));
}

#[test]
fn a_finite_filtergraph_ends_without_an_error() {
    let options = LiveOptions { fps: 10.0, ..Default::default() };
    let capture = LiveCapture::start(source("lavfi:testsrc=size=32x32:rate=10:d=0.5"), options).unwrap();
    let mut times = Vec::new();
    loop {
        match capture.recv_timeout(FRAME_TIMEOUT) {
            Ok(frame) => times.push(frame.t_s),
            Err(LiveRecvError::Ended) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(times.len(), 5, "{times:?}");
    assert!(capture.take_error().is_none());
    assert!(!capture.is_running());
}

#[test]
fn absent_devices_are_named() {
    // A display number nobody runs: no socket and no lock file.
    let free = (57..200).find(|&n| !display_in_use(n)).expect("a free display number");
    let err = start_error(&format!("screen:{free}"));
    assert!(err.starts_with(&format!("screen::{free}: no X display is running at :{free}")), "{err}");
    assert!(err.contains("FFmpeg x11grab"), "{err}");

    let err = start_error("camera:/dev/video99");
    assert!(err.starts_with("camera:/dev/video99: no camera at /dev/video99"), "{err}");
    let err = start_error("camera:/dev/null");
    assert!(err.contains("/dev/null is not a video capture device"), "{err}");

    let err = start_error("lavfi:nosuchfilter=1");
    assert!(err.starts_with("lavfi:nosuchfilter=1: invalid filtergraph 'nosuchfilter=1'"), "{err}");
    let err = start_error("lavfi:sine=frequency=440");
    assert!(err.contains("delivers no video stream"), "{err}");
}

#[test]
fn stop_is_prompt() {
    let options = LiveOptions { fps: 25.0, ..Default::default() };
    let mut capture = LiveCapture::start(source("lavfi:testsrc=size=320x240:rate=25"), options).unwrap();
    capture.recv_timeout(FRAME_TIMEOUT).unwrap();
    thread::sleep(Duration::from_millis(300));
    let asked = Instant::now();
    capture.stop();
    let took = asked.elapsed();
    eprintln!("lavfi 25 fps: stop took {took:?}");
    assert!(took < Duration::from_millis(500), "stop took {took:?}");
    assert!(!capture.is_running());
    // What was queued before the stop can still be taken, then the stream has ended.
    let mut left = 0;
    while capture.try_recv().is_ok() {
        left += 1;
    }
    assert!(left <= LiveOptions::default().queue);
    assert!(matches!(capture.try_recv(), Err(LiveRecvError::Ended)));
}

#[test]
fn a_consumer_that_never_reads_does_not_block_the_device() {
    let queue = 2;
    let options = LiveOptions { fps: 25.0, queue, ..Default::default() };
    let mut capture = LiveCapture::start(source("lavfi:color=c=blue:size=64x48:rate=25"), options).unwrap();
    thread::sleep(Duration::from_millis(600));
    let first = capture.dropped_frames();
    thread::sleep(Duration::from_millis(400));
    let second = capture.dropped_frames();
    assert!(first > 0 && second > first, "dropped {first} then {second}: the device should keep running");
    assert_eq!(capture.sent_frames(), queue as u64);
    capture.stop();
    let kept: Vec<LiveFrame> = std::iter::from_fn(|| capture.try_recv().ok()).collect();
    assert_eq!(kept.len(), queue);
    assert_eq!(kept.iter().map(|f| f.index).collect::<Vec<_>>(), [0, 1]);
    // Frames kept after the queue emptied would have later indices; dropped ones count in them.
    assert!(capture.dropped_frames() >= second);
}

/// An Xvfb server on a free display, killed on drop (also when the test panics).
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        for n in 90..100 {
            if display_in_use(n) {
                continue;
            }
            let display = format!(":{n}");
            // -noreset: an X server resets when its last client disconnects, and the reset would undo
            // the root colour xsetroot sets before FFmpeg connects.
            let spawned = Command::new("Xvfb")
                .args([display.as_str(), "-screen", "0", "1280x720x24", "-nolisten", "tcp", "-noreset"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    panic!("Xvfb is not installed: install the Debian package `xvfb` (apt-get install xvfb)")
                }
                Err(e) => panic!("cannot run Xvfb: {e}"),
            };
            let mut server = Xvfb { child, display };
            if server.wait_until_green() {
                return server;
            }
        }
        panic!("no free X display in :90..:99 for Xvfb");
    }

    /// Waits until the server answers, by setting its root window to green; false if it exited (the
    /// display was taken after all) or did not answer in 10 s.
    fn wait_until_green(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return false;
            }
            let status = Command::new("xsetroot")
                .args(["-solid", "#00ff00"])
                .env("DISPLAY", &self.display)
                .stderr(Stdio::null())
                .status();
            match status {
                // Still ours? Another server could have answered if ours died meanwhile.
                Ok(s) if s.success() => return matches!(self.child.try_wait(), Ok(None)),
                Ok(_) => thread::sleep(Duration::from_millis(50)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    panic!("xsetroot is not installed: install the Debian package `x11-xserver-utils`")
                }
                Err(e) => panic!("cannot run xsetroot: {e}"),
            }
        }
        false
    }
}

impl Xvfb {
    /// Stops the server the way an X server expects (SIGTERM), so that it removes its lock file and socket;
    /// SIGKILL only if it does not exit within 2 s.
    fn stop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether an X server runs at display `n`: its lock file names a live process. (A lock left by a server
/// that was killed is stale; Xvfb replaces it.)
fn display_in_use(n: u32) -> bool {
    match std::fs::read_to_string(format!("/tmp/.X{n}-lock")) {
        Ok(pid) => Path::new(&format!("/proc/{}", pid.trim())).exists(),
        Err(_) => false,
    }
}

#[test]
fn screen_capture_on_xvfb() {
    let x = Xvfb::start();
    let options = LiveOptions { fps: 4.0, max_frames: Some(4), ..Default::default() };
    let started = Instant::now();
    let capture = LiveCapture::start(source(&format!("screen:{}", x.display)), options).unwrap();
    let open_time = started.elapsed();
    assert_eq!(capture.native_size(), (1280, 720));
    let mut frames = vec![capture.recv_timeout(FRAME_TIMEOUT).unwrap()];
    eprintln!("x11grab: opened in {open_time:?}, first frame after {:?}", started.elapsed());
    frames.extend(collect(&capture, 3));
    // x11grab draws the pointer, which Xvfb puts in the middle of the screen.
    let pointer = |x: u32, y: u32| x.abs_diff(640) < 24 && y.abs_diff(360) < 24;
    for frame in &frames {
        assert_eq!(frame.image.dimensions(), (1280, 720));
        assert_colour(frame, [0, 255, 0], pointer);
    }
    let steps: Vec<f64> = frames.windows(2).map(|p| p[1].t_s - p[0].t_s).collect();
    eprintln!("x11grab at 4 fps: steps {steps:?}");
    assert!(steps.iter().all(|s| (s - 0.25).abs() <= 0.04), "steps {steps:?}");
    assert_eq!(frames[0].t_s, 0.0);

    // A region of the screen, away from the pointer, scaled; and stop on a running screen capture.
    let region = source(&format!("screen:{}+0,0,320x240", x.display));
    let options = LiveOptions { fps: 4.0, size: Some((160, 120)), ..Default::default() };
    let mut capture = LiveCapture::start(region, options).unwrap();
    assert_eq!(capture.native_size(), (320, 240));
    let frame = capture.recv_timeout(FRAME_TIMEOUT).unwrap();
    assert_eq!(frame.image.dimensions(), (160, 120));
    assert_colour(&frame, [0, 255, 0], |_, _| false);
    let asked = Instant::now();
    capture.stop();
    eprintln!("x11grab: stop took {:?}", asked.elapsed());
    assert!(asked.elapsed() < Duration::from_millis(500));

    let err = start_error(&format!("screen:{}+1000,600,640x480", x.display));
    assert!(err.contains("does not fit on the screen"), "{err}");
}

#[test]
fn a_vanished_display_ends_the_stream_with_an_error() {
    let mut x = Xvfb::start();
    let options = LiveOptions { fps: 4.0, ..Default::default() };
    let capture = LiveCapture::start(source(&format!("screen:{}", x.display)), options).unwrap();
    capture.recv_timeout(FRAME_TIMEOUT).unwrap();
    x.stop();
    let killed = Instant::now();
    let err = loop {
        match capture.recv_timeout(FRAME_TIMEOUT) {
            Ok(_) => continue,
            Err(LiveRecvError::Failed(e)) => break e.to_string(),
            Err(other) => panic!("expected an error after the X server stopped, got {other:?}"),
        }
    };
    eprintln!("x11grab after the X server stopped ({:?}): {err}", killed.elapsed());
    assert!(err.starts_with(&format!("screen:{0}: lost the X display {0}", x.display)), "{err}");
    assert!(!capture.is_running());
    assert!(capture.take_error().is_none(), "the error is delivered once");
}
