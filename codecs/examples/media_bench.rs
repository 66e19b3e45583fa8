//! Decode-throughput benchmark for the FFmpeg layer, against the `ffmpeg` CLI doing the same work in
//! the same run (these machines are noisy, so only the ratio means much).
//!
//! ```sh
//! cargo run --release -p omnid-codecs --example media_bench [-- SECONDS]
//! ```
//!
//! 1. Video: a 1080p30 H.264 clip (generated with the CLI), frames sampled at 2 fps and converted to
//!    RGB at full size — omnid's `FrameReader` vs `ffmpeg -vf fps=2 -pix_fmt rgb24 -f rawvideo`.
//! 2. Audio: the clip's 48 kHz stereo AAC track to 16 kHz mono `f32` — `decode_audio` (rubato) vs
//!    `ffmpeg -ac 1 -ar 16000 -f f32le` (swresample).
//!
//! Prints frames per second and seconds of audio per second for both, and the ratios.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use omnid_codecs::av::audio::{decode_audio, AudioRequest};
use omnid_codecs::av::video::FrameReader;

fn cli(args: &[&str]) -> f64 {
    let t = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("needs the ffmpeg CLI");
    assert!(status.success(), "ffmpeg {args:?}");
    t.elapsed().as_secs_f64()
}

fn best_of<F: FnMut() -> f64>(runs: usize, mut f: F) -> f64 {
    (0..runs).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() {
    let seconds: u32 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let dir = std::env::temp_dir().join("omnid-media-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join(format!("1080p_{seconds}s.mp4"));
    if !clip.exists() {
        let d = seconds.to_string();
        let testsrc = format!("testsrc2=size=1920x1080:rate=30:duration={d}");
        let sine = format!("sine=frequency=1000:sample_rate=48000:duration={d}");
        cli(&[
            "-f",
            "lavfi",
            "-i",
            &testsrc,
            "-f",
            "lavfi",
            "-i",
            &sine,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ac",
            "2",
            clip.to_str().unwrap(),
        ]);
    }
    let path: &Path = &clip;
    let p = path.to_str().unwrap();
    let sampled = 2 * seconds as usize;
    let times: Vec<f64> = (0..sampled).map(|i| i as f64 * 0.5).collect();

    let ours_video = best_of(3, || {
        let t = Instant::now();
        let mut n = 0;
        for frame in FrameReader::open(path, &times, None).unwrap() {
            frame.unwrap();
            n += 1;
        }
        assert_eq!(n, sampled);
        t.elapsed().as_secs_f64()
    });
    let cli_video = best_of(3, || cli(&["-i", p, "-an", "-vf", "fps=2", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"]));
    let ours_audio = best_of(3, || {
        let t = Instant::now();
        let track = decode_audio(path, &AudioRequest::whole(16_000)).unwrap();
        assert!(track.duration_s() > f64::from(seconds) - 0.1);
        t.elapsed().as_secs_f64()
    });
    let cli_audio = best_of(3, || cli(&["-i", p, "-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "-"]));

    let s = f64::from(seconds);
    println!("clip: {seconds} s of 1920x1080 H.264 at 30 fps + 48 kHz stereo AAC ({p})");
    println!(
        "video, 2 fps sampling to full-size RGB: omnid {:.1} sampled frames/s ({:.0} decoded frames/s), ffmpeg CLI {:.1} frames/s; omnid/CLI speed {:.2}x",
        sampled as f64 / ours_video,
        s * 30.0 / ours_video,
        sampled as f64 / cli_video,
        cli_video / ours_video
    );
    println!(
        "audio to 16 kHz mono f32: omnid {:.0} s of audio per s, ffmpeg CLI {:.0} s/s; omnid/CLI speed {:.2}x",
        s / ours_audio,
        s / cli_audio,
        cli_audio / ours_audio
    );
}
