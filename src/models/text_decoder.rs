//! The Qwen3 text decoder shared by the Omni thinker, Qwen3-VL (dense and MoE) and — with
//! its own config — the talker: token embedding, pre-norm decoder layers (GQA attention with
//! q/k norm and interleaved MRoPE; dense SwiGLU or sparse MoE FFN), final RMSNorm, lm_head
//! (spec §2). DeepStack visual features are added to the visual positions after the first
//! layers (spec §5.7). [`DecoderStack`] is the same decoder without embedding and head, for
//! the code predictor (dense layers, plain 1-D RoPE, its own embeddings and heads).

use crate::models::weights::Weights;
use candle_core::{DType, Device, Module, Result, Tensor};

use super::layers::activation::Activation;
use super::layers::attention::{AttentionConfig, DecoderAttention};
use super::layers::kv_cache::KvCache;
use super::layers::linear::{Linear, MatrixWeight};
use super::layers::mlp::GatedMlp;
use super::layers::moe::{MoeConfig, SparseMoe};
use super::layers::norm::RmsNorm;
use super::layers::rotary::{Positions3d, TextRotary};

/// Which FFN a layer uses.
#[derive(Debug, Clone)]
pub enum FfnConfig {
    Dense { intermediate_size: usize },
    Moe(MoeConfig),
}

/// Everything the decoder needs, derived from a model's text config.
#[derive(Debug, Clone)]
pub struct TextDecoderConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub attention: AttentionConfig,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// `Some` for multimodal (interleaved) RoPE.
    pub mrope_section: Option<Vec<usize>>,
    pub act: Activation,
    /// One entry per layer.
    pub layers: Vec<FfnConfig>,
    /// lm_head shares the embedding table (Qwen3-VL 2B/4B).
    pub tie_word_embeddings: bool,
    /// Longest sequence the model was trained for (`max_position_embeddings`), if stated.
    pub max_position_embeddings: Option<usize>,
}

#[derive(Debug, Clone)]
enum Ffn {
    Dense(GatedMlp),
    Moe(SparseMoe),
}

impl Module for Ffn {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Ffn::Dense(m) => m.forward(xs),
            Ffn::Moe(m) => m.forward(xs),
        }
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: DecoderAttention,
    post_attention_layernorm: RmsNorm,
    mlp: Ffn,
}

/// Per-sequence decoder state: one KV cache per layer.
#[derive(Debug, Default)]
pub struct DecoderCache {
    layers: Vec<KvCache>,
}

impl DecoderCache {
    /// Number of positions already processed.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |c| c.len())
    }

    /// True before the first forward.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every position from `len` on: rolls back a step that failed part-way (some
    /// layers had appended, others not).
    pub fn truncate(&mut self, len: usize) {
        self.layers.iter_mut().for_each(|c| c.truncate(len));
    }
}

impl DecoderLayer {
    /// Pre-norm residual block; `attend` runs the attention (one sequence or a batch of rows).
    fn forward(&self, xs: &Tensor, attend: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        let h = (xs + attend(&self.input_layernorm.forward(xs)?)?)?;
        &h + self.mlp.forward(&self.post_attention_layernorm.forward(&h)?)?
    }
}

/// DeepStack features to add after the first `features.len()` layers, at the given rows
/// of the current forward's sequence (visual tokens only, never audio).
#[derive(Debug, Clone)]
pub struct DeepStack {
    /// Row indices (within this forward call) of image/video placeholder tokens.
    pub rows: Vec<u32>,
    /// One `[rows.len(), hidden]` tensor per injected layer.
    pub features: Vec<Tensor>,
}

/// The decoder weights.
#[derive(Debug, Clone)]
pub struct TextDecoder {
    /// `[vocab, hidden]`, dense or quantized (rows are dequantized as they are looked up).
    embed_tokens: MatrixWeight,
    /// Activation dtype.
    dtype: DType,
    device: Device,
    stack: DecoderStack,
    lm_head: Linear,
}

/// The decoder layers, final RMSNorm and rotary tables without the token embedding and the
/// head: what [`TextDecoder`] wraps, and what the code predictor runs directly (it embeds its
/// inputs from several codec tables and has one head per codebook, spec §7.5).
#[derive(Debug, Clone)]
pub struct DecoderStack {
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    rotary: TextRotary,
    cfg: TextDecoderConfig,
}

impl TextDecoder {
    /// `vb` points at the module holding `embed_tokens`, `layers.{i}`, `norm`;
    /// `vb_head` at `lm_head` (ignored when the embeddings are tied).
    pub fn new(cfg: &TextDecoderConfig, vb: Weights, vb_head: Weights) -> Result<Self> {
        let h = cfg.hidden_size;
        let embed_tokens = vb.pp("embed_tokens").matrix(cfg.vocab_size, h, "weight")?;
        let (dtype, device) = (vb.dtype(), vb.device().clone());
        let stack = DecoderStack::new(cfg, vb)?;
        let lm_head = if cfg.tie_word_embeddings {
            Linear::from_weights(embed_tokens.clone(), None)
        } else {
            Linear::new(h, cfg.vocab_size, false, vb_head)?
        };
        Ok(Self { embed_tokens, dtype, device, stack, lm_head })
    }

    /// The config this decoder was built from.
    pub fn config(&self) -> &TextDecoderConfig {
        &self.stack.cfg
    }

    /// A fresh cache for one sequence of up to `positions` tokens (it grows past that if needed).
    pub fn new_cache(&self, positions: usize) -> DecoderCache {
        self.stack.new_cache(positions)
    }

    /// Activation dtype (that of the weights).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeds token ids `[S]` → `[S, hidden]`. Ids must be below `vocab_size`.
    pub fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        let vocab = self.stack.cfg.vocab_size;
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= vocab) {
            candle_core::bail!("token id {bad} is outside the model's vocabulary of {vocab}")
        }
        let idx = Tensor::new(ids, &self.device)?;
        match &self.embed_tokens {
            MatrixWeight::Dense(t) => t.index_select(&idx, 0),
            MatrixWeight::Quantized(q) => q.embedding(&idx)?.to_dtype(self.dtype),
            MatrixWeight::Parts { .. } => {
                candle_core::bail!("the token embedding table is held in parts; this is a bug")
            }
        }
    }

    /// Runs the layers over `embeds: [1, S, hidden]` at positions `pos` (S entries),
    /// appending to `cache`; returns the final-norm hidden states `[1, S, hidden]`.
    pub fn forward(
        &self,
        embeds: &Tensor,
        pos: &Positions3d,
        cache: &mut DecoderCache,
        deepstack: Option<&DeepStack>,
    ) -> Result<Tensor> {
        self.stack.forward(embeds, pos, cache, deepstack)
    }

    /// One decode step of several independent sequences at once (see
    /// [`DecoderStack::forward_rows`]).
    pub fn forward_rows(&self, embeds: &Tensor, pos: &Positions3d, caches: &mut [&mut DecoderCache]) -> Result<Tensor> {
        self.stack.forward_rows(embeds, pos, caches)
    }

    /// [`TextDecoder::forward`] that also returns `hidden_states[capture]` in transformers'
    /// numbering (see [`DecoderStack::forward_capturing`]).
    pub fn forward_capturing(
        &self,
        embeds: &Tensor,
        pos: &Positions3d,
        cache: &mut DecoderCache,
        deepstack: Option<&DeepStack>,
        capture: usize,
    ) -> Result<(Tensor, Tensor)> {
        self.stack.forward_capturing(embeds, pos, cache, deepstack, capture)
    }

    /// Number of decoder layers.
    pub fn num_layers(&self) -> usize {
        self.stack.layers.len()
    }

    /// Logits `[.., vocab]` of final-norm hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(hidden)
    }
}

impl DecoderStack {
    /// `vb` points at the module holding `layers.{i}` and `norm` (`cfg.vocab_size` and
    /// `cfg.tie_word_embeddings` are not used here).
    pub fn new(cfg: &TextDecoderConfig, vb: Weights) -> Result<Self> {
        let h = cfg.hidden_size;
        let mut layers = Vec::with_capacity(cfg.layers.len());
        for (i, ffn) in cfg.layers.iter().enumerate() {
            let lv = vb.pp("layers").pp(i);
            let mlp = match ffn {
                FfnConfig::Dense { intermediate_size } => {
                    Ffn::Dense(GatedMlp::new(h, *intermediate_size, cfg.act, lv.pp("mlp"))?)
                }
                FfnConfig::Moe(m) => Ffn::Moe(SparseMoe::new(m, lv.pp("mlp"))?),
            };
            layers.push(DecoderLayer {
                input_layernorm: RmsNorm::new(h, cfg.rms_norm_eps, lv.pp("input_layernorm"))?,
                self_attn: DecoderAttention::new(&cfg.attention, lv.pp("self_attn"))?,
                post_attention_layernorm: RmsNorm::new(h, cfg.rms_norm_eps, lv.pp("post_attention_layernorm"))?,
                mlp,
            });
        }
        Ok(Self {
            layers,
            norm: RmsNorm::new(h, cfg.rms_norm_eps, vb.pp("norm"))?,
            rotary: TextRotary::new(cfg.attention.head_dim, cfg.rope_theta, cfg.mrope_section.as_deref())?,
            cfg: cfg.clone(),
        })
    }

    /// The config this stack was built from.
    pub fn config(&self) -> &TextDecoderConfig {
        &self.cfg
    }

    /// A fresh cache for one sequence of up to `positions` tokens (it grows past that if needed).
    pub fn new_cache(&self, positions: usize) -> DecoderCache {
        DecoderCache { layers: (0..self.layers.len()).map(|_| KvCache::with_capacity(positions)).collect() }
    }

    /// Runs the layers over `embeds: [1, S, hidden]` at positions `pos` (S entries),
    /// appending to `cache`; returns the final-norm hidden states `[1, S, hidden]`.
    pub fn forward(
        &self,
        embeds: &Tensor,
        pos: &Positions3d,
        cache: &mut DecoderCache,
        deepstack: Option<&DeepStack>,
    ) -> Result<Tensor> {
        Ok(self.run(embeds, pos, cache, deepstack, None)?.0)
    }

    /// [`DecoderStack::forward`] that also returns one intermediate state, numbered as
    /// transformers' `output_hidden_states` tuple: 0 = the input embeddings, k in 1..L = the
    /// output of layer k−1 *as the layer returned it* (before that layer's DeepStack addition,
    /// which the model loop applies afterwards), L = the final-norm output (transformers
    /// overwrites its last entry with `last_hidden_state`). The talker reads
    /// `hidden_states[accept_hidden_layer]` (spec §7.2).
    pub fn forward_capturing(
        &self,
        embeds: &Tensor,
        pos: &Positions3d,
        cache: &mut DecoderCache,
        deepstack: Option<&DeepStack>,
        capture: usize,
    ) -> Result<(Tensor, Tensor)> {
        let (out, captured) = self.run(embeds, pos, cache, deepstack, Some(capture))?;
        Ok((out, captured.expect("run returns the capture it was asked for; this is a bug")))
    }

    /// One decode step of several independent sequences (continuous batching): row `i` of
    /// `embeds: [N, 1, hidden]` is the next token of the sequence of `caches[i]`, at position
    /// `pos[i]`. Norms, projections, the FFN/MoE and (in the caller) the head run once over all
    /// rows, so each weight matrix is read once per step instead of once per sequence; attention
    /// runs per sequence over its own cache. Row `i` of the result equals what
    /// [`DecoderStack::forward`] gives for that sequence alone. No DeepStack: decode steps are text.
    pub fn forward_rows(&self, embeds: &Tensor, pos: &Positions3d, caches: &mut [&mut DecoderCache]) -> Result<Tensor> {
        let (n, s, _) = embeds.dims3()?;
        if s != 1 || pos.len() != n || caches.len() != n {
            candle_core::bail!(
                "batched decode: {n} rows of {s} positions, {} positions, {} caches",
                pos.len(),
                caches.len()
            )
        }
        if let Some(c) = caches.iter().find(|c| c.layers.len() != self.layers.len()) {
            candle_core::bail!("decoder cache has {} layers, the model {}", c.layers.len(), self.layers.len())
        }
        let (cos, sin) = self.rotary.cos_sin(pos, embeds.dtype(), embeds.device())?;
        let mut xs = embeds.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let _span = tracing::trace_span!("decoder.layer", i, rows = n).entered();
            let mut kvs: Vec<&mut KvCache> = caches.iter_mut().map(|c| &mut c.layers[i]).collect();
            xs = layer.forward(&xs, |x| layer.self_attn.forward_rows(x, &cos, &sin, &mut kvs))?;
        }
        self.norm.forward(&xs)
    }

    fn run(
        &self,
        embeds: &Tensor,
        pos: &Positions3d,
        cache: &mut DecoderCache,
        deepstack: Option<&DeepStack>,
        capture: Option<usize>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let n_layers = self.layers.len();
        if let Some(k) = capture.filter(|&k| k > n_layers) {
            candle_core::bail!("hidden state {k} requested from a decoder of {n_layers} layers")
        }
        let mut captured = (capture == Some(0)).then(|| embeds.clone());
        let (_, s, _) = embeds.dims3()?;
        if pos.len() != s {
            candle_core::bail!("{} positions for {s} tokens", pos.len())
        }
        if cache.layers.len() != self.layers.len() {
            candle_core::bail!("decoder cache has {} layers, the model {}", cache.layers.len(), self.layers.len())
        }
        let dtype = embeds.dtype();
        let (cos, sin) = self.rotary.cos_sin(pos, dtype, embeds.device())?;
        let ds_rows = match deepstack {
            Some(d) if !d.rows.is_empty() => Some(Tensor::new(d.rows.as_slice(), embeds.device())?),
            _ => None,
        };
        let mut xs = embeds.clone();
        for (i, (layer, kv)) in self.layers.iter().zip(cache.layers.iter_mut()).enumerate() {
            let _span = tracing::trace_span!("decoder.layer", i).entered();
            let out = layer.forward(&xs, |x| layer.self_attn.forward(x, &cos, &sin, kv))?;
            if capture == Some(i + 1) && i + 1 < n_layers {
                captured = Some(out.clone());
            }
            xs = out;
            if let (Some(ds), Some(rows)) = (deepstack, &ds_rows) {
                if let Some(feat) = ds.features.get(i) {
                    let hidden = self.cfg.hidden_size;
                    let flat = xs.reshape((s, hidden))?;
                    xs = flat.index_add(rows, &feat.to_dtype(dtype)?, 0)?.reshape((1, s, hidden))?;
                }
            }
        }
        let out = self.norm.forward(&xs)?;
        if capture == Some(n_layers) {
            captured = Some(out.clone());
        }
        Ok((out, captured))
    }
}
