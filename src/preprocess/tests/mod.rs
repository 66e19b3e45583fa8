//! Golden tests against transformers 5.23 / Pillow 13 outputs stored in `tests/fixtures/preprocess/`
//! (made by `scripts/make_preprocess_fixtures.py`; see that script for what each reference is).

mod audio;
mod image;
mod video;

use std::path::PathBuf;

use serde_json::Value;

/// Path of a file in `tests/fixtures/preprocess/`.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/preprocess").join(name)
}

fn read_json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A little-endian `f32` file.
fn read_f32(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(bytes.len() % 4, 0, "{name}: not a whole number of f32");
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn read_rgb(name: &str) -> ::image::RgbImage {
    ::image::open(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}")).to_rgb8()
}

fn as_usize(v: &Value) -> usize {
    v.as_u64().unwrap_or_else(|| panic!("not an unsigned integer: {v}")) as usize
}

fn usize_list(v: &Value) -> Vec<usize> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(as_usize).collect()
}

/// Largest absolute difference between two equally long slices.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
