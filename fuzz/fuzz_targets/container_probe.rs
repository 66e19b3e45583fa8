//! Container probing on untrusted uploads: any bytes handed to FFmpeg's demuxers through
//! `probe_bytes`. Checks that it never panics, hangs or allocates without bound, and that whatever it
//! accepts respects omnid's limits (frame size, duration, rates), so nothing downstream sizes a buffer
//! from a hostile header.
//!
//! FFmpeg itself is not instrumented, so coverage guidance sees only omnid's side; mutations of the
//! seed corpus (small real files of every container, see scripts/fuzz.sh) still reach the demuxers.

#![no_main]

use libfuzzer_sys::fuzz_target;
use omnid_codecs::av::probe::probe_bytes;
use omnid_codecs::av::{MAX_DURATION_S, MAX_FPS, MAX_FRAME_PIXELS};

fuzz_target!(|data: &[u8]| {
    let Ok(info) = probe_bytes(data) else { return };
    assert!(info.video.is_some() || info.audio.is_some());
    assert!(info.duration_s.is_finite() && (0.0..=MAX_DURATION_S).contains(&info.duration_s));
    if let Some(v) = &info.video {
        assert!(v.width > 0 && v.height > 0);
        assert!(u64::from(v.width) * u64::from(v.height) <= MAX_FRAME_PIXELS);
        assert!(v.fps > 0.0 && v.fps <= MAX_FPS);
    }
    if let Some(a) = &info.audio {
        assert!(a.sample_rate_hz > 0 && a.channels > 0);
    }
});
