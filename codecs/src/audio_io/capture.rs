//! The microphone's ring buffer: what the input callback does with each device buffer, and how the consumer
//! reads mono samples back together with their place on the capture clock.
//!
//! Two lock-free SPSC rings run side by side. The sample ring holds mono `f32`. The stamp ring holds one
//! [`Stamp`] per callback: which ring index and which device frame the callback's audio starts at, when the
//! callback ran and how long before that cpal says the audio was captured. The callback pushes the stamp
//! before the samples, so a consumer that sees a sample also sees its stamp. Stamps make the clock exact even
//! after an overrun: dropped samples leave a gap in device frames that the next stamp records.
//!
//! Nothing here touches a device, so the callback logic is unit-tested with plain slices.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpal::{FromSample, Sample};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Stamps the stamp ring holds per sample of ring capacity: one per 64 samples, i.e. enough for callbacks of
/// 64 frames or more (ALSA periods and PulseAudio fragments are larger in practice; omnid asks for 480) to
/// fill the whole sample ring. If callbacks are smaller, a lost stamp only makes the reader extrapolate the
/// clock from the previous one at the nominal rate.
const SAMPLES_PER_STAMP: usize = 64;

/// Fewest stamps kept, whatever the sample ring's size.
const MIN_STAMPS: usize = 64;

/// What one callback tells the consumer about where its audio sits in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stamp {
    /// Ring index (samples ever pushed before it) of this callback's first pushed sample.
    pushed_start: u64,
    /// Device frame index (frames ever delivered before it, pushed or dropped) of this callback's first frame.
    first_frame: u64,
    /// When the callback ran, in nanoseconds since the ring's clock base.
    callback_ns: u64,
    /// How long before the callback its first frame was captured, per cpal's `capture` timestamp.
    capture_lag_ns: u64,
}

/// Counters the callback publishes and the consumer reads.
#[derive(Debug)]
struct Shared {
    /// Samples dropped because the ring was full (the newest ones of a callback are dropped).
    dropped: AtomicU64,
    /// Device frames delivered by callbacks so far, pushed or dropped.
    frames: AtomicU64,
    /// Stamps dropped because the stamp ring was full.
    stamps_lost: AtomicU64,
    /// cpal's capture-to-callback delay in the latest callback, in nanoseconds; `u64::MAX` before the first.
    capture_lag_ns: AtomicU64,
}

/// The input callback's end of the ring.
pub(crate) struct CaptureWriter {
    samples: HeapProd<f32>,
    stamps: HeapProd<Stamp>,
    shared: Arc<Shared>,
    channels: usize,
    /// Samples pushed so far (the ring index of the next one).
    pushed: u64,
    /// Device frames delivered so far.
    frames: u64,
    base: Instant,
}

/// The consumer's end of the ring.
pub(crate) struct CaptureReader {
    samples: HeapCons<f32>,
    stamps: HeapCons<Stamp>,
    shared: Arc<Shared>,
    /// The stamp covering the next sample to read, once known.
    current: Option<Stamp>,
    /// Samples read so far (the ring index of the next one).
    read: u64,
    sample_rate_hz: u32,
    base: Instant,
}

/// Where a block of samples returned by a read sits on the capture clock.
///
/// Capture instants come from cpal's `capture` timestamp (the backend's estimate of when the buffer's first
/// frame was captured) moved onto [`Instant`] at callback time; later frames of the buffer are placed at the
/// nominal sample rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadTiming {
    /// Device frame index of the first sample returned, counted from the start of the stream and including
    /// frames dropped on overrun, so `first_frame / rate` is its stream time.
    pub first_frame: u64,
    /// How many samples the read returned.
    pub samples: usize,
    /// When the first sample returned was captured.
    pub first_captured_at: Instant,
    /// When the newest sample returned was captured.
    pub last_captured_at: Instant,
    /// When the audio callback put the newest sample returned into the ring.
    pub last_queued_at: Instant,
    /// When the read returned.
    pub read_at: Instant,
    /// The stream's sample rate.
    pub sample_rate_hz: u32,
}

impl ReadTiming {
    /// Stream time of the first sample returned: `first_frame / sample_rate_hz`.
    pub fn stream_time(&self) -> Duration {
        frames_to_duration(self.first_frame, self.sample_rate_hz)
    }

    /// Age of the newest sample when the consumer got it: capture to `read_at`, including the device and
    /// server buffering cpal reports.
    pub fn capture_latency(&self) -> Duration {
        self.read_at.saturating_duration_since(self.last_captured_at)
    }

    /// How long the newest sample waited in this crate's ring: callback to `read_at`.
    pub fn ring_latency(&self) -> Duration {
        self.read_at.saturating_duration_since(self.last_queued_at)
    }

    /// Joins the timing of two consecutive reads into one covering both.
    pub(crate) fn merge(self, later: ReadTiming) -> ReadTiming {
        ReadTiming {
            samples: self.samples + later.samples,
            last_captured_at: later.last_captured_at,
            last_queued_at: later.last_queued_at,
            read_at: later.read_at,
            ..self
        }
    }
}

/// `frames / rate` as a duration, exact to the nanosecond; a rate of 0 counts as 1 Hz rather than panicking.
pub(crate) fn frames_to_duration(frames: u64, sample_rate_hz: u32) -> Duration {
    let rate = u64::from(sample_rate_hz.max(1));
    let nanos = (u128::from(frames % rate) * 1_000_000_000 / u128::from(rate)) as u64;
    Duration::from_secs(frames / rate) + Duration::from_nanos(nanos)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn instant_at(base: Instant, ns: u64) -> Instant {
    base.checked_add(Duration::from_nanos(ns)).unwrap_or(base)
}

/// Creates a capture ring of `capacity` mono samples for a device with `channels` channels at `sample_rate_hz`.
/// Fails (without panicking) only if the memory cannot be allocated.
pub(crate) fn capture_ring(
    capacity: usize,
    channels: u16,
    sample_rate_hz: u32,
) -> Result<(CaptureWriter, CaptureReader), String> {
    let capacity = capacity.max(1);
    let stamp_capacity = (capacity / SAMPLES_PER_STAMP).max(MIN_STAMPS);
    let samples =
        HeapRb::<f32>::try_new(capacity).map_err(|e| format!("cannot allocate a {capacity}-sample ring ({e})"))?;
    let stamps = HeapRb::<Stamp>::try_new(stamp_capacity)
        .map_err(|e| format!("cannot allocate a {stamp_capacity}-stamp ring ({e})"))?;
    let (samples_prod, samples_cons) = samples.split();
    let (stamps_prod, stamps_cons) = stamps.split();
    let shared = Arc::new(Shared {
        dropped: AtomicU64::new(0),
        frames: AtomicU64::new(0),
        stamps_lost: AtomicU64::new(0),
        capture_lag_ns: AtomicU64::new(u64::MAX),
    });
    let base = Instant::now();
    let writer = CaptureWriter {
        samples: samples_prod,
        stamps: stamps_prod,
        shared: shared.clone(),
        channels: usize::from(channels.max(1)),
        pushed: 0,
        frames: 0,
        base,
    };
    let reader = CaptureReader {
        samples: samples_cons,
        stamps: stamps_cons,
        shared,
        current: None,
        read: 0,
        sample_rate_hz: sample_rate_hz.max(1),
        base,
    };
    Ok((writer, reader))
}

impl CaptureWriter {
    /// The input callback's whole job for one buffer of interleaved samples. Never allocates, locks or blocks.
    pub(crate) fn on_input<T>(&mut self, data: &[T], info: &cpal::InputCallbackInfo)
    where
        T: Sample,
        f32: FromSample<T>,
    {
        let callback_ns = nanos(self.base.elapsed());
        let timestamp = info.timestamp();
        let capture_lag = timestamp.callback.checked_duration_since(timestamp.capture).unwrap_or_default();
        self.push(data, callback_ns, nanos(capture_lag));
    }

    /// Downmixes `data` (interleaved, `channels` per frame; a trailing partial frame is ignored) to mono by
    /// averaging, and pushes it. When the ring is full the newest samples are dropped and counted.
    pub(crate) fn push<T>(&mut self, data: &[T], callback_ns: u64, capture_lag_ns: u64)
    where
        T: Sample,
        f32: FromSample<T>,
    {
        let channels = self.channels;
        let frames = (data.len() / channels) as u64;
        if frames == 0 {
            return;
        }
        self.shared.capture_lag_ns.store(capture_lag_ns, Ordering::Relaxed);
        // The stamp goes first: the samples' release store then also publishes it to the reader.
        let stamp = Stamp { pushed_start: self.pushed, first_frame: self.frames, callback_ns, capture_lag_ns };
        if self.stamps.try_push(stamp).is_err() {
            self.shared.stamps_lost.fetch_add(1, Ordering::Relaxed);
        }
        let scale = 1.0 / channels as f32;
        let mono =
            data.chunks_exact(channels).map(|frame| frame.iter().map(|&s| s.to_sample::<f32>()).sum::<f32>() * scale);
        let pushed = self.samples.push_iter(mono) as u64;
        self.pushed += pushed;
        self.frames += frames;
        if pushed < frames {
            self.shared.dropped.fetch_add(frames - pushed, Ordering::Relaxed);
        }
        self.shared.frames.store(self.frames, Ordering::Release);
    }
}

impl CaptureReader {
    /// Samples waiting in the ring.
    pub(crate) fn available(&self) -> usize {
        self.samples.occupied_len()
    }

    /// Samples dropped on overrun so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Device frames the callback has delivered so far.
    pub(crate) fn frames(&self) -> u64 {
        self.shared.frames.load(Ordering::Acquire)
    }

    /// Stamps lost because the stamp ring was full.
    pub(crate) fn stamps_lost(&self) -> u64 {
        self.shared.stamps_lost.load(Ordering::Relaxed)
    }

    /// cpal's capture-to-callback delay in the latest callback; `None` before the first.
    pub(crate) fn capture_lag(&self) -> Option<Duration> {
        match self.shared.capture_lag_ns.load(Ordering::Relaxed) {
            u64::MAX => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Moves up to `out.len()` samples out of the ring; returns how many, with their timing when there were any.
    pub(crate) fn read(&mut self, out: &mut [f32]) -> (usize, Option<ReadTiming>) {
        let n = self.samples.pop_slice(out);
        if n == 0 {
            return (0, None);
        }
        let read_at = Instant::now();
        let first = self.read;
        let last = first + n as u64 - 1;
        self.read += n as u64;
        let timing = match (self.locate(first), self.locate(last)) {
            (Some(a), Some(b)) => Some(ReadTiming {
                first_frame: a.frame,
                samples: n,
                first_captured_at: instant_at(self.base, a.captured_ns),
                last_captured_at: instant_at(self.base, b.captured_ns),
                last_queued_at: instant_at(self.base, b.queued_ns),
                read_at,
                sample_rate_hz: self.sample_rate_hz,
            }),
            _ => None,
        };
        (n, timing)
    }

    /// Where ring sample `index` sits: its device frame and capture time. Indexes must not decrease between calls.
    fn locate(&mut self, index: u64) -> Option<Located> {
        while let Some(next) = self.stamps.try_peek().copied() {
            if next.pushed_start > index {
                break;
            }
            self.current = Some(next);
            self.stamps.try_pop();
        }
        let stamp = self.current?;
        let offset = index.saturating_sub(stamp.pushed_start);
        let captured_ns = stamp
            .callback_ns
            .saturating_sub(stamp.capture_lag_ns)
            .saturating_add(nanos(frames_to_duration(offset, self.sample_rate_hz)));
        Some(Located {
            frame: stamp.first_frame.saturating_add(offset),
            // Nothing is captured after the callback that delivers it; backends' lag estimates can be a little
            // short (PulseAudio's by about 0.2 ms), which would place a buffer's last frames in the future.
            captured_ns: captured_ns.min(stamp.callback_ns),
            queued_ns: stamp.callback_ns,
        })
    }
}

/// One sample's place in time, as [`CaptureReader::locate`] finds it.
struct Located {
    frame: u64,
    captured_ns: u64,
    queued_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(reader: &mut CaptureReader) -> (Vec<f32>, Option<ReadTiming>) {
        let mut out = vec![0.0; 64];
        let (n, timing) = reader.read(&mut out);
        out.truncate(n);
        (out, timing)
    }

    #[test]
    fn stereo_is_averaged_to_mono_and_a_partial_frame_ignored() {
        let (mut writer, mut reader) = capture_ring(16, 2, 48_000).unwrap();
        writer.push(&[1.0f32, 0.0, 0.5, 0.5, -1.0, -0.5, 0.25], 0, 0);
        let (samples, _) = read_all(&mut reader);
        assert_eq!(samples, vec![0.5, 0.5, -0.75]);
        assert_eq!(reader.frames(), 3);
        assert_eq!(reader.dropped(), 0);
    }

    #[test]
    fn integer_samples_are_converted_to_unit_range() {
        let (mut writer, mut reader) = capture_ring(16, 1, 16_000).unwrap();
        writer.push(&[i16::MIN, 0, 16_384], 0, 0);
        let (samples, _) = read_all(&mut reader);
        assert_eq!(samples, vec![-1.0, 0.0, 0.5]);
    }

    #[test]
    fn a_full_ring_drops_the_newest_samples_and_counts_them() {
        let (mut writer, mut reader) = capture_ring(4, 1, 1_000).unwrap();
        writer.push(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], 0, 0);
        assert_eq!(reader.dropped(), 2);
        assert_eq!(reader.frames(), 6);
        writer.push(&[7.0f32], 0, 0);
        assert_eq!(reader.dropped(), 3);
        let (samples, timing) = read_all(&mut reader);
        assert_eq!(samples, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(timing.map(|t| t.first_frame), Some(0));
        // After the overrun the clock still knows where the next audio sits: device frame 7, not ring index 4.
        writer.push(&[8.0f32, 9.0], 0, 0);
        let (samples, timing) = read_all(&mut reader);
        assert_eq!(samples, vec![8.0, 9.0]);
        assert_eq!(timing.map(|t| t.first_frame), Some(7));
        assert_eq!(timing.map(|t| t.stream_time()), Some(Duration::from_millis(7)));
        assert_eq!(reader.dropped(), 3);
    }

    #[test]
    fn timing_places_samples_on_the_capture_clock() {
        let (mut writer, mut reader) = capture_ring(1_000, 1, 1_000).unwrap();
        // Callback at 50 ms whose audio was captured 20 ms earlier; the next at 60 ms, captured 20 ms earlier.
        writer.push(&[0.1f32; 10], 50_000_000, 20_000_000);
        writer.push(&[0.2f32; 10], 60_000_000, 20_000_000);
        let mut out = [0.0; 15];
        let (n, timing) = reader.read(&mut out);
        assert_eq!(n, 15);
        let timing = timing.expect("samples were read, so they have timing");
        assert_eq!(timing.first_frame, 0);
        assert_eq!(timing.samples, 15);
        let base = reader.base;
        assert_eq!(timing.first_captured_at, base + Duration::from_millis(30));
        // Sample 14 is frame 4 of the second callback: captured at 60 - 20 + 4 ms.
        assert_eq!(timing.last_captured_at, base + Duration::from_millis(44));
        assert_eq!(timing.last_queued_at, base + Duration::from_millis(60));
        assert!(timing.capture_latency() >= timing.ring_latency());
        let (n, timing) = reader.read(&mut out);
        assert_eq!(n, 5);
        let timing = timing.expect("timed");
        assert_eq!(timing.first_frame, 15);
        assert_eq!(timing.stream_time(), Duration::from_millis(15));
        assert_eq!(timing.first_captured_at, base + Duration::from_millis(45));
        assert_eq!(reader.stamps_lost(), 0);
    }

    #[test]
    fn frames_are_never_placed_after_their_callback() {
        let (mut writer, mut reader) = capture_ring(100, 1, 1_000).unwrap();
        // 10 frames at 1 kHz span 10 ms, but the backend says the first was captured only 5 ms before the callback.
        writer.push(&[0.0f32; 10], 20_000_000, 5_000_000);
        let mut out = [0.0; 10];
        let (_, timing) = reader.read(&mut out);
        let timing = timing.expect("timed");
        assert_eq!(timing.first_captured_at, reader.base + Duration::from_millis(15));
        assert_eq!(timing.last_captured_at, reader.base + Duration::from_millis(20));
    }

    #[test]
    fn capture_lag_is_published_and_empty_buffers_change_nothing() {
        let (mut writer, mut reader) = capture_ring(8, 2, 48_000).unwrap();
        assert_eq!(reader.capture_lag(), None);
        writer.push::<f32>(&[], 1, 1);
        writer.push(&[0.5f32], 1, 1); // half a stereo frame: nothing to push
        assert_eq!(reader.capture_lag(), None);
        assert_eq!(reader.frames(), 0);
        writer.push(&[0.5f32, 0.5], 5_000_000, 3_000_000);
        assert_eq!(reader.capture_lag(), Some(Duration::from_millis(3)));
        assert_eq!(reader.available(), 1);
        assert_eq!(read_all(&mut reader).0, vec![0.5]);
    }

    #[test]
    fn frames_to_duration_is_exact_and_survives_zero_rate() {
        assert_eq!(frames_to_duration(48_000 * 3 + 24_000, 48_000), Duration::from_millis(3_500));
        assert_eq!(frames_to_duration(1, 3), Duration::from_nanos(333_333_333));
        assert_eq!(frames_to_duration(7, 0), Duration::from_secs(7));
    }
}
