//! The capture thread: opens the device, reads and decodes packets, keeps frames at the requested rate,
//! converts the kept ones to RGB and offers them to the bounded queue without ever waiting for the
//! consumer.
//!
//! # Stopping
//! The stop flag is checked between packets, so stopping takes as long as the read in progress:
//! - x11grab sleeps until its next frame is due and then grabs it, so at most one capture interval (for a
//!   screen the capture rate is at least [`super::MIN_SCREEN_CAPTURE_FPS`], hence at most 0.2 s).
//! - lavfi generates frames instantly; the thread itself paces them to real time in slices of
//!   [`PACE_SLICE`], checking the flag in between.
//! - v4l2 blocks in the driver until the camera fills a buffer, which a stalled or unplugged camera may
//!   never do. The camera is therefore opened non-blocking (`fflags=nonblock`): a read with no frame ready
//!   returns at once, the thread polls every [`POLL_INTERVAL`], and stop stays prompt whatever the camera
//!   does. A camera that delivers nothing for [`STALL_TIMEOUT`] ends the stream with an error.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use ffmpeg_next as ffmpeg;

use super::sampler::Sampler;
use super::source::{check_size, LiveSource};
use super::{LiveFrame, LiveOptions};
use crate::av::rgb::RgbConverter;
use crate::av::MAX_CONSECUTIVE_DECODE_ERRORS as MAX_BAD_IN_A_ROW;
use crate::av::{best_video_stream, describe, open_decoder, ticks_to_seconds, StreamKind, MAX_FPS};
use crate::{CodecError, Result};

/// How often a non-blocking device with no frame ready is asked again: far below any frame interval, and
/// negligible CPU (200 wake-ups a second).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Longest sleep while pacing a filtergraph to real time, between looks at the stop flag.
pub(crate) const PACE_SLICE: Duration = Duration::from_millis(10);
/// A device that delivers no packet for this long is considered gone. Cameras slow down in the dark, but
/// not below a few frames per second.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// State shared between the capture thread and [`super::LiveCapture`].
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    pub(crate) finished: AtomicBool,
    /// Kept frames that found the queue full.
    pub(crate) dropped: AtomicU64,
    /// Frames put into the queue.
    pub(crate) sent: AtomicU64,
    /// Frames taken out of the queue by the consumer.
    pub(crate) received: AtomicU64,
    /// Why the stream ended, when it ended with an error; stored before the queue's sender is dropped.
    pub(crate) error: Mutex<Option<CodecError>>,
}

impl Shared {
    /// The error slot; a panic elsewhere cannot poison it for good (the value is a plain `Option`).
    pub(crate) fn error_slot(&self) -> MutexGuard<'_, Option<CodecError>> {
        self.error.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What the opened device delivers, reported back to [`super::LiveCapture::start`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Opened {
    pub(crate) size: (u32, u32),
    pub(crate) fps: Option<f64>,
}

/// Whether to go on reading after a frame.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Done,
}

/// The opened device and everything the thread needs to sample it.
pub(crate) struct Worker {
    device: String,
    ffmpeg_device: &'static str,
    input: ffmpeg::format::context::Input,
    stream_index: usize,
    time_base: ffmpeg::Rational,
    decoder: ffmpeg::decoder::Video,
    converter: RgbConverter,
    sampler: Sampler,
    clock: Clock,
    /// Set for lavfi, whose frames come out as fast as they can be generated: when the first frame was seen.
    pace_from: Option<Option<Instant>>,
    options: LiveOptions,
    opened: Opened,
    /// Frames kept so far, delivered or dropped (the next frame's index).
    kept: u64,
    bad_in_a_row: usize,
    shared: Arc<Shared>,
    tx: SyncSender<LiveFrame>,
}

impl Worker {
    /// Opens `source` with the device options for `capture_fps` and prepares its decoder.
    pub(crate) fn open(
        source: &LiveSource,
        options: LiveOptions,
        capture_fps: Option<f64>,
        shared: Arc<Shared>,
        tx: SyncSender<LiveFrame>,
    ) -> Result<Self> {
        crate::av::init();
        let device = source.to_string();
        let ffmpeg_device = source.ffmpeg_device();
        let fail = |problem: String| CodecError::VideoDevice { device: device.clone(), problem };
        let format = find_input_device(ffmpeg_device).ok_or_else(|| {
            fail(format!("this FFmpeg build has no {ffmpeg_device} input device (libavdevice was built without it)"))
        })?;
        let mut dict = ffmpeg::Dictionary::new();
        for (key, value) in source.device_options(capture_fps) {
            dict.set(key, &value);
        }
        if let LiveSource::Camera { device: path, .. } = source {
            // FFmpeg would say "No such file or directory"; say which camera is missing.
            if !path.exists() {
                return Err(fail(format!("no camera at {}: the device does not exist", path.display())));
            }
            // Non-blocking reads keep stop prompt on a stalled camera (module docs).
            dict.set("fflags", "nonblock");
        }
        // The URL was validated as UTF-8 without NUL bytes, on which ffmpeg-next would panic.
        let input = match ffmpeg::format::open_with(&source.url(), &format, dict) {
            Ok(ffmpeg::format::context::Context::Input(input)) => input,
            Ok(_) => return Err(fail(format!("FFmpeg opened {ffmpeg_device} as an output"))),
            Err(e) => return Err(fail(source.explain_open_error(&e))),
        };
        let stream_index = best_video_stream(&input)
            .ok_or_else(|| fail("delivers no video stream (an audio-only filtergraph?)".into()))?;
        let stream = input.stream(stream_index).ok_or_else(|| fail("video stream vanished".into()))?;
        let time_base = stream.time_base();
        let fps = [stream.avg_frame_rate(), stream.rate()]
            .into_iter()
            .map(|r| if r.denominator() == 0 { 0.0 } else { f64::from(r) })
            .find(|r| r.is_finite() && *r > 0.0 && *r <= MAX_FPS);
        let decoder = open_decoder(&input, stream_index, StreamKind::Video, &device)?
            .video()
            .map_err(|e| fail(format!("cannot open the video decoder: {}", describe(&e))))?;
        let size = (decoder.width(), decoder.height());
        check_size(size.0, size.1).map_err(|p| fail(format!("the device delivers frames of {p}")))?;
        let pace_from = matches!(source, LiveSource::TestPattern { .. }).then_some(None);
        Ok(Worker {
            device,
            ffmpeg_device,
            input,
            stream_index,
            time_base,
            decoder,
            converter: RgbConverter::new(options.size),
            sampler: Sampler::new(options.fps, fps),
            clock: Clock::default(),
            pace_from,
            options,
            opened: Opened { size, fps },
            kept: 0,
            bad_in_a_row: 0,
            shared,
            tx,
        })
    }

    pub(crate) fn opened(&self) -> Opened {
        self.opened
    }

    /// Reads until stopped, `max_frames` delivered, the consumer gone, the source's end, or an error.
    pub(crate) fn run(&mut self) -> Result<()> {
        let mut last_packet = Instant::now();
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // A fresh packet each time: av_read_frame wants an empty one.
            let mut packet = ffmpeg::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    last_packet = Instant::now();
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => {}
                        Err(e) => {
                            self.tolerate(&e, "cannot decode the video")?;
                            continue;
                        }
                    }
                    if self.drain()? == Flow::Done {
                        return Ok(());
                    }
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    if last_packet.elapsed() >= STALL_TIMEOUT {
                        return Err(self.fail(format!(
                            "delivered no frame for {} s: the device stalled or was unplugged",
                            STALL_TIMEOUT.as_secs()
                        )));
                    }
                    thread::sleep(POLL_INTERVAL);
                }
                Err(ffmpeg::Error::Eof) => {
                    // Only a filtergraph with a duration ends (testsrc=d=5); deliver what the decoder holds.
                    let _ = self.decoder.send_eof();
                    self.drain()?;
                    return Ok(());
                }
                Err(e) => {
                    let what = format!("reading from {} failed (unplugged?)", self.ffmpeg_device);
                    self.tolerate(&e, &what)?;
                }
            }
        }
    }

    /// Skips a damaged packet or frame (FFmpeg conceals the damage) unless there have been too many in a
    /// row, or the error is not about damaged data.
    fn tolerate(&mut self, e: &ffmpeg::Error, what: &str) -> Result<()> {
        if *e == ffmpeg::Error::InvalidData && self.bad_in_a_row < MAX_BAD_IN_A_ROW {
            self.bad_in_a_row += 1;
            return Ok(());
        }
        Err(self.fail(format!("{what} (FFmpeg {}: {})", self.ffmpeg_device, describe(e))))
    }

    /// Handles every frame the decoder has ready.
    fn drain(&mut self) -> Result<Flow> {
        let mut frame = ffmpeg::frame::Video::empty();
        loop {
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    self.bad_in_a_row = 0;
                    if self.on_frame(&frame)? == Flow::Done {
                        return Ok(Flow::Done);
                    }
                }
                Err(ffmpeg::Error::Eof) => return Ok(Flow::Continue),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(Flow::Continue)
                }
                Err(e) => {
                    self.tolerate(&e, "cannot decode the video")?;
                    return Ok(Flow::Continue);
                }
            }
        }
    }

    /// Timestamps one decoded frame and, if the sampler keeps it, converts and offers it to the queue.
    fn on_frame(&mut self, frame: &ffmpeg::frame::Video) -> Result<Flow> {
        let ticks = frame.timestamp().or(frame.pts());
        let t = self.clock.seconds(ticks.map(|ts| ticks_to_seconds(ts, self.time_base)), Instant::now());
        if !self.pace(t) {
            return Ok(Flow::Done);
        }
        if !self.sampler.offer(t) {
            return Ok(Flow::Continue);
        }
        let index = self.kept;
        self.kept += 1;
        let shared = Arc::clone(&self.shared);
        // The queue is full as far as we can tell: drop now and save the conversion. (The consumer may
        // free a slot meanwhile; `try_send` below stays the authority.)
        let queued = shared.sent.load(Ordering::Relaxed).saturating_sub(shared.received.load(Ordering::Relaxed));
        if queued >= self.options.queue as u64 {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(Flow::Continue);
        }
        let image = self.converter.convert(frame).map_err(|e| self.fail(format!("cannot convert a frame: {e}")))?;
        let live = LiveFrame { image, t_s: t, wall: SystemTime::now(), index };
        match self.tx.try_send(live) {
            Ok(()) => {
                let sent = shared.sent.fetch_add(1, Ordering::Relaxed) + 1;
                if self.options.max_frames.is_some_and(|max| sent >= max) {
                    return Ok(Flow::Done);
                }
            }
            Err(TrySendError::Full(_)) => {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => return Ok(Flow::Done),
        }
        Ok(Flow::Continue)
    }

    /// For a filtergraph, waits until the frame at `t` is due in real time, as a device would deliver it.
    /// False when stop was asked for meanwhile.
    fn pace(&mut self, t: f64) -> bool {
        let Some(start) = &mut self.pace_from else { return true };
        let start = *start.get_or_insert_with(Instant::now);
        // Clamped so that an absurd timestamp cannot overflow; stop is still checked every slice.
        let due = start + Duration::from_secs_f64(t.clamp(0.0, 1e9));
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= due {
                return true;
            }
            thread::sleep((due - now).min(PACE_SLICE));
        }
    }

    fn fail(&self, problem: String) -> CodecError {
        CodecError::VideoDevice { device: self.device.clone(), problem }
    }
}

/// Seconds since the first frame on the device's clock, kept moving forward.
#[derive(Default)]
struct Clock {
    /// Device time of the first frame, in seconds.
    origin: Option<f64>,
    /// The last frame's time and when it was seen.
    last: Option<(f64, Instant)>,
}

impl Clock {
    /// The time of a frame with device time `device_s` (None when the frame has no timestamp), seen at `now`.
    fn seconds(&mut self, device_s: Option<f64>, now: Instant) -> f64 {
        // Without a device timestamp, the wall-clock time since the previous frame stands in.
        let by_wall = self.last.map_or(0.0, |(t, seen)| t + now.saturating_duration_since(seen).as_secs_f64());
        let mut t = match device_s.filter(|s| s.is_finite()) {
            Some(s) => s - *self.origin.get_or_insert(s - by_wall),
            None => by_wall,
        };
        if let Some((last, _)) = self.last {
            // A clock that steps back (a driver restart, a wrapped timestamp) would stall sampling until it
            // caught up: re-anchor it so this frame counts as simultaneous with the previous one.
            if t < last {
                if let (Some(s), Some(origin)) = (device_s, self.origin.as_mut()) {
                    *origin = s - last;
                }
                t = last;
            }
        }
        self.last = Some((t, now));
        t
    }
}

/// The input device called `name`, if this FFmpeg has it.
fn find_input_device(name: &str) -> Option<ffmpeg::Format> {
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: `av_find_input_format` only reads the NUL-terminated name and returns a pointer to a static
    // format description (or null), valid for the life of the process. ffmpeg-next's device iterator is
    // avoided because it dereferences null on a build without any video input device.
    let format = unsafe { ffmpeg::ffi::av_find_input_format(c_name.as_ptr()) };
    if format.is_null() {
        return None;
    }
    // SAFETY: non-null and static, as above; `wrap` only stores the pointer.
    Some(ffmpeg::Format::Input(unsafe { ffmpeg::format::Input::wrap(format.cast_mut()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_starts_at_zero_and_never_steps_back() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut c = Clock::default();
        assert_eq!(c.seconds(Some(1000.0), at(0)), 0.0);
        assert!((c.seconds(Some(1000.5), at(500)) - 0.5).abs() < 1e-9);
        // The device clock jumps back by 100 s: time stays put, then moves on from there.
        assert!((c.seconds(Some(900.6), at(600)) - 0.5).abs() < 1e-9);
        assert!((c.seconds(Some(901.1), at(1100)) - 1.0).abs() < 1e-9);
        // No timestamp: the wall clock since the previous frame.
        assert!((c.seconds(None, at(1350)) - 1.25).abs() < 1e-9);
    }

    #[test]
    fn finds_the_devices_debian_builds() {
        crate::av::init();
        for name in ["lavfi", "x11grab", "v4l2"] {
            assert!(find_input_device(name).is_some_and(|f| f.name().contains(name)), "{name}");
        }
        assert!(find_input_device("no-such-device").is_none());
        assert!(find_input_device("nul\0byte").is_none());
    }
}
