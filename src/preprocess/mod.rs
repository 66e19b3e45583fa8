//! Model-input preprocessing for Qwen3-Omni and Qwen3-VL: turns decoded audio samples, RGB images and video
//! frames into the flat `f32` arrays (plus shapes) the audio and vision encoders consume. No candle here; the
//! engine wraps the vectors in tensors.
//!
//! The reference is transformers 5.23 and the numbers are matched to it, not merely approximated:
//! `WhisperFeatureExtractor` (numpy path) for audio, `Qwen2VLImageProcessorPil` (`use_fast=False`) for images,
//! `Qwen3VLVideoProcessor` / `Qwen2VLVideoProcessor` for video. Where the reference's rounding depends on the
//! back end it ran on, the module docs say which one is reproduced.
//!
//! # Layout
//! | module | job |
//! |---|---|
//! | [`audio_features`] | Whisper log-mel features and the feature-extractor config (the audio token count belongs to the encoder: `models::audio_encoder::audio_token_count`) |
//! | [`mel_filters`] | Slaney mel filter bank, periodic Hann window, numpy-style `linspace` |
//! | [`smart_resize`] | target sizes for images (2-D) and videos (3-D, total pixel budget) |
//! | [`pil_resize`] | Pillow-exact separable resampling of RGB8 images (bicubic and friends) |
//! | [`patchify`] | rescale/normalise pixels and lay patches out in merge-block order |
//! | [`processor_config`] | vision-processor config keys shared by images and video, and how they resolve |
//! | [`image`] | image processor config and the image pipeline |
//! | [`frame_sampling`] | which frames of a video to keep (qwen-omni-utils and Qwen3-VL rules) |
//! | [`video`] | video processor config and the video pipeline on already-decoded frames |

pub mod audio_features;
pub mod frame_sampling;
pub mod image;
pub mod mel_filters;
pub mod patchify;
pub mod pil_resize;
pub mod processor_config;
pub mod smart_resize;
pub mod video;

#[cfg(test)]
mod tests;

pub use audio_features::{log_mel_spectrogram, FeatureExtractorConfig, MelFeatures};
pub use frame_sampling::{sample_frame_indices, FrameSample, FrameSamplingRule};
pub use image::{preprocess_image, ImageProcessorConfig, PatchifiedImage};
pub use pil_resize::{resize_rgb8, ResampleFilter};
pub use processor_config::PixelPipeline;
pub use smart_resize::{smart_resize, smart_resize_video};
pub use video::{preprocess_video, PatchifiedVideo, VideoFrames, VideoProcessorConfig, VideoProcessorKind};

/// Everything that can go wrong while preparing model inputs. Messages name the thing (config file, image
/// size, frame index, limit) and the problem.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// A preprocessor config is malformed or holds a value this implementation cannot honour.
    #[error("invalid preprocessor config ({source_name}): {detail}")]
    InvalidConfig {
        /// Which config (file path, or a description such as "feature extractor config").
        source_name: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The audio is shorter than one hop, so it yields no feature frames.
    #[error("audio too short: {samples} samples give no feature frame (hop length {hop_length})")]
    AudioTooShort {
        /// Number of input samples.
        samples: usize,
        /// The feature extractor's hop length.
        hop_length: usize,
    },
    /// An image or frame has a zero width or height.
    #[error("{what} has an empty size ({width}x{height})")]
    EmptyImage {
        /// What was being processed ("image", "video frame 3", ...).
        what: String,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// An image or frame is larger than the configured hard limit; nothing was processed.
    #[error("{what} is {width}x{height} = {pixels} pixels, over the limit of {max_pixels} pixels")]
    ImageTooLarge {
        /// What was being processed.
        what: String,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// `width * height`.
        pixels: u64,
        /// The configured limit.
        max_pixels: u64,
    },
    /// smart_resize refuses aspect ratios above 200, as transformers does.
    #[error("{height}x{width} (height x width) has aspect ratio {ratio:.1}, the limit is 200")]
    AspectRatio {
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
        /// max(h, w) / min(h, w).
        ratio: f64,
    },
    /// A size computation got arguments it cannot work with (zero sizes, zero factor, zero budget).
    #[error("cannot compute a target size for {height}x{width} (height x width): {detail}")]
    InvalidSize {
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
        /// What is wrong.
        detail: String,
    },
    /// An image must be patchified as-is (resizing disabled) but its sides are not multiples of the patch grid.
    #[error(
        "{height}x{width} (height x width) is not a multiple of {factor} (patch_size x merge_size) and resizing is off"
    )]
    NotPatchAligned {
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
        /// patch_size * merge_size.
        factor: usize,
    },
    /// A video has too few frames for the requested operation.
    #[error("video has {frames} frame(s); at least {needed} are needed ({detail})")]
    TooFewFrames {
        /// Frames available.
        frames: usize,
        /// Frames required.
        needed: usize,
        /// Which rule requires them.
        detail: String,
    },
    /// Frame sampling got inconsistent inputs (no frames, non-positive fps, ...).
    #[error("cannot sample frames from a {total_frames}-frame video: {detail}")]
    FrameSampling {
        /// Frames in the source video.
        total_frames: usize,
        /// What is wrong.
        detail: String,
    },
    /// The frames of one video do not all have the same size.
    #[error("video frame {index} is {width}x{height} but frame 0 is {first_width}x{first_height}")]
    FrameSizeMismatch {
        /// Index of the offending frame.
        index: usize,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// Width of frame 0.
        first_width: u32,
        /// Height of frame 0.
        first_height: u32,
    },
    /// The timestamps do not line up with the frames.
    #[error("video has {frames} frames but {timestamps} timestamps")]
    TimestampCount {
        /// Number of frames.
        frames: usize,
        /// Number of timestamps.
        timestamps: usize,
    },
}

/// Shorthand for results in this module.
pub type Result<T> = std::result::Result<T, PreprocessError>;
