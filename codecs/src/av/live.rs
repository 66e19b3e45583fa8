//! Live video from FFmpeg capture devices (an X11 screen through x11grab, a camera through v4l2, a test
//! pattern through lavfi), sampled at a requested rate and delivered as RGB frames with timestamps.
//!
//! [`LiveCapture::start`] opens the device on a named capture thread and returns once it delivers video
//! (or with an error that names the device and says what is absent). The thread decodes every frame,
//! keeps those due at the requested rate (module `sampler`), converts only the kept ones to RGB, and puts
//! them into a bounded queue (module `queue`). The device is never made to wait: when the queue is full,
//! the new frame displaces the OLDEST queued one, which is counted ([`LiveCapture::dropped_frames`]), so
//! a consumer that fell behind gets the freshest frames; [`LiveFrame::index`] then jumps.
//!
//! # How omnid uses it
//! The realtime session watches a camera or a screen while it talks: it starts one capture at 1–2 fps
//! (the rate Qwen3-Omni is given video at), takes the frames that arrived since its last turn with
//! [`LiveCapture::try_recv`], and hands them to preprocessing with their `t_s`, which places them on the
//! session's timeline next to the microphone audio. When the model runs behind, the oldest queued frames
//! are dropped rather than queued without bound, so the session always sees the latest frames and never
//! any older than the queue's length. Test patterns (`lavfi:testsrc…`) stand in for a camera in tests and
//! demos.
//!
//! # Security: lavfi is for the local CLI only
//! A `lavfi:` source is an arbitrary FFmpeg filtergraph, and filtergraphs can read files: `movie=` and
//! `amovie=` open any path or URL FFmpeg can (`lavfi:movie=/home/me/.ssh/id_rsa`, `movie=http://…`), and
//! other filters write files. [`LiveSource::parse`] accepts whatever it is given, so a source name must
//! never come from a remote client (an HTTP or WebSocket request, a session config sent over the
//! network): only the local CLI (`omnid capture`), run by the user who owns the files, takes one. A server
//! that lets clients choose a device must map their choice to a fixed list of `screen:`/`camera:` sources.
//!
//! # Time
//! [`LiveFrame::t_s`] is measured on the device's own clock (x11grab's capture time, the camera driver's
//! buffer timestamps, the filtergraph's frame times) from the first frame, so scheduling delays on this
//! machine do not show in it. [`LiveFrame::wall`] says when the frame left the decoder.
//!
//! # Opening, stopping and errors
//! Opening never blocks for good: FFmpeg's interrupt callback (module `open`) ends an open that has not
//! described the video within [`LiveOptions::open_timeout`] ([`DEFAULT_OPEN_TIMEOUT`]), and
//! [`LiveCapture::start`] itself gives up a second later on a device stuck where FFmpeg never looks at the
//! callback (x11grab connecting to an X display over a network that drops packets), leaving the thread
//! to end on its own once that call returns. Either way the error says that the device "did not deliver
//! a frame within 10 s" (with the default timeout).
//!
//! [`LiveCapture::stop`] (also run on drop) sets a flag that the thread checks between packets and that the
//! interrupt callback passes to FFmpeg inside reads, and joins the thread; module `worker` explains why that
//! takes at most about one capture interval, for a stalled camera too. A thread still blocked after
//! [`STOP_TIMEOUT`] is not waited for. An error on the thread (device gone, undecodable data) ends the
//! stream: the consumer gets the frames already queued, then [`LiveRecvError::Failed`] with the
//! [`CodecError`] once.

mod clock;
mod device;
mod open;
mod queue;
mod sampler;
mod source;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use image::RgbImage;

use open::timed_out_problem;
use queue::{FrameQueue, QueueEmpty};
pub use source::LiveSource;
use source::{check_fps, check_size};
use worker::{Shared, Worker};

use crate::{CodecError, Result};

/// Sampling rate when none is asked for: what the realtime session feeds the model.
pub const DEFAULT_FPS: f64 = 2.0;
/// Queue length when none is asked for: two seconds of frames at the default rate. That rides out a
/// model step that runs long, while a consumer that falls behind never gets frames more than two seconds
/// old and memory stays bounded (4 × 6 MB for a 1080p screen).
pub const DEFAULT_QUEUE: usize = 4;
/// Longest queue accepted; the queue reserves its slots up front.
pub const MAX_QUEUE: usize = 1024;
/// Lowest rate a screen is grabbed at unless [`LiveOptions::capture_fps`] says otherwise. x11grab sleeps
/// between grabs, so this bounds the time to the first frame and to stop to 0.2 s even at 0.5 fps.
pub const MIN_SCREEN_CAPTURE_FPS: f64 = 5.0;
/// How long opening may take when none is asked for: until the device has delivered the first frame or
/// two that FFmpeg reads to describe the video. x11grab and lavfi take a fraction of a second; a USB camera
/// takes up to 2–3 s after power-up (format negotiation, exposure settling), more on a loaded machine. A
/// device that has delivered nothing after 10 s is stalled, and the caller is better told so than kept
/// waiting: the realtime session then goes on without video.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest [`LiveOptions::open_timeout`] accepted.
pub const MAX_OPEN_TIMEOUT: Duration = Duration::from_secs(600);
/// How long [`LiveCapture::start`] waits beyond the open timeout for the thread to report, before it gives
/// up on a device stuck where FFmpeg's interrupt callback does not reach.
const OPEN_GRACE: Duration = Duration::from_secs(1);
/// How long [`LiveCapture::stop`] waits for the capture thread. It normally ends within one capture
/// interval (0.2 s for a screen); one still blocked after this is stuck in a call that FFmpeg cannot
/// interrupt, and is left to end on its own when that call returns (keeping the device open until then).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// How to sample a live source.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveOptions {
    /// Frames per second to deliver (the sampling rate), at most the source's own rate.
    pub fps: f64,
    /// Scale every frame to `(width, height)`; `None` keeps the device's size.
    pub size: Option<(u32, u32)>,
    /// Capacity of the frame queue (at least 1, at most [`MAX_QUEUE`]); see [`DEFAULT_QUEUE`].
    pub queue: usize,
    /// End the stream after putting this many frames into the queue. Frames that a full queue displaced
    /// still count (the consumer then receives fewer, the freshest ones); frames the sampler skipped do not.
    pub max_frames: Option<u64>,
    /// The device's own capture rate (its `framerate` option) for a screen or a camera. `None`: a
    /// camera keeps its driver's rate; a screen is grabbed at `fps` times the smallest whole number that
    /// reaches [`MIN_SCREEN_CAPTURE_FPS`], so that due times fall on grabs. Not allowed for lavfi, whose
    /// filtergraph sets its rate (`testsrc=rate=30`).
    pub capture_fps: Option<f64>,
    /// How long opening may take (above 0, at most [`MAX_OPEN_TIMEOUT`]); see [`DEFAULT_OPEN_TIMEOUT`].
    pub open_timeout: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            fps: DEFAULT_FPS,
            size: None,
            queue: DEFAULT_QUEUE,
            max_frames: None,
            capture_fps: None,
            open_timeout: DEFAULT_OPEN_TIMEOUT,
        }
    }
}

/// One sampled frame.
#[derive(Clone)]
pub struct LiveFrame {
    /// The pixels, at the device's size or [`LiveOptions::size`].
    pub image: RgbImage,
    /// Seconds since the first frame, on the device's clock (see the module docs).
    pub t_s: f64,
    /// When the frame left the decoder.
    pub wall: SystemTime,
    /// 0, 1, 2 … over the frames kept at the sampling rate, counting dropped ones: a jump means that the
    /// frames in between were displaced from the full queue.
    pub index: u64,
}

/// Without the pixels, which would flood a log.
impl std::fmt::Debug for LiveFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveFrame")
            .field("size", &self.image.dimensions())
            .field("t_s", &self.t_s)
            .field("wall", &self.wall)
            .field("index", &self.index)
            .finish()
    }
}

/// Why no frame was received.
#[derive(Debug, thiserror::Error)]
pub enum LiveRecvError {
    /// No frame is queued yet (or none arrived within the timeout); the capture is running.
    #[error("no frame yet")]
    Empty,
    /// The capture has ended (stopped, `max_frames` delivered, or the filtergraph's end) and every frame
    /// it delivered has been received.
    #[error("the capture has ended")]
    Ended,
    /// The capture ended with this error; returned once, then [`LiveRecvError::Ended`].
    #[error(transparent)]
    Failed(CodecError),
}

/// A running capture; see the module docs. Dropping it stops the capture.
pub struct LiveCapture {
    source: LiveSource,
    queue: Arc<FrameQueue>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Disconnects when the capture thread ends (nothing is ever sent on it).
    exited: Receiver<()>,
    native_size: (u32, u32),
    native_fps: Option<f64>,
}

impl LiveCapture {
    /// Opens `source` and starts capturing. Returns once the device has opened and described its video,
    /// or with [`CodecError::VideoDevice`] naming the device (absent display, camera or FFmpeg device,
    /// invalid filtergraph, or a device that did not deliver a frame within [`LiveOptions::open_timeout`])
    /// or [`CodecError::InvalidRequest`] for options out of range. Never waits longer than the open timeout
    /// and one second (module docs).
    ///
    /// A `lavfi:` source can read files: never start one whose name came from a remote client (module docs).
    pub fn start(source: LiveSource, options: LiveOptions) -> Result<Self> {
        source.validate()?;
        let capture_fps = Self::check_options(&source, &options)?;
        let shared = Arc::new(Shared::default());
        let (queue, writer) = FrameQueue::new(options.queue);
        let (opened_tx, opened_rx) = mpsc::channel();
        let (exit_tx, exited) = mpsc::channel::<()>();
        let open_timeout = options.open_timeout;
        let thread_source = source.clone();
        let thread_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new().name("omnid-live".into()).spawn(move || {
            // Dropped when this closure ends or unwinds: `exited` disconnects.
            let _exit = exit_tx;
            let shared = thread_shared;
            match Worker::open(&thread_source, options, capture_fps, Arc::clone(&shared), writer) {
                Ok(mut worker) => {
                    let _ = opened_tx.send(Ok(worker.opened()));
                    if let Err(e) = worker.run() {
                        *shared.error_slot() = Some(e);
                    }
                    shared.finished.store(true, Ordering::Release);
                    // The worker, and with it the queue's writer, is dropped only now: a consumer that sees
                    // the queue close finds the error stored and the capture no longer running.
                    drop(worker);
                }
                Err(e) => {
                    shared.finished.store(true, Ordering::Release);
                    let _ = opened_tx.send(Err(e));
                }
            }
        });
        let device_error = |problem: String| CodecError::VideoDevice { device: source.to_string(), problem };
        let handle = spawned.map_err(|e| device_error(format!("cannot start the capture thread: {e}")))?;
        // The thread's own open gives up at the open timeout through FFmpeg's interrupt callback; this wait
        // is for a device stuck where the callback does not reach (module `open`).
        let opened = match opened_rx.recv_timeout(open_timeout.saturating_add(OPEN_GRACE)) {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                let _ = handle.join();
                return Err(e);
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = handle.join();
                return Err(device_error("the capture thread ended while opening the device".into()));
            }
            Err(RecvTimeoutError::Timeout) => {
                // The thread is left to end on its own when the blocked call returns; the stop flag makes it
                // end there, whether that call fails or opens the device after all.
                shared.stop.store(true, Ordering::Relaxed);
                drop(handle);
                return Err(device_error(timed_out_problem(open_timeout)));
            }
        };
        Ok(LiveCapture {
            source,
            queue,
            shared,
            thread: Some(handle),
            exited,
            native_size: opened.size,
            native_fps: opened.fps,
        })
    }

    /// Checks the options and returns the capture rate to ask the device for.
    fn check_options(source: &LiveSource, options: &LiveOptions) -> Result<Option<f64>> {
        let invalid = |problem: String| CodecError::InvalidRequest { source_name: source.to_string(), problem };
        check_fps(options.fps).map_err(|p| invalid(format!("sampling rate: {p}")))?;
        if let Some((w, h)) = options.size {
            check_size(w, h).map_err(|p| invalid(format!("output size: {p}")))?;
        }
        if options.queue == 0 || options.queue > MAX_QUEUE {
            return Err(invalid(format!("queue of {} frames: must hold 1 to {MAX_QUEUE}", options.queue)));
        }
        if options.max_frames == Some(0) {
            return Err(invalid("max_frames is 0: nothing would be captured".into()));
        }
        if let Some(fps) = options.capture_fps {
            check_fps(fps).map_err(|p| invalid(format!("capture rate: {p}")))?;
        }
        if options.open_timeout.is_zero() || options.open_timeout > MAX_OPEN_TIMEOUT {
            return Err(invalid(format!(
                "open timeout of {:?}: must be above 0 and at most {} s",
                options.open_timeout,
                MAX_OPEN_TIMEOUT.as_secs()
            )));
        }
        Ok(match source {
            LiveSource::TestPattern { .. } if options.capture_fps.is_some() => {
                return Err(invalid(
                    "capture_fps does not apply to lavfi: set the rate in the filtergraph (e.g. testsrc=rate=30)"
                        .into(),
                ))
            }
            LiveSource::TestPattern { .. } => None,
            LiveSource::Camera { .. } => options.capture_fps,
            LiveSource::Screen { .. } => Some(
                options.capture_fps.unwrap_or(options.fps * (MIN_SCREEN_CAPTURE_FPS / options.fps).ceil().max(1.0)),
            ),
        })
    }

    /// The next frame, waiting at most `timeout` for one.
    pub fn recv_timeout(&self, timeout: Duration) -> std::result::Result<LiveFrame, LiveRecvError> {
        self.queue.recv_timeout(timeout).map_err(|e| self.empty(e))
    }

    /// The next frame if one is queued.
    pub fn try_recv(&self) -> std::result::Result<LiveFrame, LiveRecvError> {
        self.queue.try_recv().map_err(|e| self.empty(e))
    }

    /// The error that ended the capture, if it ended with one and the error has not been taken yet (by this
    /// call or as [`LiveRecvError::Failed`]).
    pub fn take_error(&self) -> Option<CodecError> {
        self.shared.error_slot().take()
    }

    /// Queued frames that newer ones displaced because the queue was full, before the consumer took them.
    pub fn dropped_frames(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Frames put into the queue so far, including those [displaced](Self::dropped_frames) later.
    pub fn sent_frames(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }

    /// Whether the capture thread is still reading the device (or blocked in it after a [`stop`](Self::stop)
    /// that gave up waiting).
    pub fn is_running(&self) -> bool {
        !self.shared.finished.load(Ordering::Acquire)
    }

    /// The source being captured.
    pub fn source(&self) -> &LiveSource {
        &self.source
    }

    /// The size of the frames the device delivers, before any scaling.
    pub fn native_size(&self) -> (u32, u32) {
        self.native_size
    }

    /// The frame rate the device declares, if it declares a plausible one.
    pub fn native_fps(&self) -> Option<f64> {
        self.native_fps
    }

    /// Stops capturing and waits for the thread: normally at most about one capture interval, never more
    /// than [`STOP_TIMEOUT`] (a thread stuck in a call FFmpeg cannot interrupt is left to end on its own).
    /// Frames already queued can still be received afterwards. Calling it again does nothing.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.thread.take() {
            if let Some(Err(_)) = join_within(handle, &self.exited, STOP_TIMEOUT) {
                let mut slot = self.shared.error_slot();
                slot.get_or_insert_with(|| CodecError::VideoDevice {
                    device: self.source.to_string(),
                    problem: "the capture thread panicked".into(),
                });
            }
        }
    }

    fn empty(&self, why: QueueEmpty) -> LiveRecvError {
        match why {
            QueueEmpty::Empty => LiveRecvError::Empty,
            QueueEmpty::Closed => self.take_error().map_or(LiveRecvError::Ended, LiveRecvError::Failed),
        }
    }
}

/// Joins `handle` if its thread ends within `timeout` (`exited` disconnects when it does); otherwise leaves
/// it running, detached, and returns `None`.
fn join_within(handle: JoinHandle<()>, exited: &Receiver<()>, timeout: Duration) -> Option<thread::Result<()>> {
    match exited.recv_timeout(timeout) {
        // Nothing is ever sent: a message would mean the same as the disconnect.
        Ok(()) | Err(RecvTimeoutError::Disconnected) => Some(handle.join()),
        Err(RecvTimeoutError::Timeout) => None,
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("source", &self.source.to_string())
            .field("native_size", &self.native_size)
            .field("running", &self.is_running())
            .field("sent", &self.sent_frames())
            .field("dropped", &self.dropped_frames())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options_error(source: &str, options: LiveOptions) -> String {
        let source = LiveSource::parse(source).unwrap();
        LiveCapture::check_options(&source, &options).expect_err(&format!("{options:?}")).to_string()
    }

    #[test]
    fn rejects_options_out_of_range() {
        let base = LiveOptions::default();
        let cases = [
            (LiveOptions { fps: 0.0, ..base.clone() }, "sampling rate: 0 fps"),
            (LiveOptions { fps: f64::NAN, ..base.clone() }, "sampling rate: NaN fps"),
            (LiveOptions { size: Some((0, 10)), ..base.clone() }, "output size: 0x10 is empty"),
            (LiveOptions { queue: 0, ..base.clone() }, "queue of 0 frames"),
            (LiveOptions { max_frames: Some(0), ..base.clone() }, "max_frames is 0"),
            (LiveOptions { capture_fps: Some(-1.0), ..base.clone() }, "capture rate: -1 fps"),
            (LiveOptions { open_timeout: Duration::ZERO, ..base.clone() }, "open timeout of 0ns"),
            (LiveOptions { open_timeout: Duration::from_secs(601), ..base.clone() }, "at most 600 s"),
        ];
        for (options, needle) in cases {
            let err = options_error("camera:/dev/video0", options);
            assert!(err.starts_with("camera:/dev/video0: ") && err.contains(needle), "{err}");
        }
        let err = options_error("lavfi:testsrc", LiveOptions { capture_fps: Some(5.0), ..base });
        assert!(err.contains("does not apply to lavfi"), "{err}");
    }

    #[test]
    fn screens_are_grabbed_at_a_multiple_of_the_sampling_rate() {
        let screen = LiveSource::parse("screen::0").unwrap();
        let rate = |fps: f64, capture_fps| {
            LiveCapture::check_options(&screen, &LiveOptions { fps, capture_fps, ..Default::default() }).unwrap()
        };
        assert_eq!(rate(2.0, None), Some(6.0));
        assert_eq!(rate(4.0, None), Some(8.0));
        assert_eq!(rate(0.5, None), Some(5.0));
        assert_eq!(rate(10.0, None), Some(10.0));
        assert_eq!(rate(2.0, Some(30.0)), Some(30.0));
    }

    #[test]
    fn join_within_gives_up_on_a_stuck_thread() {
        let (exit_tx, exited) = mpsc::channel::<()>();
        let stuck = thread::spawn(move || {
            let _exit = exit_tx;
            thread::sleep(Duration::from_secs(3));
        });
        let asked = std::time::Instant::now();
        assert!(join_within(stuck, &exited, Duration::from_millis(100)).is_none());
        let took = asked.elapsed();
        assert!(took < Duration::from_secs(1), "{took:?}");

        let (exit_tx, exited) = mpsc::channel::<()>();
        let quick = thread::spawn(move || {
            let _exit = exit_tx;
            thread::sleep(Duration::from_millis(50));
        });
        assert!(matches!(join_within(quick, &exited, Duration::from_secs(5)), Some(Ok(()))));

        let (exit_tx, exited) = mpsc::channel::<()>();
        let panics = thread::spawn(move || {
            let _exit = exit_tx;
            panic!("the capture thread's panic, expected by this test");
        });
        assert!(matches!(join_within(panics, &exited, Duration::from_secs(5)), Some(Err(_))));
    }
}
