//! The talker (spec §7; transformers 5.23 `Qwen3OmniMoeTalkerForConditionalGeneration`): a small
//! MoE decoder whose every layer has a gated shared expert, fed sums of embeddings instead of
//! token ids, that emits codebook 0 of each 80 ms codec frame; its [`CodePredictor`] fills the
//! other codebooks. Loaded from `talker.model.*`, `talker.codec_head`, `talker.text_projection`,
//! `talker.hidden_projection` and `talker.code_predictor.*` (spec §1.2).
//!
//! The decode loop lives in [`super::talker_session`]; how the prefill rows are assembled from
//! the thinker's prompt in [`super::talker_prompt`].

use crate::models::weights::Weights;
use candle_core::{DType, Device, Module, Result, Tensor};

use super::code_predictor::CodePredictor;
use super::config::TalkerConfig;
use crate::models::layers::activation::Activation;
use crate::models::layers::linear::Linear;
use crate::models::layers::rotary::Positions3d;
use crate::models::text_decoder::{DecoderCache, DecoderStack};

/// `Qwen3OmniMoeTalkerResizeMLP`: thinker width → talker width
/// (`linear_fc2(act(linear_fc1(x)))`, both with bias).
#[derive(Debug, Clone)]
pub struct ResizeMlp {
    fc1: Linear,
    fc2: Linear,
    act: Activation,
}

impl ResizeMlp {
    fn new(cfg: &TalkerConfig, vb: Weights) -> Result<Self> {
        let f = &cfg.text_config.fields;
        let width = f.intermediate_size.unwrap_or(0);
        Ok(Self {
            fc1: Linear::new(cfg.thinker_hidden_size, width, true, vb.pp("linear_fc1"))?,
            fc2: Linear::new(width, f.hidden_size, true, vb.pp("linear_fc2"))?,
            act: f.hidden_act,
        })
    }
}

impl Module for ResizeMlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.act.apply(&self.fc1.forward(xs)?)?)
    }
}

/// Talker weights (LM, projections, code predictor).
#[derive(Debug, Clone)]
pub struct Talker {
    decoder: DecoderStack,
    /// `talker.model.codec_embedding.weight` `[vocab, hidden]`: embeds codec ids.
    codec_embedding: Tensor,
    codec_head: Linear,
    /// For token embeddings of the thinker (text rows, `tts_*` markers).
    pub text_projection: ResizeMlp,
    /// For the thinker's hidden states at multimodal rows.
    pub hidden_projection: ResizeMlp,
    pub code_predictor: CodePredictor,
    cfg: TalkerConfig,
}

impl Talker {
    /// `vb` is the checkpoint root. `cfg` must have passed [`TalkerConfig::validate`].
    pub fn new(cfg: &TalkerConfig, vb: Weights) -> Result<Self> {
        let dec_cfg = cfg.decoder_config().map_err(candle_core::Error::msg)?;
        let vt = vb.pp("talker");
        let (h, v) = (cfg.hidden_size(), cfg.vocab_size());
        Ok(Self {
            decoder: DecoderStack::new(&dec_cfg, vt.pp("model"))?,
            codec_embedding: vt.pp("model").pp("codec_embedding").get((v, h), "weight")?,
            codec_head: Linear::new(h, v, false, vt.pp("codec_head"))?,
            text_projection: ResizeMlp::new(cfg, vt.pp("text_projection"))?,
            hidden_projection: ResizeMlp::new(cfg, vt.pp("hidden_projection"))?,
            code_predictor: CodePredictor::new(cfg, vb)?,
            cfg: cfg.clone(),
        })
    }

    /// The talker config.
    pub fn config(&self) -> &TalkerConfig {
        &self.cfg
    }

    /// Activation dtype (that of the weights).
    pub fn dtype(&self) -> DType {
        self.codec_embedding.dtype()
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        self.codec_embedding.device()
    }

    /// `codec_embedding` rows of `ids` → `[ids.len(), hidden]`.
    pub fn codec_rows(&self, ids: &[u32]) -> Result<Tensor> {
        let vocab = self.cfg.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            candle_core::bail!("codec id {bad} is outside the talker's vocabulary of {vocab}")
        }
        self.codec_embedding.index_select(&Tensor::new(ids, self.device())?, 0)
    }

    /// A fresh KV cache for `positions` rows (it grows past that if needed).
    pub fn new_cache(&self, positions: usize) -> DecoderCache {
        self.decoder.new_cache(positions)
    }

    /// Runs the LM over `rows: [1, S, hidden]` at `pos`, appending to `cache`; returns the
    /// final-norm hidden state of the last row `[1, hidden]` and its codec logits (f32, host).
    pub fn forward_last(
        &self,
        rows: &Tensor,
        pos: &Positions3d,
        cache: &mut DecoderCache,
    ) -> Result<(Tensor, Vec<f32>)> {
        let hs = self.decoder.forward(rows, pos, cache, None)?; // 1, S, hidden
        let s = hs.dim(1)?;
        let last = hs.get(0)?.narrow(0, s - 1, 1)?; // 1, hidden
                                                    // Host sync: the sampler (top-k/top-p, repetition penalty) runs on the host, one row per step.
        let logits: Vec<f32> = self.codec_head.forward(&last)?.squeeze(0)?.to_dtype(DType::F32)?.to_vec1()?;
        if let Some(i) = logits.iter().position(|l| !l.is_finite()) {
            candle_core::bail!("the talker produced a non-finite logit ({} for codec id {i})", logits[i])
        }
        Ok((last, logits))
    }
}
