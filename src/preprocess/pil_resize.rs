//! Separable image resampling that reproduces Pillow's `Image.resize` (libImaging `Resample.c`, Pillow 13) on
//! 8-bit images bit for bit. transformers' slow image processors resize with Pillow, so matching it makes
//! `pixel_values` identical to the reference instead of merely close.
//!
//! How Pillow does it, and therefore how this does it:
//! * one 1-D pass per axis, with the intermediate result rounded and clipped to `u8`; a pass is skipped when
//!   that side keeps its size. Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when the
//!   height shrinks by more than twice as many pixels as the width (`in_h − out_h > 2·(in_w − out_w)`, height
//!   shrinking); otherwise horizontal first, only over the rows the vertical pass will read. The order changes
//!   the result because of the intermediate rounding, so it must match;
//! * output sample `i` is centred at `(i + 0.5) · scale` in input coordinates, `scale = in / out`; when
//!   shrinking, the filter is stretched by `scale` (antialiasing), so its support grows to `support · scale`;
//! * weights are evaluated in `f64`, normalised to sum 1, then converted to fixed point with 22 fractional bits
//!   (`32 − 8 − 2`: 8 bits of pixel, 2 bits of headroom for negative lobes and overshoot), rounding half away
//!   from zero;
//! * each output is `(2^21 + Σ pixel · weight) >> 22`, clamped to [0, 255].

use image::RgbImage;

use super::{PreprocessError, Result};

/// Pillow's resampling filters (`PIL.Image.Resampling`), except NEAREST, which uses a different code path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResampleFilter {
    /// Box (area average when shrinking), support 0.5.
    Box,
    /// Triangle, support 1.
    Bilinear,
    /// Hamming-windowed sinc, support 1.
    Hamming,
    /// Keys cubic with a = −0.5, support 2. What Qwen's image processors use (`resample=3`).
    Bicubic,
    /// Lanczos-3 windowed sinc, support 3.
    Lanczos,
}

impl ResampleFilter {
    /// Maps the integer stored as `resample` in processor configs (`PIL.Image.Resampling` values).
    pub fn from_pil_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Lanczos),
            2 => Some(Self::Bilinear),
            3 => Some(Self::Bicubic),
            4 => Some(Self::Box),
            5 => Some(Self::Hamming),
            _ => None,
        }
    }

    /// Half-width of the filter at scale 1, in input pixels.
    fn support(self) -> f64 {
        match self {
            Self::Box => 0.5,
            Self::Bilinear | Self::Hamming => 1.0,
            Self::Bicubic => 2.0,
            Self::Lanczos => 3.0,
        }
    }

    /// The filter kernel. Expressions keep Pillow's operation order so the `f64` results are identical.
    fn weight(self, x: f64) -> f64 {
        match self {
            Self::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Self::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    // Pillow writes the constants as C float literals (0.54f, 0.46f).
                    x.sin() / x * (f64::from(0.54f32) + f64::from(0.46f32) * x.cos())
                }
            }
            Self::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Self::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Fractional bits of the fixed-point weights.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Precomputed 1-D resampling weights for one axis (Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`).
struct Kernel {
    /// Maximum taps per output sample; `weights` has this stride.
    taps: usize,
    /// Per output sample: first input index and number of taps used.
    bounds: Vec<(usize, usize)>,
    /// Fixed-point weights, `taps` per output sample (unused tail entries are zero).
    weights: Vec<i32>,
}

impl Kernel {
    fn new(in_size: usize, out_size: usize, filter: ResampleFilter) -> Self {
        // Pillow passes the box edges as C floats: (double)(in1 - in0) / outSize.
        let scale = f64::from(in_size as f32) / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let taps = support.ceil() as usize * 2 + 1;
        let ss = 1.0 / filterscale;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * taps];
        let mut k = vec![0f64; taps];
        for (xx, row) in weights.chunks_exact_mut(taps).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero; Rust's `as` does the same.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(0) as usize;
            let count = xmax.saturating_sub(xmin).min(taps);
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(count) {
                let w = filter.weight(((x + xmin) as f64 - center + 0.5) * ss);
                *kx = w;
                ww += w;
            }
            for (kx, out) in k.iter().zip(row.iter_mut()).take(count) {
                let v = if ww != 0.0 { kx / ww } else { *kx };
                // Round half away from zero, then truncate, as normalize_coeffs_8bpc does.
                let scaled = v * f64::from(1u32 << PRECISION_BITS);
                *out = if v < 0.0 { (scaled - 0.5) as i32 } else { (scaled + 0.5) as i32 };
            }
            bounds.push((xmin, count));
        }
        Self { taps, bounds, weights }
    }

    fn taps_for(&self, out: usize) -> (usize, &[i32]) {
        let (start, count) = self.bounds[out];
        (start, &self.weights[out * self.taps..out * self.taps + count])
    }
}

/// `(2^21 + acc) >> 22` clamped to a byte. Accumulated in `i64` so no input can overflow.
fn clip8(acc: i64) -> u8 {
    ((acc + (1 << (PRECISION_BITS - 1))) >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an RGB8 image to `width × height` exactly as Pillow's `Image.resize((width, height), filter)`.
///
/// Returns a copy when the size does not change (Pillow does the same). Zero sizes are an error.
pub fn resize_rgb8(src: &RgbImage, width: u32, height: u32, filter: ResampleFilter) -> Result<RgbImage> {
    let (in_w, in_h) = src.dimensions();
    for (what, w, h) in [("resize source", in_w, in_h), ("resize target", width, height)] {
        if w == 0 || h == 0 {
            return Err(PreprocessError::EmptyImage { what: what.to_owned(), width: w, height: h });
        }
    }
    if (in_w, in_h) == (width, height) {
        return Ok(src.clone());
    }
    let data =
        resize_interleaved(src.as_raw(), 3, in_w as usize, in_h as usize, width as usize, height as usize, filter);
    Ok(RgbImage::from_raw(width, height, data).expect("resample output has width*height*3 bytes; this is a bug"))
}

/// The two passes on interleaved 8-bit data with `channels` samples per pixel.
fn resize_interleaved(
    src: &[u8],
    channels: usize,
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    filter: ResampleFilter,
) -> Vec<u8> {
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    let vertical_first = out_h < in_h && (in_h - out_h) as i64 > 2 * (in_w as i64 - out_w as i64);
    if vertical_first {
        let vert = Kernel::new(in_h, out_h, filter);
        let mid = vertical_pass(src, in_w * channels, &vert, 0);
        if !need_h {
            return mid;
        }
        let horiz = Kernel::new(in_w, out_w, filter);
        return horizontal_pass(&mid, channels, in_w, 0..out_h, &horiz);
    }
    let vert = Kernel::new(in_h, out_h, filter);
    // Rows the vertical pass will read; the horizontal pass only produces these.
    let first_row = vert.bounds[0].0;
    let last_row = vert.bounds[out_h - 1].0 + vert.bounds[out_h - 1].1;
    let (mid, row_offset) = if need_h {
        let horiz = Kernel::new(in_w, out_w, filter);
        (horizontal_pass(src, channels, in_w, first_row..last_row, &horiz), first_row)
    } else {
        (src.to_vec(), 0)
    };
    if !need_v {
        return mid;
    }
    vertical_pass(&mid, out_w * channels, &vert, row_offset)
}

/// Resamples `rows` of `src` (rows of `in_w` pixels) along x.
fn horizontal_pass(src: &[u8], channels: usize, in_w: usize, rows: std::ops::Range<usize>, k: &Kernel) -> Vec<u8> {
    let out_w = k.bounds.len();
    let mut out = vec![0u8; rows.len() * out_w * channels];
    for (out_row, y) in out.chunks_exact_mut(out_w * channels).zip(rows) {
        let in_row = &src[y * in_w * channels..(y + 1) * in_w * channels];
        for (x, out_px) in out_row.chunks_exact_mut(channels).enumerate() {
            let (start, w) = k.taps_for(x);
            for (c, o) in out_px.iter_mut().enumerate() {
                let acc: i64 = w
                    .iter()
                    .enumerate()
                    .map(|(i, &wt)| i64::from(in_row[(start + i) * channels + c]) * i64::from(wt))
                    .sum();
                *o = clip8(acc);
            }
        }
    }
    out
}

/// Resamples `src` (rows of `stride` bytes, the first held row being input row `row_offset`) along y.
fn vertical_pass(src: &[u8], stride: usize, k: &Kernel, row_offset: usize) -> Vec<u8> {
    let out_h = k.bounds.len();
    let mut out = vec![0u8; out_h * stride];
    for (y, out_row) in out.chunks_exact_mut(stride).enumerate() {
        let (start, w) = k.taps_for(y);
        let start = start - row_offset;
        for (i, o) in out_row.iter_mut().enumerate() {
            let acc: i64 =
                w.iter().enumerate().map(|(r, &wt)| i64::from(src[(start + r) * stride + i]) * i64::from(wt)).sum();
            *o = clip8(acc);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(37, 64), (200, 96), (13, 5), (7, 30)] {
            let k = Kernel::new(i, o, ResampleFilter::Bicubic);
            for x in 0..o {
                let s: i64 = k.taps_for(x).1.iter().map(|&w| i64::from(w)).sum();
                assert!((s - (1 << PRECISION_BITS)).abs() <= 8, "{i}->{o} tap {x}: {s}");
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(17, 9, image::Rgb([10, 200, 255]));
        let out = resize_rgb8(&img, 40, 5, ResampleFilter::Bicubic).unwrap();
        assert!(out.pixels().all(|p| p.0 == [10, 200, 255]));
    }

    #[test]
    fn zero_target_is_an_error() {
        let img = RgbImage::new(4, 4);
        assert!(resize_rgb8(&img, 0, 4, ResampleFilter::Bicubic).is_err());
    }
}
