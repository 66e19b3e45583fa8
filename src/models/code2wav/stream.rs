//! Streaming Code2Wav: frames arrive a few at a time and each decode, once enough are pending,
//! emits the samples that became final. Two ways:
//!
//! * **Carried state** (`left_context: None`, the default): the decoder keeps what its next
//!   decode needs — each pre-transformer layer's keys and values of the last `sliding_window − 1`
//!   frames, each causal conv's last input samples, each look-ahead transposed conv's last input
//!   ([`ConvTape`]) — so every frame is decoded exactly once and the chunks concatenate to the
//!   full decode, whatever the chunk sizes.
//! * **Re-decoded window** (`Some(c)`, spec §8.10, what vLLM-Omni does): the window
//!   `codes[s − c .. e]` (c frames of left context before the new frames `s..e`) is decoded
//!   from scratch and samples `[c·U − A, (e − s + c)·U − A)` of it are emitted, U = samples per
//!   frame, A = look-ahead samples. The first A of them are the tail the previous decode could not
//!   produce yet. With `c ≥` [`Code2Wav::exact_left_context`] this equals the full decode up to
//!   rounding; with less, the first samples of each chunk differ slightly.
//!
//! Either way the chunks join gap-free and without duplicates to `U·T − A` samples, the length
//! of the full decode. The weights are passed to each call, so one model serves many streams.

use candle_core::{DType, Result};

use super::transformer::TransformerState;
use super::{Code2Wav, CodesError};
use crate::models::layers::conv::ConvTape;

/// How a stream decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// `None`: carry the decoder's state between decodes (exact; each frame decoded once).
    /// `Some(c)`: re-decode `c` frames before the new ones each time (vLLM-Omni: 25).
    pub left_context: Option<usize>,
    /// Decode once this many new frames are pending (1: on every push). `finish` decodes the rest.
    pub min_new_frames: usize,
    /// The same for the first decode of the stream: small, so the first audio comes early
    /// (one frame yields 80 ms minus the look-ahead tail).
    pub first_new_frames: usize,
}

impl Default for StreamConfig {
    /// Carried state, 25 frames (2 s) per decode as vLLM-Omni.
    fn default() -> Self {
        Self { left_context: None, min_new_frames: 25, first_new_frames: 25 }
    }
}

/// The decoder's own state in carried-state mode.
#[derive(Debug, Default)]
struct Carried {
    transformer: TransformerState,
    tape: ConvTape,
}

/// Per-utterance streaming state.
#[derive(Debug)]
pub struct Code2WavStream {
    cfg: StreamConfig,
    /// Frame-major codes from frame `first_kept` on: the left context plus pending frames.
    frames: Vec<i64>,
    first_kept: usize,
    /// Frames decoded so far (`s` of the next decode).
    decoded: usize,
    /// Frames pushed so far (`e` of the next decode).
    pushed: usize,
    /// Samples emitted so far, to check that chunks join exactly.
    emitted: usize,
    carried: Option<Carried>,
}

impl Code2WavStream {
    /// A new stream for `model`. The left context must cover the look-ahead tail
    /// (at least one frame for the real model), or every chunk boundary would leave a hole.
    pub fn new(model: &Code2Wav, cfg: StreamConfig) -> Result<Self> {
        let c = model.config();
        let min_context = c.lookahead_samples().div_ceil(c.total_upsample());
        if let Some(left) = cfg.left_context.filter(|&l| l < min_context) {
            candle_core::bail!(
                "streaming left context of {left} frames cannot re-emit the {}-sample look-ahead tail; use at least {min_context}",
                c.lookahead_samples()
            )
        }
        if cfg.min_new_frames == 0 || cfg.first_new_frames == 0 {
            candle_core::bail!("min_new_frames and first_new_frames must be at least 1")
        }
        let carried = cfg.left_context.is_none().then(Carried::default);
        Ok(Self { cfg, frames: Vec::new(), first_kept: 0, decoded: 0, pushed: 0, emitted: 0, carried })
    }

    /// Frames pushed so far.
    pub fn pushed_frames(&self) -> usize {
        self.pushed
    }

    /// Samples emitted so far.
    pub fn emitted_samples(&self) -> usize {
        self.emitted
    }

    /// Appends frame-major codes (`frames[t·Q + q]`, any number of whole frames) and returns the
    /// samples that became final (empty while fewer than `min_new_frames` are pending).
    pub fn push(&mut self, model: &Code2Wav, frames: &[i64]) -> Result<Vec<f32>> {
        let q = model.config().num_quantizers;
        if !frames.len().is_multiple_of(q) {
            return Err(CodesError::PartialFrame { len: frames.len(), quantizers: q }.into());
        }
        // Check ranges now, so a bad frame is reported at the push that brought it.
        if !frames.is_empty() {
            model.row_ids(frames)?;
        }
        self.frames.extend_from_slice(frames);
        self.pushed += frames.len() / q;
        let due = if self.decoded == 0 { self.cfg.first_new_frames } else { self.cfg.min_new_frames };
        if self.pushed - self.decoded >= due {
            return self.decode_pending(model);
        }
        Ok(Vec::new())
    }

    /// Decodes whatever is pending and ends the stream. The samples emitted over the whole
    /// stream then number `U·T − A`, as the full decode of the T frames.
    pub fn finish(mut self, model: &Code2Wav) -> Result<Vec<f32>> {
        if self.pushed == 0 {
            return Err(CodesError::NoFrames.into());
        }
        if self.pushed > self.decoded {
            return self.decode_pending(model);
        }
        Ok(Vec::new())
    }

    fn decode_pending(&mut self, model: &Code2Wav) -> Result<Vec<f32>> {
        let c = model.config();
        let (q, u, a) = (c.num_quantizers, c.total_upsample(), c.lookahead_samples());
        let (s, e) = (self.decoded, self.pushed);
        if let Some(carried) = &mut self.carried {
            // Only the new frames are kept (first_kept == decoded in this mode).
            let new = &self.frames[(s - self.first_kept) * q..(e - self.first_kept) * q];
            carried.tape.rewind();
            let _span = tracing::trace_span!("code2wav.step", frames = e - s).entered();
            let wav = model.decode_frames_stream(new, &mut carried.transformer, &mut carried.tape)?;
            // Host copy: the samples leave the model here (to the caller's audio sink).
            let out = wav.to_dtype(DType::F32)?.to_vec1::<f32>()?;
            self.emitted += out.len();
            debug_assert_eq!(self.emitted, c.output_len(e), "stream chunks must join exactly; this is a bug");
            self.decoded = e;
            self.frames.clear();
            self.first_kept = e;
            return Ok(out);
        }
        let left = self.cfg.left_context.expect("re-decoding mode has a context");
        let context = left.min(s);
        let window = &self.frames[(s - context - self.first_kept) * q..(e - self.first_kept) * q];
        let _span = tracing::trace_span!("code2wav.step", frames = e - s, context).entered();
        let wav = model.decode_frames(window)?;
        // Global sample g of the full decode is sample g − (s − context)·U of this window.
        let from = if s == 0 { 0 } else { context * u - a };
        let to = wav.dim(0)?;
        debug_assert_eq!(self.emitted, (s - context) * u + from, "stream chunks must join exactly; this is a bug");
        // Host copy: the samples leave the model here.
        let out = wav.narrow(0, from, to - from)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        self.emitted += out.len();
        self.decoded = e;
        // Keep only the frames the next decode can re-read.
        let keep_from = e.saturating_sub(left);
        if keep_from > self.first_kept {
            self.frames.drain(..(keep_from - self.first_kept) * q);
            self.first_kept = keep_from;
        }
        Ok(out)
    }
}
