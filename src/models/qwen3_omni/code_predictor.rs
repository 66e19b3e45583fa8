//! The talker's code predictor (MTP, spec §7.5; transformers 5.23
//! `Qwen3OmniMoeTalkerCodePredictorModelForConditionalGeneration`, called from
//! `Qwen3OmniMoeTalkerForConditionalGeneration.prepare_inputs_for_generation`): for every talker
//! token `c0` (codebook 0 of an 80 ms frame) it produces the residual codes `c1 .. c_{G−1}` of the
//! same frame (G = `num_code_groups`, 16 in the real model, so 15 codes).
//!
//! A small dense Qwen3 decoder (the shared [`DecoderStack`]: q/k norm, SwiGLU, plain 1-D RoPE)
//! with a fresh KV cache per frame, positions `0..G`:
//! * prefill two rows `[h_last, E_talker(c0)]` (`h_last` = the talker's final-norm hidden state,
//!   `E_talker` = `talker.model.codec_embedding`), last row → `lm_head.0` → `c1`;
//! * for g = 2..G−1: one row `codec_embedding.{g−2}(c_{g−1})` → `lm_head.{g−1}` → `c_g`.
//!
//! The last table, `codec_embedding.{G−2}`, is never an input here: the talker uses it to embed
//! `c_{G−1}` for its next input row ([`CodePredictor::frame_codec_sum`]).
//!
//! Tokens are chosen by a caller-supplied function of the logits (the engine's sampler: greedy
//! when the talker is greedy, else top-k 50, top-p 0.8, temperature 1, spec §7.6), so this
//! module stays free of engine code.

use std::path::Path;
use std::sync::Arc;

use crate::models::weights::Weights;
use candle_core::{DType, Device, Module, Result, Tensor};

use super::config::{Qwen3OmniMoeConfig, TalkerConfig};
use crate::models::checkpoint::Checkpoint;
use crate::models::layers::linear::Linear;
use crate::models::layers::rotary::Positions3d;
use crate::models::text_decoder::DecoderStack;

/// Why a frame cannot be predicted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodePredictorError {
    #[error("c0 = {c0} is not a codebook-0 entry (the codebook has {codebook_size}; control tokens such as codec_eos end speech and have no frame)")]
    C0OutOfRange { c0: u32, codebook_size: usize },
    #[error(
        "h_last has shape {dims:?}; expected the talker's hidden state [{hidden}] (or [1, {hidden}], [1, 1, {hidden}])"
    )]
    HiddenShape { dims: Vec<usize>, hidden: usize },
    #[error("the sampler chose token {token} for codebook {group}, outside the codebook of {codebook_size}")]
    SampledOutOfRange { group: usize, token: u32, codebook_size: usize },
    #[error("residual codebook {group} does not exist (codebooks 1..={last})")]
    NoSuchGroup { group: usize, last: usize },
}

impl From<CodePredictorError> for candle_core::Error {
    fn from(e: CodePredictorError) -> Self {
        candle_core::Error::Msg(e.to_string())
    }
}

/// Code predictor weights.
#[derive(Debug, Clone)]
pub struct CodePredictor {
    decoder: DecoderStack,
    /// `talker.model.codec_embedding.weight` `[talker vocab, hidden]`: embeds `c0`.
    talker_codec_embedding: Tensor,
    /// `talker.code_predictor.model.codec_embedding.{g}.weight` `[codebook, hidden]`, g = 0..G−2:
    /// table g embeds code g+1.
    codec_embedding: Vec<Tensor>,
    /// `talker.code_predictor.lm_head.{g}` `[codebook, hidden]`, g = 0..G−2: head g predicts code g+1.
    lm_head: Vec<Linear>,
    codebook_size: usize,
}

impl CodePredictor {
    /// `vb` is the checkpoint root; tensors come from `talker.code_predictor.*` and
    /// `talker.model.codec_embedding`.
    pub fn new(cfg: &TalkerConfig, vb: Weights) -> Result<Self> {
        let cp = &cfg.code_predictor_config;
        let (talker_hidden, talker_vocab) = (cfg.hidden_size(), cfg.vocab_size());
        cp.validate(talker_hidden, cfg.num_code_groups).map_err(candle_core::Error::msg)?;
        let dec_cfg = cp.decoder_config().map_err(candle_core::Error::msg)?;
        let (h, v, tables) = (cp.hidden_size, cp.vocab_size, cp.num_code_groups - 1);
        let vb_t = vb.pp("talker");
        let vb_cp = vb_t.pp("code_predictor");
        let codec_embedding = (0..tables)
            .map(|g| vb_cp.pp("model").pp("codec_embedding").pp(g).get((v, h), "weight"))
            .collect::<Result<Vec<_>>>()?;
        let lm_head =
            (0..tables).map(|g| Linear::new(h, v, false, vb_cp.pp("lm_head").pp(g))).collect::<Result<_>>()?;
        Ok(Self {
            decoder: DecoderStack::new(&dec_cfg, vb_cp.pp("model"))?,
            talker_codec_embedding: vb_t.pp("model").pp("codec_embedding").get((talker_vocab, h), "weight")?,
            codec_embedding,
            lm_head,
            codebook_size: v,
        })
    }

    /// Opens a Qwen3-Omni checkpoint directory (its `config.json` and safetensors shards) and
    /// loads the code predictor in `dtype`.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| candle_core::Error::msg(format!("{}: cannot read: {e}", path.display())))?;
        let cfg: Qwen3OmniMoeConfig = serde_json::from_str(&text)
            .map_err(|e| candle_core::Error::msg(format!("{}: not a Qwen3-Omni config: {e}", path.display())))?;
        let Some((talker, _)) =
            cfg.speech().map_err(|e| candle_core::Error::msg(format!("{}: {e}", path.display())))?
        else {
            candle_core::bail!(
                "{}: this checkpoint has no speech output (enable_audio_output is false)",
                path.display()
            )
        };
        let ckpt = Arc::new(Checkpoint::open_dir(dir).map_err(candle_core::Error::wrap)?);
        Self::new(&talker, Weights::dense(ckpt.var_builder(dtype, device)))
    }

    /// Entries per codebook; `c0` and every predicted code are below this.
    pub fn codebook_size(&self) -> usize {
        self.codebook_size
    }

    /// Codes predicted per frame (`num_code_groups − 1`).
    pub fn num_residual_codes(&self) -> usize {
        self.lm_head.len()
    }

    /// Width of `h_last`.
    pub fn hidden_size(&self) -> usize {
        self.decoder.config().hidden_size
    }

    /// Activation dtype (that of the weights).
    pub fn dtype(&self) -> DType {
        self.talker_codec_embedding.dtype()
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        self.talker_codec_embedding.device()
    }

    /// The embedding of residual code `code` of codebook `group` (1..G−1) `[hidden]`: the rows the
    /// talker sums into its next input (spec §7.5 step 3).
    pub fn residual_embedding(&self, group: usize, code: u32) -> Result<Tensor> {
        let last = self.codec_embedding.len();
        if group == 0 || group > last {
            return Err(CodePredictorError::NoSuchGroup { group, last }.into());
        }
        if code as usize >= self.codebook_size {
            return Err(CodePredictorError::SampledOutOfRange {
                group,
                token: code,
                codebook_size: self.codebook_size,
            }
            .into());
        }
        self.codec_embedding[group - 1].get(code as usize)
    }

    /// The codec part of the talker's next input row for a finished frame (spec §7.5 step 3):
    /// `E_talker(c0) + Σ_g codec_embedding.{g−1}(c_g)` over `codes = [c1 .. c_{G−1}]`, `[hidden]`.
    /// The talker adds its text-track row to this.
    pub fn frame_codec_sum(&self, c0: u32, codes: &[u32]) -> Result<Tensor> {
        if c0 as usize >= self.codebook_size {
            return Err(CodePredictorError::C0OutOfRange { c0, codebook_size: self.codebook_size }.into());
        }
        if codes.len() != self.num_residual_codes() {
            candle_core::bail!("a frame has {} residual codes, got {}", self.num_residual_codes(), codes.len())
        }
        let mut sum = self.talker_codec_embedding.get(c0 as usize)?;
        for (i, &code) in codes.iter().enumerate() {
            sum = (sum + self.residual_embedding(i + 1, code)?)?;
        }
        Ok(sum)
    }

    /// Predicts codes `c1 .. c_{G−1}` of one frame from the talker's final-norm hidden state
    /// `h_last` (`[hidden]`, `[1, hidden]` or `[1, 1, hidden]`) and the frame's codebook-0 token
    /// `c0`. `sample(group, logits)` picks code `c_group` (group = 1..G−1) from its logits
    /// `[codebook]` (model dtype, on the model's device).
    pub fn predict_frame<F>(&self, h_last: &Tensor, c0: u32, mut sample: F) -> Result<Vec<u32>>
    where
        F: FnMut(usize, &Tensor) -> Result<u32>,
    {
        let hidden = self.hidden_size();
        let dims = h_last.dims();
        if dims.last() != Some(&hidden) || dims[..dims.len() - 1].iter().any(|&d| d != 1) || dims.len() > 3 {
            return Err(CodePredictorError::HiddenShape { dims: dims.to_vec(), hidden }.into());
        }
        if c0 as usize >= self.codebook_size {
            return Err(CodePredictorError::C0OutOfRange { c0, codebook_size: self.codebook_size }.into());
        }
        let _span = tracing::trace_span!("code_predictor.frame").entered();
        let h_last = h_last.reshape((1, hidden))?.to_dtype(self.dtype())?.to_device(self.device())?;
        let c0_row = self.talker_codec_embedding.narrow(0, c0 as usize, 1)?; // 1, hidden
        let groups = self.lm_head.len() + 1;
        // Fresh cache per frame: positions restart at 0 (2 prefill rows + G−2 single steps).
        let mut cache = self.decoder.new_cache(groups);
        let mut xs = Tensor::cat(&[&h_last, &c0_row], 0)?.unsqueeze(0)?; // 1, 2, hidden
        let mut codes = Vec::with_capacity(groups - 1);
        for group in 1..groups {
            let s = xs.dim(1)?;
            let pos = Positions3d::sequential(cache.len() as f32, s);
            let hs = self.decoder.forward(&xs, &pos, &mut cache, None)?; // 1, s, hidden
            let last = hs.get(0)?.get(s - 1)?; // hidden
            let logits = self.lm_head[group - 1].forward(&last.unsqueeze(0)?)?.squeeze(0)?; // codebook
            let code = sample(group, &logits)?;
            if code as usize >= self.codebook_size {
                return Err(CodePredictorError::SampledOutOfRange {
                    group,
                    token: code,
                    codebook_size: self.codebook_size,
                }
                .into());
            }
            codes.push(code);
            if group + 1 < groups {
                xs = self.codec_embedding[group - 1].narrow(0, code as usize, 1)?.unsqueeze(0)?;
                // 1, 1, hidden
            }
        }
        Ok(codes)
    }
}
