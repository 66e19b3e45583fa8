//! How errors a running stream reports travel from cpal's error callback to the owner of the stream.
//!
//! cpal calls the error callback on its own threads, on ALSA from the same worker thread that runs the audio
//! callback, so it must not block or lock either. Errors go through a small lock-free SPSC ring
//! ([`ERROR_RING_CAPACITY`]); the callback never waits: what does not fit is counted, not queued. Xruns
//! (buffer overruns and underruns at the device) can come at audio rate and say nothing new after the
//! first one, so they are only counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ringbuf::traits::{Consumer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::CodecError;

/// Errors held until the owner asks for them. A failing stream reports a handful of distinct errors before it
/// stops (e.g. a disconnect seen by both PulseAudio's driver and latency threads, plus a real-time priority
/// warning); eight keeps all of those, and any beyond are counted in [`ErrorSource::lost`].
pub(crate) const ERROR_RING_CAPACITY: usize = 8;

/// Counters shared by both ends.
#[derive(Debug, Default)]
struct Counters {
    /// Xrun reports (device-level overrun or underrun), counted rather than queued.
    xruns: AtomicU64,
    /// Non-xrun errors that arrived while the ring was full.
    lost: AtomicU64,
}

/// The error callback's end: owned by the `FnMut` cpal calls, which it calls from one thread at a time.
pub(crate) struct ErrorSink {
    ring: HeapProd<cpal::Error>,
    counters: Arc<Counters>,
}

/// The owner's end, kept by the `Microphone` or `Speaker`.
pub(crate) struct ErrorSource {
    ring: HeapCons<cpal::Error>,
    counters: Arc<Counters>,
}

/// Creates the two ends.
pub(crate) fn error_channel() -> (ErrorSink, ErrorSource) {
    let counters = Arc::new(Counters::default());
    let (prod, cons) = HeapRb::new(ERROR_RING_CAPACITY).split();
    (ErrorSink { ring: prod, counters: counters.clone() }, ErrorSource { ring: cons, counters })
}

impl ErrorSink {
    /// Records one error from cpal; never blocks, locks or allocates.
    pub(crate) fn report(&mut self, error: cpal::Error) {
        if error.kind() == cpal::ErrorKind::Xrun {
            self.counters.xruns.fetch_add(1, Ordering::Relaxed);
        } else if self.ring.try_push(error).is_err() {
            self.counters.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl ErrorSource {
    /// The oldest error not yet returned, as a [`CodecError::AudioDevice`] naming `device`; `None` when the
    /// stream has reported nothing new.
    pub(crate) fn next(&mut self, device: &str) -> Option<CodecError> {
        let error = self.ring.try_pop()?;
        Some(CodecError::AudioDevice {
            device: device.to_owned(),
            problem: format!("the audio stream reported an error ({:?}: {error})", error.kind()),
        })
    }

    /// Xruns the device reported since the stream started.
    pub(crate) fn xruns(&self) -> u64 {
        self.counters.xruns.load(Ordering::Relaxed)
    }

    /// Errors dropped because [`ERROR_RING_CAPACITY`] were already waiting.
    pub(crate) fn lost(&self) -> u64 {
        self.counters.lost.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpal::{Error, ErrorKind};

    #[test]
    fn xruns_are_counted_other_errors_queued_overflow_counted() {
        let (mut sink, mut source) = error_channel();
        sink.report(Error::new(ErrorKind::Xrun));
        sink.report(Error::new(ErrorKind::Xrun));
        sink.report(Error::with_message(ErrorKind::StreamInvalidated, "PulseAudio disconnected"));
        for _ in 0..ERROR_RING_CAPACITY {
            sink.report(Error::new(ErrorKind::DeviceNotAvailable));
        }
        assert_eq!(source.xruns(), 2);
        // One StreamInvalidated + capacity - 1 DeviceNotAvailable fit; the last one did not.
        assert_eq!(source.lost(), 1);
        let first = source.next("microphone (PulseAudio: vsink.monitor)").map(|e| e.to_string());
        assert_eq!(
            first.as_deref(),
            Some(
                "microphone (PulseAudio: vsink.monitor): the audio stream reported an error \
                 (StreamInvalidated: PulseAudio disconnected)"
            )
        );
        let mut rest = 0;
        while source.next("x").is_some() {
            rest += 1;
        }
        assert_eq!(rest, ERROR_RING_CAPACITY - 1);
        assert!(source.next("x").is_none());
    }
}
