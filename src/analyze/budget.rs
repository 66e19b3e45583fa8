//! How long a window may be: the frames it samples (at the job's rate, within the processor's
//! frame limits) and its sound, as tokens, must fit the model's context with room for the
//! prompt and the answer. A window that would not fit is shortened (the job reports the length
//! it used) rather than refused; only a single frame group too large for the context is an error.

use super::model::ModelTraits;
use crate::preprocess::sample_frame_indices;

/// Prompt text around the media (instructions, template) besides the task: generous against
/// the real prompt.
pub const PROMPT_RESERVE: usize = 256;
/// Tokens around each frame group besides its pixels: vision start/end, and Qwen3-VL's
/// `<12.5 seconds>` text (about six tokens).
pub const GROUP_OVERHEAD: usize = 8;
/// Shortest window worth analysing.
pub const MIN_WINDOW_S: f64 = 2.0;

/// The video's geometry as the planner needs it.
#[derive(Debug, Clone, Copy)]
pub struct VideoShape {
    pub width: u32,
    pub height: u32,
    /// Native frame rate.
    pub fps: f64,
}

/// Tokens one window of `seconds` costs: its sampled frames after merging, plus its sound.
pub fn window_tokens(
    traits: &ModelTraits,
    shape: VideoShape,
    fps: f64,
    seconds: f64,
    audio: bool,
) -> Result<usize, String> {
    let cfg = &traits.video;
    let total = ((seconds * shape.fps).round() as usize).max(1);
    let frames = sample_frame_indices(traits.rule, total, shape.fps, fps, cfg.min_frames, cfg.max_frames)
        .map_err(|e| e.to_string())?
        .indices
        .len();
    let (th, tw) = cfg.target_size(frames, shape.height as usize, shape.width as usize).map_err(|e| e.to_string())?;
    let p = cfg.pixels.patch_size * cfg.pixels.merge_size;
    let groups = frames.div_ceil(cfg.pixels.temporal_patch_size);
    let visual = groups * ((th / p) * (tw / p) + GROUP_OVERHEAD);
    let sound = if audio { (seconds * traits.audio_tokens_per_s).ceil() as usize + 2 } else { 0 };
    Ok(visual + sound)
}

/// The window length to use: `requested`, shortened until a window fits `context −
/// max_new_tokens − PROMPT_RESERVE − the task` tokens (a task of `task_bytes` bytes is at most
/// that many tokens, usually a third) and the processor's frame limit keeps the job's rate.
pub fn fit_window(
    traits: &ModelTraits,
    shape: VideoShape,
    fps: f64,
    requested: f64,
    audio: bool,
    max_new_tokens: usize,
    task_bytes: usize,
) -> Result<f64, String> {
    // More frames than the processor takes would silently lower the rate.
    let mut seconds = requested.min(traits.video.max_frames as f64 / fps).max(MIN_WINDOW_S.min(requested));
    let Some(context) = traits.context else { return Ok(seconds) };
    let budget = context.saturating_sub(max_new_tokens + PROMPT_RESERVE + task_bytes);
    loop {
        let tokens = window_tokens(traits, shape, fps, seconds, audio)?;
        if tokens <= budget {
            return Ok(seconds);
        }
        if seconds <= MIN_WINDOW_S {
            return Err(format!(
                "a {seconds:.1} s window of this {}x{} video at {fps} fps needs {tokens} tokens, more than the model's \
                 context leaves ({budget} of {context} after the answer's {max_new_tokens}); lower the fps or the \
                 video pixel budget",
                shape.width, shape.height
            ));
        }
        // Shrink in proportion, a little more to absorb the rounding to frame groups, to whole
        // seconds (windows people can read).
        seconds = (seconds * budget as f64 / tokens as f64 * 0.95).floor().max(MIN_WINDOW_S);
    }
}
