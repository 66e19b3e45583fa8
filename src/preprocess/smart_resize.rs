//! Target sizes for the vision encoder: both sides a multiple of `factor` (`patch_size · merge_size`), the
//! area inside a pixel budget, the aspect ratio kept as closely as possible (spec §5.1, §5.2).
//!
//! Ported operation by operation from transformers 5.23 (`qwen2_vl/image_processing_qwen2_vl.py::smart_resize`
//! and `qwen3_vl/video_processing_qwen3_vl.py::smart_resize`), with Python's semantics kept: `/` is true
//! division in `f64`, `round` rounds halves to even, `int()` truncates.

use super::{PreprocessError, Result};

/// Largest `max(h, w) / min(h, w)` transformers accepts.
pub const MAX_ASPECT_RATIO: f64 = 200.0;

/// 2-D smart resize for images and (Qwen2-VL / Omni rules) per-frame video: returns `(height, width)`.
///
/// Rounds each side to the nearest multiple of `factor`; if the area then exceeds `max_pixels`, scales both
/// sides down by `sqrt(h·w / max_pixels)` and floors to the factor (at least one factor); if it is below
/// `min_pixels`, scales up by `sqrt(min_pixels / (h·w))` and ceils.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: u64,
    max_pixels: u64,
) -> Result<(usize, usize)> {
    check_args(height, width, factor, max_pixels)?;
    check_aspect(height, width)?;
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let mut h_bar = round_half_even(h / f) * factor;
    let mut w_bar = round_half_even(w / f) * factor;
    if (h_bar * w_bar) as u64 > max_pixels {
        let beta = ((height * width) as f64 / max_pixels as f64).sqrt();
        h_bar = factor.max(floor_to_usize(h / beta / f) * factor);
        w_bar = factor.max(floor_to_usize(w / beta / f) * factor);
    } else if ((h_bar * w_bar) as u64) < min_pixels {
        let beta = (min_pixels as f64 / (height * width) as f64).sqrt();
        h_bar = ceil_to_usize(h * beta / f) * factor;
        w_bar = ceil_to_usize(w * beta / f) * factor;
    }
    non_zero(height, width, h_bar, w_bar)
}

/// 3-D smart resize of Qwen3-VL's video processor: returns the per-frame `(height, width)` such that
/// `frames' · h · w` (frames rounded to a multiple of `temporal_factor`) fits `[min_pixels, max_pixels]`,
/// a budget for the whole clip.
///
/// Sides shorter than `factor` are first scaled up (both, keeping the aspect ratio, truncating like Python's
/// `int()`). Fewer than `temporal_factor` frames is an error, as in transformers.
pub fn smart_resize_video(
    num_frames: usize,
    height: usize,
    width: usize,
    temporal_factor: usize,
    factor: usize,
    min_pixels: u64,
    max_pixels: u64,
) -> Result<(usize, usize)> {
    check_args(height, width, factor, max_pixels)?;
    if temporal_factor == 0 || num_frames < temporal_factor {
        return Err(PreprocessError::TooFewFrames {
            frames: num_frames,
            needed: temporal_factor.max(1),
            detail: "Qwen3-VL's 3-D smart_resize needs at least temporal_patch_size frames".to_owned(),
        });
    }
    let (mut height, mut width) = (height, width);
    if height < factor || width < factor {
        let scale = (factor as f64 / height as f64).max(factor as f64 / width as f64);
        height = (height as f64 * scale) as usize;
        width = (width as f64 * scale) as usize;
    }
    check_aspect(height, width)?;
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    let mut h_bar = round_half_even(h / f) * factor;
    let mut w_bar = round_half_even(w / f) * factor;
    let t_bar = round_half_even(num_frames as f64 / temporal_factor as f64) * temporal_factor;
    let volume = (t_bar * h_bar * w_bar) as u64;
    if volume > max_pixels {
        let beta = ((num_frames * height * width) as f64 / max_pixels as f64).sqrt();
        h_bar = factor.max(floor_to_usize(h / beta / f) * factor);
        w_bar = factor.max(floor_to_usize(w / beta / f) * factor);
    } else if volume < min_pixels {
        let beta = (min_pixels as f64 / (num_frames * height * width) as f64).sqrt();
        h_bar = ceil_to_usize(h * beta / f) * factor;
        w_bar = ceil_to_usize(w * beta / f) * factor;
    }
    non_zero(height, width, h_bar, w_bar)
}

fn check_args(height: usize, width: usize, factor: usize, max_pixels: u64) -> Result<()> {
    let bad = |detail: &str| PreprocessError::InvalidSize { height, width, detail: detail.to_owned() };
    if height == 0 || width == 0 {
        return Err(bad("a side is zero"));
    }
    if factor == 0 {
        return Err(bad("factor (patch_size x merge_size) is zero"));
    }
    if max_pixels == 0 {
        return Err(bad("max_pixels is zero"));
    }
    Ok(())
}

fn check_aspect(height: usize, width: usize) -> Result<()> {
    let ratio = height.max(width) as f64 / height.min(width) as f64;
    if ratio > MAX_ASPECT_RATIO {
        return Err(PreprocessError::AspectRatio { height, width, ratio });
    }
    Ok(())
}

/// With `min_pixels = 0` a tiny side can round to zero; transformers would then fail later, we fail here.
fn non_zero(height: usize, width: usize, h_bar: usize, w_bar: usize) -> Result<(usize, usize)> {
    if h_bar == 0 || w_bar == 0 {
        return Err(PreprocessError::InvalidSize {
            height,
            width,
            detail: format!("resizes to an empty {h_bar}x{w_bar}; raise min_pixels"),
        });
    }
    Ok((h_bar, w_bar))
}

/// Python's `round(x)` for non-negative `x`: nearest integer, halves to even.
fn round_half_even(x: f64) -> usize {
    x.round_ties_even() as usize
}

fn floor_to_usize(x: f64) -> usize {
    x.floor() as usize
}

fn ceil_to_usize(x: f64) -> usize {
    x.ceil() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_round_to_even() {
        // 48/32 = 1.5 -> 2, 80/32 = 2.5 -> 2, 112/32 = 3.5 -> 4
        assert_eq!(smart_resize(48, 80, 32, 16, 1 << 30).unwrap(), (64, 64));
        assert_eq!(smart_resize(112, 112, 32, 16, 1 << 30).unwrap(), (128, 128));
    }

    #[test]
    fn aspect_ratio_limit() {
        assert!(smart_resize(1, 200, 32, 3136, 12845056).is_ok());
        let err = smart_resize(1, 201, 32, 3136, 12845056).unwrap_err();
        assert!(matches!(err, PreprocessError::AspectRatio { height: 1, width: 201, .. }), "{err:?}");
        assert!(err.to_string().contains("201"), "{err}");
    }

    #[test]
    fn spec_video_example() {
        // 10 s at 2 fps, 640x360 -> 20 frames -> 352x640 per frame -> grid 10x22x40 (spec §5.2).
        assert_eq!(smart_resize_video(20, 360, 640, 2, 32, 4096, 25165824).unwrap(), (352, 640));
        assert!(matches!(
            smart_resize_video(1, 360, 640, 2, 32, 4096, 25165824),
            Err(PreprocessError::TooFewFrames { frames: 1, needed: 2, .. })
        ));
    }
}
