//! Media subcommands: `probe` (what a file holds), `devices` (which microphones, speakers, screens and
//! cameras this machine has, saying plainly what is absent) and `capture` (record the microphone to a
//! WAV file, or a screen / camera / test source to a folder of frames that `ask --video` takes).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
#[cfg(any(feature = "media", feature = "audio-io"))]
use std::time::{Duration, Instant};

#[cfg(feature = "media")]
use anyhow::Context;

/// `omnid probe`.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// Media files (video or audio, any container FFmpeg reads).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `omnid capture`.
#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// What to capture: `mic` (or `mic:DEVICE`), `screen:DISPLAY[+x,y,WxH]`, `camera:/dev/videoN[@WxH]`,
    /// or an FFmpeg test source `lavfi:GRAPH` (e.g. `lavfi:testsrc=size=320x240:rate=30`).
    pub source: String,
    /// Output: a WAV file for the microphone, a folder (frame_000.png, …, meta.json) for video.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
    /// How long to capture, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Video frames per second to keep.
    #[arg(long, default_value_t = 2.0)]
    pub fps: f64,
    /// Sample rate of the WAV file written from the microphone (the model's audio rate by default),
    /// 8000 to 192000 Hz.
    #[arg(long, default_value_t = 16_000, value_parser = clap::value_parser!(u32).range(8_000..=192_000))]
    pub rate: u32,
}

/// Longest capture the command accepts: it holds the capture in memory before writing it.
const MAX_CAPTURE_S: f64 = 3600.0;

pub fn probe(args: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for f in &args.files {
        match media_info(f) {
            Ok(info) => println!("{}", serde_json::json!({ "file": f.display().to_string(), "media": info })),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

#[cfg(feature = "media")]
fn media_info(path: &Path) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(omnid_codecs::av::probe::probe(path)?)?)
}

#[cfg(not(feature = "media"))]
fn media_info(path: &Path) -> anyhow::Result<serde_json::Value> {
    anyhow::bail!("{}: this build of omnid has no FFmpeg (built without the `media` feature)", path.display())
}

pub fn devices() -> anyhow::Result<ExitCode> {
    #[cfg(feature = "audio-io")]
    print!("{}", omnid_codecs::audio_io::discover());
    #[cfg(not(feature = "audio-io"))]
    println!("audio: this build of omnid has no audio device support (built without the `audio-io` feature)");
    video_devices();
    Ok(ExitCode::SUCCESS)
}

/// Screens and cameras: the X display named by $DISPLAY and the V4L2 device nodes.
fn video_devices() {
    match std::env::var("DISPLAY") {
        Ok(d) if !d.is_empty() => println!("screen: X display {d} (capture with `screen:{d}`)"),
        _ => println!("screen: absent (no X display: DISPLAY is not set)"),
    }
    let mut cameras: Vec<String> = std::fs::read_dir("/dev")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.path().display().to_string())
                .filter(|p| p.strip_prefix("/dev/video").is_some_and(|n| n.parse::<u32>().is_ok()))
                .collect()
        })
        .unwrap_or_default();
    cameras.sort();
    if cameras.is_empty() {
        println!("camera: absent (no /dev/video* device)");
    }
    for c in cameras {
        println!("camera: {c} (capture with `camera:{c}`)");
    }
}

pub fn capture(args: &CaptureArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= MAX_CAPTURE_S,
        "--seconds must be in (0, {MAX_CAPTURE_S}] (got {})",
        args.seconds
    );
    if args.source == "mic" || args.source.starts_with("mic:") {
        capture_mic(args)
    } else {
        capture_video(args)
    }
}

#[cfg(feature = "audio-io")]
fn capture_mic(args: &CaptureArgs) -> anyhow::Result<ExitCode> {
    use omnid_codecs::audio_io::{Microphone, StreamOptions};
    let mut options = StreamOptions::default();
    if let Some(name) = args.source.strip_prefix("mic:") {
        options = options.device(name);
    }
    let mut mic = Microphone::open(&options)?;
    let mut resampler = omnid_codecs::stream_resample::StreamResampler::new(mic.sample_rate_hz(), args.rate)?;
    let wanted = (args.seconds * f64::from(mic.sample_rate_hz())).round() as u64;
    let mut chunk = vec![0f32; 4096];
    let mut samples = Vec::new();
    let mut got = 0u64;
    // The device delivers in real time; give it the capture length plus slack before calling it stalled.
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds + 5.0);
    while got < wanted {
        if let Some(e) = mic.stream_error() {
            return Err(e.into());
        }
        anyhow::ensure!(Instant::now() < deadline, "{}: the microphone stopped delivering audio", mic.device());
        let room = (wanted - got).min(chunk.len() as u64) as usize;
        let n = mic.read_timeout(&mut chunk[..room], Duration::from_millis(100));
        resampler.push(&chunk[..n], &mut samples)?;
        got += n as u64;
    }
    resampler.finish(&mut samples)?;
    omnid_codecs::wav::write_wav_pcm16(&args.out, &samples, args.rate)?;
    eprintln!(
        "{}: {:.2} s at {} Hz from {} ({} Hz), {} samples dropped",
        args.out.display(),
        samples.len() as f64 / f64::from(args.rate),
        args.rate,
        mic.device(),
        mic.sample_rate_hz(),
        mic.dropped_samples()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "audio-io"))]
fn capture_mic(_args: &CaptureArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this build of omnid has no audio device support (built without the `audio-io` feature)")
}

#[cfg(feature = "media")]
fn capture_video(args: &CaptureArgs) -> anyhow::Result<ExitCode> {
    use omnid_codecs::av::live::{LiveCapture, LiveOptions, LiveRecvError, LiveSource};
    let source = LiveSource::parse(&args.source)?;
    let frames_wanted = ((args.seconds * args.fps).round() as u64).max(1);
    let options = LiveOptions { fps: args.fps, max_frames: Some(frames_wanted), ..LiveOptions::default() };
    let capture = LiveCapture::start(source, options)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("{}: cannot create the folder", args.out.display()))?;
    let mut stamps = Vec::new();
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds + 10.0);
    while (stamps.len() as u64) < frames_wanted {
        let left = deadline.saturating_duration_since(Instant::now());
        anyhow::ensure!(!left.is_zero(), "{}: the source stopped delivering frames", args.source);
        match capture.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(frame) => {
                let file = args.out.join(format!("frame_{:05}.png", stamps.len()));
                frame.image.save(&file).with_context(|| format!("{}: cannot write", file.display()))?;
                stamps.push(frame.t_s);
            }
            Err(LiveRecvError::Empty) => {}
            Err(LiveRecvError::Ended) => break,
            Err(LiveRecvError::Failed(e)) => return Err(e.into()),
        }
    }
    // The folder format `ask --video` reads: frames by name, their times and the sampling rate.
    let meta = serde_json::json!({
        "fps": args.fps,
        "source": args.source,
        "frames": stamps.iter().map(|t| serde_json::json!({ "timestamp": t })).collect::<Vec<_>>(),
    });
    std::fs::write(args.out.join("meta.json"), serde_json::to_string_pretty(&meta)?)?;
    eprintln!(
        "{}: {} frames from {} ({} dropped by a slow writer)",
        args.out.display(),
        stamps.len(),
        args.source,
        capture.dropped_frames()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "media"))]
fn capture_video(_args: &CaptureArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this build of omnid has no FFmpeg (built without the `media` feature)")
}
