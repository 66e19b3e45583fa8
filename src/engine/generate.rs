//! The generation loop: merge the prompt (encoders, scatter, positions), prefill the
//! decoder, then decode one token at a time until a stop id, the token budget, or the
//! caller says stop. Generated tokens continue 1-D from the prompt's largest position
//! (`cache_len + rope_delta` on all three axes, spec §3.3).

use std::time::Instant;

use candle_core::{DType, Result, Tensor};

use super::sampling::{top_n, Sampler, SamplingParams};
use crate::models::family::MultimodalModel;
use crate::models::layers::rotary::Positions3d;
use crate::models::multimodal::{MultimodalInputs, PreparedPrompt};
use crate::models::text_decoder::DecoderCache;

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A stop id was generated (it is included in `token_ids`).
    Eos,
    /// `max_new_tokens` (or the end of the model's context) reached.
    Length,
    /// The caller asked to stop.
    Cancelled,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    pub sampling: SamplingParams,
    pub max_new_tokens: usize,
    /// Generation ends after emitting any of these.
    pub stop_ids: Vec<u32>,
}

/// Result of one generation, with the timings `omnid ask --json` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerationOutput {
    pub token_ids: Vec<u32>,
    pub stop_reason: StopReason,
    pub prompt_tokens: usize,
    /// The five largest logits at the first generated position: `(id, value)`.
    pub first_step_top5: Vec<(u32, f32)>,
    /// Encoders + decoder prefill + first logits.
    pub prefill_ms: f64,
    /// From the start of the call to the first sampled token.
    pub first_token_ms: f64,
    /// Tokens after the first, per second of decode time (0 when fewer than 2 tokens).
    pub decode_tokens_per_s: f64,
}

/// Runs one generation. `on_token` sees every token as it is chosen and returns `false`
/// to stop early (cancellation).
pub fn generate(
    model: &MultimodalModel,
    inputs: &MultimodalInputs,
    params: &GenerateParams,
    on_token: impl FnMut(u32) -> bool,
) -> Result<GenerationOutput> {
    generate_observed(model, inputs, params, None, |_| true, on_token)
}

/// [`generate`] that also hands out, right after the prompt pass, `hidden_states[capture]`
/// of every prompt row `[S, hidden]` (transformers' numbering, see
/// `DecoderStack::forward_capturing`): what the talker needs from the thinker. `on_prefill`
/// returns `false` to stop before the first token.
pub fn generate_observed(
    model: &MultimodalModel,
    inputs: &MultimodalInputs,
    params: &GenerateParams,
    capture: Option<usize>,
    mut on_prefill: impl FnMut(Option<Tensor>) -> bool,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<GenerationOutput> {
    let (mut seq, captured) = Sequence::prefill(model, inputs, params, capture)?;
    if !on_prefill(captured) {
        seq.cancel();
    }
    while let Some(next) = seq.next_token() {
        if !on_token(next) {
            seq.cancel();
            break;
        }
        if seq.wants_step() {
            decode_step(model, &mut [&mut seq])?;
        }
    }
    Ok(seq.finish())
}

/// One generation in progress: its KV cache, sampler, and the logits of its next position.
/// [`generate_observed`] drives one; the engine service drives many, stepping them together
/// with [`decode_step`] (continuous batching). The cycle is: [`Sequence::next_token`] samples
/// from the pending logits, then, while [`Sequence::wants_step`], a decode step computes the
/// next logits.
pub struct Sequence {
    cache: DecoderCache,
    rope_delta: f32,
    sampler: Sampler,
    /// Prompt and generated ids (the repetition penalty's window).
    seen: Vec<u32>,
    token_ids: Vec<u32>,
    logits: Vec<f32>,
    budget: usize,
    stop_ids: Vec<u32>,
    stop: Option<StopReason>,
    prompt_tokens: usize,
    first_step_top5: Vec<(u32, f32)>,
    start: Instant,
    prefill_ms: f64,
    first_token_ms: f64,
    decode_start: Option<Instant>,
    /// The prompt pass still to run.
    pending: Option<PendingPrompt>,
}

/// A prompt whose decoder pass runs in chunks.
struct PendingPrompt {
    prepared: PreparedPrompt,
    /// Rows already through the decoder.
    done: usize,
    capture: Option<usize>,
    /// `hidden_states[capture]` of the rows done, one tensor per chunk.
    captured: Vec<Tensor>,
}

impl Sequence {
    /// Checks the request, merges the prompt and runs the prompt pass. With `capture`, also
    /// returns `hidden_states[capture]` of the prompt rows `[S, hidden]`.
    pub fn prefill(
        model: &MultimodalModel,
        inputs: &MultimodalInputs,
        params: &GenerateParams,
        capture: Option<usize>,
    ) -> Result<(Self, Option<Tensor>)> {
        let mut seq = Self::start(model, inputs, params, capture)?;
        loop {
            if let Some(captured) = seq.prefill_chunk(model, usize::MAX)? {
                return Ok((seq, captured));
            }
        }
    }

    /// Checks the request and merges the prompt (the audio and vision encoders run here); the
    /// decoder's prompt pass is left to [`Sequence::prefill_chunk`], so a scheduler can run it
    /// in pieces between other answers' decode steps.
    pub fn start(
        model: &MultimodalModel,
        inputs: &MultimodalInputs,
        params: &GenerateParams,
        capture: Option<usize>,
    ) -> Result<Self> {
        Self::check(model, inputs, params)?;
        let start = Instant::now();
        let prepared = model.prepare(inputs)?;
        Self::with_prepared(model, inputs, prepared, params, capture, start)
    }

    /// [`Sequence::start`] for a prompt whose encoders already ran (`model.prepare(inputs)` on
    /// another thread: video jobs merge their windows off the engine thread).
    pub fn start_prepared(
        model: &MultimodalModel,
        inputs: &MultimodalInputs,
        prepared: PreparedPrompt,
        params: &GenerateParams,
        capture: Option<usize>,
    ) -> Result<Self> {
        Self::check(model, inputs, params)?;
        if prepared.positions.len() != inputs.ids.len() {
            candle_core::bail!(
                "the merged prompt has {} rows for {} prompt tokens (a bug)",
                prepared.positions.len(),
                inputs.ids.len()
            )
        }
        Self::with_prepared(model, inputs, prepared, params, capture, Instant::now())
    }

    fn check(model: &MultimodalModel, inputs: &MultimodalInputs, params: &GenerateParams) -> Result<()> {
        params.sampling.validate().map_err(candle_core::Error::msg)?;
        if inputs.ids.is_empty() {
            candle_core::bail!("the prompt is empty: nothing to generate from")
        }
        if params.max_new_tokens == 0 {
            candle_core::bail!("max_new_tokens must be at least 1")
        }
        if let Some(max) = model.decoder().config().max_position_embeddings {
            if inputs.ids.len() >= max {
                candle_core::bail!(
                    "the prompt has {} tokens, the model's context is {max} (max_position_embeddings): shorten it or lower the media budget",
                    inputs.ids.len()
                )
            }
        }
        Ok(())
    }

    fn with_prepared(
        model: &MultimodalModel,
        inputs: &MultimodalInputs,
        prepared: PreparedPrompt,
        params: &GenerateParams,
        capture: Option<usize>,
        start: Instant,
    ) -> Result<Self> {
        let dec = model.decoder();
        let context = dec.config().max_position_embeddings;
        // Generation also stops at the end of the context.
        let budget = params.max_new_tokens.min(context.map_or(usize::MAX, |m| m - inputs.ids.len()));
        let prompt_tokens = prepared.positions.len();
        Ok(Self {
            cache: dec.new_cache(inputs.ids.len() + budget),
            rope_delta: prepared.rope_delta,
            sampler: Sampler::new(params.sampling.clone()),
            seen: inputs.ids.clone(),
            token_ids: Vec::new(),
            first_step_top5: Vec::new(),
            logits: Vec::new(),
            budget,
            stop_ids: params.stop_ids.clone(),
            stop: None,
            prompt_tokens,
            prefill_ms: 0.0,
            start,
            first_token_ms: 0.0,
            decode_start: None,
            pending: Some(PendingPrompt { prepared, done: 0, capture, captured: Vec::new() }),
        })
    }

    /// Runs up to `max_rows` more prompt rows through the decoder. After the last, the sequence
    /// has the logits of its first token and this returns `Some` of the captured
    /// `hidden_states[capture]` of every prompt row (`None` inside when none was asked for);
    /// before that it returns `None`. Chunks give the same result as one pass (the same causal
    /// attention over the cache), to float rounding.
    pub fn prefill_chunk(&mut self, model: &MultimodalModel, max_rows: usize) -> Result<Option<Option<Tensor>>> {
        let Some(p) = self.pending.as_mut() else {
            candle_core::bail!("the prompt pass has already run; this is a bug")
        };
        let dec = model.decoder();
        let total = p.prepared.positions.len();
        let n = max_rows.max(1).min(total - p.done);
        // The whole prompt in one pass uses the prepared tensors as they are.
        let (embeds, pos, deepstack) = if n == total {
            (p.prepared.embeds.clone(), p.prepared.positions.clone(), p.prepared.deepstack.clone())
        } else {
            p.prepared.chunk(p.done, n)?
        };
        let hidden = match p.capture {
            Some(k) => {
                let (h, c) = dec.forward_capturing(&embeds, &pos, &mut self.cache, deepstack.as_ref(), k)?;
                p.captured.push(c.squeeze(0)?);
                h
            }
            None => dec.forward(&embeds, &pos, &mut self.cache, deepstack.as_ref())?,
        };
        p.done += n;
        if p.done < total {
            return Ok(None);
        }
        let p = self.pending.take().expect("checked above");
        self.logits = row_logits(model, &hidden.narrow(1, n - 1, 1)?)?.pop().expect("one row");
        self.first_step_top5 = top_n(&self.logits, 5);
        self.prefill_ms = self.start.elapsed().as_secs_f64() * 1e3;
        let captured = match p.captured.len() {
            0 => None,
            1 => p.captured.into_iter().next(),
            _ => Some(Tensor::cat(&p.captured, 0)?),
        };
        Ok(Some(captured))
    }

    /// True until the prompt pass has run.
    pub fn is_prefilling(&self) -> bool {
        self.pending.is_some()
    }

    /// Samples the next token from the pending logits; `None` once the sequence has ended (or
    /// while its prompt pass has not finished).
    /// A stop id or the last token of the budget ends it (the token is still returned).
    pub fn next_token(&mut self) -> Option<u32> {
        if self.stop.is_some() || self.pending.is_some() || self.wants_step() {
            return None;
        }
        let next = self.sampler.sample(&self.logits, &self.seen);
        if self.token_ids.is_empty() {
            self.first_token_ms = self.start.elapsed().as_secs_f64() * 1e3;
            self.decode_start = Some(Instant::now());
        }
        self.token_ids.push(next);
        self.seen.push(next);
        if self.stop_ids.contains(&next) {
            self.stop = Some(StopReason::Eos);
        } else if self.token_ids.len() >= self.budget {
            self.stop = Some(StopReason::Length);
        }
        Some(next)
    }

    /// True when the last token is chosen but its logits are not computed yet.
    pub fn wants_step(&self) -> bool {
        self.stop.is_none() && self.pending.is_none() && self.cache.len() < self.prompt_tokens + self.token_ids.len()
    }

    /// Ends the sequence at the caller's request (overrides a stop id or the budget reached by
    /// the last token, as the caller declined that token's delivery).
    pub fn cancel(&mut self) {
        self.stop = Some(StopReason::Cancelled);
    }

    /// Why it ended, once it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// Prompt tokens (after media expansion) and tokens generated so far.
    pub fn token_counts(&self) -> (usize, usize) {
        (self.prompt_tokens, self.token_ids.len())
    }

    /// The result (a sequence not ended counts as `Length`).
    pub fn finish(self) -> GenerationOutput {
        let decode_tokens_per_s = match self.decode_start {
            Some(t) if self.token_ids.len() > 1 => (self.token_ids.len() - 1) as f64 / t.elapsed().as_secs_f64(),
            _ => 0.0,
        };
        GenerationOutput {
            stop_reason: self.stop.unwrap_or(StopReason::Length),
            prompt_tokens: self.prompt_tokens,
            first_step_top5: self.first_step_top5,
            prefill_ms: self.prefill_ms,
            first_token_ms: self.first_token_ms,
            decode_tokens_per_s,
            token_ids: self.token_ids,
        }
    }
}

/// One decode step for every sequence in `seqs` (each must [`Sequence::wants_step`]): their
/// last tokens go through the decoder as one batch ([`TextDecoder::forward_rows`]) and each
/// gets the logits of its next position. On an error every cache is rolled back, so each
/// sequence can be retried (alone, to find the one at fault).
///
/// [`TextDecoder::forward_rows`]: crate::models::text_decoder::TextDecoder::forward_rows
pub fn decode_step(model: &MultimodalModel, seqs: &mut [&mut Sequence]) -> Result<()> {
    if let Some(i) = seqs.iter().position(|s| !s.wants_step()) {
        candle_core::bail!("decode step for sequence {i}, which has no token waiting; this is a bug")
    }
    if seqs.is_empty() {
        return Ok(());
    }
    let _span = tracing::trace_span!("thinker.step", rows = seqs.len()).entered();
    let dec = model.decoder();
    let last: Vec<u32> = seqs.iter().map(|s| *s.token_ids.last().expect("wants_step implies a token")).collect();
    let mut pos = Positions3d::default();
    for s in seqs.iter() {
        pos.push_text(s.cache.len() as f32 + s.rope_delta);
    }
    let lengths: Vec<usize> = seqs.iter().map(|s| s.cache.len()).collect();
    let result = (|| {
        let emb = dec.embed(&last)?.unsqueeze(1)?;
        let mut caches: Vec<&mut DecoderCache> = seqs.iter_mut().map(|s| &mut s.cache).collect();
        let h = dec.forward_rows(&emb, &pos, &mut caches)?;
        row_logits(model, &h)
    })();
    match result {
        Ok(rows) => {
            for (s, logits) in seqs.iter_mut().zip(rows) {
                s.logits = logits;
            }
            Ok(())
        }
        Err(e) => {
            for (s, len) in seqs.iter_mut().zip(lengths) {
                s.cache.truncate(len);
            }
            Err(e)
        }
    }
}

/// Logits of one position per row, `hidden: [N, 1, H]`, as host vectors (the sampler needs
/// them on the host). Non-finite logits (an f16 overflow, a broken checkpoint) are an error:
/// sampling from them would silently pick token 0.
fn row_logits(model: &MultimodalModel, hidden: &Tensor) -> Result<Vec<Vec<f32>>> {
    let rows: Vec<Vec<f32>> = model.decoder().logits(hidden)?.squeeze(1)?.to_dtype(DType::F32)?.to_vec2()?;
    rows.into_iter().map(finite).collect()
}

fn finite(logits: Vec<f32>) -> Result<Vec<f32>> {
    if let Some(i) = logits.iter().position(|l| !l.is_finite()) {
        candle_core::bail!(
            "the model produced a non-finite logit ({} for token {i}); with --dtype f16 activations can overflow, try bf16 or f32",
            logits[i]
        )
    }
    Ok(logits)
}

/// Logits for every prompt position and the final-norm hidden states (parity tests, debugging).
pub fn prompt_forward(model: &MultimodalModel, inputs: &MultimodalInputs) -> Result<(Tensor, Tensor)> {
    let dec = model.decoder();
    let prepared = model.prepare(inputs)?;
    let mut cache = dec.new_cache(inputs.ids.len());
    let hidden =
        dec.forward(&prepared.embeds, &prepared.positions, &mut cache, prepared.deepstack.as_ref())?.squeeze(0)?;
    let logits = dec.logits(&hidden)?;
    Ok((hidden, logits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_logits_are_an_error_not_token_zero() {
        assert!(finite(vec![0.5, -1.0]).is_ok());
        let e = finite(vec![0.5, f32::NAN, 1.0]).unwrap_err().to_string();
        assert!(e.contains("token 1") && e.contains("non-finite"), "{e}");
        assert!(finite(vec![f32::INFINITY]).is_err());
    }
}
