//! Image path against Pillow and `Qwen2VLImageProcessorPil`.

use serde_json::Value;

use super::{as_usize, max_abs_diff, read_f32, read_json, read_rgb, usize_list};
use crate::preprocess::{
    preprocess_image, resize_rgb8, smart_resize, smart_resize_video, ImageProcessorConfig, ResampleFilter,
};

#[test]
fn pil_resize_is_bit_exact() {
    let cases = read_json("resize_cases.json");
    let mut checked = 0;
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let src = read_rgb(case["input"].as_str().unwrap());
        let want = read_rgb(case["output"].as_str().unwrap());
        let filter = match case["filter"].as_str().unwrap() {
            "bicubic" => ResampleFilter::Bicubic,
            "bilinear" => ResampleFilter::Bilinear,
            "lanczos" => ResampleFilter::Lanczos,
            "hamming" => ResampleFilter::Hamming,
            "box" => ResampleFilter::Box,
            other => panic!("unknown filter {other}"),
        };
        let (w, h) = (as_usize(&case["out_width"]) as u32, as_usize(&case["out_height"]) as u32);
        let got = resize_rgb8(&src, w, h, filter).unwrap();
        assert_eq!(got.dimensions(), want.dimensions(), "{name}");
        let mismatches = got.as_raw().iter().zip(want.as_raw()).filter(|(a, b)| a != b).count();
        assert_eq!(mismatches, 0, "{name}: {mismatches} of {} bytes differ from Pillow", want.as_raw().len());
        checked += want.as_raw().len();
    }
    eprintln!("PIL resize: {checked} bytes compared, all equal");
}

fn expect_size(row: &[Value], got: crate::preprocess::Result<(usize, usize)>, ctx: &str) {
    let n = row.len();
    if row[n - 2].is_null() {
        assert!(got.is_err(), "{ctx}: Python raised, we returned {got:?}");
    } else {
        let want = (as_usize(&row[n - 2]), as_usize(&row[n - 1]));
        assert_eq!(got.unwrap_or_else(|e| panic!("{ctx}: {e}")), want, "{ctx}");
    }
}

#[test]
fn smart_resize_matches_transformers() {
    let table = read_json("smart_resize.json");
    let rows2 = table["cases_2d"].as_array().unwrap();
    for row in rows2 {
        let r = row.as_array().unwrap();
        let [h, w, f] = [0, 1, 2].map(|i| as_usize(&r[i]));
        let (mn, mx) = (r[3].as_u64().unwrap(), r[4].as_u64().unwrap());
        expect_size(r, smart_resize(h, w, f, mn, mx), &format!("2-D {row}"));
    }
    let rows3 = table["cases_3d"].as_array().unwrap();
    for row in rows3 {
        let r = row.as_array().unwrap();
        let [t, h, w, f] = [0, 1, 2, 3].map(|i| as_usize(&r[i]));
        let (mn, mx) = (r[4].as_u64().unwrap(), r[5].as_u64().unwrap());
        expect_size(r, smart_resize_video(t, h, w, 2, f, mn, mx), &format!("3-D {row}"));
    }
    eprintln!("smart_resize: {} 2-D and {} 3-D cases equal", rows2.len(), rows3.len());
}

#[test]
fn image_processor_matches_transformers() {
    let cases = read_json("image_processor_cases.json");
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let cfg = ImageProcessorConfig::from_json_str(&case["config"].to_string()).unwrap();
        let img = read_rgb(case["input"].as_str().unwrap());
        let out = preprocess_image(&img, &cfg).unwrap();
        let grid = usize_list(&case["grid_thw"]);
        assert_eq!(out.grid_thw.to_vec(), grid, "{name}");
        let shape = usize_list(&case["pixel_values_shape"]);
        assert_eq!(out.row_len, shape[1], "{name}");
        let want = read_f32(case["pixel_values_file"].as_str().unwrap());
        let diff = max_abs_diff(&out.pixel_values, &want);
        eprintln!("image processor {name}: grid {grid:?}, max |diff| {diff:.3e}");
        assert!(diff <= 1e-6, "{name}: max |diff| {diff}");
        assert_eq!(out.n_tokens, grid.iter().product::<usize>() / 4);
    }
}

#[test]
fn config_keys_resolve_like_transformers() {
    let cases = read_json("image_processor_cases.json");
    for case in cases["resolved_configs"].as_array().unwrap() {
        let cfg = ImageProcessorConfig::from_json_str(&case["config"].to_string()).unwrap();
        let ctx = case["config"].to_string();
        assert_eq!(cfg.pixels.min_pixels, case["min_pixels"].as_u64().unwrap(), "{ctx}");
        assert_eq!(cfg.pixels.max_pixels, case["max_pixels"].as_u64().unwrap(), "{ctx}");
        assert_eq!(cfg.pixels.patch_size, as_usize(&case["patch_size"]), "{ctx}");
        assert_eq!(cfg.pixels.temporal_patch_size, as_usize(&case["temporal_patch_size"]), "{ctx}");
        assert_eq!(cfg.pixels.merge_size, as_usize(&case["merge_size"]), "{ctx}");
        assert_eq!(cfg.pixels.rescale_factor, case["rescale_factor"].as_f64().unwrap(), "{ctx}");
        assert_eq!(cfg.pixels.do_resize, case["do_resize"].as_bool().unwrap(), "{ctx}");
        assert_eq!(cfg.pixels.do_rescale, case["do_rescale"].as_bool().unwrap(), "{ctx}");
        assert_eq!(cfg.pixels.do_normalize, case["do_normalize"].as_bool().unwrap(), "{ctx}");
        for c in 0..3 {
            assert_eq!(cfg.pixels.image_mean[c], case["image_mean"][c].as_f64().unwrap(), "{ctx}");
            assert_eq!(cfg.pixels.image_std[c], case["image_std"][c].as_f64().unwrap(), "{ctx}");
        }
    }
}
