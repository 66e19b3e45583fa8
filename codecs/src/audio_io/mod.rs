//! Live audio I/O: microphone capture and speaker playback through cpal, with lock-free SPSC ring buffers
//! (`ringbuf`) between the real-time audio callbacks and the rest of the daemon, plus a device report.
//!
//! # Layout
//! - [`host`](HostChoice): which audio system (ALSA, PulseAudio, or auto) and finding a device by name.
//! - [`options`](StreamOptions): what a caller chooses, and how it becomes a cpal stream config.
//! - [`devices`](discover): hosts, devices and their default configs, saying plainly what is absent.
//! - `capture`: the input callback's work (downmix to mono, push, count overruns, stamp times) and reading back
//!   with [`ReadTiming`].
//! - `playback`: the output callback's work (pop, copy to every channel, fill silence, honour clears).
//! - `stream_errors`: errors from cpal's error callback to the stream's owner, lock-free.
//! - [`Microphone`] and [`Speaker`]: a running stream plus the caller's end of its ring.
//!
//! # Thread rules
//! Audio callbacks run on cpal's threads, at real-time deadlines. Ours only move samples and update atomics:
//! no allocation, no lock, no blocking, no panic on any input. Everything that waits (reads with a timeout,
//! draining the speaker) happens on the caller's side, by polling with short sleeps, so the callback is never
//! asked to wake anyone.
//!
//! # Why the stream is owned directly
//! Some audio APIs tie a stream to its thread, and older cpal had `!Send` streams on some platforms. cpal 0.18
//! asserts `Send + Sync` for every backend's `Stream` (`assert_stream_send!` in each host), so [`Microphone`]
//! and [`Speaker`] own the `cpal::Stream` themselves and are `Send`; the assertion below fails the build if a
//! cpal upgrade changes that, which is when a dedicated stream-owning thread would be needed.
//!
//! # Without a sound card
//! ALSA's `default` device exists but has no config, so opening fails with "no audio input device is available";
//! ALSA's `null` device works but is not paced in real time. For real-time tests run a PulseAudio null sink
//! (`eval "$(scripts/pulse-null-sink.sh)"`) and use [`HostChoice::PulseAudio`] or `Auto`.

mod capture;
mod device_stream;
mod devices;
mod host;
mod microphone;
mod options;
mod playback;
mod speaker;
mod stream_errors;

use std::time::{Duration, Instant};

pub use capture::ReadTiming;
pub use devices::{discover, AudioReport, DeviceConfig, DeviceReport, HostReport};
pub use host::HostChoice;
pub use microphone::Microphone;
pub use options::{StreamOptions, DEFAULT_CAPTURE_PERIOD, DEFAULT_PLAYBACK_PERIOD, DEFAULT_RING};
pub use speaker::Speaker;

// See "Why the stream is owned directly" above.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<cpal::Stream>();
    assert_send::<Microphone>();
    assert_send::<Speaker>();
};

/// `now + timeout`, or a year from now if that overflows `Instant` (e.g. `Duration::MAX`), so no timeout a
/// caller passes can panic.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600))).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_never_overflow() {
        let before = Instant::now();
        assert!(deadline_after(Duration::MAX) > before + Duration::from_secs(3600));
        assert!(deadline_after(Duration::from_millis(5)) >= before + Duration::from_millis(5));
    }
}
