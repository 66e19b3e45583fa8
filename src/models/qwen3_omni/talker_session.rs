//! The talker's decode loop for one utterance (spec §7.5; transformers 5.23
//! `Qwen3OmniMoeTalkerForConditionalGeneration.prepare_inputs_for_generation`), split so a
//! pipeline can hand out each frame before it waits for the next text token:
//!
//! ```text
//! start(prefill)                  → logits of codebook 0
//! loop { next_frame()             → c0 (suppressed, penalised, picked); None at codec_eos
//!                                   code predictor → [c0, c1 .. c_{G−1}]
//!        advance(frame, text row) → one talker step on E(c0) + Σ E_g(c_g) + text row }
//! ```
//!
//! Token choice is the caller's (`pick`), so this module stays free of engine code. The caller
//! gets the logits with transformers' `suppress_tokens` already applied: every id in
//! `[vocab − 1024, vocab)` except codec_eos is −∞, so only codebook-0 entries or the end of
//! speech can be chosen.

use candle_core::{Result, Tensor};

use super::talker::Talker;
use super::talker_prompt::TalkerPrompt;
use crate::models::layers::rotary::Positions3d;
use crate::models::text_decoder::DecoderCache;

/// Per-utterance talker state.
pub struct TalkerSession<'a> {
    talker: &'a Talker,
    cache: DecoderCache,
    rope_delta: f32,
    /// Final-norm hidden state of the last row `[1, hidden]`: the code predictor's first input.
    h_last: Tensor,
    /// Codec logits for the next codebook-0 token, suppression applied.
    logits: Vec<f32>,
    /// Codebook-0 tokens chosen so far (what the repetition penalty looks at).
    history: Vec<u32>,
    frames: usize,
}

impl<'a> TalkerSession<'a> {
    /// Runs the prefill.
    pub fn start(talker: &'a Talker, prompt: &TalkerPrompt) -> Result<Self> {
        let rows = prompt.positions.len();
        let mut cache = talker.new_cache(rows + 256);
        let (h_last, logits) = talker.forward_last(&prompt.rows, &prompt.positions, &mut cache)?;
        let mut s = Self {
            talker,
            cache,
            rope_delta: prompt.rope_delta,
            h_last,
            logits: Vec::new(),
            history: Vec::new(),
            frames: 0,
        };
        s.logits = s.suppress(logits);
        Ok(s)
    }

    fn suppress(&self, mut logits: Vec<f32>) -> Vec<f32> {
        let cfg = self.talker.config();
        let eos = cfg.codec_eos_token_id as usize;
        for (i, l) in logits.iter_mut().enumerate().skip(cfg.codebook_size()) {
            if i != eos {
                *l = f32::NEG_INFINITY;
            }
        }
        logits
    }

    /// Frames produced so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Picks codebook 0 of the next frame with `pick(logits, history)` and, unless it is
    /// codec_eos (`Ok(None)`: speech is over), predicts the residual codes with
    /// `pick_residual(group, logits)`. Returns the frame `[c0, c1 .. c_{G−1}]`.
    pub fn next_frame(
        &mut self,
        pick: impl FnOnce(&[f32], &[u32]) -> u32,
        pick_residual: impl FnMut(usize, &Tensor) -> Result<u32>,
    ) -> Result<Option<Vec<u32>>> {
        let cfg = self.talker.config();
        let c0 = pick(&self.logits, &self.history);
        if c0 == cfg.codec_eos_token_id {
            return Ok(None);
        }
        if c0 as usize >= cfg.codebook_size() {
            candle_core::bail!(
                "the talker's sampler chose codec id {c0}, a suppressed control token (codebook 0 has {} entries)",
                cfg.codebook_size()
            )
        }
        self.history.push(c0);
        let _span = tracing::trace_span!("talker.frame", k = self.frames).entered();
        let codes = self.talker.code_predictor.predict_frame(&self.h_last, c0, pick_residual)?;
        self.frames += 1;
        let mut frame = Vec::with_capacity(codes.len() + 1);
        frame.push(c0);
        frame.extend(codes);
        Ok(Some(frame))
    }

    /// One talker step after `frame`: its input row is the frame's codec sum plus the text-track
    /// row `text_row` (`[hidden]`).
    pub fn advance(&mut self, frame: &[u32], text_row: &Tensor) -> Result<()> {
        let Some((&c0, codes)) = frame.split_first() else { candle_core::bail!("an empty codec frame") };
        let _span = tracing::trace_span!("talker.step").entered();
        let row = (self.talker.code_predictor.frame_codec_sum(c0, codes)? + text_row)?;
        let row = row.reshape((1, 1, ()))?;
        let pos = Positions3d::sequential(self.cache.len() as f32 + self.rope_delta, 1);
        let (h_last, logits) = self.talker.forward_last(&row, &pos, &mut self.cache)?;
        self.h_last = h_last;
        self.logits = self.suppress(logits);
        Ok(())
    }
}
