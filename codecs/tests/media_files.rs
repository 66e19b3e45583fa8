//! File decoding through FFmpeg, on media the tests generate with the `ffmpeg` CLI (Debian package
//! `ffmpeg`): solid colours at known times and a tone at a known time, in every container and codec a user
//! is likely to have, so decoded timestamps, frame choice, audio alignment and tone frequency are asserted
//! with numbers.
#![cfg(feature = "ffmpeg")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use omnid_codecs::av::audio::{decode_audio, AudioRequest};
use omnid_codecs::av::probe::{probe, probe_bytes};
use omnid_codecs::av::video::FrameReader;
use omnid_codecs::CodecError;

/// Folder for this test process's media, under cargo's scratch directory for integration tests (inside
/// `target/`, so `cargo clean` removes it); each run starts empty.
fn workdir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("media-tests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    })
}

/// Runs the ffmpeg CLI, panicking with its stderr (and a hint when it is not installed).
fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("the media tests need the ffmpeg CLI: apt-get install ffmpeg");
    assert!(out.status.success(), "ffmpeg {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Six seconds: red for [0, 2), green for [2, 4), blue for [4, 6) at 30 fps, 320x240; audio silent except
/// a 1 kHz tone (amplitude 0.5) during [3, 4) s at 48 kHz stereo. One lavfi graph with two outputs, so
/// both streams start at the same instant (separate lavfi inputs start a few ms apart).
const CLIP_GRAPH: &str = "color=c=red:s=320x240:r=30:d=2[a];color=c=lime:s=320x240:r=30:d=2[b];\
color=c=blue:s=320x240:r=30:d=2[c];[a][b][c]concat=n=3:v=1:a=0[out0];\
aevalsrc=if(between(t\\,3\\,4)\\,0.5*sin(2*PI*1000*t)\\,0)|if(between(t\\,3\\,4)\\,0.5*sin(2*PI*1000*t)\\,0):s=48000:d=6[out1]";

/// Makes (once) the colour/tone clip with the given extension and codec arguments.
fn clip(name: &str, codec_args: &[&str]) -> PathBuf {
    // Tests run in parallel and share clips: one generates, the others wait for it.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    let path = workdir().join(name);
    if !path.exists() {
        let mut args = vec!["-f", "lavfi", "-i", CLIP_GRAPH];
        args.extend_from_slice(codec_args);
        args.push(path.to_str().unwrap());
        ffmpeg(&args);
    }
    path
}

fn mean_rgb(img: &image::RgbImage) -> [f64; 3] {
    let mut sum = [0f64; 3];
    for p in img.pixels() {
        for c in 0..3 {
            sum[c] += f64::from(p[c]);
        }
    }
    let n = f64::from(img.width() * img.height());
    sum.map(|s| s / n)
}

fn assert_colour(img: &image::RgbImage, want: [f64; 3], what: &str) {
    let got = mean_rgb(img);
    for c in 0..3 {
        assert!((got[c] - want[c]).abs() < 12.0, "{what}: mean colour {got:?}, want {want:?}");
    }
}

/// Frequency of the strongest DFT bin (1 Hz resolution search 900-1100 Hz), via Goertzel.
fn tone_frequency(x: &[f32], rate: u32) -> f64 {
    let power = |f: f64| {
        let w = 2.0 * std::f64::consts::PI * f / f64::from(rate);
        let (mut s1, mut s2) = (0f64, 0f64);
        for &v in x {
            let s = f64::from(v) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
    };
    let mut best = (0.0, f64::MIN);
    let mut f = 900.0;
    while f <= 1100.0 {
        let p = power(f);
        if p > best.1 {
            best = (f, p);
        }
        f += 0.5;
    }
    best.0
}

/// First time (seconds from the track start) where the 2 ms RMS envelope exceeds 0.1.
fn onset_s(x: &[f32], rate: u32) -> f64 {
    let win = (rate / 500) as usize;
    for (i, w) in x.windows(win).enumerate().step_by(win / 4) {
        let rms = (w.iter().map(|v| v * v).sum::<f32>() / win as f32).sqrt();
        if rms > 0.1 {
            return i as f64 / f64::from(rate);
        }
    }
    f64::NAN
}

struct Format {
    name: &'static str,
    args: &'static [&'static str],
    video_codec: &'static str,
    audio_codec: &'static str,
    /// Whether the frames next to a colour change are exact. The ffmpeg CLI drops the second frame of an
    /// AVI when it muxes audio with it (ffprobe shows pts 0, 2, 3, …), which shifts the content by a frame
    /// at every cut: an artefact of the generated file, not of decoding.
    exact_cuts: bool,
    /// Allowed tone-onset error. MP3 in AVI carries no gapless-playback info, so the encoder's delay
    /// (LAME's 1105 samples, 23 ms at 48 kHz) stays in the decoded track, as in every player.
    onset_tolerance_s: f64,
}

const FORMATS: &[Format] = &[
    Format {
        name: "h264_aac.mp4",
        args: &["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac"],
        video_codec: "h264",
        audio_codec: "aac",
        exact_cuts: true,
        onset_tolerance_s: 0.01,
    },
    Format {
        name: "hevc_aac.mov",
        args: &[
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=none",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
        video_codec: "hevc",
        audio_codec: "aac",
        exact_cuts: true,
        onset_tolerance_s: 0.01,
    },
    Format {
        name: "vp9_opus.webm",
        args: &["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "500k", "-c:a", "libopus"],
        video_codec: "vp9",
        audio_codec: "opus",
        exact_cuts: true,
        onset_tolerance_s: 0.01,
    },
    Format {
        name: "vp8_vorbis.webm",
        args: &["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "500k", "-c:a", "libvorbis"],
        video_codec: "vp8",
        audio_codec: "vorbis",
        exact_cuts: true,
        onset_tolerance_s: 0.01,
    },
    Format {
        name: "av1_flac.mkv",
        args: &["-c:v", "libsvtav1", "-preset", "12", "-c:a", "flac"],
        video_codec: "av1",
        audio_codec: "flac",
        exact_cuts: true,
        onset_tolerance_s: 0.01,
    },
    Format {
        name: "mpeg4_mp3.avi",
        args: &["-c:v", "mpeg4", "-q:v", "3", "-c:a", "libmp3lame"],
        video_codec: "mpeg4",
        audio_codec: "mp3",
        exact_cuts: false,
        onset_tolerance_s: 0.025,
    },
];

#[test]
fn every_container_gives_known_colours_at_known_times_and_the_tone_in_place() {
    for f in FORMATS {
        let path = clip(f.name, f.args);
        let info = probe(&path).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let v = info.video.as_ref().expect("video stream");
        let a = info.audio.as_ref().expect("audio stream");
        assert_eq!((v.codec.as_str(), a.codec.as_str()), (f.video_codec, f.audio_codec), "{}", f.name);
        assert_eq!((v.width, v.height), (320, 240), "{}", f.name);
        assert!((v.fps - 30.0).abs() < 0.01, "{}: fps {}", f.name, v.fps);
        assert!((info.duration_s - 6.0).abs() < 0.1, "{}: duration {}", f.name, info.duration_s);

        // Frames 15, 75, 135 (t = 0.5, 2.5, 4.5 s) and the frame just before each colour change.
        let times = [0.5, 2.5, 4.5, 59.0 / 30.0, 60.0 / 30.0];
        let frames: Vec<_> =
            FrameReader::open(&path, &times, None).unwrap().collect::<Result<_, _>>().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(frames.len(), 5);
        // The reader answers in time order.
        let by_time = |t: f64| frames.iter().find(|fr| fr.requested_s == t).unwrap();
        assert_colour(&by_time(0.5).image, [255.0, 0.0, 0.0], f.name);
        assert_colour(&by_time(2.5).image, [0.0, 255.0, 0.0], f.name);
        assert_colour(&by_time(4.5).image, [0.0, 0.0, 255.0], f.name);
        if f.exact_cuts {
            assert_colour(&by_time(59.0 / 30.0).image, [255.0, 0.0, 0.0], f.name);
            assert_colour(&by_time(2.0).image, [0.0, 255.0, 0.0], f.name);
        }
        for fr in &frames {
            assert!((fr.pts_s - fr.requested_s).abs() < 1e-3, "{}: pts {} for {}", f.name, fr.pts_s, fr.requested_s);
        }

        let track = decode_audio(&path, &AudioRequest::whole(16_000)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(track.sample_rate_hz, 16_000);
        assert_eq!(track.source_channels, 2);
        // AAC and MP3 run long by their padding (toolchain.md §4): allow one 1152-sample frame at 48 kHz.
        assert!((track.duration_s() - 6.0).abs() < 0.03, "{}: audio {} s", f.name, track.duration_s());
        let onset = onset_s(&track.samples, 16_000);
        assert!((onset - 3.0).abs() < f.onset_tolerance_s, "{}: tone onset at {onset} s, want 3.0", f.name);
        eprintln!("{}: tone onset {:+.1} ms", f.name, (onset - 3.0) * 1e3);
        let tone = &track.samples[(3.1 * 16_000.0) as usize..(3.9 * 16_000.0) as usize];
        let freq = tone_frequency(tone, 16_000);
        assert!((freq - 1000.0).abs() <= 1.0, "{}: tone at {freq} Hz", f.name);
    }
}

#[test]
fn audio_range_starts_on_the_file_clock() {
    let path = clip("h264_aac.mp4", FORMATS[0].args);
    // Range 2.5 .. 5 s: the tone starts 0.5 s in and lasts 1 s.
    let req = AudioRequest { rate_hz: 16_000, start_s: 2.5, end_s: Some(5.0), max_duration_s: 60.0 };
    let track = decode_audio(&path, &req).unwrap();
    assert_eq!(track.samples.len(), 40_000);
    let onset = onset_s(&track.samples, 16_000);
    assert!((onset - 0.5).abs() < 0.01, "onset {onset}");
    let too_long = AudioRequest { max_duration_s: 1.0, ..req };
    let err = decode_audio(&path, &too_long).unwrap_err().to_string();
    assert!(err.contains("h264_aac.mp4") && err.contains("longer than the limit"), "{err}");
}

#[test]
fn audio_only_files_decode_in_every_codec() {
    for (name, args) in [
        ("tone.mp3", &["-c:a", "libmp3lame"][..]),
        ("tone.opus", &["-c:a", "libopus"][..]),
        ("tone.ogg", &["-c:a", "libvorbis"][..]),
        ("tone.flac", &["-c:a", "flac"][..]),
        ("tone.m4a", &["-c:a", "aac"][..]),
        ("tone.wav", &["-c:a", "pcm_s16le"][..]),
    ] {
        let path = workdir().join(name);
        let mut a = vec!["-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100:duration=2"];
        a.extend_from_slice(args);
        a.push(path.to_str().unwrap());
        ffmpeg(&a);
        let info = probe(&path).unwrap();
        assert!(info.video.is_none(), "{name}: cover art or video reported");
        let track = decode_audio(&path, &AudioRequest::whole(16_000)).unwrap_or_else(|e| panic!("{e}"));
        assert!((track.duration_s() - 2.0).abs() < 0.06, "{name}: {} s", track.duration_s());
        let mid = &track.samples[8_000..24_000];
        let freq = tone_frequency(mid, 16_000);
        assert!((freq - 1000.0).abs() <= 1.0, "{name}: {freq} Hz");
        let err = match FrameReader::open(&path, &[0.0], None) {
            Ok(_) => panic!("{name}: opened as video"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(name) && err.contains("no video stream"), "{err}");
    }
}

#[test]
fn seeking_reads_a_late_window_without_decoding_from_the_start() {
    // 10 minutes at 10 fps, 64x48, a key frame every 10 s; the red channel counts frames mod 64 (×4)
    // and green counts 64-frame blocks mod 64 (×4), so a decoded frame tells its own index.
    let path = workdir().join("long.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=64x48:r=10:d=600,geq=r='mod(N\\,64)*4':g='mod(floor(N/64)\\,64)*4':b=0",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "100",
        "-pix_fmt",
        "yuv444p",
        "-qp",
        "0",
        path.to_str().unwrap(),
    ]);
    let times: Vec<f64> = (0..10).map(|i| 550.0 + 0.5 * f64::from(i)).collect();
    let mut reader = FrameReader::open(&path, &times, None).unwrap();
    let mut got = Vec::new();
    while let Some(fr) = reader.next_frame().unwrap() {
        got.push(fr);
    }
    assert_eq!(got.len(), 10);
    for fr in &got {
        let index = (fr.requested_s * 10.0).round() as u32;
        let px = fr.image.get_pixel(10, 10);
        let (r, g) = (u32::from(px[0]), u32::from(px[1]));
        assert_eq!(((r + 2) / 4, (g + 2) / 4), (index % 64, (index / 64) % 64), "frame at {}", fr.requested_s);
        assert!((fr.pts_s - fr.requested_s).abs() < 1e-3);
    }
    // One GOP (100 frames) before 550 s plus the 45 frames of the window, not 5,500 frames.
    assert!(reader.decoded_frames() < 300, "decoded {} frames", reader.decoded_frames());

    // A time past the end is an error naming the file, not the last frame.
    let mut past = FrameReader::open(&path, &[601.0], None).unwrap();
    let err = past.next_frame().unwrap_err().to_string();
    assert!(err.contains("long.mp4") && err.contains("no video frame at 601"), "{err}");
}

#[test]
fn bad_files_give_named_errors() {
    let dir = workdir();
    let good = clip("h264_aac.mp4", FORMATS[0].args);
    let bytes = std::fs::read(&good).unwrap();

    // Truncated: the first half of an MP4 whose index (moov) is at the end.
    let truncated = dir.join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = probe(&truncated).unwrap_err().to_string();
    assert!(err.contains("truncated.mp4") && err.contains("cannot open as media"), "{err}");

    // Corrupt: garbage over the middle of the stream data decodes with concealment or fails cleanly.
    let corrupt = dir.join("corrupt.mp4");
    let mut c = bytes.clone();
    let mid = c.len() / 2;
    for (i, b) in c[mid - 4000..mid + 4000].iter_mut().enumerate() {
        *b = (i * 131 % 251) as u8;
    }
    std::fs::write(&corrupt, &c).unwrap();
    // H.264 conceals the damage: the frames still come back, with the right colours away from it.
    let frames: Vec<_> = FrameReader::open(&corrupt, &[0.5, 4.5], None)
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_colour(&frames[0].image, [255.0, 0.0, 0.0], "corrupt.mp4 at 0.5 s");
    assert_colour(&frames[1].image, [0.0, 0.0, 255.0], "corrupt.mp4 at 4.5 s");

    // Zero-length, text, and a file with a misleading extension.
    let empty = dir.join("empty.webm");
    std::fs::write(&empty, b"").unwrap();
    assert!(probe(&empty).unwrap_err().to_string().contains("empty.webm: cannot open as media: file is empty"));
    let text = dir.join("notes.mkv");
    std::fs::write(&text, "these are not the frames you are looking for\n".repeat(100)).unwrap();
    assert!(matches!(probe(&text), Err(CodecError::NotMedia { .. })));
    let wav_named_mp4 = dir.join("sound.mp4");
    ffmpeg(&["-f", "lavfi", "-i", "sine=d=1", "-f", "wav", wav_named_mp4.to_str().unwrap()]);
    assert_eq!(probe(&wav_named_mp4).unwrap().container, "wav", "content decides, not the extension");

    // A video without audio, and a WAV with a header but no samples.
    let silent = dir.join("silent.mp4");
    ffmpeg(&["-f", "lavfi", "-i", "color=c=red:s=64x48:r=10:d=1", "-c:v", "libx264", silent.to_str().unwrap()]);
    let err = decode_audio(&silent, &AudioRequest::whole(16_000)).unwrap_err().to_string();
    assert_eq!(err, format!("{}: has no audio stream", silent.display()));
    let no_samples = dir.join("nosamples.wav");
    ffmpeg(&["-f", "lavfi", "-i", "sine=d=1", "-t", "0", no_samples.to_str().unwrap()]);
    let err = decode_audio(&no_samples, &AudioRequest::whole(16_000)).unwrap_err().to_string();
    assert!(err.contains("nosamples.wav") && err.contains("empty"), "{err}");

    // Absurd dimensions: a Y4M header declaring 9000x9000 (81 M pixels) is refused before any frame is allocated.
    let huge = dir.join("huge.y4m");
    let mut y4m = b"YUV4MPEG2 W9000 H9000 F30:1 Ip A1:1 C420jpeg\nFRAME\n".to_vec();
    y4m.extend(std::iter::repeat_n(0u8, 1000));
    std::fs::write(&huge, y4m).unwrap();
    let err = probe(&huge).unwrap_err().to_string();
    assert!(err.contains("huge.y4m") && err.contains("9000x9000"), "{err}");
    // Absurd duration: a Y4M of two frames, each shown for 100,000 s (55 hours in all).
    let long = dir.join("long.y4m");
    let mut y4m = b"YUV4MPEG2 W16 H16 F1:100000 Ip A1:1 C420jpeg\n".to_vec();
    for _ in 0..2 {
        y4m.extend_from_slice(b"FRAME\n");
        y4m.extend(std::iter::repeat_n(128u8, 16 * 16 * 3 / 2));
    }
    std::fs::write(&long, y4m).unwrap();
    let err = probe(&long).unwrap_err().to_string();
    assert!(err.contains("long.y4m") && err.contains("duration"), "{err}");

    // Bad requests.
    let err = match FrameReader::open(&good, &[f64::NAN], None) {
        Ok(_) => panic!("NaN accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("not a time"), "{err}");
    let req = AudioRequest { rate_hz: 16_000, start_s: 3.0, end_s: Some(2.0), max_duration_s: 60.0 };
    assert!(decode_audio(&good, &req).unwrap_err().to_string().contains("must be after its start"));
}

#[test]
fn probe_from_memory_matches_probe_from_file() {
    let path = clip("vp9_opus.webm", FORMATS[2].args);
    let from_file = probe(&path).unwrap();
    let from_bytes = probe_bytes(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(from_file, from_bytes);
    assert!(probe_bytes(b"").is_err());
    assert!(probe_bytes(&[0u8; 64]).is_err());
}

/// A 64x48 clip at 10 fps whose red and green channels encode the frame index (see `frame_index`), encoded
/// losslessly with a key frame every `gop` frames.
fn counting_clip(name: &str, seconds: u32, gop: u32, extra: &[&str]) -> PathBuf {
    let path = workdir().join(name);
    let src = format!("color=c=black:s=64x48:r=10:d={seconds},geq=r='mod(N\\,64)*4':g='mod(floor(N/64)\\,64)*4':b=0");
    let g = gop.to_string();
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        &src,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        &g,
        "-pix_fmt",
        "yuv444p",
        "-qp",
        "0",
    ];
    args.extend_from_slice(extra);
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
    path
}

/// The frame index a `counting_clip` frame shows (mod 4096).
fn frame_index(img: &image::RgbImage) -> u32 {
    let px = img.get_pixel(10, 10);
    (u32::from(px[0]) + 2) / 4 + 64 * ((u32::from(px[1]) + 2) / 4)
}

#[test]
fn seeking_in_mpeg_ts_lands_on_the_asked_frame() {
    // MPEG-TS seeks by byte position and can land mid-GOP, where the decoder skips to the next key frame.
    let path = counting_clip("gop10s.ts", 30, 100, &["-f", "mpegts"]);
    let times = [6.0, 15.0, 21.0, 25.3];
    let mut reader = FrameReader::open(&path, &times, None).unwrap();
    for &t in &times {
        let fr = reader.next_frame().unwrap().unwrap_or_else(|| panic!("no frame for {t}"));
        assert_eq!(frame_index(&fr.image), (t * 10.0).round() as u32 % 4096, "frame for {t} s (pts {})", fr.pts_s);
        assert!((fr.pts_s - t).abs() < 0.051, "pts {} for {t}", fr.pts_s);
    }
}

#[test]
fn rare_key_frames_are_not_decoded_again_for_every_time() {
    // One key frame in 300 s: seeking back to it for each of 30 times would decode ~45,000 frames.
    let path = counting_clip("onegop.mp4", 300, 100_000, &[]);
    let times: Vec<f64> = (0..30).map(|i| 5.0 + 10.0 * f64::from(i)).collect();
    let mut reader = FrameReader::open(&path, &times, None).unwrap();
    for &t in &times {
        let fr = reader.next_frame().unwrap().unwrap();
        assert_eq!(frame_index(&fr.image), (t * 10.0).round() as u32 % 4096);
    }
    assert!(reader.decoded_frames() < 6_000, "decoded {} frames for a 3,000-frame file", reader.decoded_frames());
}

#[test]
fn files_without_a_declared_duration_are_measured_and_decoded_to_the_end() {
    // A WebM written to a pipe (as browser recorders produce) declares no duration.
    let path = workdir().join("piped.webm");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ffmpeg -hide_banner -loglevel error -f lavfi -i color=c=red:s=64x48:r=10:d=3 -f lavfi -i sine=d=3 \
             -c:v libvpx -deadline realtime -c:a libopus -f webm - > {}",
            path.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info = probe(&path).unwrap();
    assert!((info.duration_s - 3.0).abs() < 0.05, "measured {} s", info.duration_s);
    assert_eq!(info.video.as_ref().unwrap().frames, 30);
    let track = decode_audio(&path, &AudioRequest::whole(16_000)).unwrap();
    assert!((track.duration_s() - 3.0).abs() < 0.03, "{} s of audio", track.duration_s());
    let frames: Vec<_> = FrameReader::open(&path, &[2.5], None).unwrap().collect::<Result<_, _>>().unwrap();
    assert!((frames[0].pts_s - 2.5).abs() < 1e-3);

    // A VBR MP3 without a Xing header, loud first and quiet after: its bitrate-based duration is wrong.
    let mp3 = workdir().join("noxing.mp3");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "aevalsrc=if(lt(t\\,5)\\,random(0)-0.5\\,0.001*sin(2*PI*440*t)):s=44100:d=10",
        "-c:a",
        "libmp3lame",
        "-q:a",
        "0",
        "-write_xing",
        "0",
        mp3.to_str().unwrap(),
    ]);
    let track = decode_audio(&mp3, &AudioRequest::whole(16_000)).unwrap();
    assert!((track.duration_s() - 10.0).abs() < 0.06, "decoded {} s of a 10 s MP3", track.duration_s());
}

#[test]
fn audio_windows_decode_like_the_whole_track() {
    // A window starting mid-file must not begin with garbage from a decoder started cold at the seek point.
    for (name, codec) in [("win.m4a", "aac"), ("win.opus", "libopus"), ("win.mp3", "libmp3lame")] {
        let path = workdir().join(name);
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=700:sample_rate=48000:duration=10",
            "-c:a",
            codec,
            path.to_str().unwrap(),
        ]);
        let whole = decode_audio(&path, &AudioRequest::whole(16_000)).unwrap();
        let req = AudioRequest { rate_hz: 16_000, start_s: 5.0, end_s: Some(7.0), max_duration_s: 60.0 };
        let window = decode_audio(&path, &req).unwrap();
        assert_eq!(window.samples.len(), 32_000);
        // Away from the window's edges (the resampler's filter sees silence beyond them: 25 ms each side), the
        // same samples; a decoder started cold at the seek point would differ by up to the tone's amplitude.
        let reference = &whole.samples[80_000..112_000];
        let inner = 400..32_000 - 400;
        let worst = window.samples[inner.clone()]
            .iter()
            .zip(&reference[inner])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{name}: window vs whole decode max difference {worst:.2e}");
        assert!(worst < 1e-4, "{name}: window differs from the whole decode by {worst}");
    }
}

#[test]
fn broken_audio_timelines_are_refused() {
    // Two MP3s of different rates joined byte by byte.
    let (a, b, joined) = (workdir().join("a44.mp3"), workdir().join("b22.mp3"), workdir().join("joined.mp3"));
    ffmpeg(&["-f", "lavfi", "-i", "sine=sample_rate=44100:d=1", a.to_str().unwrap()]);
    ffmpeg(&["-f", "lavfi", "-i", "sine=sample_rate=22050:d=1", b.to_str().unwrap()]);
    let mut bytes = std::fs::read(&a).unwrap();
    bytes.extend(std::fs::read(&b).unwrap());
    std::fs::write(&joined, bytes).unwrap();
    let err = decode_audio(&joined, &AudioRequest::whole(16_000)).unwrap_err().to_string();
    assert!(err.contains("joined.mp3") && err.contains("sample rate changes"), "{err}");

    // Timestamps that jump ten hours ahead one second in.
    let jump = workdir().join("jump.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=d=2",
        "-af",
        "asetpts=if(gte(T\\,1)\\,PTS+36000/TB\\,PTS)",
        "-c:a",
        "flac",
        jump.to_str().unwrap(),
    ]);
    let err = decode_audio(&jump, &AudioRequest { max_duration_s: 3600.0, ..AudioRequest::whole(16_000) })
        .unwrap_err()
        .to_string();
    assert!(err.contains("jump.mkv") && (err.contains("jump ahead") || err.contains("longer than the limit")), "{err}");
}

#[test]
fn playlists_and_other_indirections_are_not_opened() {
    // An HLS playlist named like a video would make FFmpeg read the file it points at.
    let target = clip("h264_aac.mp4", FORMATS[0].args);
    let upload = workdir().join("upload.mp4");
    std::fs::write(
        &upload,
        format!("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:6.0,\n{}\n#EXT-X-ENDLIST\n", target.display()),
    )
    .unwrap();
    let err = probe(&upload).unwrap_err().to_string();
    assert!(err.contains("upload.mp4") && err.contains("cannot open as media"), "{err}");
    let concat = workdir().join("list.txt");
    std::fs::write(&concat, format!("ffconcat version 1.0\nfile '{}'\n", target.display())).unwrap();
    assert!(probe(&concat).is_err());
}
