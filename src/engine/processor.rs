//! The processor: what transformers' `Qwen3OmniMoeProcessor` / `Qwen3VLProcessor` do
//! between a conversation and the model — render the chat template, preprocess every media
//! item (log-mel, resize + patchify), expand the placeholders, tokenise — producing the
//! model's [`MultimodalInputs`].

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;

use super::model_dir::LoadedModel;
use crate::models::family::{Family, MultimodalModel};
use crate::models::multimodal::{MultimodalInputs, VideoInput, VisualInput};
use crate::preprocess::{
    log_mel_spectrogram, preprocess_image, preprocess_video, FeatureExtractorConfig, ImageProcessorConfig,
    PreprocessError, VideoFrames, VideoProcessorConfig, VideoProcessorKind,
};
use crate::prompt::expand::{expand, ExpandError, PlaceholderTokens, VideoExpansion};
use crate::prompt::messages::{ContentPart, Message};
use crate::prompt::template::TemplateError;
use crate::prompt::tokenizer::TokenizerError;

/// The preprocessor settings of a checkpoint.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Log-mel front end (models with audio input).
    pub audio: Option<FeatureExtractorConfig>,
    pub image: ImageProcessorConfig,
    pub video: VideoProcessorConfig,
}

impl ProcessorConfig {
    /// Reads `preprocessor_config.json` (and `video_preprocessor_config.json` when present).
    /// Errors are `(file, problem)`.
    pub fn from_dir(dir: &Path, family: Family) -> Result<Self, (PathBuf, String)> {
        let pre = dir.join("preprocessor_config.json");
        if !pre.exists() {
            return Err((pre, "file not found (the checkpoint's image/audio preprocessing settings)".into()));
        }
        fn err(p: &Path) -> impl Fn(PreprocessError) -> (PathBuf, String) + '_ {
            move |e| (p.to_path_buf(), e.to_string())
        }
        let video_file = dir.join("video_preprocessor_config.json");
        let video_src = if video_file.exists() { video_file } else { pre.clone() };
        let (audio, kind) = match family {
            Family::Qwen3Omni => (Some(FeatureExtractorConfig::from_file(&pre).map_err(err(&pre))?), VideoProcessorKind::Qwen2Vl),
            Family::Qwen3Vl | Family::Qwen3VlMoe => (None, VideoProcessorKind::Qwen3Vl),
        };
        let image = ImageProcessorConfig::from_file(&pre).map_err(err(&pre))?;
        let mut video = VideoProcessorConfig::from_file(&video_src, kind).map_err(err(&video_src))?;
        if family == Family::Qwen3Omni {
            // Qwen3OmniMoeProcessor passes its own per-frame budget to the video processor.
            video = video.with_omni_processor_budget();
        }
        Ok(Self { audio, image, video })
    }

    /// Settings of the embedded default model: the Qwen3-Omni values with a small pixel
    /// budget so its tiny vision tower sees few tokens.
    pub fn embedded() -> Self {
        let json = r#"{"feature_size": 128, "sampling_rate": 16000, "hop_length": 160, "n_fft": 400,
            "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2, "min_pixels": 4096, "max_pixels": 65536,
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_resize": true, "resample": 3}"#;
        let parsed = (|| -> Result<Self, PreprocessError> {
            Ok(Self {
                audio: Some(FeatureExtractorConfig::from_json_str(json)?),
                image: ImageProcessorConfig::from_json_str(json)?,
                video: VideoProcessorConfig::from_json_str(json, VideoProcessorKind::Qwen2Vl)?,
            })
        })();
        parsed.expect("the embedded processor config is static; this is a bug")
    }
}

/// A decoded media item, in the order it appears in the conversation.
#[derive(Debug, Clone)]
pub enum MediaItem {
    Image(RgbImage),
    /// Mono samples at the feature extractor's rate (16 kHz).
    Audio(Vec<f32>),
    Video(VideoClip),
}

/// Sampled video frames and, optionally, the clip's audio track (16 kHz mono).
#[derive(Debug, Clone)]
pub struct VideoClip {
    pub frames: VideoFrames,
    /// Rate the frames were sampled at (sets Omni's seconds per temporal grid).
    pub sample_fps: f64,
    pub audio: Option<Vec<f32>>,
}

/// Prompt options the processor takes.
#[derive(Debug, Clone, Default)]
pub struct PromptOptions {
    pub add_generation_prompt: bool,
    /// Interleave each video's audio track with its frames (Qwen3-Omni).
    pub use_audio_in_video: bool,
    /// Extra template variables (`tools`, `enable_thinking`, …).
    pub template_vars: serde_json::Map<String, serde_json::Value>,
}

/// Why a prompt could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error(transparent)]
    Expand(#[from] ExpandError),
    #[error("{0}")]
    Invalid(String),
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// The processor's output.
#[derive(Debug, Clone)]
pub struct BuiltPrompt {
    pub inputs: MultimodalInputs,
    /// The chat template's output (one placeholder per media item).
    pub rendered: String,
}

/// Builds the model inputs of a conversation. `media` lists the decoded media of the
/// messages' media parts, in order.
pub fn build_prompt(lm: &LoadedModel, messages: &[Message], media: &[MediaItem], opts: &PromptOptions) -> Result<BuiltPrompt, ProcessError> {
    let parts = messages.iter().flat_map(|m| &m.content).filter(|p| !matches!(p, ContentPart::Text { .. })).count();
    if parts != media.len() {
        return Err(ProcessError::Invalid(format!("{parts} media parts in the messages but {} media items given", media.len())));
    }
    let msgs = serde_json::to_value(messages).map_err(|e| ProcessError::Invalid(e.to_string()))?;
    let rendered = lm.template.render(&msgs, opts.add_generation_prompt, &opts.template_vars)?;

    let dev = &lm.device;
    let tok = placeholder_tokens(lm)?;
    let (mut images, mut videos, mut audios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut image_tokens, mut video_exp, mut audio_tokens) = (Vec::new(), Vec::new(), Vec::new());
    let n_window = audio_window(&lm.model);
    let omni = matches!(lm.model, MultimodalModel::Omni(_));
    for item in media {
        match item {
            MediaItem::Image(img) => {
                let p = preprocess_image(img, &lm.processor.image)?;
                image_tokens.push(p.n_tokens);
                images.push(VisualInput { pixel_values: tensor2(p.pixel_values, p.row_len, dev)?, grid_thw: p.grid_thw });
            }
            MediaItem::Audio(samples) => {
                let n = audio_features(lm, samples, n_window, &mut audios)?;
                audio_tokens.push(n);
            }
            MediaItem::Video(clip) => {
                let p = preprocess_video(&clip.frames, clip.sample_fps, &lm.processor.video)?;
                let merge = lm.processor.video.merge_size;
                let merged = [p.grid_thw[0], p.grid_thw[1] / merge, p.grid_thw[2] / merge];
                video_exp.push(if !omni {
                    VideoExpansion::Timestamped { tokens_per_group: merged[1] * merged[2], timestamps: p.grid_timestamps_s.clone() }
                } else if opts.use_audio_in_video {
                    let track = clip.audio.as_ref().ok_or_else(|| {
                        ProcessError::Invalid("use_audio_in_video is set but a video has no audio track".into())
                    })?;
                    let n = audio_features(lm, track, n_window, &mut audios)?;
                    VideoExpansion::WithAudio {
                        merged_grid: merged,
                        second_per_grid: p.second_per_grid as f32,
                        position_id_per_seconds: position_id_per_seconds(&lm.model),
                        audio_tokens: n,
                    }
                } else {
                    VideoExpansion::Plain { tokens: p.n_tokens }
                });
                videos.push(VideoInput {
                    visual: VisualInput { pixel_values: tensor2(p.pixel_values, p.row_len, dev)?, grid_thw: p.grid_thw },
                    second_per_grid: p.second_per_grid as f32,
                });
            }
        }
    }
    let expanded = expand(&rendered, &tok, &image_tokens, &video_exp, &audio_tokens)?;
    let token_ids = lm.tokenizer.encode(&expanded)?;
    Ok(BuiltPrompt {
        inputs: MultimodalInputs { ids: token_ids, audios, images, videos, use_audio_in_video: opts.use_audio_in_video && omni },
        rendered,
    })
}

fn tensor2(data: Vec<f32>, row_len: usize, dev: &Device) -> candle_core::Result<Tensor> {
    let rows = data.len() / row_len.max(1);
    Tensor::from_vec(data, (rows, row_len), dev)
}

/// Log-mel features of one audio, appended to `out`; returns its token count.
fn audio_features(lm: &LoadedModel, samples: &[f32], n_window: Option<usize>, out: &mut Vec<Tensor>) -> Result<usize, ProcessError> {
    let (Some(cfg), Some(n_window)) = (&lm.processor.audio, n_window) else {
        return Err(ProcessError::Invalid(format!("{} takes no audio input", lm.family.name())));
    };
    let mel = log_mel_spectrogram(samples, cfg)?;
    let frames = mel.n_frames;
    out.push(Tensor::from_vec(mel.data, (mel.n_mels, frames), &lm.device)?);
    Ok(crate::models::audio_encoder::audio_token_count(frames, n_window))
}

fn audio_window(model: &MultimodalModel) -> Option<usize> {
    match model {
        MultimodalModel::Omni(t) => Some(t.audio.config().n_window),
        MultimodalModel::Vl(_) => None,
    }
}

fn position_id_per_seconds(model: &MultimodalModel) -> f32 {
    match model {
        MultimodalModel::Omni(t) => t.config().thinker_config.position_id_per_seconds,
        MultimodalModel::Vl(_) => 1.0,
    }
}

/// Placeholder token strings, looked up from the config ids.
fn placeholder_tokens(lm: &LoadedModel) -> Result<PlaceholderTokens, ProcessError> {
    let ids = lm.model.media_tokens();
    let name = |id: u32| -> Result<String, ProcessError> {
        lm.tokenizer
            .token(id)
            .ok_or_else(|| ProcessError::Tokenizer(TokenizerError::Mismatch(format!("no token with config id {id}"))))
    };
    let opt = |id: Option<u32>| -> Result<Option<String>, ProcessError> { id.map(name).transpose() };
    Ok(PlaceholderTokens {
        image_pad: name(ids.image_pad)?,
        video_pad: name(ids.video_pad)?,
        vision_start: name(ids.vision_start)?,
        vision_end: match ids.vision_end {
            Some(id) => name(id)?,
            None => "<|vision_end|>".into(),
        },
        audio_pad: opt(ids.audio_pad)?,
        audio_start: opt(ids.audio_start)?,
        audio_end: match ids.audio_end {
            Some(id) => Some(name(id)?),
            None => lm.tokenizer.token_id("<|audio_end|>").map(|_| "<|audio_end|>".to_string()),
        },
    })
}
