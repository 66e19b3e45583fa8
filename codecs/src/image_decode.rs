//! Image input: decodes files or bytes in any format this build of the `image` crate supports into an RGB8
//! buffer ready for vision preprocessing.
//!
//! What happens, in order:
//! 1. the format is sniffed from the content (not the file name);
//! 2. only the header is read and the declared size is checked against the caller's pixel budget, so a
//!    decompression bomb is refused before any pixel memory is allocated;
//! 3. the EXIF orientation (JPEG, TIFF, WebP, PNG eXIf) is read and applied after decoding, as
//!    `PIL.ImageOps.exif_transpose` does in transformers' `load_image`;
//! 4. animated formats (GIF, APNG, animated WebP) yield their first frame;
//! 5. images with an alpha channel are composited onto opaque white, bit-exactly as transformers'
//!    `convert_to_rgb` does with `PIL.Image.alpha_composite`; others are converted to RGB8 directly.

use std::io::{BufRead, BufReader, Cursor, Seek};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage, RgbaImage};

use crate::{io_error, CodecError, Result};

/// Reads and decodes the image file at `path` into RGB8, refusing images with more than `max_pixels`
/// pixels (width × height, as declared in the header) before decoding them.
pub fn decode_image_file(path: &Path, max_pixels: u64) -> Result<RgbImage> {
    decode_image_file_oriented(path, max_pixels).map(|d| d.image)
}

/// An image turned upright, with the EXIF orientation (1–8, 1 when absent) it was turned by:
/// OCR maps boxes found on the upright image back to the pixels as stored.
#[derive(Debug, Clone)]
pub struct OrientedImage {
    pub image: RgbImage,
    pub exif_orientation: u8,
}

/// As [`decode_image_file`], also saying how the stored pixels were turned.
pub fn decode_image_file_oriented(path: &Path, max_pixels: u64) -> Result<OrientedImage> {
    let source_name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| io_error(&source_name, e))?;
    decode_from(BufReader::new(file), &source_name, max_pixels)
}

/// Decodes an image held in memory (an upload, a base64 data URL payload) into RGB8, refusing images with
/// more than `max_pixels` pixels before decoding them.
pub fn decode_image_bytes(bytes: &[u8], max_pixels: u64) -> Result<RgbImage> {
    decode_image_bytes_oriented(bytes, max_pixels).map(|d| d.image)
}

/// As [`decode_image_bytes`], also saying how the stored pixels were turned.
pub fn decode_image_bytes_oriented(bytes: &[u8], max_pixels: u64) -> Result<OrientedImage> {
    let source_name = format!("in-memory image ({} bytes)", bytes.len());
    decode_from(Cursor::new(bytes), &source_name, max_pixels)
}

/// Bytes per pixel of the widest decoded layout the `image` crate produces (RGBA, 32-bit float); used to turn
/// the pixel budget into an allocation cap for the decoder itself.
const MAX_BYTES_PER_PIXEL: u64 = 16;

/// The `image` crate's own default allocation cap; we never go below it so small budgets still decode
/// formats with sizeable side buffers.
const DEFAULT_MAX_ALLOC_BYTES: u64 = 512 * 1024 * 1024;

fn decode_from<R: BufRead + Seek>(reader: R, source_name: &str, max_pixels: u64) -> Result<OrientedImage> {
    let decode_err =
        |e: image::ImageError| CodecError::ImageDecode { source_name: source_name.to_owned(), detail: e.to_string() };
    let mut reader = ImageReader::new(reader).with_guessed_format().map_err(|e| io_error(source_name, e))?;
    if reader.format().is_none() {
        return Err(CodecError::UnknownImageFormat { source_name: source_name.to_owned() });
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL).max(DEFAULT_MAX_ALLOC_BYTES));
    reader.limits(limits);

    // Building the decoder parses the header only.
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Unsupported(_) => CodecError::UnknownImageFormat { source_name: source_name.to_owned() },
        other => decode_err(other),
    })?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(CodecError::EmptyImage { source_name: source_name.to_owned(), width, height });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(CodecError::ImageTooLarge {
            source_name: source_name.to_owned(),
            width,
            height,
            pixels,
            max_pixels,
        });
    }
    // A broken EXIF block should not make an otherwise good image unreadable: decode it unrotated.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    img.apply_orientation(orientation);
    Ok(OrientedImage { image: to_rgb_over_white(img), exif_orientation: orientation.to_exif() })
}

/// Converts to RGB8; images with alpha are composited onto opaque white (see [`composite_over_white`]).
pub fn to_rgb_over_white(img: DynamicImage) -> RgbImage {
    if img.color().has_alpha() {
        composite_over_white(&img.to_rgba8())
    } else {
        img.to_rgb8()
    }
}

/// Composites RGBA8 onto an opaque white background and drops alpha, reproducing Pillow's integer
/// `Image.alpha_composite(white, im)` bit for bit (this is how transformers' `convert_to_rgb` removes
/// transparency before the vision processor sees the pixels).
///
/// With an opaque destination Pillow's formula reduces to
/// `out = div255((c·a + 255·(255 − a))·128 + 128·128) >> 7`, with `div255(v) = (v + (v >> 8)) >> 8`.
pub fn composite_over_white(rgba: &RgbaImage) -> RgbImage {
    // Pillow keeps 7 extra fractional bits in its alpha-composite arithmetic.
    const PRECISION_BITS: u32 = 7;
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        if a == 0 {
            dst.0 = [255, 255, 255];
            continue;
        }
        // coef1 = a·255·255·128 / (255·255) = a·128 exactly when the background is opaque.
        let coef1 = a << PRECISION_BITS;
        let coef2 = (255 << PRECISION_BITS) - coef1;
        for c in 0..3 {
            let tmp = u32::from(src[c]) * coef1 + 255 * coef2 + (0x80 << PRECISION_BITS);
            dst[c] = ((((tmp >> 8) + tmp) >> 8) >> PRECISION_BITS) as u8;
        }
    }
    out
}
