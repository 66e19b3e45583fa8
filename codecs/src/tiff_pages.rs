//! Multi-page TIFF (fax and scanner output, archives of scanned documents): the page count, and
//! one page decoded at a time with its orientation tag. The `image` crate reads only a TIFF's
//! first page, so pages come through the `tiff` crate it is built on; each page is sized from
//! its header and refused over the pixel budget before its pixels are read.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use image::{DynamicImage, ImageBuffer, Luma, LumaA, Rgb, Rgba};
use tiff::decoder::{Decoder, DecodingResult};
use tiff::tags::Tag;
use tiff::ColorType;

use crate::image_decode::{to_rgb_over_white, OrientedImage};
use crate::{io_error, CodecError, Result};

/// More pages than this is a broken file (or a loop of directories), not a document.
const MAX_PAGES: usize = 100_000;

/// Whether `head` (the first bytes of a file) starts like a TIFF, either byte order.
pub fn is_tiff(head: &[u8]) -> bool {
    head.starts_with(b"II*\0") || head.starts_with(b"MM\0*")
}

fn decode_error(path: &Path, detail: impl ToString) -> CodecError {
    CodecError::ImageDecode { source_name: path.display().to_string(), detail: detail.to_string() }
}

fn open(path: &Path) -> Result<Decoder<BufReader<File>>> {
    let file = File::open(path).map_err(|e| io_error(&path.display().to_string(), e))?;
    Decoder::new(BufReader::new(file)).map_err(|e| decode_error(path, e))
}

/// The number of pages (image directories) of the TIFF at `path`.
pub fn tiff_page_count(path: &Path) -> Result<usize> {
    let mut dec = open(path)?;
    let mut pages = 1;
    while dec.more_images() {
        if pages >= MAX_PAGES {
            return Err(decode_error(path, format!("more than {MAX_PAGES} pages: the file is broken")));
        }
        dec.next_image().map_err(|e| decode_error(path, format!("page {}: {e}", pages + 1)))?;
        pages += 1;
    }
    Ok(pages)
}

/// Decodes page `page` (1-based) upright, refusing it over `max_pixels` before reading it.
pub fn decode_tiff_page(path: &Path, page: usize, max_pixels: u64) -> Result<OrientedImage> {
    let at = |e: &dyn std::fmt::Display| decode_error(path, format!("page {page}: {e}"));
    if page == 0 {
        return Err(decode_error(path, "page numbers start at 1"));
    }
    let mut dec = open(path)?;
    dec.seek_to_image(page - 1).map_err(|e| at(&e))?;
    let (width, height) = dec.dimensions().map_err(|e| at(&e))?;
    if width == 0 || height == 0 {
        return Err(CodecError::EmptyImage { source_name: format!("{} page {page}", path.display()), width, height });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(CodecError::ImageTooLarge {
            source_name: format!("{} page {page}", path.display()),
            width,
            height,
            pixels,
            max_pixels,
        });
    }
    // Orientation (274): absent or out of range means as stored, as viewers do.
    let orientation = dec.find_tag(Tag::Orientation).ok().flatten().and_then(|v| v.into_u16().ok()).unwrap_or(1);
    let color = dec.colortype().map_err(|e| at(&e))?;
    let data = dec.read_image().map_err(|e| at(&e))?;
    let img = to_dynamic(width, height, color, data).ok_or_else(|| {
        at(&format!("{color:?} pixels are not supported (grey, grey+alpha, RGB and RGBA at 1, 8 or 16 bits are)"))
    })?;
    let mut img = img;
    let o = image::metadata::Orientation::from_exif(orientation as u8)
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    img.apply_orientation(o);
    Ok(OrientedImage { image: to_rgb_over_white(img), exif_orientation: o.to_exif() })
}

fn to_dynamic(w: u32, h: u32, color: ColorType, data: DecodingResult) -> Option<DynamicImage> {
    use DecodingResult::{U16, U8};
    Some(match (color, data) {
        (ColorType::Gray(1), U8(bits)) => DynamicImage::ImageLuma8(unpack_bilevel(w, h, &bits)?),
        (ColorType::Gray(8), U8(v)) => DynamicImage::ImageLuma8(ImageBuffer::<Luma<u8>, _>::from_raw(w, h, v)?),
        (ColorType::Gray(16), U16(v)) => DynamicImage::ImageLuma16(ImageBuffer::<Luma<u16>, _>::from_raw(w, h, v)?),
        (ColorType::GrayA(8), U8(v)) => DynamicImage::ImageLumaA8(ImageBuffer::<LumaA<u8>, _>::from_raw(w, h, v)?),
        (ColorType::RGB(8), U8(v)) => DynamicImage::ImageRgb8(ImageBuffer::<Rgb<u8>, _>::from_raw(w, h, v)?),
        (ColorType::RGB(16), U16(v)) => DynamicImage::ImageRgb16(ImageBuffer::<Rgb<u16>, _>::from_raw(w, h, v)?),
        (ColorType::RGBA(8), U8(v)) => DynamicImage::ImageRgba8(ImageBuffer::<Rgba<u8>, _>::from_raw(w, h, v)?),
        (ColorType::RGBA(16), U16(v)) => DynamicImage::ImageRgba16(ImageBuffer::<Rgba<u16>, _>::from_raw(w, h, v)?),
        _ => return None,
    })
}

/// 1-bit rows (each padded to a whole byte, most significant bit first; 1 is white, as the
/// `tiff` crate hands over BlackIsZero data) as 8-bit grey.
fn unpack_bilevel(w: u32, h: u32, bits: &[u8]) -> Option<ImageBuffer<Luma<u8>, Vec<u8>>> {
    let row_bytes = (w as usize).div_ceil(8);
    if bits.len() < row_bytes * h as usize {
        return None;
    }
    let mut out = Vec::with_capacity(w as usize * h as usize);
    for row in bits.chunks(row_bytes).take(h as usize) {
        out.extend((0..w as usize).map(|x| if row[x / 8] & (0x80 >> (x % 8)) != 0 { 255 } else { 0 }));
    }
    ImageBuffer::from_raw(w, h, out)
}
