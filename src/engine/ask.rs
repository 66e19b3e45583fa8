//! One question, one answer: the request behind `omnid ask` (and later the HTTP API):
//! load the media, build the conversation (optional system turn; one user turn with the
//! media in the given order and the prompt text last), run the processor, generate, and
//! stream decoded text.

use std::path::Path;

use super::generate::{generate, GenerateParams, GenerationOutput};
use super::media::MediaItem;
use super::media::{frame_rule, load_audio, load_image, load_video, VideoRequest};
use super::model_dir::LoadedModel;
use super::processor::{build_prompt, BuiltPrompt, PromptOptions};
use super::sampling::SamplingParams;
use crate::prompt::messages::{ContentPart, Message};
use crate::prompt::tokenizer::StreamDecoder;

/// A media file named by the user.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaRef {
    Image(String),
    Audio(String),
    Video(String),
}

/// What `ask` needs.
#[derive(Debug, Clone)]
pub struct AskRequest {
    pub system: Option<String>,
    pub media: Vec<MediaRef>,
    pub prompt: String,
    pub use_audio_in_video: bool,
    pub video_fps: f64,
    /// Part of each video file to use: start and optional end, in seconds.
    pub video_window: (f64, Option<f64>),
    pub sampling: SamplingParams,
    pub max_new_tokens: usize,
    /// Extra chat-template variables (e.g. `enable_thinking`).
    pub template_vars: serde_json::Map<String, serde_json::Value>,
}

/// The answer.
#[derive(Debug, Clone)]
pub struct AskOutput {
    pub text: String,
    pub generation: GenerationOutput,
}

/// Runs one request; `on_text` receives decoded text as it is generated and returns `false`
/// to stop.
pub fn ask(lm: &LoadedModel, req: &AskRequest, on_text: impl FnMut(&str) -> bool) -> anyhow::Result<AskOutput> {
    let built = request_prompt(lm, req)?;
    generate_text(lm, &built.inputs, &generate_params(lm, req), on_text)
}

/// Generates from a prepared prompt, decoding tokens to text as they come; `on_text` returns
/// `false` to stop.
pub fn generate_text(
    lm: &LoadedModel,
    inputs: &crate::models::multimodal::MultimodalInputs,
    params: &GenerateParams,
    mut on_text: impl FnMut(&str) -> bool,
) -> anyhow::Result<AskOutput> {
    let mut decoder = StreamDecoder::new(&lm.tokenizer);
    let mut text = String::new();
    let mut failure = None;
    let generation = generate(&lm.model, inputs, params, |id| match decoder.push(id) {
        Ok(Some(chunk)) => {
            text.push_str(&chunk);
            on_text(&chunk)
        }
        Ok(None) => true,
        Err(e) => {
            failure = Some(e);
            false
        }
    })?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    if let Some(rest) = decoder.finish()? {
        text.push_str(&rest);
        on_text(&rest);
    }
    Ok(AskOutput { text, generation })
}

/// The thinker's generation settings for a request.
pub fn generate_params(lm: &LoadedModel, req: &AskRequest) -> GenerateParams {
    GenerateParams { sampling: req.sampling.clone(), max_new_tokens: req.max_new_tokens, stop_ids: lm.stop_ids() }
}

/// Loads the request's media and builds its prompt (conversation, template, processor).
pub fn request_prompt(lm: &LoadedModel, req: &AskRequest) -> anyhow::Result<BuiltPrompt> {
    let rule = frame_rule(lm.family);
    let max_pixels = lm.processor.image.max_input_pixels;
    let audio_rate = lm.processor.audio.as_ref().map(|a| a.sampling_rate as u32);
    let mut media = Vec::with_capacity(req.media.len());
    let mut parts = Vec::with_capacity(req.media.len() + 1);
    for m in &req.media {
        let (item, part) = match m {
            MediaRef::Image(p) => (load_image(Path::new(p), max_pixels)?, ContentPart::Image { image: p.clone() }),
            MediaRef::Audio(p) => {
                if !lm.model.accepts_audio() {
                    anyhow::bail!("{p}: {} takes no audio input", lm.family.name());
                }
                let rate = audio_rate.expect("models with audio input have a feature extractor; this is a bug");
                (MediaItem::Audio(load_audio(Path::new(p), rate)?), ContentPart::Audio { audio: p.clone() })
            }
            MediaRef::Video(p) => {
                if req.use_audio_in_video && !lm.model.accepts_audio() {
                    anyhow::bail!("{p}: --use-audio-in-video: {} takes no audio input", lm.family.name());
                }
                let video = VideoRequest {
                    fps: req.video_fps,
                    rule,
                    processor: &lm.processor.video,
                    max_tokens: lm.model.decoder().config().max_position_embeddings,
                    audio_rate_hz: audio_rate.filter(|_| req.use_audio_in_video),
                    window: req.video_window,
                };
                (load_video(Path::new(p), &video)?, ContentPart::Video { video: p.clone() })
            }
        };
        media.push(item);
        parts.push(part);
    }
    parts.push(ContentPart::Text { text: req.prompt.clone() });
    let mut messages = Vec::new();
    if let Some(s) = &req.system {
        messages.push(Message::text("system", s));
    }
    messages.push(Message { role: "user".into(), content: parts });
    let opts = PromptOptions {
        add_generation_prompt: true,
        use_audio_in_video: req.use_audio_in_video,
        template_vars: req.template_vars.clone(),
    };
    Ok(build_prompt(lm, &serde_json::to_value(&messages)?, &media, &opts)?)
}
