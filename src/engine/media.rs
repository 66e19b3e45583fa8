//! Loading media named on the command line (or in a request) into [`MediaItem`]s:
//! images through the image crate (EXIF orientation, first frame, pixel budget); audio from WAV
//! (read exactly as soundfile does) or any container FFmpeg decodes, resampled to 16 kHz mono with
//! rubato; video from a file through FFmpeg ([`super::video_file`]) or from a folder of frames
//! (frames sorted by name, `meta.json` for the rate and timestamps, `audio.wav` for the sound track).

use std::path::Path;

use image::RgbImage;

use crate::models::family::Family;
use crate::preprocess::{resize_rgb8, sample_frame_indices, FrameSamplingRule, VideoFrames, VideoProcessorConfig};

/// A decoded media item, in the order it appears in the conversation.
#[derive(Debug, Clone)]
pub enum MediaItem {
    Image(RgbImage),
    /// Mono samples at the feature extractor's rate (16 kHz).
    Audio(Vec<f32>),
    Video(VideoClip),
}

/// Sampled video frames and, optionally, the clip's audio track (16 kHz mono).
#[derive(Debug, Clone)]
pub struct VideoClip {
    pub frames: VideoFrames,
    /// The sampling rate asked for (the processor's `fps`): Qwen3-Omni's seconds per temporal
    /// grid are `temporal_patch_size / fps`, as in transformers.
    pub fps: f64,
    pub audio: Option<Vec<f32>>,
}

/// Why a media file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Codec(#[from] omnid_codecs::CodecError),
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
    #[error(transparent)]
    Preprocess(#[from] crate::preprocess::PreprocessError),
}

/// Decodes an image file.
pub fn load_image(path: &Path, max_pixels: u64) -> Result<MediaItem, MediaError> {
    Ok(MediaItem::Image(omnid_codecs::image_decode::decode_image_file(path, max_pixels)?))
}

/// Reads an audio file as mono at `rate_hz` (the feature extractor's sampling rate, 16 kHz for
/// Qwen3-Omni). WAV files are read by the WAV reader, sample-exact with the reference pipeline's
/// soundfile; everything else (MP3, AAC/M4A, Opus, Vorbis, FLAC, the sound of a video file) through
/// FFmpeg.
pub fn load_audio(path: &Path, rate_hz: u32) -> Result<Vec<f32>, MediaError> {
    if is_wav(path) {
        let wav = omnid_codecs::wav::read_wav(path)?;
        return Ok(omnid_codecs::resample::resample(&wav.samples, wav.sample_rate_hz, rate_hz)?);
    }
    super::video_file::load_audio_track(path, rate_hz, 0.0, None)
}

/// Whether the file starts like a RIFF/WAVE file (the content decides, not the extension).
fn is_wav(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 12];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok()
        && &head[..4] == b"RIFF"
        && &head[8..12] == b"WAVE"
}

/// Frame-folder metadata: `{"fps": 30, "frames": [{"timestamp": 0.0}, …]}` (`native_fps` and
/// `timestamp_s` are accepted too);
/// both fields optional (fps defaults to 2, timestamps to `index / fps`).
#[derive(Debug, Default, serde::Deserialize)]
struct FolderMeta {
    #[serde(default, alias = "native_fps")]
    fps: Option<f64>,
    #[serde(default)]
    frames: Vec<FrameMeta>,
}

#[derive(Debug, serde::Deserialize)]
struct FrameMeta {
    #[serde(default, alias = "timestamp_s")]
    timestamp: Option<f64>,
}

/// The frame-sampling rule of the reference processor of a model family.
pub fn frame_rule(family: Family) -> FrameSamplingRule {
    match family {
        Family::Qwen3Omni => FrameSamplingRule::Qwen2VlProcessor,
        Family::Qwen3Vl | Family::Qwen3VlMoe => FrameSamplingRule::Qwen3Vl,
    }
}

/// How a video is to be loaded.
#[derive(Debug, Clone)]
pub struct VideoRequest<'a> {
    /// Sampling rate asked for (frames per second).
    pub fps: f64,
    /// Frame-sampling rule of the model family.
    pub rule: FrameSamplingRule,
    /// The model's video processor (frame limits, pixel budget, resampling filter).
    pub processor: &'a VideoProcessorConfig,
    /// Refuse the video before decoding it all when it would need more tokens than this.
    pub max_tokens: Option<usize>,
    /// Load the clip's sound track (audio-in-video), at this sampling rate: the file's audio stream,
    /// or `audio.wav` in a frame folder.
    pub audio_rate_hz: Option<u32>,
    /// Part of a video file to use, in seconds on the file's clock: start, and end (exclusive; `None` =
    /// to the end). Long recordings are processed window by window.
    pub window: (f64, Option<f64>),
}

/// Loads a video file (through FFmpeg) or a folder of frames: samples frames with the
/// processor's rule, decodes only those, and resizes each to the processor's target size as it is
/// decoded (so a long 4K clip never sits in memory at full resolution). The token count is
/// checked against `max_tokens` before the frames are decoded.
pub fn load_video(path: &Path, req: &VideoRequest) -> Result<MediaItem, MediaError> {
    let bad = |problem: String| MediaError::Invalid { path: path.display().to_string(), problem };
    if path.is_file() {
        return super::video_file::load_video_file(path, req);
    }
    if !path.is_dir() {
        return Err(bad("not found".into()));
    }
    if req.window != (0.0, None) {
        return Err(bad("a time window applies to video files, not to folders of frames".into()));
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| bad(format!("cannot list: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg" | "webp" | "bmp"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(bad("no frame images (png/jpg/webp/bmp) in the folder".into()));
    }
    let meta_path = path.join("meta.json");
    let meta: FolderMeta = if meta_path.exists() {
        let text = std::fs::read_to_string(&meta_path).map_err(|e| bad(format!("meta.json: {e}")))?;
        serde_json::from_str(&text).map_err(|e| bad(format!("meta.json: {e}")))?
    } else {
        FolderMeta::default()
    };
    let native_fps = meta.fps.unwrap_or(2.0);
    if !(native_fps.is_finite() && native_fps > 0.0) {
        return Err(bad(format!("meta.json: fps must be > 0 (got {native_fps})")));
    }
    let cfg = req.processor;
    let sample = sample_frame_indices(req.rule, files.len(), native_fps, req.fps, cfg.min_frames, cfg.max_frames)
        .map_err(|e| bad(e.to_string()))?;
    let max_pixels = cfg.max_input_pixels;
    let mut frames = VideoFrames::default();
    let mut target: Option<(u32, u32, u32, u32)> = None; // source w, h → target w, h
    for &i in &sample.indices {
        let file = &files[i];
        let img = omnid_codecs::image_decode::decode_image_file(file, max_pixels)?;
        let (w, h) = img.dimensions();
        let (sw, sh, tw, th) = match target {
            Some(t) => t,
            None => {
                let (tw, th) = video_target_size(path, req, sample.indices.len(), w, h)?;
                let t = (w, h, tw, th);
                target = Some(t);
                t
            }
        };
        if (w, h) != (sw, sh) {
            return Err(MediaError::Invalid {
                path: file.display().to_string(),
                problem: format!("frame is {w}x{h}, the video's first frame {sw}x{sh}"),
            });
        }
        let img = if (tw, th) == (w, h) { img } else { resize_rgb8(&img, tw, th, cfg.pixels.resample)? };
        frames.frames.push(img);
        let ts = meta.frames.get(i).and_then(|f| f.timestamp).unwrap_or(i as f64 / native_fps);
        frames.timestamps_s.push(ts);
    }
    let audio_path = path.join("audio.wav");
    let audio = if let Some(rate) = req.audio_rate_hz {
        if !audio_path.exists() {
            return Err(bad("audio-in-video was asked for but the folder has no audio.wav".into()));
        }
        Some(load_audio(&audio_path, rate)?)
    } else {
        None
    };
    Ok(MediaItem::Video(VideoClip { frames, fps: req.fps, audio }))
}

/// The processor's target frame size for `frames` frames of `w`x`h`, refused when the clip would need
/// more tokens than `req.max_tokens` (checked before any frame is decoded).
pub(crate) fn video_target_size(
    path: &Path,
    req: &VideoRequest,
    frames: usize,
    w: u32,
    h: u32,
) -> Result<(u32, u32), MediaError> {
    let bad = |problem: String| MediaError::Invalid { path: path.display().to_string(), problem };
    let cfg = req.processor;
    let (th, tw) = cfg.target_size(frames, h as usize, w as usize).map_err(|e| bad(e.to_string()))?;
    let p = cfg.pixels.patch_size * cfg.pixels.merge_size;
    let tokens = frames.div_ceil(cfg.pixels.temporal_patch_size) * (th / p) * (tw / p);
    if let Some(max) = req.max_tokens {
        if tokens > max {
            return Err(bad(format!(
                "{frames} frames of {w}x{h} would need {tokens} tokens, more than the model's context of {max}; sample fewer frames (--video-fps), lower the budget (--video-max-pixels) or take a shorter window"
            )));
        }
    }
    Ok((tw as u32, th as u32))
}
