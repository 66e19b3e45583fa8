//! The generation loop: merge the prompt (encoders, scatter, positions), prefill the
//! decoder, then decode one token at a time until a stop id, the token budget, or the
//! caller says stop. Generated tokens continue 1-D from the prompt's largest position
//! (`cache_len + rope_delta` on all three axes, spec §3.3).

use std::time::Instant;

use candle_core::{DType, Result, Tensor};

use super::sampling::{top_n, Sampler, SamplingParams};
use crate::models::family::MultimodalModel;
use crate::models::layers::rotary::Positions3d;
use crate::models::multimodal::MultimodalInputs;

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
    params.sampling.validate().map_err(candle_core::Error::msg)?;
    if inputs.ids.is_empty() {
        candle_core::bail!("the prompt is empty: nothing to generate from")
    }
    if params.max_new_tokens == 0 {
        candle_core::bail!("max_new_tokens must be at least 1")
    }
    let dec = model.decoder();
    let context = dec.config().max_position_embeddings;
    if let Some(max) = context {
        if inputs.ids.len() >= max {
            candle_core::bail!(
                "the prompt has {} tokens, the model's context is {max} (max_position_embeddings): shorten it or lower the media budget",
                inputs.ids.len()
            )
        }
    }
    // Generation also stops at the end of the context.
    let budget = params.max_new_tokens.min(context.map_or(usize::MAX, |m| m - inputs.ids.len()));
    let start = Instant::now();
    let prepared = model.prepare(inputs)?;
    let mut cache = dec.new_cache(inputs.ids.len() + budget);
    let deepstack = prepared.deepstack.as_ref();
    let (hidden, captured) = match capture {
        Some(k) => {
            let (h, c) = dec.forward_capturing(&prepared.embeds, &prepared.positions, &mut cache, deepstack, k)?;
            (h, Some(c.squeeze(0)?))
        }
        None => (dec.forward(&prepared.embeds, &prepared.positions, &mut cache, deepstack)?, None),
    };
    let s = prepared.positions.len();
    let mut logits = last_logits(model, &hidden.narrow(1, s - 1, 1)?)?;
    let prefill_ms = start.elapsed().as_secs_f64() * 1e3;
    let first_step_top5 = top_n(&logits, 5);
    let go_on = on_prefill(captured);

    let mut sampler = Sampler::new(params.sampling.clone());
    let mut seen: Vec<u32> = inputs.ids.clone();
    let mut token_ids = Vec::new();
    let mut first_token_ms = 0.0;
    let mut decode_start = None;
    let mut stop_reason = if go_on { StopReason::Length } else { StopReason::Cancelled };
    while go_on && token_ids.len() < budget {
        let next = sampler.sample(&logits, &seen);
        if token_ids.is_empty() {
            first_token_ms = start.elapsed().as_secs_f64() * 1e3;
            decode_start = Some(Instant::now());
        }
        token_ids.push(next);
        seen.push(next);
        if !on_token(next) {
            stop_reason = StopReason::Cancelled;
            break;
        }
        if params.stop_ids.contains(&next) {
            stop_reason = StopReason::Eos;
            break;
        }
        if token_ids.len() == budget {
            break;
        }
        let _span = tracing::trace_span!("thinker.step").entered();
        let pos = Positions3d::sequential(cache.len() as f32 + prepared.rope_delta, 1);
        let emb = dec.embed(&[next])?.unsqueeze(0)?;
        let h = dec.forward(&emb, &pos, &mut cache, None)?;
        logits = last_logits(model, &h)?;
    }
    let decode_tokens_per_s = match decode_start {
        Some(t) if token_ids.len() > 1 => (token_ids.len() - 1) as f64 / t.elapsed().as_secs_f64(),
        _ => 0.0,
    };
    Ok(GenerationOutput {
        token_ids,
        stop_reason,
        prompt_tokens: s,
        first_step_top5,
        prefill_ms,
        first_token_ms,
        decode_tokens_per_s,
    })
}

/// Logits of a single position `[1, 1, H]` as a host vector (the sampler needs them on
/// the host; one row per step). Non-finite logits (an f16 overflow, a broken checkpoint) are
/// an error: sampling from them would silently pick token 0.
fn last_logits(model: &MultimodalModel, hidden: &Tensor) -> Result<Vec<f32>> {
    finite(model.decoder().logits(hidden)?.squeeze(0)?.squeeze(0)?.to_dtype(DType::F32)?.to_vec1()?)
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
