//! [`Microphone`]: a running cpal input stream feeding mono `f32` into a lock-free ring the caller reads.

use std::time::{Duration, Instant};

use cpal::traits::DeviceTrait;
use cpal::{FromSample, SampleFormat, SizedSample};

use super::capture::{capture_ring, frames_to_duration, CaptureReader, CaptureWriter, ReadTiming};
use super::deadline_after;
use super::device_stream::{build_for_sample_format, DeviceStream, PreparedDevice};
use super::host::Direction;
use super::options::{ChosenConfig, StreamOptions, BUILD_TIMEOUT};
use super::stream_errors::ErrorSink;
use crate::{CodecError, Result};

/// Shortest and longest sleep of [`Microphone::read_timeout`] while it waits for samples. The callback is
/// never woken or waited on; the reader polls. 1 ms keeps the added latency well under one 10 ms callback
/// period, and 5 ms caps the wake-ups when many samples are still missing.
const MIN_POLL: Duration = Duration::from_millis(1);
const MAX_POLL: Duration = Duration::from_millis(5);

/// A live microphone (or any capture device, such as a sink's monitor), downmixed to mono `f32` at the device's
/// own sample rate (resample with [`crate::stream_resample`] if the model wants another).
///
/// The audio callback only downmixes and pushes into a ring of [`StreamOptions::ring`] length; it never
/// allocates, locks or blocks. When the ring is full the newest samples are dropped and counted in
/// [`Microphone::dropped_samples`]. Dropping the `Microphone` stops the stream: cpal's `Stream` stops its
/// callbacks and joins its threads in its own `Drop`.
///
/// cpal 0.18's `Stream` is `Send` on every backend (each backend asserts it at compile time, and this module
/// checks it too), so the `Microphone` owns the stream directly and can move to any thread; no dedicated
/// stream-owning thread is needed.
pub struct Microphone {
    // Declared first so it is dropped first: callbacks stop before the ring ends go away.
    stream: DeviceStream,
    reader: CaptureReader,
    last_timing: Option<ReadTiming>,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.stream.debug("Microphone", f)
    }
}

impl Microphone {
    /// Opens the capture device `options` names and starts the stream.
    ///
    /// Errors are [`CodecError::AudioDevice`] naming the device, e.g. `microphone (ALSA: default): no audio
    /// input device is available (ALSA: The requested audio device is not available…)` on a machine without
    /// a sound card, or `microphone (PulseAudio: default): no PulseAudio server answers (…)`.
    pub fn open(options: &StreamOptions) -> Result<Self> {
        let prepared = PreparedDevice::find(options, Direction::Input)?;
        let ChosenConfig { config, format, frames_per_callback } = prepared.chosen;
        let (writer, reader) = capture_ring(
            options.ring_samples(config.sample_rate, frames_per_callback),
            config.channels,
            config.sample_rate,
        )
        .map_err(|problem| prepared.error(problem))?;
        let stream = prepared.start(|device, sink| build_stream(device, config, format, writer, sink))?;
        Ok(Microphone { stream, reader, last_timing: None })
    }

    /// The device as opened: role, host and device id, e.g. `microphone (PulseAudio: vsink.monitor)`.
    pub fn device(&self) -> &str {
        self.stream.label()
    }

    /// Sample rate of the samples [`read`](Self::read) returns (the device's).
    pub fn sample_rate_hz(&self) -> u32 {
        self.stream.sample_rate_hz()
    }

    /// Channels the device delivers (averaged to mono before the ring).
    pub fn device_channels(&self) -> u16 {
        self.stream.channels()
    }

    /// Samples waiting to be read.
    pub fn available(&self) -> usize {
        self.reader.available()
    }

    /// Moves up to `out.len()` waiting samples into `out` without waiting; returns how many.
    pub fn read(&mut self, out: &mut [f32]) -> usize {
        let (n, timing) = self.reader.read(out);
        if n > 0 {
            self.last_timing = timing;
        }
        n
    }

    /// Fills `out` as samples arrive, returning when it is full or `timeout` has passed, with however many it
    /// got (possibly 0). It polls with short sleeps; the audio callback is never woken or waited on.
    pub fn read_timeout(&mut self, out: &mut [f32], timeout: Duration) -> usize {
        let deadline = deadline_after(timeout);
        let mut filled = 0;
        let mut timing: Option<ReadTiming> = None;
        loop {
            let (n, block) = self.reader.read(&mut out[filled..]);
            filled += n;
            timing = match (timing, block) {
                (Some(earlier), Some(later)) => Some(earlier.merge(later)),
                (earlier, later) => earlier.or(later),
            };
            let now = Instant::now();
            if filled == out.len() || now >= deadline {
                break;
            }
            let missing = frames_to_duration((out.len() - filled) as u64, self.sample_rate_hz());
            std::thread::sleep(missing.clamp(MIN_POLL, MAX_POLL).min(deadline - now));
        }
        if filled > 0 {
            self.last_timing = timing;
        }
        filled
    }

    /// Where the samples of the latest read that returned any sit on the capture clock, and how old they were.
    pub fn last_read_timing(&self) -> Option<ReadTiming> {
        self.last_timing
    }

    /// Stream time of device frame `frame_index`: `frame_index / sample_rate_hz`. Frame indexes count every
    /// frame the device delivered, including any dropped on overrun ([`ReadTiming::first_frame`]).
    pub fn stream_time(&self, frame_index: u64) -> Duration {
        frames_to_duration(frame_index, self.sample_rate_hz())
    }

    /// Frames the device has delivered since the stream started, kept or dropped.
    pub fn captured_frames(&self) -> u64 {
        self.reader.frames()
    }

    /// Samples dropped because the ring was full when they arrived (the consumer fell behind).
    pub fn dropped_samples(&self) -> u64 {
        self.reader.dropped()
    }

    /// How long before the latest callback its audio was captured, as cpal reports it (device and server
    /// buffering); `None` before the first callback.
    pub fn capture_to_callback(&self) -> Option<Duration> {
        self.reader.capture_lag()
    }

    /// Overruns the device itself reported (audio lost before it reached the callback).
    pub fn device_xruns(&self) -> u64 {
        self.stream.xruns()
    }

    /// The oldest error the running stream reported and not yet returned here, e.g. the server went away.
    /// Call it when reads come back empty; `None` means nothing new went wrong.
    pub fn stream_error(&mut self) -> Option<CodecError> {
        self.stream.next_error()
    }

    /// Stream errors that arrived while earlier ones were still waiting to be returned, and were not kept.
    pub fn stream_errors_lost(&self) -> u64 {
        self.stream.errors_lost()
    }

    /// Stamps lost when callbacks were very small; while non-zero, [`ReadTiming`] is extrapolated at the
    /// nominal rate over the gap.
    pub fn timing_stamps_lost(&self) -> u64 {
        self.reader.stamps_lost()
    }

    /// Pauses the stream (the device stops delivering; nothing is dropped while paused).
    pub fn pause(&self) -> Result<()> {
        self.stream.pause()
    }

    /// Resumes a paused stream.
    pub fn resume(&self) -> Result<()> {
        self.stream.resume()
    }
}

/// Builds the input stream for the sample type `format` names. Every arm moves `writer` and `sink` into the
/// callbacks, which then own them for the life of the stream.
fn build_stream(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    format: SampleFormat,
    writer: CaptureWriter,
    sink: ErrorSink,
) -> std::result::Result<cpal::Stream, cpal::Error> {
    fn build<T>(
        device: &cpal::Device,
        config: cpal::StreamConfig,
        mut writer: CaptureWriter,
        mut sink: ErrorSink,
    ) -> std::result::Result<cpal::Stream, cpal::Error>
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        device.build_input_stream::<T, _, _>(
            config,
            move |data: &[T], info: &cpal::InputCallbackInfo| writer.on_input(data, info),
            move |error| sink.report(error),
            Some(BUILD_TIMEOUT),
        )
    }
    build_for_sample_format!(format, build(device, config, writer, sink))
}
