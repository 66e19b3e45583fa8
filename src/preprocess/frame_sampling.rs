//! Which frames of a decoded video are shown to the model (spec §5.2). Two rules exist and both are exposed:
//!
//! * [`FrameSamplingRule::QwenOmniUtils`] — qwen-omni-utils / qwen-vl-utils `smart_nframes` (the official
//!   Qwen3-Omni pipeline samples frames before the HF processor sees them): `n = total / native_fps ·
//!   target_fps`, clamped to `[ceil2(min_frames), floor2(min(max_frames, total))]` and to `total`, floored to
//!   an even number; indices `torch.linspace(0, total − 1, n).round()`.
//! * [`FrameSamplingRule::Qwen3Vl`] — transformers' `Qwen3VLVideoProcessor.sample_frames`:
//!   `n = int(total / native_fps · target_fps)` clamped to `[min_frames, max_frames]` and to `total`;
//!   indices `numpy.linspace(0, total − 1, n).round()`. An odd `n` is allowed (the last frame is repeated at
//!   patchify time).
//!
//! Rounding of the indices reproduces each reference: torch's CPU `linspace` runs in `f32`, computing
//! `start + step·i` for the first half and `end − step·(n − 1 − i)` for the second, with fused multiply-adds
//! (how the AVX2 / AVX-512 builds of ATen evaluate it); numpy's in `f64` as `i·step + start`. Both round halves
//! to even.

use super::{PreprocessError, Result};

/// Frames per temporal patch assumed by the qwen-omni-utils rule (`FRAME_FACTOR`).
const FRAME_FACTOR: usize = 2;

/// Which reference's frame-sampling rule to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSamplingRule {
    /// qwen-omni-utils `smart_nframes` + `torch.linspace` (Qwen3-Omni official pipeline).
    QwenOmniUtils,
    /// transformers `Qwen3VLVideoProcessor.sample_frames` (Qwen3-VL).
    Qwen3Vl,
    /// transformers `Qwen2VLVideoProcessor.sample_frames` (what `Qwen3OmniMoeProcessor` runs):
    /// `n = floor2(min(max(T/fps·target, min), floor2(min(max, T)), T))`, indices
    /// `torch.arange(0, T, T/n).int()` — which can yield n + 1 indices when `T/(T/n)` rounds up.
    Qwen2VlProcessor,
}

/// The frames to keep and the rate they represent.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameSample {
    /// Indices into the decoded frames, ascending (repeats possible when sampling densely).
    pub indices: Vec<usize>,
    /// Effective sampling rate in frames per second: `n / total · native_fps`. Pass it to the video pipeline:
    /// Qwen3-Omni's TMRoPE uses `temporal_patch_size / sample_fps` seconds per temporal grid.
    pub sample_fps: f64,
}

/// Chooses which of `total_frames` frames (decoded at `native_fps`) to keep for a target rate of `target_fps`,
/// keeping between `min_frames` and `max_frames` frames.
pub fn sample_frame_indices(
    rule: FrameSamplingRule,
    total_frames: usize,
    native_fps: f64,
    target_fps: f64,
    min_frames: usize,
    max_frames: usize,
) -> Result<FrameSample> {
    let fail = |detail: String| PreprocessError::FrameSampling { total_frames, detail };
    if total_frames == 0 {
        return Err(fail("the video has no frames".to_owned()));
    }
    if !(native_fps.is_finite() && native_fps > 0.0) {
        return Err(fail(format!("native fps must be > 0, got {native_fps}")));
    }
    if !(target_fps.is_finite() && target_fps > 0.0) {
        return Err(fail(format!("target fps must be > 0, got {target_fps}")));
    }
    let duration_frames = total_frames as f64 / native_fps * target_fps;
    let indices = match rule {
        FrameSamplingRule::QwenOmniUtils => {
            let lo = min_frames.div_ceil(FRAME_FACTOR) * FRAME_FACTOR;
            let hi = max_frames.min(total_frames) / FRAME_FACTOR * FRAME_FACTOR;
            let n = duration_frames.max(lo as f64).min(hi as f64).min(total_frames as f64);
            let n = (n / FRAME_FACTOR as f64).floor() as usize * FRAME_FACTOR;
            if !(FRAME_FACTOR..=total_frames).contains(&n) {
                return Err(PreprocessError::TooFewFrames {
                    frames: total_frames,
                    needed: FRAME_FACTOR,
                    detail: format!("qwen-omni-utils sampling chose {n} frames"),
                });
            }
            torch_linspace_rounded(total_frames - 1, n)
        }
        FrameSamplingRule::Qwen2VlProcessor => {
            let hi = (max_frames.min(total_frames) / FRAME_FACTOR * FRAME_FACTOR) as f64;
            let n = duration_frames.max(min_frames as f64).min(hi).min(total_frames as f64);
            let n = (n / FRAME_FACTOR as f64).floor() as usize * FRAME_FACTOR;
            if n == 0 {
                return Err(PreprocessError::TooFewFrames {
                    frames: total_frames,
                    needed: FRAME_FACTOR,
                    detail: "Qwen2-VL processor sampling chose 0 frames".to_owned(),
                });
            }
            torch_arange_truncated(total_frames, n)
        }
        FrameSamplingRule::Qwen3Vl => {
            // Python: min(max(int(x), min_frames), max_frames, total)
            let n = (duration_frames as usize).max(min_frames).min(max_frames).min(total_frames);
            if n == 0 {
                return Err(fail("max_frames is 0".to_owned()));
            }
            numpy_linspace_rounded(total_frames - 1, n)
        }
    };
    let sample_fps = indices.len() as f64 / total_frames as f64 * native_fps;
    Ok(FrameSample { indices, sample_fps })
}

/// `torch.linspace(0, end, n).round().long()` as computed by ATen's CPU kernel in `f32` with FMA.
fn torch_linspace_rounded(end: usize, n: usize) -> Vec<usize> {
    if n == 1 {
        return vec![0];
    }
    let end_f = end as f32;
    let step = end_f / (n - 1) as f32;
    let halfway = n / 2;
    (0..n)
        .map(|i| {
            let v = if i < halfway { step.mul_add(i as f32, 0.0) } else { (-step).mul_add((n - 1 - i) as f32, end_f) };
            v.round_ties_even().max(0.0) as usize
        })
        .collect()
}

/// `torch.arange(0, total, total / n).int()`: ATen sizes the range as `ceil(total / step)` and
/// computes `i · step` in f64, stores f32, then truncates.
fn torch_arange_truncated(total: usize, n: usize) -> Vec<usize> {
    let step = total as f64 / n as f64;
    let size = (total as f64 / step).ceil() as usize;
    (0..size).map(|i| ((i as f64 * step) as f32) as usize).collect()
}

/// `numpy.linspace(0, end, n).round().astype(int)`.
fn numpy_linspace_rounded(end: usize, n: usize) -> Vec<usize> {
    super::mel_filters::linspace(0.0, end as f64, n).into_iter().map(|v| v.round_ties_even() as usize).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_ten_seconds_at_two_fps() {
        let s = sample_frame_indices(FrameSamplingRule::QwenOmniUtils, 300, 30.0, 2.0, 4, 768).unwrap();
        assert_eq!(s.indices.len(), 20);
        assert_eq!(s.sample_fps, 2.0);
        assert_eq!((s.indices[0], s.indices[19]), (0, 299));
    }

    #[test]
    fn too_short_for_omni_rule() {
        let err = sample_frame_indices(FrameSamplingRule::QwenOmniUtils, 1, 25.0, 2.0, 4, 768).unwrap_err();
        assert!(matches!(err, PreprocessError::TooFewFrames { frames: 1, .. }), "{err:?}");
        let ok = sample_frame_indices(FrameSamplingRule::Qwen3Vl, 1, 25.0, 2.0, 4, 768).unwrap();
        assert_eq!(ok.indices, vec![0]);
    }

    #[test]
    fn rejects_bad_rates() {
        assert!(sample_frame_indices(FrameSamplingRule::Qwen3Vl, 10, 0.0, 2.0, 4, 768).is_err());
        assert!(sample_frame_indices(FrameSamplingRule::Qwen3Vl, 10, 30.0, f64::NAN, 4, 768).is_err());
        assert!(sample_frame_indices(FrameSamplingRule::Qwen3Vl, 0, 30.0, 2.0, 4, 768).is_err());
    }
}
