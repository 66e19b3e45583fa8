//! Spoken answers, streamed (spec §9): the thinker, the talker (with its code predictor) and
//! Code2Wav run at the same time, each on its own thread, joined by bounded channels:
//!
//! ```text
//! thinker ──tokens──▶ talker ──frames──▶ Code2Wav
//!    │                                      │
//!    └──────text──────▶ caller ◀──audio─────┘
//! ```
//!
//! The talker starts as soon as the thinker has its prompt pass and first token, and then takes
//! one text token per 80 ms frame; Code2Wav decodes the first frame alone and then chunks of a
//! few frames. The caller's callback runs on the calling thread and sees text and audio in the
//! order they are produced. Returning `false` from it cancels: a shared flag stops every stage
//! at its next step, and every channel closes, so no stage can wait forever. All threads are
//! scoped: when this returns, they have ended.
//!
//! Channel bounds:
//! * thinker → talker: `max_new_tokens + 2` messages, the most a request can produce, so the
//!   thinker never waits for speech (text streams at full speed; speech follows at 12.5 tokens/s);
//! * talker → Code2Wav: [`FRAME_QUEUE`] frames, so the talker runs at most that far ahead of
//!   the decoder and its memory stays fixed;
//! * stages → caller: [`EVENT_QUEUE`] events; a slow caller slows the stages down (backpressure)
//!   instead of growing a queue.

mod code2wav_stage;
mod options;
mod talker_stage;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;

pub use self::options::SpeechOptions;
use super::ask::{generate_params, request_prompt, AskRequest};
use super::generate::{generate_observed, GenerateParams, GenerationOutput};
use super::model_dir::LoadedModel;
use crate::models::family::MultimodalModel;
use crate::models::multimodal::MultimodalInputs;
use crate::models::qwen3_omni::speech::OmniSpeech;
use crate::models::qwen3_omni::thinker::Thinker;
use crate::prompt::tokenizer::StreamDecoder;

/// Frames the talker may run ahead of Code2Wav (16 frames = 1.28 s of audio).
pub const FRAME_QUEUE: usize = 16;
/// Events waiting for the caller (text pieces and audio chunks).
pub const EVENT_QUEUE: usize = 64;

/// What the caller receives while the answer is produced.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseEvent {
    /// Decoded text.
    Text(String),
    /// 24 kHz mono samples in [−1, 1], in order, gap-free.
    Audio(Vec<f32>),
}

/// How speech ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeechStop {
    /// The talker emitted codec_eos.
    Eos,
    /// `max_frames` reached.
    Length,
    /// The caller cancelled.
    Cancelled,
    /// The answer had no text to speak (the thinker ended at once).
    NoText,
}

/// Measurements of the speech side.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpeechReport {
    pub speaker: String,
    pub frames: usize,
    pub samples: usize,
    pub sample_rate: u32,
    pub stop: SpeechStop,
    /// The codes, frame-major (`frames × num_code_groups`).
    #[serde(skip)]
    pub codes: Vec<Vec<u32>>,
    /// From the start of the request to the first audio chunk reaching the caller.
    pub first_audio_ms: Option<f64>,
    /// From the start of the request to the talker's first frame (codebook 0 + code predictor).
    pub talker_first_frame_ms: Option<f64>,
    /// Talker prefill (prompt rows → first codec logits).
    pub talker_prefill_ms: f64,
    /// Mean code-predictor time per frame.
    pub code_predictor_ms_per_frame: f64,
    /// Mean talker step (one codec token) time.
    pub talker_step_ms: f64,
    /// Code2Wav decodes and their mean time.
    pub code2wav_chunks: usize,
    pub code2wav_ms_per_chunk: f64,
    /// Request wall time over audio duration (below 1: faster than real time).
    pub audio_rtf: f64,
}

/// A spoken answer.
#[derive(Debug, Clone)]
pub struct SpokenAnswer {
    pub text: String,
    pub generation: GenerationOutput,
    pub speech: SpeechReport,
}

/// Where the thinker's half of a spoken answer runs.
pub enum ThinkerSource {
    /// Here, on a stage thread of its own ([`generate_observed`]).
    Run,
    /// Elsewhere: the engine service's batched decode loop, which sends the prompt pass and each
    /// token over `feed` (sized so it never has to wait) and, when the answer must stop early,
    /// finds `cancel` raised before its next step.
    Fed { feed: Receiver<ThinkerFeed>, cancel: Arc<AtomicBool> },
}

/// What a thinker running elsewhere sends to a spoken answer, in this order: the prompt
/// pass, each token, then exactly one `Done`.
pub enum ThinkerFeed {
    /// `hidden_states[accept_hidden_layer]` of the prompt rows `[S, thinker_hidden]`.
    Prompt(Tensor),
    Token(u32),
    Done(Result<GenerationOutput, String>),
}

/// Messages from the thinker to the talker.
enum ThinkerMsg {
    /// `hidden_states[accept_hidden_layer]` of the prompt rows `[S, thinker_hidden]`.
    Prompt(Tensor),
    Token(u32),
    /// The thinker has finished.
    End,
}

/// Messages from the stages to the caller's thread.
enum StageMsg {
    Event(ResponseEvent),
    Thinker(anyhow::Result<(String, GenerationOutput)>),
    Talker(anyhow::Result<talker_stage::TalkerReport>),
    Code2Wav(anyhow::Result<code2wav_stage::Code2WavReport>),
}

/// The speech models of a loaded checkpoint, or the error a user should see.
pub fn speech_models(lm: &LoadedModel) -> anyhow::Result<(&Thinker, &OmniSpeech)> {
    match &lm.model {
        MultimodalModel::Omni(t) => match &t.speech {
            Some(s) => Ok((t, s)),
            None => anyhow::bail!(
                "this Qwen3-Omni checkpoint has no speech output (enable_audio_output is false: a Thinking or \
                 Captioner model); use an Instruct checkpoint to get spoken answers"
            ),
        },
        MultimodalModel::Vl(_) => {
            anyhow::bail!(
                "{} has no speech output (no talker); spoken answers need a Qwen3-Omni Instruct checkpoint",
                lm.family.name()
            )
        }
    }
}

/// The speech models and the speaker id `opts` names, or the error a user should see: what can
/// be refused before any media is decoded or any token generated.
pub fn check_speech<'a>(
    lm: &'a LoadedModel,
    opts: &SpeechOptions,
) -> anyhow::Result<(&'a Thinker, &'a OmniSpeech, u32)> {
    let (thinker, speech) = speech_models(lm)?;
    opts.validate().map_err(anyhow::Error::msg)?;
    let speaker_id = speech.talker.config().speaker(&opts.speaker).map_err(anyhow::Error::msg)?;
    Ok((thinker, speech, speaker_id))
}

/// Answers `req` in text and speech; `on_event` sees text and audio as they are produced and
/// returns `false` to cancel (the answer so far is then returned with `SpeechStop::Cancelled`).
pub fn ask_spoken(
    lm: &LoadedModel,
    req: &AskRequest,
    opts: &SpeechOptions,
    on_event: impl FnMut(ResponseEvent) -> bool,
) -> anyhow::Result<SpokenAnswer> {
    let start = Instant::now();
    // Refuse what cannot be spoken before any media is decoded.
    check_speech(lm, opts)?;
    let built = request_prompt(lm, req)?;
    respond_spoken(lm, &built.inputs, &generate_params(lm, req), opts, start, ThinkerSource::Run, on_event)
}

/// Answers a prepared prompt (any conversation) in text and speech; `start` is when the
/// request arrived (the origin of the reported latencies); `source` says where the thinker runs.
pub fn respond_spoken(
    lm: &LoadedModel,
    inputs: &MultimodalInputs,
    params: &GenerateParams,
    opts: &SpeechOptions,
    start: Instant,
    source: ThinkerSource,
    mut on_event: impl FnMut(ResponseEvent) -> bool,
) -> anyhow::Result<SpokenAnswer> {
    let (thinker, speech, speaker_id) = check_speech(lm, opts)?;
    let cancel = AtomicBool::new(false);
    let cancel = &cancel;

    let (tok_tx, tok_rx) = sync_channel::<ThinkerMsg>(params.max_new_tokens + 2);
    let (frame_tx, frame_rx) = sync_channel::<Vec<u32>>(FRAME_QUEUE);
    let (ev_tx, ev_rx) = sync_channel::<StageMsg>(EVENT_QUEUE);

    std::thread::scope(|scope| {
        let talker_job =
            talker_stage::TalkerJob { thinker, speech, inputs, speaker_id, opts, stop_ids: &params.stop_ids, start };
        let c2w = &speech.code2wav;
        let started = spawn_stage(scope, "omnid-talker", cancel, ev_tx.clone(), StageMsg::Talker, move |_| {
            talker_job.run(tok_rx, frame_tx, cancel)
        })
        .and_then(|()| {
            spawn_stage(scope, "omnid-code2wav", cancel, ev_tx.clone(), StageMsg::Code2Wav, move |tx| {
                code2wav_stage::run(c2w, opts, frame_rx, tx, cancel)
            })
        })
        .and_then(|()| {
            spawn_stage(scope, "omnid-thinker", cancel, ev_tx, StageMsg::Thinker, move |tx| {
                let relay = TextRelay::new(lm, tok_tx, tx, cancel);
                match source {
                    ThinkerSource::Run => run_thinker(lm, thinker, inputs, params, relay),
                    ThinkerSource::Fed { feed, cancel: remote } => relay_feed(feed, &remote, relay),
                }
            })
        });
        if let Err(e) = started {
            // The stages already running see their channels close and end; the scope joins them.
            cancel.store(true, Ordering::Relaxed);
            drop(ev_rx);
            return Err(e);
        }
        collect(ev_rx, cancel, start, opts, &mut on_event)
    })
}

/// Starts one stage on its own scoped thread; its result (an error also raises the cancel flag,
/// so the other stages stop) is its last message to the caller.
fn spawn_stage<'scope, 'env, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    name: &str,
    cancel: &'env AtomicBool,
    tx: SyncSender<StageMsg>,
    wrap: fn(anyhow::Result<T>) -> StageMsg,
    work: impl FnOnce(&SyncSender<StageMsg>) -> anyhow::Result<T> + Send + 'scope,
) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(scope, move || {
            let r = work(&tx);
            if r.is_err() {
                cancel.store(true, Ordering::Relaxed);
            }
            let _ = tx.send(wrap(r));
        })
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("cannot start the {name} thread: {e}"))
}

/// The caller's side: forwards events, gathers the stage reports, cancels on request. Returns
/// once every stage has reported (their senders are all gone).
fn collect(
    ev_rx: Receiver<StageMsg>,
    cancel: &AtomicBool,
    start: Instant,
    opts: &SpeechOptions,
    on_event: &mut impl FnMut(ResponseEvent) -> bool,
) -> anyhow::Result<SpokenAnswer> {
    let mut first_audio_ms = None;
    let mut samples = 0usize;
    let (mut thinker, mut talker, mut code2wav) = (None, None, None);
    let mut cancelled = false;
    let mut last_audio = start.elapsed();
    for msg in ev_rx.iter() {
        match msg {
            StageMsg::Event(ev) => {
                if let ResponseEvent::Audio(a) = &ev {
                    first_audio_ms.get_or_insert_with(|| start.elapsed().as_secs_f64() * 1e3);
                    samples += a.len();
                    last_audio = start.elapsed();
                }
                if !cancelled && !on_event(ev) {
                    cancelled = true;
                    cancel.store(true, Ordering::Relaxed);
                }
            }
            StageMsg::Thinker(r) => thinker = Some(r),
            StageMsg::Talker(r) => talker = Some(r),
            StageMsg::Code2Wav(r) => code2wav = Some(r),
        }
    }
    // Report the first real failure (a stage that stopped because another failed reports
    // that too, as a closed channel; the original error is what the user needs).
    let (text, generation) = thinker.expect("the thinker stage always reports; this is a bug")?;
    let talker = talker.expect("the talker stage always reports; this is a bug")?;
    let code2wav = code2wav.expect("the Code2Wav stage always reports; this is a bug")?;
    let stop = if cancelled { SpeechStop::Cancelled } else { talker.stop };
    let sample_rate = 24_000;
    let audio_s = samples as f64 / sample_rate as f64;
    Ok(SpokenAnswer {
        text,
        generation,
        speech: SpeechReport {
            speaker: opts.speaker.clone(),
            frames: talker.codes.len(),
            samples,
            sample_rate,
            stop,
            codes: talker.codes,
            first_audio_ms,
            talker_first_frame_ms: talker.first_frame_ms,
            talker_prefill_ms: talker.prefill_ms,
            code_predictor_ms_per_frame: talker.code_predictor_ms_per_frame,
            talker_step_ms: talker.step_ms,
            code2wav_chunks: code2wav.chunks,
            code2wav_ms_per_chunk: code2wav.ms_per_chunk,
            audio_rtf: if audio_s > 0.0 { last_audio.as_secs_f64() / audio_s } else { 0.0 },
        },
    })
}

/// The thinker stage's outputs: tokens to the talker, decoded text to the caller.
struct TextRelay<'a> {
    tok_tx: SyncSender<ThinkerMsg>,
    ev_tx: &'a SyncSender<StageMsg>,
    decoder: StreamDecoder<'a>,
    text: String,
    failure: Option<anyhow::Error>,
    cancel: &'a AtomicBool,
}

impl<'a> TextRelay<'a> {
    fn new(
        lm: &'a LoadedModel,
        tok_tx: SyncSender<ThinkerMsg>,
        ev_tx: &'a SyncSender<StageMsg>,
        cancel: &'a AtomicBool,
    ) -> Self {
        Self { tok_tx, ev_tx, decoder: StreamDecoder::new(&lm.tokenizer), text: String::new(), failure: None, cancel }
    }

    /// The prompt pass is done; `false`: stop before the first token.
    fn prompt(&mut self, hidden: Tensor) -> bool {
        // A closed channel means the talker has stopped; text goes on.
        let _ = self.tok_tx.send(ThinkerMsg::Prompt(hidden));
        !self.cancel.load(Ordering::Relaxed)
    }

    /// One token; `false`: stop generating.
    fn token(&mut self, id: u32) -> bool {
        let _ = self.tok_tx.send(ThinkerMsg::Token(id));
        if self.cancel.load(Ordering::Relaxed) {
            return false;
        }
        match self.decoder.push(id) {
            Ok(Some(chunk)) => {
                self.text.push_str(&chunk);
                self.send_text(chunk)
            }
            Ok(None) => true,
            Err(e) => {
                self.failure = Some(e.into());
                false
            }
        }
    }

    fn send_text(&self, chunk: String) -> bool {
        self.ev_tx.send(StageMsg::Event(ResponseEvent::Text(chunk))).is_ok()
    }

    /// The thinker has ended: tells the talker, flushes the text.
    fn finish(mut self, generation: anyhow::Result<GenerationOutput>) -> anyhow::Result<(String, GenerationOutput)> {
        let _ = self.tok_tx.send(ThinkerMsg::End);
        let generation = generation?;
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        if let Some(rest) = self.decoder.finish()? {
            self.text.push_str(&rest);
            self.send_text(rest);
        }
        Ok((self.text, generation))
    }
}

/// The thinker stage run here: generation with the talker's hidden state captured.
fn run_thinker(
    lm: &LoadedModel,
    thinker: &Thinker,
    inputs: &MultimodalInputs,
    params: &GenerateParams,
    mut relay: TextRelay,
) -> anyhow::Result<(String, GenerationOutput)> {
    let accept = speech_accept_layer(thinker);
    let generation = {
        let relay = std::cell::RefCell::new(&mut relay);
        generate_observed(
            &lm.model,
            inputs,
            params,
            Some(accept),
            |hidden| relay.borrow_mut().prompt(hidden.expect("a capture was asked for; this is a bug")),
            |id| relay.borrow_mut().token(id),
        )
    };
    relay.finish(generation.map_err(anyhow::Error::from))
}

/// The thinker stage fed from elsewhere: relays the feed; when this answer must stop, raises the
/// feeder's `cancel` and waits for its `Done` (which then reports the cancelled generation).
fn relay_feed(
    feed: Receiver<ThinkerFeed>,
    cancel: &AtomicBool,
    mut relay: TextRelay,
) -> anyhow::Result<(String, GenerationOutput)> {
    let mut open = true;
    loop {
        let go_on = match feed.recv() {
            Ok(ThinkerFeed::Prompt(hidden)) => relay.prompt(hidden),
            Ok(ThinkerFeed::Token(id)) => !open || relay.token(id),
            Ok(ThinkerFeed::Done(r)) => return relay.finish(r.map_err(anyhow::Error::msg)),
            Err(_) => return relay.finish(Err(anyhow::anyhow!("the engine stopped before the answer was complete"))),
        };
        if !go_on && open {
            open = false;
            cancel.store(true, Ordering::Relaxed);
        }
    }
}

fn speech_accept_layer(thinker: &Thinker) -> usize {
    thinker.speech.as_ref().map_or(0, |s| s.talker.config().accept_hidden_layer)
}
