//! Video and audio files through FFmpeg (the codecs crate's `av` module): the processor's frame
//! sampling rule applied to the file's frame count and rate (or to a time window of it), only the
//! sampled frames converted to RGB and resized to the processor's size as they are decoded, and the
//! sound track cut to the same window for audio-in-video.
//!
//! Builds without the `media` feature (the CUDA binary for machines without Debian's FFmpeg) refuse
//! video and non-WAV audio files with an error that says so.

use std::path::Path;

use super::media::{MediaError, MediaItem, VideoRequest};

#[cfg(feature = "media")]
pub use with_ffmpeg::{load_audio_track, load_video_file};
#[cfg(not(feature = "media"))]
pub use without_ffmpeg::{load_audio_track, load_video_file};

#[cfg(feature = "media")]
mod with_ffmpeg {
    use super::*;
    use crate::engine::media::{video_target_size, VideoClip};
    use crate::preprocess::{resize_rgb8, sample_frame_indices, VideoFrames};
    use omnid_codecs::av::audio::{decode_audio, AudioRequest};
    use omnid_codecs::av::probe::probe;
    use omnid_codecs::av::video::FrameReader;

    /// Decodes the sampled frames of a video file (see the module docs).
    pub fn load_video_file(path: &Path, req: &VideoRequest) -> Result<MediaItem, MediaError> {
        let name = path.display().to_string();
        let bad = |problem: String| MediaError::Invalid { path: name.clone(), problem };
        let info = probe(path)?;
        let video = info.require_video(&name)?;
        let (start, end) = window(&name, req.window, video.duration_s.max(info.duration_s))?;
        let whole = start == 0.0 && req.window.1.is_none();
        let total = if whole && video.frames > 0 {
            video.frames as usize
        } else {
            (((end - start) * video.fps).round() as usize).max(1)
        };
        let cfg = req.processor;
        let sample = sample_frame_indices(req.rule, total, video.fps, req.fps, cfg.min_frames, cfg.max_frames)
            .map_err(|e| bad(e.to_string()))?;
        let times: Vec<f64> = sample.indices.iter().map(|&i| start + i as f64 / video.fps).collect();
        let (tw, th) = video_target_size(path, req, times.len(), video.width, video.height)?;

        let mut frames = VideoFrames::default();
        for frame in FrameReader::open(path, &times, None)? {
            let frame = frame?;
            let img = if frame.image.dimensions() == (tw, th) {
                frame.image
            } else {
                resize_rgb8(&frame.image, tw, th, cfg.pixels.resample)?
            };
            frames.frames.push(img);
            frames.timestamps_s.push(frame.pts_s);
        }
        let audio = match req.audio_rate_hz {
            None => None,
            // A video without sound: the processor reports audio-in-video without a track, naming the file.
            Some(_) if info.audio.is_none() => None,
            Some(rate) => Some(load_audio_track(path, rate, start, Some(end))?),
        };
        Ok(MediaItem::Video(VideoClip { frames, fps: req.fps, audio }))
    }

    /// Longest audio one request decodes: an hour is 230 MB of 16 kHz `f32` and 90,000 audio tokens,
    /// beyond any model's context; longer recordings go through windows (`--video-start`/`--video-end`,
    /// video jobs). Longer tracks are refused before decoding when their length is declared, and as soon
    /// as the hour is passed when it is not.
    pub const MAX_AUDIO_S: f64 = 3600.0;

    /// Decodes the audio of `path` from `start_s` to `end_s` (or the end) as mono at `rate_hz`.
    pub fn load_audio_track(
        path: &Path,
        rate_hz: u32,
        start_s: f64,
        end_s: Option<f64>,
    ) -> Result<Vec<f32>, MediaError> {
        let req = AudioRequest { rate_hz, start_s, end_s, max_duration_s: MAX_AUDIO_S };
        Ok(decode_audio(path, &req)?.samples)
    }

    /// Checks a requested window against the media's duration; returns (start, end) in seconds.
    fn window(name: &str, (start, end): (f64, Option<f64>), duration: f64) -> Result<(f64, f64), MediaError> {
        let bad = |problem: String| MediaError::Invalid { path: name.to_owned(), problem };
        if !(start.is_finite() && start >= 0.0) {
            return Err(bad(format!("window start {start} s must be a time >= 0")));
        }
        if start >= duration {
            return Err(bad(format!("window starts at {start:.3} s but the video is {duration:.3} s long")));
        }
        let end = match end {
            None => duration,
            Some(e) if e.is_finite() && e > start => e.min(duration),
            Some(e) => return Err(bad(format!("window end {e} s must come after its start {start} s"))),
        };
        Ok((start, end))
    }
}

#[cfg(not(feature = "media"))]
mod without_ffmpeg {
    use super::*;

    const NO_FFMPEG: &str = "this build of omnid has no FFmpeg (built without the `media` feature); \
                             pass WAV audio, or video as a folder of frames";

    /// Video files need FFmpeg.
    pub fn load_video_file(path: &Path, _req: &VideoRequest) -> Result<MediaItem, MediaError> {
        Err(MediaError::Invalid { path: path.display().to_string(), problem: NO_FFMPEG.into() })
    }

    /// Non-WAV audio needs FFmpeg.
    pub fn load_audio_track(path: &Path, _rate: u32, _start: f64, _end: Option<f64>) -> Result<Vec<f32>, MediaError> {
        Err(MediaError::Invalid { path: path.display().to_string(), problem: NO_FFMPEG.into() })
    }
}
