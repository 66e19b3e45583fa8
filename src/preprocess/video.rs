//! The video pipeline on already-decoded, already-sampled frames (spec §5.2, §6.5): pick one frame size,
//! resize every frame, rescale + normalise, repeat the last frame to a whole number of temporal patches, and
//! patchify with rows `(t, block_row, block_col, in_row, in_col)` and values `(c, frame_in_pair, y, x)`.
//!
//! Two sizing rules, after the two transformers video processors:
//! * [`VideoProcessorKind::Qwen2Vl`] (`Qwen2VLVideoProcessor`, used by Qwen3-Omni): 2-D smart_resize of one
//!   frame against a per-frame budget;
//! * [`VideoProcessorKind::Qwen3Vl`] (`Qwen3VLVideoProcessor`): 3-D smart_resize against a budget for the
//!   whole clip (frames rounded to a multiple of `temporal_patch_size`).
//!
//! Rescale + normalise follow the torch back end those processors use (see [`PixelRounding::TorchFused`]).
//! Frames are resized with the Pillow-exact filter; transformers' torchvision resize (antialiased bicubic on
//! tensors) is not reproduced bit for bit and may differ by a few `u8` steps.

use image::RgbImage;

use super::image::{check_input_size, DEFAULT_MAX_INPUT_PIXELS};
use super::patchify::{patchify, PatchLayout, PixelRounding};
use super::pil_resize::resize_rgb8;
use super::processor_config::{
    invalid, parse_raw, ClassDefaults, PixelPipeline, IMAGENET_STANDARD, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD,
};
use super::smart_resize::{smart_resize, smart_resize_video};
use super::{PreprocessError, Result};

/// Pixel budget the Qwen3-Omni *processor* passes to its video processor on every call
/// (`Qwen3OmniMoeProcessor.videos_kwargs["size"]` in transformers 5.23: 128·32·32 to 768·32·32 per frame).
/// Call kwargs beat the video processor's own config, so this is what Qwen3-Omni effectively uses.
pub const OMNI_PROCESSOR_VIDEO_PIXELS: (u64, u64) = (128 * 32 * 32, 768 * 32 * 32);

/// Which transformers video processor to mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoProcessorKind {
    /// `Qwen2VLVideoProcessor` (Qwen3-Omni): per-frame 2-D smart_resize.
    Qwen2Vl,
    /// `Qwen3VLVideoProcessor` (Qwen3-VL): 3-D smart_resize against a whole-clip budget.
    Qwen3Vl,
}

impl VideoProcessorKind {
    /// Maps a `video_processor_type` value (with or without the `Fast` suffix) to a kind.
    pub fn from_type_name(name: &str) -> Option<Self> {
        match name.trim_end_matches("Fast") {
            "Qwen2VLVideoProcessor" => Some(Self::Qwen2Vl),
            "Qwen3VLVideoProcessor" => Some(Self::Qwen3Vl),
            _ => None,
        }
    }

    fn defaults(self) -> ClassDefaults {
        match self {
            Self::Qwen2Vl => ClassDefaults {
                min_pixels: 128 * 28 * 28,
                max_pixels: 28 * 28 * 768,
                patch_size: 14,
                temporal_patch_size: 2,
                merge_size: 2,
                mean: OPENAI_CLIP_MEAN,
                std: OPENAI_CLIP_STD,
            },
            Self::Qwen3Vl => ClassDefaults {
                min_pixels: 128 * 32 * 32,
                max_pixels: 32 * 32 * 768,
                patch_size: 16,
                temporal_patch_size: 2,
                merge_size: 2,
                mean: IMAGENET_STANDARD,
                std: IMAGENET_STANDARD,
            },
        }
    }
}

/// Video processor settings, resolved from `video_preprocessor_config.json` (or `preprocessor_config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoProcessorConfig {
    /// Which processor's sizing rule applies.
    pub kind: VideoProcessorKind,
    /// Budget (per frame or per clip, by `kind`), patch geometry, normalisation, filter.
    pub pixels: PixelPipeline,
    /// Target sampling rate for [`super::frame_sampling`] (`fps`; Qwen3-VL default 2).
    pub fps: Option<f64>,
    /// Fewest frames to sample.
    pub min_frames: usize,
    /// Most frames to sample.
    pub max_frames: usize,
    /// Whether the processor samples frames itself (Qwen3-VL) or expects pre-sampled frames (Qwen2-VL).
    pub do_sample_frames: bool,
    /// qwen-vl-utils' per-frame pixel cap (`cap_pixels_per_frame`; transformers defaults to off).
    pub cap_pixels_per_frame: bool,
    /// Per-frame token ceiling used by the cap (`max_video_tokens`, 768).
    pub max_video_tokens: usize,
    /// Hard limit on one frame's input area, checked before any work (not an HF key).
    pub max_input_pixels: u64,
}

impl VideoProcessorConfig {
    /// Parses a video processor config. The kind comes from `video_processor_type` when present, else
    /// `default_kind` (Qwen3-Omni ships no video config; pass [`VideoProcessorKind::Qwen2Vl`] for it).
    pub fn from_json_str(json: &str, default_kind: VideoProcessorKind) -> Result<Self> {
        Self::parse(json, default_kind, "video processor config")
    }

    fn parse(json: &str, default_kind: VideoProcessorKind, source_name: &str) -> Result<Self> {
        let raw = parse_raw(json, source_name)?;
        let kind = match &raw.video_processor_type {
            None => default_kind,
            Some(name) => VideoProcessorKind::from_type_name(name)
                .ok_or_else(|| invalid(source_name, format!("unknown video_processor_type {name:?}")))?,
        };
        let c = raw.resolve(&kind.defaults(), source_name)?;
        let (fps, sample_default) = match kind {
            VideoProcessorKind::Qwen2Vl => (raw.fps, false),
            VideoProcessorKind::Qwen3Vl => (Some(raw.fps.unwrap_or(2.0)), true),
        };
        Ok(Self {
            kind,
            pixels: c,
            fps,
            min_frames: raw.min_frames.unwrap_or(4),
            max_frames: raw.max_frames.unwrap_or(768),
            do_sample_frames: raw.do_sample_frames.unwrap_or(sample_default),
            cap_pixels_per_frame: raw.cap_pixels_per_frame.unwrap_or(false),
            max_video_tokens: raw.max_video_tokens.unwrap_or(768),
            max_input_pixels: DEFAULT_MAX_INPUT_PIXELS,
        })
    }

    /// Replaces the pixel budget with the one the Qwen3-Omni processor passes ([`OMNI_PROCESSOR_VIDEO_PIXELS`]).
    pub fn with_omni_processor_budget(mut self) -> Self {
        (self.pixels.min_pixels, self.pixels.max_pixels) = OMNI_PROCESSOR_VIDEO_PIXELS;
        self
    }

    /// `patch_size · merge_size`.
    pub fn factor(&self) -> usize {
        self.pixels.patch_size * self.pixels.merge_size
    }

    /// The per-frame `(height, width)` a clip of `num_frames` frames of `height × width` is resized to.
    pub fn target_size(&self, num_frames: usize, height: usize, width: usize) -> Result<(usize, usize)> {
        if !self.pixels.do_resize {
            return Ok((height, width));
        }
        let f = self.factor();
        match self.kind {
            VideoProcessorKind::Qwen2Vl => {
                let mut max_pixels = self.pixels.max_pixels;
                if self.cap_pixels_per_frame && num_frames > 0 {
                    // Qwen2VLVideoProcessor.resize: the budget's even share of 90% of max_video_tokens patches.
                    let total = (self.max_video_tokens as f64 * (f * f) as f64 * 0.9) as u64;
                    let share = total * self.pixels.temporal_patch_size as u64 / num_frames as u64;
                    max_pixels = max_pixels.min(share).max((self.pixels.min_pixels as f64 * 1.05) as u64);
                }
                smart_resize(height, width, f, self.pixels.min_pixels, max_pixels)
            }
            VideoProcessorKind::Qwen3Vl => {
                let mut max_pixels = self.pixels.max_pixels;
                if self.cap_pixels_per_frame && num_frames > 0 {
                    // Qwen3VLVideoProcessor.resize: per-frame cap of max_video_tokens patches or an even share.
                    let frame_cap = (self.max_video_tokens * f * f) as u64;
                    let per_frame = frame_cap
                        .min(self.pixels.max_pixels / num_frames as u64)
                        .max((self.pixels.min_pixels as f64 * 1.05) as u64);
                    max_pixels = per_frame * num_frames as u64;
                }
                smart_resize_video(
                    num_frames,
                    height,
                    width,
                    self.pixels.temporal_patch_size,
                    f,
                    self.pixels.min_pixels,
                    max_pixels,
                )
            }
        }
    }
}

/// Decoded frames of one video, already sampled, with their presentation times.
#[derive(Debug, Clone, Default)]
pub struct VideoFrames {
    /// The frames, all the same size.
    pub frames: Vec<RgbImage>,
    /// Presentation time of each frame in seconds (`frame_index / native_fps` for constant-rate video).
    pub timestamps_s: Vec<f64>,
}

/// One video ready for the vision encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchifiedVideo {
    /// Row-major `[n_patches, 3 · temporal_patch_size · patch_size²]`.
    pub pixel_values: Vec<f32>,
    /// `[grid_t, grid_h, grid_w]` (`video_grid_thw`).
    pub grid_thw: [usize; 3],
    /// Values per row.
    pub row_len: usize,
    /// Time of each temporal grid in seconds: the mean of its first and last frame's timestamps (after
    /// repeating the last frame). Qwen3-VL prints these as `<{t:.1f} seconds>` before each grid.
    pub grid_timestamps_s: Vec<f64>,
    /// Seconds covered by one temporal grid, `temporal_patch_size / fps` with the sampling rate the
    /// processor was asked for (Qwen3-Omni TMRoPE's `video_second_per_grid`; transformers uses the
    /// requested `fps`, not the effective rate after clamping the frame count).
    pub second_per_grid: f64,
    /// Number of `<|video_pad|>` tokens: `t · h · w / merge_size²`.
    pub n_tokens: usize,
}

/// Runs the video pipeline on sampled frames. `sample_fps` is the sampling rate the processor was
/// asked for (transformers' `fps` kwarg), which sets [`PatchifiedVideo::second_per_grid`].
pub fn preprocess_video(video: &VideoFrames, sample_fps: f64, cfg: &VideoProcessorConfig) -> Result<PatchifiedVideo> {
    let n = video.frames.len();
    if n == 0 {
        return Err(PreprocessError::TooFewFrames { frames: 0, needed: 1, detail: "empty video".to_owned() });
    }
    if video.timestamps_s.len() != n {
        return Err(PreprocessError::TimestampCount { frames: n, timestamps: video.timestamps_s.len() });
    }
    if !(sample_fps.is_finite() && sample_fps > 0.0) {
        return Err(PreprocessError::FrameSampling {
            total_frames: n,
            detail: format!("sample fps must be > 0, got {sample_fps}"),
        });
    }
    let (w, h) = video.frames[0].dimensions();
    for (i, f) in video.frames.iter().enumerate() {
        check_input_size(&format!("video frame {i}"), f.width(), f.height(), cfg.max_input_pixels)?;
        if f.dimensions() != (w, h) {
            return Err(PreprocessError::FrameSizeMismatch {
                index: i,
                width: f.width(),
                height: f.height(),
                first_width: w,
                first_height: h,
            });
        }
    }
    let (th, tw) = cfg.target_size(n, h as usize, w as usize)?;
    let factor = cfg.factor();
    if th % factor != 0 || tw % factor != 0 {
        return Err(PreprocessError::NotPatchAligned { height: th, width: tw, factor });
    }
    let norm = cfg.pixels.normalization(PixelRounding::TorchFused);
    let planes = video
        .frames
        .iter()
        .map(|f| {
            if (th, tw) == (h as usize, w as usize) {
                Ok(norm.to_planes(f))
            } else {
                Ok(norm.to_planes(&resize_rgb8(f, tw as u32, th as u32, cfg.pixels.resample)?))
            }
        })
        .collect::<Result<Vec<_>>>()?;

    // Repeat the last frame (and its timestamp) up to a multiple of temporal_patch_size.
    let tp = cfg.pixels.temporal_patch_size;
    let padded = n.div_ceil(tp) * tp;
    let frames: Vec<&[f32]> = (0..padded).map(|i| planes[i.min(n - 1)].as_slice()).collect();
    let stamps: Vec<f64> = (0..padded).map(|i| video.timestamps_s[i.min(n - 1)]).collect();

    let layout =
        PatchLayout { patch_size: cfg.pixels.patch_size, merge_size: cfg.pixels.merge_size, temporal_patch_size: tp };
    let (pixel_values, grid_thw) = patchify(&frames, th, tw, layout);
    let grid_timestamps_s = stamps.chunks_exact(tp).map(|g| (g[0] + g[tp - 1]) / 2.0).collect();
    Ok(PatchifiedVideo {
        pixel_values,
        grid_thw,
        row_len: layout.row_len(),
        grid_timestamps_s,
        second_per_grid: tp as f64 / sample_fps,
        n_tokens: grid_thw.iter().product::<usize>() / (cfg.pixels.merge_size * cfg.pixels.merge_size),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(n: usize, w: u32, h: u32) -> VideoFrames {
        VideoFrames {
            frames: (0..n).map(|i| RgbImage::from_pixel(w, h, image::Rgb([i as u8 * 40, 0, 0]))).collect(),
            timestamps_s: (0..n).map(|i| i as f64 * 0.5).collect(),
        }
    }

    #[test]
    fn odd_frame_count_repeats_the_last_frame() {
        let cfg = VideoProcessorConfig::from_json_str(
            r#"{"patch_size": 16, "size": {"shortest_edge": 1024, "longest_edge": 1000000}}"#,
            VideoProcessorKind::Qwen2Vl,
        )
        .unwrap();
        let v = preprocess_video(&clip(3, 64, 32), 2.0, &cfg).unwrap();
        assert_eq!(v.grid_thw, [2, 2, 4]);
        assert_eq!(v.n_tokens, 4);
        assert_eq!(v.grid_timestamps_s, vec![0.25, 1.0]);
        assert_eq!(v.second_per_grid, 1.0);
        // Row 8 is the first patch of grid 1: both of its frames are frame 2 (red = 80).
        let row = &v.pixel_values[8 * v.row_len..9 * v.row_len];
        let half = v.row_len / 6; // one (c, t) block of 16x16
        assert_eq!(row[0], row[half], "frame 2 repeated");
        let expected = (80.0f32 - 0.48145466f32 * 255.0) / (0.26862954f32 * 255.0);
        assert_eq!(row[0], expected);
    }

    #[test]
    fn mismatched_frames_and_timestamps_are_errors() {
        let cfg = VideoProcessorConfig::from_json_str("{}", VideoProcessorKind::Qwen3Vl).unwrap();
        let mut v = clip(4, 64, 64);
        v.frames[2] = RgbImage::new(32, 64);
        let err = preprocess_video(&v, 2.0, &cfg).unwrap_err();
        assert!(matches!(err, PreprocessError::FrameSizeMismatch { index: 2, .. }), "{err:?}");
        let mut v = clip(4, 64, 64);
        v.timestamps_s.pop();
        assert!(matches!(preprocess_video(&v, 2.0, &cfg), Err(PreprocessError::TimestampCount { .. })));
        assert!(preprocess_video(&clip(4, 64, 64), 0.0, &cfg).is_err());
    }

    #[test]
    fn kind_from_config_and_omni_budget() {
        let cfg = VideoProcessorConfig::from_json_str(
            r#"{"video_processor_type": "Qwen3VLVideoProcessor"}"#,
            VideoProcessorKind::Qwen2Vl,
        )
        .unwrap();
        assert_eq!(cfg.kind, VideoProcessorKind::Qwen3Vl);
        assert_eq!((cfg.pixels.patch_size, cfg.fps, cfg.do_sample_frames), (16, Some(2.0), true));
        let omni = VideoProcessorConfig::from_json_str(r#"{"patch_size": 16}"#, VideoProcessorKind::Qwen2Vl)
            .unwrap()
            .with_omni_processor_budget();
        assert_eq!((omni.pixels.min_pixels, omni.pixels.max_pixels), (131072, 786432));
        // 640x360 per frame under the Omni budget -> 352x640 (spec §5.2 example grid 22x40).
        assert_eq!(omni.target_size(20, 360, 640).unwrap(), (352, 640));
        assert!(VideoProcessorConfig::from_json_str(r#"{"video_processor_type": "Foo"}"#, VideoProcessorKind::Qwen2Vl)
            .is_err());
    }
}
