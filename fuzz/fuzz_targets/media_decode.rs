//! Decoding untrusted media files: the bytes are written to a file and read back through the same calls
//! `omnid ask --video/--audio` makes (probe, frames at a few times, the audio track in a window), with
//! small limits. Checks that nothing panics, hangs or runs away with memory, and that what comes back
//! respects the request: frames in time order with finite timestamps, audio no longer than the window.
//!
//! FFmpeg is not instrumented, so coverage guidance sees omnid's side (frame choice, seeking back-off,
//! sample placement, gap and rate checks); the seed corpus of real files (shared with `container_probe`,
//! see scripts/fuzz.sh) gets the mutations into the decoders.

#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use omnid_codecs::av::audio::{decode_audio, AudioRequest};
use omnid_codecs::av::probe::probe;
use omnid_codecs::av::video::FrameReader;

fuzz_target!(|data: &[u8]| {
    // One file per fuzzing process, rewritten for every input (in /dev/shm when there is one, to stay off disk).
    let dir = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
    let path = dir.join(format!("omnid-fuzz-media-{}", std::process::id()));
    let Ok(mut file) = std::fs::File::create(&path) else { return };
    if file.write_all(data).is_err() {
        return;
    }
    drop(file);
    let Ok(info) = probe(&path) else { return };
    if info.video.is_some() {
        if let Ok(reader) = FrameReader::open(&path, &[0.0, 0.4, 7.0], Some((16, 16))) {
            let mut last = f64::NEG_INFINITY;
            for frame in reader.take(3) {
                let Ok(frame) = frame else { break };
                assert!(frame.pts_s.is_finite());
                assert!(frame.requested_s >= last);
                last = frame.requested_s;
                assert_eq!(frame.image.dimensions(), (16, 16));
            }
        }
    }
    if info.audio.is_some() {
        let req = AudioRequest { rate_hz: 8_000, start_s: 0.2, end_s: Some(2.2), max_duration_s: 5.0 };
        if let Ok(track) = decode_audio(&path, &req) {
            assert!(track.samples.len() <= 16_000);
            assert!(track.samples.iter().all(|s| s.is_finite() && s.abs() <= 1.0 + 1e-3));
        }
    }
});
