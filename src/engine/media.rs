//! Loading media named on the command line (or in a request) into [`MediaItem`]s:
//! images through the image crate (EXIF orientation, first frame, pixel budget), audio from
//! WAV resampled to 16 kHz mono with rubato, and video from a folder of frames until the
//! FFmpeg decoder lands (frames sorted by name, `meta.json` for the rate and timestamps,
//! `audio.wav` for the sound track).

use std::path::Path;

use super::processor::{MediaItem, VideoClip};
use crate::preprocess::{sample_frame_indices, FrameSamplingRule, VideoFrames};

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

/// Target sample rate of the audio front end.
pub const AUDIO_RATE_HZ: u32 = 16_000;

/// Decodes an image file.
pub fn load_image(path: &Path, max_pixels: u64) -> Result<MediaItem, MediaError> {
    Ok(MediaItem::Image(omnid_codecs::image_decode::decode_image_file(path, max_pixels)?))
}

/// Reads a WAV file as 16 kHz mono.
pub fn load_audio(path: &Path) -> Result<Vec<f32>, MediaError> {
    let wav = omnid_codecs::wav::read_wav(path)?;
    Ok(omnid_codecs::resample::resample(&wav.samples, wav.sample_rate_hz, AUDIO_RATE_HZ)?)
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

/// Loads a video given as a folder of frames and samples it at `target_fps` with the rule
/// of the model family, keeping `limits = (min, max)` frames. Video *files* need the FFmpeg decoder of the media-ingest work.
pub fn load_video(
    path: &Path,
    target_fps: f64,
    rule: FrameSamplingRule,
    limits: (usize, usize),
    max_pixels: u64,
) -> Result<MediaItem, MediaError> {
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
    let sample = sample_frame_indices(rule, files.len(), native_fps, target_fps, limits.0, limits.1)?;
    let mut frames = VideoFrames::default();
    for &i in &sample.indices {
        frames.frames.push(omnid_codecs::image_decode::decode_image_file(&files[i], max_pixels)?);
        let ts = meta.frames.get(i).and_then(|f| f.timestamp).unwrap_or(i as f64 / native_fps);
        frames.timestamps_s.push(ts);
    }
    let audio_path = path.join("audio.wav");
    let audio = if audio_path.exists() { Some(load_audio(&audio_path)?) } else { None };
    Ok(MediaItem::Video(VideoClip { frames, sample_fps: sample.sample_fps, audio }))
}
