//! Black-box tests for `omnid_codecs::image_decode`: formats, EXIF orientation, first frame of animations,
//! transparency onto white (checked against a Pillow-made fixture), and the pixel budget.

use std::io::Cursor;
use std::path::PathBuf;

use image::codecs::gif::GifEncoder;
use image::{Delay, Frame, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
use omnid_codecs::image_decode::{decode_image_bytes, decode_image_file};
use omnid_codecs::CodecError;

const BUDGET: u64 = 1 << 24;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

fn pattern(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 37 % 256) as u8, (y * 91 % 256) as u8, ((x + y) * 13 % 256) as u8]))
}

#[test]
fn lossless_formats_round_trip_exactly() {
    let img = pattern(13, 7);
    for format in [ImageFormat::Png, ImageFormat::Bmp, ImageFormat::Tiff, ImageFormat::Qoi] {
        let decoded = decode_image_bytes(&encode(&img, format), BUDGET).unwrap();
        assert_eq!(decoded, img, "{format:?}");
    }
}

#[test]
fn jpeg_exif_orientation_is_applied() {
    // Stored 8x4 (red left, blue right) with orientation 6 (rotate 90 degrees clockwise to display).
    let img = decode_image_file(&fixture("exif_orientation_6.jpg"), BUDGET).unwrap();
    assert_eq!(img.dimensions(), (4, 8));
    let near = |p: &Rgb<u8>, want: [u8; 3]| p.0.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 40);
    for x in 0..4 {
        assert!(near(img.get_pixel(x, 0), [255, 0, 0]), "top row should be red: {:?}", img.get_pixel(x, 0));
        assert!(near(img.get_pixel(x, 7), [0, 0, 255]), "bottom row should be blue: {:?}", img.get_pixel(x, 7));
    }
}

#[test]
fn animated_gif_yields_its_first_frame() {
    let mut buf = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut buf);
        let red = RgbaImage::from_pixel(6, 5, Rgba([255, 0, 0, 255]));
        let blue = RgbaImage::from_pixel(6, 5, Rgba([0, 0, 255, 255]));
        for f in [red, blue] {
            enc.encode_frame(Frame::from_parts(f, 0, 0, Delay::from_numer_denom_ms(100, 1))).unwrap();
        }
    }
    let img = decode_image_bytes(&buf, BUDGET).unwrap();
    assert_eq!(img.dimensions(), (6, 5));
    assert!(img.pixels().all(|p| p.0 == [255, 0, 0]), "first frame is red: {:?}", img.get_pixel(0, 0));
}

#[test]
fn transparency_is_composited_onto_white_like_pillow() {
    let img = decode_image_file(&fixture("alpha_ramp.png"), BUDGET).unwrap();
    let want = image::open(fixture("alpha_ramp_on_white.png")).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), want.dimensions());
    for (x, y, p) in want.enumerate_pixels() {
        assert_eq!(img.get_pixel(x, y), p, "pixel ({x},{y})");
    }
}

#[test]
fn pixel_budget_is_enforced_with_a_clear_message() {
    let bytes = encode(&pattern(100, 100), ImageFormat::Png);
    assert!(decode_image_bytes(&bytes, 10_000).is_ok());
    let err = decode_image_bytes(&bytes, 9_999).unwrap_err();
    assert!(matches!(err, CodecError::ImageTooLarge { width: 100, height: 100, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("100x100") && msg.contains("9999"), "{msg}");
}

#[test]
fn budget_is_checked_before_decoding() {
    // A PNG that declares 100000x100000 pixels but holds only a few bytes of pixel data: only a header-first
    // check can report the size; a full decode would fail on the missing data (or try to allocate 30 GB).
    let mut png = encode(&pattern(1, 1), ImageFormat::Png);
    png.truncate(33); // signature (8) + IHDR chunk (25)
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    // The PNG decoder reads chunks up to the first IDAT before it reports the size, so add a short one.
    let idat_body = [b'I', b'D', b'A', b'T', 0x78, 0x9c, 0, 0];
    png.extend_from_slice(&4u32.to_be_bytes());
    png.extend_from_slice(&idat_body);
    png.extend_from_slice(&crc32(&idat_body).to_be_bytes());
    let err = decode_image_bytes(&png, BUDGET).unwrap_err();
    assert!(
        matches!(err, CodecError::ImageTooLarge { width: 100_000, height: 100_000, pixels: 10_000_000_000, .. }),
        "{err:?}"
    );
}

#[test]
fn unknown_missing_and_corrupt_inputs_are_errors() {
    let err = decode_image_bytes(b"definitely not an image", BUDGET).unwrap_err();
    assert!(matches!(err, CodecError::UnknownImageFormat { .. }), "{err:?}");

    let missing = fixture("no-such-image.png");
    let err = decode_image_file(&missing, BUDGET).unwrap_err();
    assert!(matches!(err, CodecError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-image.png"));

    let mut png = encode(&pattern(40, 40), ImageFormat::Png);
    png.truncate(png.len() / 2);
    let err = decode_image_bytes(&png, BUDGET).unwrap_err();
    assert!(matches!(err, CodecError::ImageDecode { .. }), "{err:?}");
    assert!(err.to_string().contains("in-memory image"), "{err}");
}

/// CRC-32 (IEEE) as PNG chunks use it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
