//! Frame sampling and the video pipeline against transformers' video processors.

use super::{as_usize, max_abs_diff, read_f32, read_json, read_rgb, usize_list};
use crate::preprocess::{
    preprocess_video, sample_frame_indices, FrameSamplingRule, VideoFrames, VideoProcessorConfig, VideoProcessorKind,
};

#[test]
fn frame_sampling_matches_both_references() {
    let cases = read_json("video_cases.json");
    let rows = cases["sampling"].as_array().unwrap();
    for row in rows {
        let total = as_usize(&row["total"]);
        let (native, target) = (row["native_fps"].as_f64().unwrap(), row["target_fps"].as_f64().unwrap());
        let (mn, mx) = (as_usize(&row["min_frames"]), as_usize(&row["max_frames"]));
        let omni = sample_frame_indices(FrameSamplingRule::QwenOmniUtils, total, native, target, mn, mx);
        if row["omni"].get("error").is_some() {
            assert!(omni.is_err(), "omni {row}: Python raised, we returned {omni:?}");
        } else {
            let s = omni.unwrap_or_else(|e| panic!("omni {row}: {e}"));
            assert_eq!(s.indices, usize_list(&row["omni"]["indices"]), "omni {row}");
            let want_fps = row["omni"]["sample_fps"].as_f64().unwrap();
            assert!((s.sample_fps - want_fps).abs() <= 1e-12 * want_fps, "omni {row}: fps {}", s.sample_fps);
        }
        let q3 = sample_frame_indices(FrameSamplingRule::Qwen3Vl, total, native, target, mn, mx).unwrap();
        assert_eq!(q3.indices, usize_list(&row["qwen3_vl"]["indices"]), "qwen3-vl {row}");
    }
    eprintln!("frame sampling: {} cases equal for both rules", rows.len());
}

#[test]
fn video_pipeline_matches_qwen3_vl_processor() {
    let cases = read_json("video_cases.json");
    let clip = &cases["clip"];
    let cfg = VideoProcessorConfig::from_json_str(&clip["config"].to_string(), VideoProcessorKind::Qwen2Vl).unwrap();
    assert_eq!(cfg.kind, VideoProcessorKind::Qwen3Vl);
    let native_fps = clip["native_fps"].as_f64().unwrap();
    let indices = usize_list(&clip["frame_indices"]);
    let video = VideoFrames {
        frames: clip["frames"].as_array().unwrap().iter().map(|f| read_rgb(f.as_str().unwrap())).collect(),
        timestamps_s: indices.iter().map(|&i| i as f64 / native_fps).collect(),
    };
    let resized = usize_list(&clip["resized"]);
    let (h, w) = (video.frames[0].height() as usize, video.frames[0].width() as usize);
    assert_eq!(cfg.target_size(video.frames.len(), h, w).unwrap(), (resized[0], resized[1]));

    let out = preprocess_video(&video, 2.0, &cfg).unwrap();
    assert_eq!(out.grid_thw.to_vec(), usize_list(&clip["grid_thw"]));
    let shape = usize_list(&clip["pixel_values_shape"]);
    assert_eq!(out.row_len, shape[1]);
    let want = read_f32(clip["pixel_values_file"].as_str().unwrap());
    let diff = max_abs_diff(&out.pixel_values, &want);
    eprintln!("video pipeline: grid {:?}, max |diff| {diff:.3e}", out.grid_thw);
    assert!(diff <= 1e-6, "video pixel_values max |diff| {diff}");
    let stamps: Vec<f64> = clip["grid_timestamps"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(out.grid_timestamps_s, stamps);
    assert_eq!(out.second_per_grid, 1.0);
    assert_eq!(out.n_tokens, out.grid_thw.iter().product::<usize>() / 4);
}

#[test]
fn qwen2vl_processor_sampling_matches_torch_arange() {
    // Rows [total, native_fps, target_fps, min_frames, max_frames, temporal_patch, indices] made with
    // transformers 5.23 Qwen2VLVideoProcessor's arithmetic and torch.arange, including the cases where the
    // range has one more element than the frame count asked for.
    let rows = read_json("qwen2vl_video_sampling.json");
    let rows = rows.as_array().unwrap();
    let mut odd = 0;
    for r in rows {
        let got = sample_frame_indices(
            FrameSamplingRule::Qwen2VlProcessor,
            as_usize(&r[0]),
            r[1].as_f64().unwrap(),
            r[2].as_f64().unwrap(),
            as_usize(&r[3]),
            as_usize(&r[4]),
        )
        .unwrap();
        let want = usize_list(&r[6]);
        odd += usize::from(want.len() % 2 == 1);
        assert_eq!(got.indices, want, "{r}");
    }
    assert!(odd > 0, "the table must include the n + 1 cases");
}
