//! Conversion of decoded frames (any pixel format, any size) to packed RGB8 images, optionally resized.
//!
//! The conversion uses swscale with bilinear filtering and no extra flags, which is what PyAV's
//! `VideoFrame.to_ndarray(format="rgb24")` does, and PyAV is how the Python reference pipelines
//! (torchvision, qwen-omni-utils) read video. Resizing to the model's size is normally left to the
//! daemon's preprocessing, which reproduces the reference resize filters exactly; [`RgbConverter`] can
//! also scale, for previews and live sources where speed matters more than parity.

use ffmpeg_next as ffmpeg;
use image::RgbImage;

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::util::frame::video::Video as VideoFrame;

/// A cached swscale context, rebuilt only when the source format or size changes (a live source or an
/// adaptive stream can change resolution mid-stream).
pub struct RgbConverter {
    scaler: Option<scaling::Context>,
    source: (Pixel, u32, u32),
    target: Option<(u32, u32)>,
}

impl RgbConverter {
    /// A converter to RGB8 at the source size (`target` = None) or at a fixed `(width, height)`.
    pub fn new(target: Option<(u32, u32)>) -> Self {
        RgbConverter { scaler: None, source: (Pixel::None, 0, 0), target }
    }

    /// Converts one decoded frame. Errors are FFmpeg's description (an unsupported pixel format).
    pub fn convert(&mut self, frame: &VideoFrame) -> Result<RgbImage, String> {
        let source = (frame.format(), frame.width(), frame.height());
        let (tw, th) = self.target.unwrap_or((source.1, source.2));
        if tw == 0 || th == 0 || source.1 == 0 || source.2 == 0 {
            return Err(format!("empty frame size {}x{} -> {tw}x{th}", source.1, source.2));
        }
        if self.scaler.is_none() || self.source != source {
            let ctx =
                scaling::Context::get(source.0, source.1, source.2, Pixel::RGB24, tw, th, scaling::Flags::BILINEAR)
                    .map_err(|e| format!("no conversion from pixel format {:?} to RGB: {e}", source.0))?;
            self.scaler = Some(ctx);
            self.source = source;
        }
        let Some(scaler) = self.scaler.as_mut() else {
            return Err("scaler missing".into());
        };
        let mut rgb = VideoFrame::empty();
        scaler.run(frame, &mut rgb).map_err(|e| format!("pixel conversion failed: {e}"))?;
        Ok(packed_rgb(&rgb))
    }
}

/// Copies an RGB24 frame into a tightly packed image. FFmpeg pads rows (`stride(0)` may exceed
/// `3 · width`), so rows are copied one by one.
fn packed_rgb(frame: &VideoFrame) -> RgbImage {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let stride = frame.stride(0);
    let data = frame.data(0);
    let mut buf = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        buf.extend_from_slice(&data[y * stride..y * stride + 3 * w]);
    }
    // The buffer holds exactly w·h·3 bytes, so this cannot fail.
    RgbImage::from_raw(w as u32, h as u32, buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4×2 YUV 4:4:4 frame of one colour converts to that colour (BT.601 limited range).
    #[test]
    fn converts_and_rescales_a_flat_frame() {
        super::super::init();
        let mut f = VideoFrame::new(Pixel::YUV444P, 4, 2);
        // Y=81, U=90, V=240 is pure red (255, 0, 0) in BT.601 limited range.
        for (plane, value) in [(0, 81u8), (1, 90), (2, 240)] {
            let stride = f.stride(plane);
            let data = f.data_mut(plane);
            for y in 0..2 {
                data[y * stride..y * stride + 4].fill(value);
            }
        }
        let img = RgbConverter::new(None).convert(&f).unwrap();
        assert_eq!(img.dimensions(), (4, 2));
        for p in img.pixels() {
            assert!(p[0] >= 250 && p[1] <= 4 && p[2] <= 4, "{p:?}");
        }
        let small = RgbConverter::new(Some((2, 1))).convert(&f).unwrap();
        assert_eq!(small.dimensions(), (2, 1));
        assert!(small.get_pixel(1, 0)[0] >= 250);
    }
}
