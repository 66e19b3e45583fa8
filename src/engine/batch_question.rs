//! One question about one piece of media (a video window, a page), answered by the loaded model
//! as batch work: the caller's thread builds the prompt and runs the audio and vision encoders
//! itself (`model.prepare`), then hands the merged prompt to the engine thread
//! ([`EngineService::submit_batch`]), where it is decoded in the same batched steps as
//! interactive answers but never ahead of them. Greedy decoding: a job's result does not depend
//! on a seed, and a resumed job answers as the first run would. Video jobs and OCR both ask
//! through this.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::error_message::candle_message;
use crate::engine::generate::GenerateParams;
use crate::engine::media::MediaItem;
use crate::engine::model_dir::LoadedModel;
use crate::engine::processor::{build_prompt, BuiltPrompt, PromptOptions};
use crate::engine::sampling::SamplingParams;
use crate::engine::service::{BatchJob, EngineService, JobEvent, StdSink};

/// Events of one answer in flight between the engine thread and the asking thread: text chunks
/// are small and the asker reads continuously, so a few dozen absorb any scheduling hiccup.
const EVENT_BUFFER: usize = 64;
/// How often a waiting asker looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// The model's answer with its cost.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Preprocessing and the audio/vision encoders.
    pub encode_ms: f64,
    /// Queueing, the decoder's prompt pass and generation.
    pub generate_ms: f64,
}

/// Why a question went unanswered.
#[derive(Debug, Clone, PartialEq)]
pub enum AskError {
    /// The job was cancelled or the daemon is stopping.
    Interrupted,
    Failed(String),
}

/// The loaded model behind the engine thread, asked one question at a time per caller.
pub struct BatchAsker {
    lm: Arc<LoadedModel>,
    engine: Arc<EngineService>,
}

impl BatchAsker {
    pub fn new(lm: Arc<LoadedModel>, engine: Arc<EngineService>) -> Self {
        Self { lm, engine }
    }

    pub fn model(&self) -> &LoadedModel {
        &self.lm
    }

    /// Prompt + answer tokens the model takes (`max_position_embeddings`).
    pub fn context(&self) -> Option<usize> {
        self.lm.model.decoder().config().max_position_embeddings
    }

    /// Answers `text` about `media`; returns [`AskError::Interrupted`] soon after `stop` is set.
    pub fn ask(
        &self,
        text: String,
        media: Option<MediaItem>,
        max_new_tokens: usize,
        stop: &AtomicBool,
    ) -> Result<Answer, AskError> {
        let t0 = Instant::now();
        let built = question_prompt(&self.lm, text, media).map_err(AskError::Failed)?;
        self.answer(built, t0, max_new_tokens, stop)
    }

    /// Answers a whole conversation (`messages` in the chat format, its media parts matched by
    /// `media` in order, `tools` declared to the template when given).
    pub fn ask_conversation(
        &self,
        messages: &serde_json::Value,
        media: &[MediaItem],
        tools: Option<serde_json::Value>,
        max_new_tokens: usize,
        stop: &AtomicBool,
    ) -> Result<Answer, AskError> {
        let mut template_vars = serde_json::Map::new();
        if let Some(t) = tools {
            template_vars.insert("tools".into(), t);
        }
        let opts = PromptOptions { add_generation_prompt: true, use_audio_in_video: false, template_vars };
        let t0 = Instant::now();
        let built = build_prompt(&self.lm, messages, media, &opts).map_err(|e| AskError::Failed(e.to_string()))?;
        self.answer(built, t0, max_new_tokens, stop)
    }

    /// Runs the encoders here and the decoder on the engine thread; `t0` is when preprocessing began.
    fn answer(
        &self,
        built: BuiltPrompt,
        t0: Instant,
        max_new_tokens: usize,
        stop: &AtomicBool,
    ) -> Result<Answer, AskError> {
        let failed = |m: String| AskError::Failed(m);
        // The answer must fit too: the engine would cut it short at the end of the context.
        if let Some(context) = self.context() {
            let need = built.inputs.ids.len() + max_new_tokens;
            if need > context {
                return Err(failed(format!(
                    "the prompt has {} tokens and may be answered with {max_new_tokens}: more than the model's \
                     context of {context}; ask for less media or fewer tokens",
                    built.inputs.ids.len(),
                )));
            }
        }
        let prepared = self.lm.model.prepare(&built.inputs).map_err(|e| failed(candle_message(&e)))?;
        let encode_ms = t0.elapsed().as_secs_f64() * 1e3;
        let prompt_tokens = built.inputs.ids.len();

        let t1 = Instant::now();
        let params =
            GenerateParams { sampling: SamplingParams::default(), max_new_tokens, stop_ids: self.lm.stop_ids() };
        let (tx, rx) = sync_channel(EVENT_BUFFER);
        if stop.load(Ordering::Relaxed) {
            return Err(AskError::Interrupted); // stopped while the encoders ran
        }
        let cancelled = Arc::new(AtomicBool::new(false));
        let job = BatchJob {
            inputs: built.inputs,
            prepared,
            params,
            sink: Box::new(StdSink(tx)),
            received: Instant::now(),
            cancelled: cancelled.clone(),
        };
        if self.engine.submit_batch(job).is_err() {
            return Err(AskError::Failed("the engine has stopped".into()));
        }
        let (text, completion_tokens) = collect(&rx, stop).inspect_err(|_| cancelled.store(true, Ordering::Relaxed))?;
        Ok(Answer { text, prompt_tokens, completion_tokens, encode_ms, generate_ms: t1.elapsed().as_secs_f64() * 1e3 })
    }
}

/// The model inputs of a question: one user turn with the media (a video's sound track
/// interleaved when it has one) and the text.
pub fn question_prompt(lm: &LoadedModel, text: String, media: Option<MediaItem>) -> Result<BuiltPrompt, String> {
    let mut parts = Vec::new();
    let mut items = Vec::new();
    let use_audio_in_video = matches!(&media, Some(MediaItem::Video(c)) if c.audio.is_some());
    if let Some(item) = media {
        let kind = match &item {
            MediaItem::Image(_) => "image",
            MediaItem::Audio(_) => "audio",
            MediaItem::Video(_) => "video",
        };
        parts.push(serde_json::json!({"type": kind, kind: "attached"}));
        items.push(item);
    }
    parts.push(serde_json::json!({"type": "text", "text": text}));
    let messages = serde_json::json!([{"role": "user", "content": parts}]);
    let opts = PromptOptions { add_generation_prompt: true, use_audio_in_video, template_vars: Default::default() };
    build_prompt(lm, &messages, &items, &opts).map_err(|e| e.to_string())
}

/// Reads one answer's events until it ends, or until `stop` (dropping the receiver then tells
/// the engine to stop that answer at its next token).
fn collect(rx: &Receiver<JobEvent>, stop: &AtomicBool) -> Result<(String, usize), AskError> {
    let mut text = String::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(AskError::Interrupted);
        }
        match rx.recv_timeout(STOP_POLL) {
            Ok(JobEvent::Text(t)) => text.push_str(&t),
            Ok(JobEvent::Audio(_)) => {}
            Ok(JobEvent::Done(summary)) => return Ok((text, summary.completion_tokens)),
            Ok(JobEvent::Failed(m)) => return Err(AskError::Failed(m)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(AskError::Failed("the engine stopped before the answer ended".into()))
            }
        }
    }
}
