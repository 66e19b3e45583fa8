//! Streaming Code2Wav (spec §8.10, what vLLM-Omni does): frames arrive a few at a time; once
//! enough are pending, the window `codes[s − c .. e]` (c frames of left context before the new
//! frames `s..e`) is re-decoded and samples `[c·U − A, (e − s + c)·U − A)` of that decode are
//! emitted, U = samples per frame, A = look-ahead samples. The first A of them are the tail the
//! previous decode could not produce yet, so the emitted chunks concatenate gap-free and
//! without duplicates to `U·T − A` samples, the length of the full decode. With
//! `left_context ≥` [`Code2Wav::exact_left_context`] they equal the full decode up to rounding;
//! with less, the first samples of each chunk differ slightly (truncated attention and conv history).
//!
//! The state holds codes only; the weights are passed to each call, so one model serves many
//! streams.

use candle_core::{DType, Result};

use super::{Code2Wav, CodesError};

/// How a stream re-decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamConfig {
    /// Frames before the new ones that each decode re-reads (vLLM-Omni: 25).
    pub left_context: usize,
    /// Decode once this many new frames are pending (1: on every push). `finish` decodes the rest.
    pub min_new_frames: usize,
    /// The same for the first decode of the stream: small, so the first audio comes early
    /// (one frame yields 80 ms minus the look-ahead tail).
    pub first_new_frames: usize,
}

impl Default for StreamConfig {
    /// vLLM-Omni's defaults: 25 frames (2 s) per decode, 25 frames of left context.
    fn default() -> Self {
        Self { left_context: 25, min_new_frames: 25, first_new_frames: 25 }
    }
}

/// Per-utterance streaming state.
#[derive(Debug, Clone)]
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
}

impl Code2WavStream {
    /// A new stream for `model`. The left context must cover the look-ahead tail
    /// (at least one frame for the real model), or every chunk boundary would leave a hole.
    pub fn new(model: &Code2Wav, cfg: StreamConfig) -> Result<Self> {
        let c = model.config();
        let min_context = c.lookahead_samples().div_ceil(c.total_upsample());
        if cfg.left_context < min_context {
            candle_core::bail!(
                "streaming left context of {} frames cannot re-emit the {}-sample look-ahead tail; use at least {min_context}",
                cfg.left_context,
                c.lookahead_samples()
            )
        }
        if cfg.min_new_frames == 0 || cfg.first_new_frames == 0 {
            candle_core::bail!("min_new_frames and first_new_frames must be at least 1")
        }
        Ok(Self { cfg, frames: Vec::new(), first_kept: 0, decoded: 0, pushed: 0, emitted: 0 })
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
        let context = self.cfg.left_context.min(s);
        let window = &self.frames[(s - context - self.first_kept) * q..(e - self.first_kept) * q];
        let wav = model.decode_frames(window)?;
        // Global sample g of the full decode is sample g − (s − context)·U of this window.
        let from = if s == 0 { 0 } else { context * u - a };
        let to = wav.dim(0)?;
        debug_assert_eq!(self.emitted, (s - context) * u + from, "stream chunks must join exactly; this is a bug");
        let out = wav.narrow(0, from, to - from)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        self.emitted += out.len();
        self.decoded = e;
        // Keep only the frames the next decode can re-read.
        let keep_from = e.saturating_sub(self.cfg.left_context);
        if keep_from > self.first_kept {
            self.frames.drain(..(keep_from - self.first_kept) * q);
            self.first_kept = keep_from;
        }
        Ok(out)
    }
}
