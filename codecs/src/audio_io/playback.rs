//! The speaker's ring buffer: the producer queues mono `f32`; the output callback pops it, writes each sample
//! to every channel of the device, fills silence when the ring runs dry, and honours clear requests.
//!
//! # Clearing from the producer side (barge-in)
//! In an SPSC ring only the consumer may remove items, and the consumer lives in the audio callback. So
//! [`PlaybackWriter::clear`] does not touch the ring: it publishes "discard every sample written before index
//! W" in an atomic, W being the count of samples the producer has written so far. At the start of each
//! callback the consumer compares W with its own count of samples consumed and skips the difference, which
//! for `f32` only moves the read index. Samples written after the clear have indexes >= W and play normally,
//! so the producer can queue the next answer at once. The old audio leaves the ring at the callback's next run
//! (within one period); neither side ever waits for the other. Audio the callback already handed to the
//! device or server is out of reach and still plays.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cpal::{FromSample, Sample};
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Frames the callback moves per step through a stack buffer: large enough that the ring's atomics are
/// touched a few times per callback at most, small enough (1 KiB) for any audio thread's stack.
const CHUNK_FRAMES: usize = 256;

/// Counters and requests shared by both ends.
#[derive(Debug, Default)]
struct Shared {
    /// Producer index before which queued audio is to be discarded (the clear request).
    discard_before: AtomicU64,
    /// Samples the callback has taken out of the ring, played or discarded.
    consumed: AtomicU64,
    /// Samples discarded by clear requests.
    discarded: AtomicU64,
    /// Frames filled with silence because the ring was empty.
    silence_frames: AtomicU64,
}

/// The producer's end of the ring.
pub(crate) struct PlaybackWriter {
    ring: HeapProd<f32>,
    shared: Arc<Shared>,
    /// Samples written so far (the producer index of the next one).
    written: u64,
}

/// The output callback's end of the ring.
pub(crate) struct PlaybackReader {
    ring: HeapCons<f32>,
    shared: Arc<Shared>,
    channels: usize,
    /// Samples taken out of the ring so far (the producer index of the next one).
    consumed: u64,
}

/// Creates a playback ring of `capacity` mono samples for a device with `channels` channels.
/// Fails (without panicking) only if the memory cannot be allocated.
pub(crate) fn playback_ring(capacity: usize, channels: u16) -> Result<(PlaybackWriter, PlaybackReader), String> {
    let capacity = capacity.max(1);
    let ring =
        HeapRb::<f32>::try_new(capacity).map_err(|e| format!("cannot allocate a {capacity}-sample ring ({e})"))?;
    let (prod, cons) = ring.split();
    let shared = Arc::new(Shared::default());
    Ok((
        PlaybackWriter { ring: prod, shared: shared.clone(), written: 0 },
        PlaybackReader { ring: cons, shared, channels: usize::from(channels.max(1)), consumed: 0 },
    ))
}

impl PlaybackWriter {
    /// Queues as many of `samples` as fit; returns how many.
    pub(crate) fn write(&mut self, samples: &[f32]) -> usize {
        let n = self.ring.push_slice(samples);
        self.written += n as u64;
        n
    }

    /// Samples queued and not yet played, not counting those a pending clear will discard.
    pub(crate) fn queued(&self) -> u64 {
        let done = self.shared.consumed.load(Ordering::Acquire).max(self.shared.discard_before.load(Ordering::Relaxed));
        self.written.saturating_sub(done)
    }

    /// Free space in the ring right now. Right after a clear this can still be small: the callback frees the
    /// discarded samples' space on its next run.
    pub(crate) fn vacant(&self) -> usize {
        self.ring.vacant_len()
    }

    /// Asks the callback to discard everything written so far; returns how many samples were still queued.
    pub(crate) fn clear(&mut self) -> u64 {
        let queued = self.queued();
        // Release: the callback that sees this index also sees every sample pushed before it.
        self.shared.discard_before.fetch_max(self.written, Ordering::Release);
        queued
    }

    /// Samples written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Samples the callback has sent to the device so far (discarded ones excluded).
    pub(crate) fn played(&self) -> u64 {
        self.shared.consumed.load(Ordering::Acquire).saturating_sub(self.discarded())
    }

    /// Samples dropped by clear requests so far.
    pub(crate) fn discarded(&self) -> u64 {
        self.shared.discarded.load(Ordering::Relaxed)
    }

    /// Frames of silence the callback inserted because the ring was empty.
    pub(crate) fn silence_frames(&self) -> u64 {
        self.shared.silence_frames.load(Ordering::Relaxed)
    }
}

/// Replaces NaN with silence and clips to the unit range, so no input can make the device output garbage.
fn sanitize(sample: f32) -> f32 {
    if sample.is_nan() {
        0.0
    } else {
        sample.clamp(-1.0, 1.0)
    }
}

impl PlaybackReader {
    /// The output callback's whole job for one buffer of interleaved samples. Never allocates, locks or blocks.
    pub(crate) fn fill<T>(&mut self, out: &mut [T])
    where
        T: Sample + FromSample<f32>,
    {
        let discard_before = self.shared.discard_before.load(Ordering::Acquire);
        if discard_before > self.consumed {
            let wanted = usize::try_from(discard_before - self.consumed).unwrap_or(usize::MAX);
            let skipped = self.ring.skip(wanted) as u64;
            self.consumed += skipped;
            self.shared.discarded.fetch_add(skipped, Ordering::Relaxed);
        }

        let channels = self.channels;
        let mut chunk = [0.0f32; CHUNK_FRAMES];
        let mut silent = 0u64;
        for block in out.chunks_mut(channels * CHUNK_FRAMES) {
            let frames = block.len() / channels;
            let got = self.ring.pop_slice(&mut chunk[..frames]);
            self.consumed += got as u64;
            for (frame, &sample) in block.chunks_exact_mut(channels).zip(&chunk[..got]) {
                frame.fill(T::from_sample(sanitize(sample)));
            }
            // Also covers a trailing partial frame, which no backend should hand us.
            block[got * channels..].fill(T::EQUILIBRIUM);
            silent += (frames - got) as u64;
        }
        if silent > 0 {
            self.shared.silence_frames.fetch_add(silent, Ordering::Relaxed);
        }
        self.shared.consumed.store(self.consumed, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_is_duplicated_to_every_channel_and_underrun_filled_with_silence() {
        let (mut writer, mut reader) = playback_ring(16, 2).unwrap();
        assert_eq!(writer.write(&[0.25, -0.5, 1.0]), 3);
        let mut out = [9.0f32; 10];
        reader.fill(&mut out);
        assert_eq!(out, [0.25, 0.25, -0.5, -0.5, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(writer.silence_frames(), 2);
        assert_eq!(writer.played(), 3);
        assert_eq!(writer.queued(), 0);
    }

    #[test]
    fn callbacks_longer_than_one_chunk_keep_order() {
        let (mut writer, mut reader) = playback_ring(1_000, 1).unwrap();
        let ramp: Vec<f32> = (0..600).map(|i| i as f32 / 1_000.0).collect();
        assert_eq!(writer.write(&ramp), 600);
        let mut out = vec![1.0f32; 700];
        reader.fill(&mut out);
        assert_eq!(&out[..600], &ramp[..]);
        assert!(out[600..].iter().all(|&s| s == 0.0));
        assert_eq!(writer.silence_frames(), 100);
    }

    #[test]
    fn a_full_ring_takes_only_what_fits() {
        let (mut writer, mut reader) = playback_ring(4, 1).unwrap();
        assert_eq!(writer.write(&[0.1; 6]), 4);
        assert_eq!(writer.vacant(), 0);
        assert_eq!(writer.queued(), 4);
        let mut out = [0.0f32; 2];
        reader.fill(&mut out);
        assert_eq!(writer.write(&[0.2; 6]), 2);
        assert_eq!(writer.written(), 6);
    }

    #[test]
    fn clear_discards_queued_audio_but_not_audio_written_after_it() {
        let (mut writer, mut reader) = playback_ring(64, 1).unwrap();
        assert_eq!(writer.write(&[0.5; 10]), 10);
        let mut out = [0.0f32; 2];
        reader.fill(&mut out);
        assert_eq!(out, [0.5, 0.5]);
        assert_eq!(writer.clear(), 8);
        assert_eq!(writer.queued(), 0, "a pending clear already counts as empty");
        assert_eq!(writer.write(&[-0.25, -0.75]), 2);
        assert_eq!(writer.queued(), 2);
        let mut out = [1.0f32; 4];
        reader.fill(&mut out);
        assert_eq!(out, [-0.25, -0.75, 0.0, 0.0]);
        assert_eq!(writer.discarded(), 8);
        assert_eq!(writer.played(), 4);
        assert_eq!(writer.silence_frames(), 2);
    }

    #[test]
    fn clear_on_an_idle_callback_then_silence() {
        let (mut writer, mut reader) = playback_ring(64, 2).unwrap();
        writer.write(&[0.5; 20]);
        writer.clear();
        writer.clear(); // twice is the same as once
        let mut out = [1.0f32; 8];
        reader.fill(&mut out);
        assert_eq!(out, [0.0; 8]);
        assert_eq!(writer.discarded(), 20);
        assert_eq!(writer.played(), 0);
        assert_eq!(writer.silence_frames(), 4);
    }

    #[test]
    fn integer_devices_get_converted_samples_and_bad_input_is_sanitized() {
        let (mut writer, mut reader) = playback_ring(8, 1).unwrap();
        writer.write(&[0.5, -1.0, f32::NAN, 7.0, f32::NEG_INFINITY]);
        let mut out = [1i16; 6];
        reader.fill(&mut out);
        assert_eq!(out, [16_384, i16::MIN, 0, i16::MAX, i16::MIN, 0]);
    }
}
