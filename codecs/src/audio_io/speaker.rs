//! [`Speaker`]: a running cpal output stream playing mono `f32` the caller queues in a lock-free ring.

use std::time::Duration;

use cpal::traits::DeviceTrait;
use cpal::{FromSample, SampleFormat, SizedSample};

use super::deadline_after;
use super::device_stream::{build_for_sample_format, DeviceStream, PreparedDevice};
use super::host::Direction;
use super::options::{ChosenConfig, StreamOptions, BUILD_TIMEOUT};
use super::playback::{playback_ring, PlaybackReader, PlaybackWriter};
use super::stream_errors::ErrorSink;
use crate::{CodecError, Result};

/// Sleep between checks while [`Speaker::write_timeout`] or [`Speaker::drain`] wait for the callback. The
/// callback frees space once per period (40 ms by default), so checking
/// every 2 ms adds little delay without spinning.
const POLL: Duration = Duration::from_millis(2);

/// A live speaker (or any playback device, such as a null sink) playing mono `f32` at the device's sample
/// rate, duplicated to all its channels.
///
/// [`write`](Self::write) queues samples in a ring of [`StreamOptions::ring`] length; the audio callback pops
/// them and never allocates, locks or blocks. When the ring runs dry the callback plays silence and counts
/// it ([`silence_frames`](Self::silence_frames)). [`clear`](Self::clear) drops the queued audio at the
/// callback's next run, for barge-in; what the callback already handed to the server (up to two periods, see
/// [`DEFAULT_PLAYBACK_PERIOD`](super::DEFAULT_PLAYBACK_PERIOD)) still plays. Dropping the `Speaker` stops the
/// stream at once, whatever is still queued; call [`drain`](Self::drain) first to let it finish.
///
/// Like `Microphone`, it owns cpal's `Stream` directly, since that is `Send` on every cpal 0.18 backend.
pub struct Speaker {
    // Declared first so it is dropped first: callbacks stop before the ring ends go away.
    stream: DeviceStream,
    writer: PlaybackWriter,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.stream.debug("Speaker", f)
    }
}

impl Speaker {
    /// Opens the playback device `options` names and starts the stream (playing silence until written to).
    ///
    /// Errors are [`CodecError::AudioDevice`] naming the device, e.g. `speaker (ALSA: default): no audio output
    /// device is available (…)`.
    pub fn open(options: &StreamOptions) -> Result<Self> {
        let prepared = PreparedDevice::find(options, Direction::Output)?;
        let ChosenConfig { config, format, frames_per_callback } = prepared.chosen;
        let (writer, reader) =
            playback_ring(options.ring_samples(config.sample_rate, frames_per_callback), config.channels)
                .map_err(|problem| prepared.error(problem))?;
        let stream = prepared.start(|device, sink| build_stream(device, config, format, reader, sink))?;
        Ok(Speaker { stream, writer })
    }

    /// The device as opened: role, host and device id, e.g. `speaker (PulseAudio: vsink)`.
    pub fn device(&self) -> &str {
        self.stream.label()
    }

    /// Sample rate [`write`](Self::write) expects (the device's).
    pub fn sample_rate_hz(&self) -> u32 {
        self.stream.sample_rate_hz()
    }

    /// Channels of the device; each mono sample is written to all of them.
    pub fn device_channels(&self) -> u16 {
        self.stream.channels()
    }

    /// Queues as many of `samples` as fit without waiting; returns how many. NaN plays as silence and values
    /// outside [-1, 1] are clipped.
    pub fn write(&mut self, samples: &[f32]) -> usize {
        self.writer.write(samples)
    }

    /// Queues all of `samples`, waiting for room as the device plays, until `timeout`; returns how many were
    /// queued.
    pub fn write_timeout(&mut self, samples: &[f32], timeout: Duration) -> usize {
        let deadline = deadline_after(timeout);
        let mut done = self.writer.write(samples);
        while done < samples.len() && std::time::Instant::now() < deadline {
            std::thread::sleep(POLL);
            done += self.writer.write(&samples[done..]);
        }
        done
    }

    /// Samples queued and not yet handed to the device.
    pub fn queued(&self) -> u64 {
        self.writer.queued()
    }

    /// Room in the ring right now, in samples.
    pub fn vacant(&self) -> usize {
        self.writer.vacant()
    }

    /// Waits until every queued sample has been handed to the device, or `timeout` passes; returns whether it
    /// emptied. The device or server still holds up to two periods of audio after that.
    pub fn drain(&mut self, timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        loop {
            if self.writer.queued() == 0 {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Discards all queued audio (barge-in): the callback skips it on its next run, within one period. Audio
    /// written after this call plays normally. Returns how many samples were queued.
    pub fn clear(&mut self) -> u64 {
        self.writer.clear()
    }

    /// Samples written so far.
    pub fn written_samples(&self) -> u64 {
        self.writer.written()
    }

    /// Samples handed to the device so far (cleared ones excluded).
    pub fn played_samples(&self) -> u64 {
        self.writer.played()
    }

    /// Samples dropped by [`clear`](Self::clear).
    pub fn cleared_samples(&self) -> u64 {
        self.writer.discarded()
    }

    /// Frames of silence played because the ring was empty (underruns). This includes idle time with nothing
    /// queued: compare its value before and after an utterance to see gaps inside it.
    pub fn silence_frames(&self) -> u64 {
        self.writer.silence_frames()
    }

    /// Underruns the device itself reported.
    pub fn device_xruns(&self) -> u64 {
        self.stream.xruns()
    }

    /// The oldest error the running stream reported and not yet returned here; `None` means nothing new.
    pub fn stream_error(&mut self) -> Option<CodecError> {
        self.stream.next_error()
    }

    /// Stream errors that arrived while earlier ones were still waiting to be returned, and were not kept.
    pub fn stream_errors_lost(&self) -> u64 {
        self.stream.errors_lost()
    }

    /// Pauses playback; queued audio stays queued.
    pub fn pause(&self) -> Result<()> {
        self.stream.pause()
    }

    /// Resumes a paused stream.
    pub fn resume(&self) -> Result<()> {
        self.stream.resume()
    }
}

/// Builds the output stream for the sample type `format` names; see the microphone's `build_stream`.
fn build_stream(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    format: SampleFormat,
    reader: PlaybackReader,
    sink: ErrorSink,
) -> std::result::Result<cpal::Stream, cpal::Error> {
    fn build<T>(
        device: &cpal::Device,
        config: cpal::StreamConfig,
        mut reader: PlaybackReader,
        mut sink: ErrorSink,
    ) -> std::result::Result<cpal::Stream, cpal::Error>
    where
        T: SizedSample + FromSample<f32>,
    {
        device.build_output_stream::<T, _, _>(
            config,
            move |data: &mut [T], _: &cpal::OutputCallbackInfo| reader.fill(data),
            move |error| sink.report(error),
            Some(BUILD_TIMEOUT),
        )
    }
    build_for_sample_format!(format, build(device, config, reader, sink))
}
