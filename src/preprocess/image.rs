//! The image pipeline shared by Qwen3-Omni and Qwen3-VL (spec §5.1): smart_resize to multiples of
//! `patch_size · merge_size`, Pillow-exact resize, rescale + normalise, patchify with the frame repeated
//! `temporal_patch_size` times.
//!
//! Reference: transformers 5.23 `Qwen2VLImageProcessorPil` (what `use_fast=False` selects; both checkpoints
//! name `Qwen2VLImageProcessor`). The fast torchvision processor resizes with torchvision's antialiased
//! bicubic instead of Pillow and would differ by a few `u8` steps at edges.

use std::borrow::Cow;

use image::RgbImage;

use super::patchify::{patchify, PatchLayout, PixelRounding};
use super::pil_resize::resize_rgb8;
use super::processor_config::{parse_raw, ClassDefaults, PixelPipeline, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD};
use super::smart_resize::smart_resize;
use super::{PreprocessError, Result};

/// Default hard limit on input image area: Pillow's decompression-bomb error threshold
/// (`2 · Image.MAX_IMAGE_PIXELS`), i.e. images the Python reference would refuse to open anyway.
pub const DEFAULT_MAX_INPUT_PIXELS: u64 = 2 * 89_478_485;

/// `Qwen2VLImageProcessor` class defaults (used for keys a config leaves out).
const IMAGE_DEFAULTS: ClassDefaults = ClassDefaults {
    min_pixels: 56 * 56,
    max_pixels: 28 * 28 * 1280,
    patch_size: 14,
    temporal_patch_size: 2,
    merge_size: 2,
    mean: OPENAI_CLIP_MEAN,
    std: OPENAI_CLIP_STD,
};

/// Image processor settings, resolved from a checkpoint's `preprocessor_config.json`.
///
/// Both spellings of the pixel budget are read: Qwen3-Omni writes `min_pixels` / `max_pixels`, Qwen3-VL writes
/// `size: {shortest_edge, longest_edge}`; when both appear the top-level keys win (as in transformers).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessorConfig {
    /// Budget, patch geometry, normalisation, filter.
    pub pixels: PixelPipeline,
    /// Hard limit on the input area, checked before any work. Not an HF key: defaults to
    /// [`DEFAULT_MAX_INPUT_PIXELS`]; lower it for a server.
    pub max_input_pixels: u64,
}

impl ImageProcessorConfig {
    /// Parses the text of a `preprocessor_config.json` (unknown keys such as the feature-extractor fields are
    /// ignored).
    pub fn from_json_str(json: &str) -> Result<Self> {
        Self::parse(json, "image processor config")
    }

    fn parse(json: &str, source_name: &str) -> Result<Self> {
        let c = parse_raw(json, source_name)?.resolve(&IMAGE_DEFAULTS, source_name)?;
        Ok(Self { pixels: c, max_input_pixels: DEFAULT_MAX_INPUT_PIXELS })
    }

    /// `patch_size · merge_size`: the multiple both resized sides must be.
    pub fn factor(&self) -> usize {
        self.pixels.factor()
    }

    /// The `(height, width)` an image of this size is resized to (what smart_resize gives, or the input size
    /// when resizing is off).
    pub fn target_size(&self, height: usize, width: usize) -> Result<(usize, usize)> {
        if self.pixels.do_resize {
            smart_resize(height, width, self.factor(), self.pixels.min_pixels, self.pixels.max_pixels)
        } else {
            Ok((height, width))
        }
    }

    pub(crate) fn layout(&self) -> PatchLayout {
        PatchLayout {
            patch_size: self.pixels.patch_size,
            merge_size: self.pixels.merge_size,
            temporal_patch_size: self.pixels.temporal_patch_size,
        }
    }
}

/// One image ready for the vision encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchifiedImage {
    /// Row-major `[n_patches, 3 · temporal_patch_size · patch_size²]`, rows in merge-block order.
    pub pixel_values: Vec<f32>,
    /// `[1, grid_h, grid_w]` in patches (`image_grid_thw`).
    pub grid_thw: [usize; 3],
    /// Values per row.
    pub row_len: usize,
    /// Number of `<|image_pad|>` tokens: `t · h · w / merge_size²`.
    pub n_tokens: usize,
}

/// Runs the whole image pipeline on an RGB8 image.
///
/// The area is checked against `cfg.max_input_pixels` before anything else; an aspect ratio over 200 or
/// (with resizing off) sides that are not multiples of `patch_size · merge_size` are errors.
pub fn preprocess_image(img: &RgbImage, cfg: &ImageProcessorConfig) -> Result<PatchifiedImage> {
    let (w, h) = img.dimensions();
    check_input_size("image", w, h, cfg.max_input_pixels)?;
    let (th, tw) = cfg.target_size(h as usize, w as usize)?;
    let factor = cfg.factor();
    if th % factor != 0 || tw % factor != 0 {
        return Err(PreprocessError::NotPatchAligned { height: th, width: tw, factor });
    }
    let resized: Cow<'_, RgbImage> = if (th, tw) == (h as usize, w as usize) {
        Cow::Borrowed(img)
    } else {
        Cow::Owned(resize_rgb8(img, tw as u32, th as u32, cfg.pixels.resample)?)
    };
    let planes = cfg.pixels.normalization(PixelRounding::Numpy).to_planes(&resized);
    // A still image is one temporal patch: the same frame repeated temporal_patch_size times.
    let frames = vec![planes.as_slice(); cfg.pixels.temporal_patch_size];
    let layout = cfg.layout();
    let (pixel_values, grid_thw) = patchify(&frames, th, tw, layout);
    Ok(PatchifiedImage {
        pixel_values,
        grid_thw,
        row_len: layout.row_len(),
        n_tokens: grid_thw.iter().product::<usize>() / (cfg.pixels.merge_size * cfg.pixels.merge_size),
    })
}

/// Refuses empty images and images over the hard pixel limit.
pub(crate) fn check_input_size(what: &str, width: u32, height: u32, max_pixels: u64) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(PreprocessError::EmptyImage { what: what.to_owned(), width, height });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(PreprocessError::ImageTooLarge { what: what.to_owned(), width, height, pixels, max_pixels });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_limit_is_checked_first() {
        let mut cfg = ImageProcessorConfig::from_json_str("{}").unwrap();
        cfg.max_input_pixels = 99;
        let err = preprocess_image(&RgbImage::new(10, 10), &cfg).unwrap_err();
        assert!(matches!(err, PreprocessError::ImageTooLarge { width: 10, height: 10, max_pixels: 99, .. }));
        assert!(err.to_string().contains("10x10") && err.to_string().contains("99"), "{err}");
    }

    #[test]
    fn unaligned_image_without_resize_is_an_error() {
        let cfg = ImageProcessorConfig::from_json_str(r#"{"do_resize": false, "patch_size": 16}"#).unwrap();
        let err = preprocess_image(&RgbImage::new(40, 32), &cfg).unwrap_err();
        assert!(matches!(err, PreprocessError::NotPatchAligned { height: 32, width: 40, factor: 32 }), "{err:?}");
        let ok = preprocess_image(&RgbImage::new(64, 32), &cfg).unwrap();
        assert_eq!(ok.grid_thw, [1, 2, 4]);
        assert_eq!(ok.n_tokens, 2);
        assert_eq!(ok.pixel_values.len(), 8 * 1536);
    }

    #[test]
    fn bad_configs_are_named() {
        let err = ImageProcessorConfig::from_json_str(r#"{"image_mean": [0.5, 0.5]}"#).unwrap_err();
        assert!(err.to_string().contains("image_mean has 2 values"), "{err}");
        let err = ImageProcessorConfig::from_json_str(r#"{"size": {"longest_edge": 100}}"#).unwrap_err();
        assert!(err.to_string().contains("shortest_edge"), "{err}");
        let err = ImageProcessorConfig::from_json_str(r#"{"resample": 0}"#).unwrap_err();
        assert!(err.to_string().contains("resample = 0"), "{err}");
        let cfg = ImageProcessorConfig::from_json_str(r#"{"image_mean": 0.5, "image_std": 0.25}"#).unwrap();
        assert_eq!((cfg.pixels.image_mean, cfg.pixels.image_std), ([0.5; 3], [0.25; 3]));
    }
}
