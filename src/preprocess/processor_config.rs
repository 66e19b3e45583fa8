//! The vision-processor keys shared by `preprocessor_config.json` (images) and `video_preprocessor_config.json`
//! (videos), parsed leniently (every key optional, unknown keys ignored) and resolved the way transformers'
//! `Qwen2VLImageProcessor` / video processors resolve them:
//!
//! * the pixel budget comes from `size.shortest_edge` / `size.longest_edge`, but top-level `min_pixels` /
//!   `max_pixels` (the older Qwen2-VL / Qwen3-Omni spelling) override them key by key;
//! * when `size` is absent altogether, the class default `size` is used before those overrides;
//! * `image_mean` / `image_std` may be one number (used for every channel) or one per channel.

use serde::Deserialize;

use super::patchify::{PixelNormalization, PixelRounding};
use super::pil_resize::ResampleFilter;
use super::{PreprocessError, Result};

/// CLIP statistics: the default `image_mean` / `image_std` of `Qwen2VLImageProcessor` and
/// `Qwen2VLVideoProcessor` (`OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`).
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// See [`OPENAI_CLIP_MEAN`].
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];
/// `IMAGENET_STANDARD_MEAN` / `_STD` (0.5): the defaults of `Qwen3VLVideoProcessor`.
pub const IMAGENET_STANDARD: [f64; 3] = [0.5, 0.5, 0.5];

/// `size` as written in processor configs.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RawSize {
    pub shortest_edge: Option<u64>,
    pub longest_edge: Option<u64>,
}

/// A mean or std: one value for all channels, or one per channel.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawStats {
    One(f64),
    PerChannel(Vec<f64>),
}

/// Every key either processor may read; all optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RawVisionConfig {
    pub size: Option<RawSize>,
    pub min_pixels: Option<u64>,
    pub max_pixels: Option<u64>,
    pub patch_size: Option<usize>,
    pub temporal_patch_size: Option<usize>,
    pub merge_size: Option<usize>,
    pub image_mean: Option<RawStats>,
    pub image_std: Option<RawStats>,
    pub do_resize: Option<bool>,
    pub do_rescale: Option<bool>,
    pub rescale_factor: Option<f64>,
    pub do_normalize: Option<bool>,
    pub do_convert_rgb: Option<bool>,
    pub resample: Option<u32>,
    // Video-only keys.
    pub video_processor_type: Option<String>,
    pub fps: Option<f64>,
    pub min_frames: Option<usize>,
    pub max_frames: Option<usize>,
    pub do_sample_frames: Option<bool>,
    pub cap_pixels_per_frame: Option<bool>,
    pub max_video_tokens: Option<usize>,
}

/// Class-level defaults of the transformers processor being mirrored.
pub(crate) struct ClassDefaults {
    pub min_pixels: u64,
    pub max_pixels: u64,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub merge_size: usize,
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

/// The pixel pipeline shared by the image and video processors, resolved from a config:
/// budget, patch geometry, rescale/normalise and the resampling filter.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelPipeline {
    /// Lower bound on the resized area (`size.shortest_edge` / `min_pixels`): per image or frame
    /// (Qwen2-VL rule) or per clip (Qwen3-VL video rule).
    pub min_pixels: u64,
    /// Upper bound on the resized area (`size.longest_edge` / `max_pixels`), same scope.
    pub max_pixels: u64,
    /// Patch side in pixels (16 for Qwen3-Omni and Qwen3-VL).
    pub patch_size: usize,
    /// Frames per temporal patch (2); a still image is repeated this many times.
    pub temporal_patch_size: usize,
    /// Patches per side merged into one LLM token (2).
    pub merge_size: usize,
    /// Per-channel mean subtracted after rescaling.
    pub image_mean: [f64; 3],
    /// Per-channel standard deviation divided by after subtracting the mean.
    pub image_std: [f64; 3],
    /// Resize with smart_resize; when false the input must already be patch-aligned.
    pub do_resize: bool,
    /// Multiply pixels by `rescale_factor`.
    pub do_rescale: bool,
    /// Usually 1/255.
    pub rescale_factor: f64,
    /// Apply `(x − mean) / std`.
    pub do_normalize: bool,
    /// Convert to RGB first. Inputs here are already RGB8 (the codecs composite transparency onto
    /// white as transformers' `convert_to_rgb` does), so this is informational.
    pub do_convert_rgb: bool,
    /// Resampling filter (`resample`, Pillow code; 3 = bicubic).
    pub resample: ResampleFilter,
}

impl PixelPipeline {
    /// `patch_size · merge_size`: the multiple both resized sides must be.
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    /// Rescale and normalisation settings for the pixel planes.
    pub(crate) fn normalization(&self, rounding: PixelRounding) -> PixelNormalization {
        PixelNormalization {
            rescale_factor: self.do_rescale.then_some(self.rescale_factor),
            mean_std: self.do_normalize.then_some((self.image_mean, self.image_std)),
            rounding,
        }
    }
}

pub(crate) fn parse_raw(json: &str, source_name: &str) -> Result<RawVisionConfig> {
    serde_json::from_str(json).map_err(|e| invalid(source_name, e.to_string()))
}

pub(crate) fn invalid(source_name: &str, detail: String) -> PreprocessError {
    PreprocessError::InvalidConfig { source_name: source_name.to_owned(), detail }
}

impl RawVisionConfig {
    pub(crate) fn resolve(&self, defaults: &ClassDefaults, source_name: &str) -> Result<PixelPipeline> {
        let bad = |detail: String| invalid(source_name, detail);
        let (size_min, size_max) = match &self.size {
            None => (Some(defaults.min_pixels), Some(defaults.max_pixels)),
            Some(s) => (s.shortest_edge, s.longest_edge),
        };
        let min_pixels = self.min_pixels.or(size_min).ok_or_else(|| {
            bad("no pixel lower bound: `size` lacks `shortest_edge` and there is no `min_pixels`".to_owned())
        })?;
        let max_pixels = self.max_pixels.or(size_max).ok_or_else(|| {
            bad("no pixel upper bound: `size` lacks `longest_edge` and there is no `max_pixels`".to_owned())
        })?;
        let patch_size = self.patch_size.unwrap_or(defaults.patch_size);
        let temporal_patch_size = self.temporal_patch_size.unwrap_or(defaults.temporal_patch_size);
        let merge_size = self.merge_size.unwrap_or(defaults.merge_size);
        for (name, v) in
            [("patch_size", patch_size), ("temporal_patch_size", temporal_patch_size), ("merge_size", merge_size)]
        {
            if v == 0 {
                return Err(bad(format!("{name} must be > 0")));
            }
        }
        let stats = |raw: &Option<RawStats>, default: [f64; 3], name: &str| -> Result<[f64; 3]> {
            match raw {
                None => Ok(default),
                Some(RawStats::One(v)) => Ok([*v; 3]),
                Some(RawStats::PerChannel(v)) => <[f64; 3]>::try_from(v.as_slice())
                    .map_err(|_| bad(format!("{name} has {} values, expected 3 (RGB)", v.len()))),
            }
        };
        let image_mean = stats(&self.image_mean, defaults.mean, "image_mean")?;
        let image_std = stats(&self.image_std, defaults.std, "image_std")?;
        let do_normalize = self.do_normalize.unwrap_or(true);
        if do_normalize && image_std.contains(&0.0) {
            return Err(bad(format!("image_std {image_std:?} contains 0")));
        }
        let resample_code = self.resample.unwrap_or(3);
        let resample = ResampleFilter::from_pil_code(resample_code).ok_or_else(|| {
            bad(format!(
                "resample = {resample_code} is not supported (1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)"
            ))
        })?;
        Ok(PixelPipeline {
            min_pixels,
            max_pixels,
            patch_size,
            temporal_patch_size,
            merge_size,
            image_mean,
            image_std,
            do_resize: self.do_resize.unwrap_or(true),
            do_rescale: self.do_rescale.unwrap_or(true),
            rescale_factor: self.rescale_factor.unwrap_or(1.0 / 255.0),
            do_normalize,
            do_convert_rgb: self.do_convert_rgb.unwrap_or(true),
            resample,
        })
    }
}
