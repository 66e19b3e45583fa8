//! The processor: what transformers' `Qwen3OmniMoeProcessor` / `Qwen3VLProcessor` do
//! between a conversation and the model — render the chat template, preprocess every media
//! item (log-mel, resize + patchify), expand the placeholders, tokenise — producing the
//! model's [`MultimodalInputs`].
//!
//! The conversation is JSON in the Hugging Face chat format (what templates read); the media
//! parts' decoded content comes alongside as [`MediaItem`]s, in order.

use candle_core::{Device, Tensor};

use super::media::MediaItem;
use super::model_dir::LoadedModel;
use crate::models::family::MultimodalModel;
use crate::models::multimodal::{MultimodalInputs, VideoInput, VisualInput};
use crate::preprocess::{log_mel_spectrogram, preprocess_image, preprocess_video, PreprocessError};
use crate::prompt::expand::{expand, ExpandError, PlaceholderTokens, VideoExpansion};
use crate::prompt::template::TemplateError;
use crate::prompt::tokenizer::TokenizerError;

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
    #[error("{src}: {problem}")]
    Media { src: String, problem: String },
    #[error("tensor: {}", super::error_message::candle_message(.0))]
    Tensor(#[from] candle_core::Error),
}

/// The processor's output.
#[derive(Debug, Clone)]
pub struct BuiltPrompt {
    pub inputs: MultimodalInputs,
    /// The chat template's output (one placeholder per media item).
    pub rendered: String,
}

/// The media kind of a content part in HF chat format (`{"type": "image", "image": …}` or
/// the typeless `{"image": …}` templates also accept), if it is one.
pub fn media_kind(part: &serde_json::Value) -> Option<&'static str> {
    let ty = part.get("type").and_then(|t| t.as_str());
    ["image", "audio", "video"].into_iter().find(|k| ty == Some(*k) || (ty.is_none() && part.get(*k).is_some()))
}

/// The media parts of a conversation in order, as `(kind, source)`.
pub fn media_parts(messages: &serde_json::Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for m in messages.as_array().into_iter().flatten() {
        for part in m.get("content").and_then(|c| c.as_array()).into_iter().flatten() {
            if let Some(kind) = media_kind(part) {
                let src = part.get(kind).and_then(|s| s.as_str()).unwrap_or_default().to_string();
                out.push((kind, src));
            }
        }
    }
    out
}

/// Builds the model inputs of a conversation given in the Hugging Face chat format (a JSON
/// array of messages; content a string or a list of typed parts). `media` holds the
/// decoded media of the messages' media parts, in order.
pub fn build_prompt(
    lm: &LoadedModel,
    messages: &serde_json::Value,
    media: &[MediaItem],
    opts: &PromptOptions,
) -> Result<BuiltPrompt, ProcessError> {
    let parts = media_parts(messages);
    if parts.len() != media.len() {
        return Err(ProcessError::Invalid(format!(
            "{} media parts in the messages but {} media items given",
            parts.len(),
            media.len()
        )));
    }
    for ((kind, src), item) in parts.iter().zip(media) {
        let given = match item {
            MediaItem::Image(_) => "image",
            MediaItem::Audio(_) => "audio",
            MediaItem::Video(_) => "video",
        };
        if *kind != given {
            return Err(ProcessError::Invalid(format!(
                "media part {src:?} is a {kind} but the item given for it is a {given}"
            )));
        }
    }
    let rendered = lm.template.render(messages, opts.add_generation_prompt, &opts.template_vars)?;

    let dev = &lm.device;
    let tok = placeholder_tokens(lm)?;
    let omni = matches!(lm.model, MultimodalModel::Omni(_));
    let use_av = opts.use_audio_in_video && omni;

    // All audios of the prompt, in sequence order (standalone clips and, with
    // use_audio_in_video, the tracks of videos), are featurised as one batch like the
    // reference processor does.
    let mut clips: Vec<(&str, &[f32])> = Vec::new();
    for ((_, src), item) in parts.iter().zip(media) {
        match item {
            MediaItem::Audio(a) => clips.push((src, a)),
            MediaItem::Video(v) if use_av => clips.push((
                src,
                v.audio.as_deref().ok_or_else(|| ProcessError::Media {
                    src: src.clone(),
                    problem: "use_audio_in_video is set but this video has no audio track".into(),
                })?,
            )),
            _ => {}
        }
    }
    let (audios, audio_counts) = audio_batch(lm, &clips)?;
    let mut audio_count = audio_counts.into_iter();

    let (mut images, mut videos) = (Vec::new(), Vec::new());
    let (mut image_tokens, mut video_exp, mut audio_tokens) = (Vec::new(), Vec::new(), Vec::new());
    for ((_, src), item) in parts.iter().zip(media) {
        let named = |e: PreprocessError| ProcessError::Media { src: src.clone(), problem: e.to_string() };
        match item {
            MediaItem::Image(img) => {
                let p = preprocess_image(img, &lm.processor.image).map_err(named)?;
                image_tokens.push(p.n_tokens);
                images
                    .push(VisualInput { pixel_values: tensor2(p.pixel_values, p.row_len, dev)?, grid_thw: p.grid_thw });
            }
            MediaItem::Audio(_) => audio_tokens.push(audio_count.next().expect("one count per clip; this is a bug")),
            MediaItem::Video(clip) => {
                let p = preprocess_video(&clip.frames, clip.fps, &lm.processor.video).map_err(named)?;
                let merge = lm.processor.video.pixels.merge_size;
                let merged = [p.grid_thw[0], p.grid_thw[1] / merge, p.grid_thw[2] / merge];
                video_exp.push(if !omni {
                    VideoExpansion::Timestamped {
                        tokens_per_group: merged[1] * merged[2],
                        timestamps: p.grid_timestamps_s.clone(),
                    }
                } else if use_av {
                    VideoExpansion::WithAudio {
                        merged_grid: merged,
                        second_per_grid: p.second_per_grid,
                        position_id_per_seconds: position_id_per_seconds(&lm.model)
                            .expect("audio-in-video is only built for Qwen3-Omni; this is a bug"),
                        audio_tokens: audio_count.next().expect("one count per clip; this is a bug"),
                    }
                } else {
                    VideoExpansion::Plain { tokens: p.n_tokens }
                });
                videos.push(VideoInput {
                    visual: VisualInput {
                        pixel_values: tensor2(p.pixel_values, p.row_len, dev)?,
                        grid_thw: p.grid_thw,
                    },
                    second_per_grid: p.second_per_grid as f32,
                });
            }
        }
    }
    let expanded = expand(&rendered, &tok, &image_tokens, &video_exp, &audio_tokens)?;
    let token_ids = lm.tokenizer.encode(&expanded)?;
    Ok(BuiltPrompt {
        inputs: MultimodalInputs { ids: token_ids, audios, images, videos, use_audio_in_video: use_av },
        rendered,
    })
}

fn tensor2(data: Vec<f32>, row_len: usize, dev: &Device) -> candle_core::Result<Tensor> {
    let rows = data.len() / row_len.max(1);
    Tensor::from_vec(data, (rows, row_len), dev)
}

/// Log-mel features of a batch of clips as the reference extractor computes them with
/// `padding=True`: every clip is zero-padded to the longest before the STFT (so the log
/// floor `max − 8` is taken over the padded row), then only its own `len / hop` frames are
/// kept. Returns `[mel, frames]` tensors and the token count of each clip.
fn audio_batch(lm: &LoadedModel, clips: &[(&str, &[f32])]) -> Result<(Vec<Tensor>, Vec<usize>), ProcessError> {
    if clips.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let (Some(cfg), Some(n_window)) = (&lm.processor.audio, audio_window(&lm.model)) else {
        return Err(ProcessError::Invalid(format!("{} takes no audio input", lm.family.name())));
    };
    let longest = clips.iter().map(|(_, c)| c.len()).max().expect("non-empty");
    let mut feats = Vec::with_capacity(clips.len());
    let mut counts = Vec::with_capacity(clips.len());
    for &(src, clip) in clips {
        let frames = clip.len() / cfg.hop_length;
        if frames == 0 {
            return Err(ProcessError::Media {
                src: src.into(),
                problem: format!(
                    "audio of {} samples is shorter than one {} ms hop of the feature extractor",
                    clip.len(),
                    cfg.hop_length * 1000 / cfg.sampling_rate.max(1)
                ),
            });
        }
        let named = |e: PreprocessError| ProcessError::Media { src: src.into(), problem: e.to_string() };
        let mel = if clip.len() == longest {
            log_mel_spectrogram(clip, cfg).map_err(named)?
        } else {
            let mut padded = clip.to_vec();
            padded.resize(longest, cfg.padding_value as f32);
            log_mel_spectrogram(&padded, cfg).map_err(named)?
        };
        let full = Tensor::from_vec(mel.data, (mel.n_mels, mel.n_frames), &lm.device)?;
        feats.push(full.narrow(1, 0, frames)?.contiguous()?);
        counts.push(crate::models::audio_encoder::audio_token_count(frames, n_window));
    }
    Ok((feats, counts))
}

fn audio_window(model: &MultimodalModel) -> Option<usize> {
    match model {
        MultimodalModel::Omni(t) => Some(t.audio.config().n_window),
        MultimodalModel::Vl(_) => None,
    }
}

/// TMRoPE positions per second (Qwen3-Omni only).
fn position_id_per_seconds(model: &MultimodalModel) -> Option<f64> {
    match model {
        MultimodalModel::Omni(t) => Some(t.config().thinker_config.position_id_per_seconds as f64),
        MultimodalModel::Vl(_) => None,
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
