//! From resized RGB8 pixels to the vision encoder's input rows: rescale and normalise to `f32`, then cut
//! `patch × patch` patches in merge-block order (spec §5.1, `qwen3-omni-tiny/patchify.py`).
//!
//! Row order is `(t, block_row, block_col, in_row, in_col)` with `block_* < grid / merge` and
//! `in_* < merge`, so the `merge × merge` patches that the merger fuses into one token are consecutive. Each
//! row holds `channels · temporal_patch · patch · patch` values ordered `(c, frame_in_group, y, x)`.

use image::RgbImage;

/// How a `u8` pixel becomes an `f32`. transformers has two back ends that round differently; each pipeline
/// uses the one its reference uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PixelRounding {
    /// numpy (PIL image processors): `v = f32(u8 · rescale_factor)` computed in `f64`, then
    /// `(v − f32(mean)) / f32(std)` in `f32`.
    Numpy,
    /// torch (video processors, `rescale_and_normalize`): with both steps on, rescale is folded into the
    /// statistics, `(f32(u8) − f32(mean)·f32(1/rescale)) / (f32(std)·f32(1/rescale))`, all in `f32`.
    TorchFused,
}

/// Rescale / normalise settings resolved from a processor config.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelNormalization {
    /// Multiply by `rescale_factor` (usually 1/255) when `Some`.
    pub rescale_factor: Option<f64>,
    /// Per-channel `(mean, std)` when normalisation is on.
    pub mean_std: Option<([f64; 3], [f64; 3])>,
    /// Which back end's rounding to reproduce.
    pub rounding: PixelRounding,
}

impl PixelNormalization {
    /// Converts an RGB8 image to planar `[3, H, W]` floats.
    pub fn to_planes(&self, img: &RgbImage) -> Vec<f32> {
        let (w, h) = img.dimensions();
        let plane = w as usize * h as usize;
        let mut out = vec![0f32; 3 * plane];
        let luts: Vec<[f32; 256]> = (0..3).map(|c| self.lookup(c)).collect();
        for (i, px) in img.pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = luts[c][usize::from(px[c])];
            }
        }
        out
    }

    /// The value for every possible byte of channel `c` (the mapping is per channel and per byte, so a table
    /// is exact and cheap).
    fn lookup(&self, c: usize) -> [f32; 256] {
        let mut lut = [0f32; 256];
        for (u, v) in lut.iter_mut().enumerate() {
            *v = self.convert(u as u8, c);
        }
        lut
    }

    fn convert(&self, u: u8, c: usize) -> f32 {
        match (self.rounding, self.rescale_factor, self.mean_std) {
            (PixelRounding::TorchFused, Some(r), Some((mean, std))) => {
                // torch: torch.tensor(mean) * (1.0 / rescale) is a float32 tensor times a float32 scalar.
                let inv = (1.0 / r) as f32;
                let m = mean[c] as f32 * inv;
                let s = std[c] as f32 * inv;
                (f32::from(u) - m) / s
            }
            (PixelRounding::TorchFused, Some(r), None) => f32::from(u) * r as f32,
            (PixelRounding::Numpy, Some(r), ms) => {
                let v = (f64::from(u) * r) as f32;
                match ms {
                    Some((mean, std)) => (v - mean[c] as f32) / std[c] as f32,
                    None => v,
                }
            }
            (_, None, Some((mean, std))) => (f32::from(u) - mean[c] as f32) / std[c] as f32,
            (_, None, None) => f32::from(u),
        }
    }
}

/// Shape of a patch grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchLayout {
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Patches per side merged into one token.
    pub merge_size: usize,
    /// Frames per temporal patch.
    pub temporal_patch_size: usize,
}

impl PatchLayout {
    /// Values per output row: `3 · temporal_patch_size · patch_size²`.
    pub fn row_len(&self) -> usize {
        3 * self.temporal_patch_size * self.patch_size * self.patch_size
    }
}

/// Patchifies `frames` (each planar `[3, height, width]`, their count a multiple of `temporal_patch_size`)
/// into rows of [`PatchLayout::row_len`] values in merge-block order. Returns the rows and
/// `[grid_t, grid_h, grid_w]`.
///
/// The caller guarantees `height` and `width` are multiples of `patch_size · merge_size` and that the frame
/// count is a non-zero multiple of `temporal_patch_size`.
pub fn patchify(frames: &[&[f32]], height: usize, width: usize, layout: PatchLayout) -> (Vec<f32>, [usize; 3]) {
    let PatchLayout { patch_size: p, merge_size: m, temporal_patch_size: tp } = layout;
    let (gt, gh, gw) = (frames.len() / tp, height / p, width / p);
    let plane = height * width;
    let mut out = Vec::with_capacity(gt * gh * gw * layout.row_len());
    for t in 0..gt {
        for br in 0..gh / m {
            for bc in 0..gw / m {
                for ir in 0..m {
                    for ic in 0..m {
                        let (row, col) = (br * m + ir, bc * m + ic);
                        for c in 0..3 {
                            for f in &frames[t * tp..(t + 1) * tp] {
                                for y in 0..p {
                                    let start = c * plane + (row * p + y) * width + col * p;
                                    out.extend_from_slice(&f[start..start + p]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (out, [gt, gh, gw])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_block_order_and_value_order() {
        // 1 frame duplicated, 4x4 pixels, patch 1, merge 2 -> rows in (br, bc, ir, ic) order.
        let mut f = vec![0f32; 3 * 16];
        for c in 0..3 {
            for i in 0..16 {
                f[c * 16 + i] = (c * 100 + i) as f32;
            }
        }
        let layout = PatchLayout { patch_size: 1, merge_size: 2, temporal_patch_size: 2 };
        let (rows, grid) = patchify(&[&f, &f], 4, 4, layout);
        assert_eq!(grid, [1, 4, 4]);
        assert_eq!(rows.len(), 16 * 6);
        // Row 0 = pixel (0,0); row 1 = (0,1); row 2 = (1,0); row 3 = (1,1); row 4 = (0,2) (next block).
        let pixel_of_row = |r: usize| rows[r * 6] as usize;
        assert_eq!((0..6).map(pixel_of_row).collect::<Vec<_>>(), vec![0, 1, 4, 5, 2, 3]);
        // Values within a row: (c, t): c0 t0, c0 t1, c1 t0, ...
        assert_eq!(&rows[6..12], &[1.0, 1.0, 101.0, 101.0, 201.0, 201.0]);
    }

    #[test]
    fn numpy_rounding_matches_hand_computation() {
        let n = PixelNormalization {
            rescale_factor: Some(1.0 / 255.0),
            mean_std: Some(([0.5; 3], [0.5; 3])),
            rounding: PixelRounding::Numpy,
        };
        assert_eq!(n.convert(0, 0), -1.0);
        assert_eq!(n.convert(255, 0), 1.0);
        assert_eq!(n.convert(51, 1), ((51.0f64 * (1.0 / 255.0)) as f32 - 0.5) / 0.5);
    }
}
