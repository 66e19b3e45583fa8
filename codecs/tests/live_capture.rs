//! Black-box tests for `omnid_codecs::av::live`: sampling rate and timestamps on lavfi test patterns, an
//! X11 screen captured through x11grab from an Xvfb server the test starts itself, clear errors for
//! absent devices and for a display that never answers, prompt stop, and a slow consumer that never
//! blocks the device and gets the freshest frames.
//!
//! The screen tests need Xvfb and xsetroot (Debian packages `xvfb` and `x11-xserver-utils`) and fail,
//! rather than skip, when they are missing. Every wait has a deadline: a test can fail, never hang.
#![cfg(feature = "ffmpeg")]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use omnid_codecs::av::live::{LiveCapture, LiveFrame, LiveOptions, LiveRecvError, LiveSource, STOP_TIMEOUT};
use omnid_codecs::CodecError;

/// Generous per-frame wait: a loaded CI machine may be slow, a hang still fails the test.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a whole wait loop (a stream's end, an error after a stop) may take.
const LOOP_TIMEOUT: Duration = Duration::from_secs(20);

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
    let deadline = Instant::now() + LOOP_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no end after {LOOP_TIMEOUT:?}, frames at {times:?}");
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
    // A display number nobody runs: no socket and no lock file. Xvfb started with -displayfd (below) takes
    // the lowest free numbers, far below these.
    let free = (457..600).find(|&n| !display_in_use(n)).expect("a free display number");
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
    let queue = LiveOptions::default().queue;
    let left = std::iter::from_fn(|| capture.try_recv().ok()).take(queue + 1).count();
    assert!(left <= queue);
    assert!(matches!(capture.try_recv(), Err(LiveRecvError::Ended)));
}

#[test]
fn a_consumer_that_never_reads_does_not_block_the_device_and_gets_the_freshest_frames() {
    let queue = 2;
    let options = LiveOptions { fps: 25.0, queue, ..Default::default() };
    let mut capture = LiveCapture::start(source("lavfi:color=c=blue:size=64x48:rate=25"), options).unwrap();
    thread::sleep(Duration::from_millis(600));
    let first = capture.dropped_frames();
    thread::sleep(Duration::from_millis(400));
    let second = capture.dropped_frames();
    assert!(first > 0 && second > first, "dropped {first} then {second}: the device should keep running");
    capture.stop();
    // The thread has ended: the counts are final. Every kept frame went into the queue; all but the last
    // `queue` were displaced by newer ones.
    let sent = capture.sent_frames();
    assert_eq!(capture.dropped_frames(), sent - queue as u64);
    let kept: Vec<LiveFrame> = std::iter::from_fn(|| capture.try_recv().ok()).take(queue + 1).collect();
    assert_eq!(kept.iter().map(|f| f.index).collect::<Vec<_>>(), [sent - 2, sent - 1], "the newest frames");
    // About a second of frames at 25 fps: the last ones, not the first.
    assert!(kept[1].t_s >= 0.9, "the newest frame is from {} s", kept[1].t_s);
    assert!(matches!(capture.try_recv(), Err(LiveRecvError::Ended)));
}

#[test]
fn a_display_that_never_answers_times_out() {
    // A TCP "X server" that accepts the connection (the kernel does, from the listen backlog) and never
    // answers: libxcb waits for the reply to its setup request in a call FFmpeg's interrupt callback does
    // not reach, so it is `start`'s own bounded wait that gives up.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // Display n is TCP port 6000 + n; ephemeral ports are far above 6000.
    let display = listener.local_addr().unwrap().port().checked_sub(6000).expect("a port above 6000");
    let options = LiveOptions { open_timeout: Duration::from_secs(1), ..Default::default() };
    let asked = Instant::now();
    let err = match LiveCapture::start(source(&format!("screen:127.0.0.1:{display}")), options) {
        Ok(_) => panic!("a silent display opened"),
        Err(e) => e.to_string(),
    };
    let took = asked.elapsed();
    eprintln!("x11grab on a silent display: gave up after {took:?}: {err}");
    assert!(err.contains("did not deliver a frame within 1 s"), "{err}");
    // The open timeout, plus the second `start` grants FFmpeg to give up by itself.
    assert!(took >= Duration::from_secs(1) && took < Duration::from_secs(4), "took {took:?}");
    // Dropping the listener resets the connection: the abandoned thread's connect fails and it ends.
    drop(listener);
}

/// An Xvfb server on a display it chose itself, killed on drop (also when the test panics).
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Starts Xvfb with `-displayfd 1`: the server takes the first free display number itself and writes
    /// it to its stdout once it accepts connections. Choosing a number here and then starting the server
    /// would race with the other screen test in this binary and with concurrent runs.
    fn start() -> Xvfb {
        // -noreset: an X server resets when its last client disconnects, and the reset would undo the root
        // colour xsetroot sets before FFmpeg connects.
        let spawned = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1280x720x24", "-nolisten", "tcp", "-noreset"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("Xvfb is not installed: install the Debian package `xvfb` (apt-get install xvfb)")
            }
            Err(e) => panic!("cannot run Xvfb: {e}"),
        };
        let stdout = child.stdout.take().expect("Xvfb's stdout");
        // From here on, a panic stops the server.
        let mut server = Xvfb { child, display: String::new() };
        // The read happens on a thread so that it can be given up on; it ends when Xvfb writes the number
        // or exits (the pipe closes).
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = tx.send(BufReader::new(stdout).read_line(&mut line).map(|_| line));
        });
        let number = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(line)) if !line.trim().is_empty() && line.trim().bytes().all(|b| b.is_ascii_digit()) => line,
            Ok(Ok(line)) => panic!("Xvfb wrote {line:?} instead of its display number (did it exit?)"),
            Ok(Err(e)) => panic!("cannot read Xvfb's display number: {e}"),
            Err(_) => panic!("Xvfb did not report its display number within 10 s"),
        };
        server.display = format!(":{}", number.trim());
        assert!(server.wait_until_green(), "Xvfb on {} exited or did not answer within 10 s", server.display);
        server
    }

    /// Waits until the server answers, by setting its root window to green; false if it exited or did not
    /// answer in 10 s.
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

/// Whether an X server may run at display `n`: its socket exists, or its lock file names a live process.
fn display_in_use(n: u32) -> bool {
    if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
        return true;
    }
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
    let took = asked.elapsed();
    eprintln!("x11grab: stop took {took:?}");
    assert!(took < Duration::from_millis(500), "stop took {took:?}");
    assert!(!capture.is_running(), "stop gave up on the thread (after {STOP_TIMEOUT:?})");

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
        assert!(killed.elapsed() < LOOP_TIMEOUT, "frames still came {LOOP_TIMEOUT:?} after the X server stopped");
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
