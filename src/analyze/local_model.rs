//! The loaded model as a [`WindowModel`]: the job's worker thread builds the window's prompt and
//! runs the audio and vision encoders itself (`model.prepare`), then hands the merged prompt to
//! the engine thread as batch work ([`EngineService::submit_batch`]), where it is decoded in the
//! same batched steps as interactive answers but never ahead of them. Greedy decoding: a job's
//! result does not depend on a seed, and a resumed job answers its windows as the first run would.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::events::TimeBase;
use super::model::{Answer, AskError, ModelTraits, Question, WindowModel};
use crate::engine::error_message::candle_message;
use crate::engine::generate::GenerateParams;
use crate::engine::media::{frame_rule, MediaItem, VideoClip};
use crate::engine::model_dir::LoadedModel;
use crate::engine::processor::{build_prompt, BuiltPrompt, PromptOptions};
use crate::engine::sampling::SamplingParams;
use crate::engine::service::{BatchJob, EngineService, JobEvent, StdSink};
use crate::models::family::Family;

/// Events of one answer in flight between the engine thread and the job's worker: text chunks
/// are small and the worker reads continuously, so a few dozen absorb any scheduling hiccup.
const EVENT_BUFFER: usize = 64;
/// How often a waiting worker looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);
/// Qwen3-Omni's audio encoder: 100 mel frames a second, downsampled to 13 tokens.
const OMNI_AUDIO_TOKENS_PER_S: f64 = 13.0;

/// The loaded model behind the engine thread.
pub struct EngineModel {
    lm: Arc<LoadedModel>,
    engine: Arc<EngineService>,
    traits: ModelTraits,
}

impl EngineModel {
    pub fn new(lm: Arc<LoadedModel>, engine: Arc<EngineService>) -> Self {
        let audio_rate_hz =
            lm.processor.audio.as_ref().filter(|_| lm.model.accepts_audio()).map(|a| a.sampling_rate as u32);
        let traits = ModelTraits {
            video: lm.processor.video.clone(),
            rule: frame_rule(lm.family),
            audio_rate_hz,
            audio_tokens_per_s: OMNI_AUDIO_TOKENS_PER_S,
            // Qwen3-VL writes the frames' times as text between them; Qwen3-Omni's time
            // positions start at the clip.
            time_base: match lm.family {
                Family::Qwen3Omni => TimeBase::Relative,
                Family::Qwen3Vl | Family::Qwen3VlMoe => TimeBase::Absolute,
            },
            context: lm.model.decoder().config().max_position_embeddings,
            identity: String::new(),
        };
        let identity = format!(
            "{} {}; context {:?}; video pixels {}–{} per {}",
            lm.family.name(),
            lm.dir.as_ref().map_or_else(|| "<embedded>".into(), |d| d.display().to_string()),
            traits.context,
            traits.video.pixels.min_pixels,
            traits.video.pixels.max_pixels,
            if matches!(lm.family, Family::Qwen3Omni) { "frame" } else { "clip" },
        );
        let traits = ModelTraits { identity, ..traits };
        Self { lm, engine, traits }
    }
}

impl WindowModel for EngineModel {
    fn traits(&self) -> &ModelTraits {
        &self.traits
    }

    fn answer(&self, q: Question, stop: &AtomicBool) -> Result<Answer, AskError> {
        let failed = |m: String| AskError::Failed(m);
        let t0 = Instant::now();
        let built = question_prompt(&self.lm, q.prompt, q.clip).map_err(failed)?;
        // The answer must fit too: the engine would cut it short at the end of the context.
        if let Some(context) = self.traits.context {
            let need = built.inputs.ids.len() + q.max_new_tokens;
            if need > context {
                return Err(failed(format!(
                    "the prompt has {} tokens and may be answered with {}: more than the model's context of {context}; \
                     lower the fps, the window or max_tokens",
                    built.inputs.ids.len(),
                    q.max_new_tokens
                )));
            }
        }
        let prepared = self.lm.model.prepare(&built.inputs).map_err(|e| failed(candle_message(&e)))?;
        let encode_ms = t0.elapsed().as_secs_f64() * 1e3;
        let prompt_tokens = built.inputs.ids.len();

        let t1 = Instant::now();
        let params = GenerateParams {
            sampling: SamplingParams::default(),
            max_new_tokens: q.max_new_tokens,
            stop_ids: self.lm.stop_ids(),
        };
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

/// The model inputs of a question: one user turn with the window's clip (its sound track
/// interleaved when it has one) and the text.
pub fn question_prompt(lm: &LoadedModel, text: String, clip: Option<VideoClip>) -> Result<BuiltPrompt, String> {
    let mut parts = Vec::new();
    let mut media = Vec::new();
    let use_audio_in_video = clip.as_ref().is_some_and(|c| c.audio.is_some());
    if let Some(clip) = clip {
        parts.push(serde_json::json!({"type": "video", "video": "window"}));
        media.push(MediaItem::Video(clip));
    }
    parts.push(serde_json::json!({"type": "text", "text": text}));
    let messages = serde_json::json!([{"role": "user", "content": parts}]);
    let opts = PromptOptions { add_generation_prompt: true, use_audio_in_video, template_vars: Default::default() };
    build_prompt(lm, &messages, &media, &opts).map_err(|e| e.to_string())
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
