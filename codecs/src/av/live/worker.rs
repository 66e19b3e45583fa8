//! The capture thread: opens the device, reads and decodes packets, keeps frames at the requested rate,
//! converts the kept ones to RGB and puts them into the bounded queue, displacing the oldest queued frame
//! when it is full, so that it never waits for the consumer.
//!
//! # Stopping
//! The stop flag is checked between packets, and FFmpeg's interrupt callback (module `open`) checks it
//! inside reads that wait in FFmpeg's own loops. Otherwise stopping takes as long as the read in progress:
//! - x11grab sleeps until its next frame is due and then grabs it, so at most one capture interval: 0.2 s
//!   at most, as screens are grabbed at [`super::MIN_SCREEN_CAPTURE_FPS`] or faster unless
//!   `capture_fps` asks for less.
//! - lavfi generates frames instantly; the thread itself paces them to real time in slices of
//!   [`PACE_SLICE`], checking the flag in between.
//! - v4l2 blocks in the driver until the camera fills a buffer, which a stalled or unplugged camera may
//!   never do. The camera is therefore opened non-blocking (`fflags=nonblock`): a read with no frame ready
//!   returns at once, the thread polls every [`POLL_INTERVAL`], and stop stays prompt whatever the camera
//!   does. A camera that delivers nothing for [`STALL_TIMEOUT`] ends the stream with an error.
//! - A read that blocks where FFmpeg never looks at the callback (libxcb waiting for an X server over a
//!   network that lost the connection) is not waited for: [`super::LiveCapture::stop`] gives up on the
//!   thread after [`super::STOP_TIMEOUT`] and leaves it to end when that read returns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use ffmpeg_next as ffmpeg;

use super::clock::Clock;
use super::device::{check_camera_node, find_input_device};
use super::open::{open_input, timed_out_problem, OpenError};
use super::queue::QueueWriter;
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
    /// Queued frames displaced by newer ones before the consumer took them.
    pub(crate) dropped: AtomicU64,
    /// Frames put into the queue, including those displaced later.
    pub(crate) sent: AtomicU64,
    /// Why the stream ended, when it ended with an error; stored before the queue's writer is dropped.
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
    /// What it means when reading fails, in this source's terms.
    read_failure: String,
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
    queue: QueueWriter,
}

impl Worker {
    /// Opens `source` with the device options for `capture_fps` and prepares its decoder.
    pub(crate) fn open(
        source: &LiveSource,
        options: LiveOptions,
        capture_fps: Option<f64>,
        shared: Arc<Shared>,
        queue: QueueWriter,
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
            // FFmpeg would say "No such file or directory" or "Invalid argument"; say what is wrong.
            check_camera_node(path).map_err(fail)?;
            // Non-blocking reads keep stop prompt on a stalled camera (module docs); the ffmpeg CLI opens
            // every input this way. "+" adds the flag to FFmpeg's defaults instead of replacing them.
            dict.set("fflags", "+nonblock");
        }
        let ffmpeg::Format::Input(format) = format else {
            return Err(fail(format!("FFmpeg's {ffmpeg_device} is not an input device")));
        };
        let input = match open_input(&source.url(), &format, dict, Arc::clone(&shared), options.open_timeout) {
            Ok(input) => input,
            Err(OpenError::TimedOut) => return Err(fail(timed_out_problem(options.open_timeout))),
            Err(OpenError::Stopped) => return Err(fail("stopped while opening the device".into())),
            Err(OpenError::Ffmpeg(e)) => return Err(fail(source.explain_open_error(&e))),
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
        check_size(size.0, size.1).map_err(|p| fail(format!("unusable frame size: {p}")))?;
        let pace_from = matches!(source, LiveSource::TestPattern { .. }).then_some(None);
        Ok(Worker {
            device,
            ffmpeg_device,
            read_failure: match source {
                LiveSource::Screen { display, .. } => format!("lost the X display {display} (did the X server stop?)"),
                LiveSource::Camera { device, .. } => {
                    format!("the camera {} stopped delivering frames (unplugged?)", device.display())
                }
                LiveSource::TestPattern { .. } => "the filtergraph failed".into(),
            },
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
            queue,
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
                // Stop interrupted a waiting read (FFmpeg's AVERROR_EXIT), or the read failed as the device
                // was being given up on: either way the capture was asked to end.
                Err(_) if self.shared.stop.load(Ordering::Relaxed) => return Ok(()),
                Err(e) => {
                    let what = std::mem::take(&mut self.read_failure);
                    let tolerated = self.tolerate(&e, &what);
                    self.read_failure = what;
                    tolerated?;
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

    /// Timestamps one decoded frame and, if the sampler keeps it, converts it and puts it into the queue.
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
        // Every kept frame is converted: when the queue is full it displaces the oldest queued frame,
        // which a realtime consumer needs less than this fresh one.
        let image = self.converter.convert(frame).map_err(|e| self.fail(format!("cannot convert a frame: {e}")))?;
        let live = LiveFrame { image, t_s: t, wall: SystemTime::now(), index };
        if let Some(displaced) = self.queue.push(live) {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            drop(displaced);
        }
        let sent = self.shared.sent.fetch_add(1, Ordering::Relaxed) + 1;
        if self.options.max_frames.is_some_and(|max| sent >= max) {
            return Ok(Flow::Done);
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
