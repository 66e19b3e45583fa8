//! Loading media named on the command line (or in a request) into [`MediaItem`]s:
//! images through the image crate (EXIF orientation, first frame, pixel budget), audio from
//! WAV resampled to 16 kHz mono with rubato, and video from a folder of frames until the
//! FFmpeg decoder lands (frames sorted by name, `meta.json` for the rate and timestamps,
//! `audio.wav` for the sound track). The decoded media of a request are [`MediaItem`]s.

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

/// Reads a WAV file as mono at `rate_hz` (the feature extractor's sampling rate, 16 kHz for
/// Qwen3-Omni).
pub fn load_audio(path: &Path, rate_hz: u32) -> Result<Vec<f32>, MediaError> {
    let wav = omnid_codecs::wav::read_wav(path)?;
    Ok(omnid_codecs::resample::resample(&wav.samples, wav.sample_rate_hz, rate_hz)?)
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
    /// Load `audio.wav` as the clip's sound track (audio-in-video), at this sampling rate.
    pub audio_rate_hz: Option<u32>,
}

/// Loads a video given as a folder of frames: samples frames with the processor's rule,
/// decodes only those, and resizes each to the processor's target size as it is decoded (so a
/// long 4K clip never sits in memory at full resolution). The token count is checked against
/// `max_tokens` from the first frame, before the rest are decoded. Video *files* need the
/// FFmpeg decoder of the media-ingest work.
pub fn load_video(path: &Path, req: &VideoRequest) -> Result<MediaItem, MediaError> {
    let bad = |problem: String| MediaError::Invalid { path: path.display().to_string(), problem };
    if !path.is_dir() {
        return Err(bad(if path.exists() {
            "video files are not decoded yet (the FFmpeg decoder is part of the media-ingest work); pass a folder of frames (frame_000.png, …, optional meta.json and audio.wav)".into()
        } else {
            "not found".into()
        }));
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
                let (th, tw) =
                    cfg.target_size(sample.indices.len(), h as usize, w as usize).map_err(|e| bad(e.to_string()))?;
                let p = cfg.pixels.patch_size * cfg.pixels.merge_size;
                let tokens = sample.indices.len().div_ceil(cfg.pixels.temporal_patch_size) * (th / p) * (tw / p);
                if let Some(max) = req.max_tokens {
                    if tokens > max {
                        return Err(bad(format!(
                            "{} frames of {w}x{h} would need {tokens} tokens, more than the model's context of {max}; sample fewer frames (--video-fps) or lower the budget (--video-max-pixels)",
                            sample.indices.len()
                        )));
                    }
                }
                let t = (w, h, tw as u32, th as u32);
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
