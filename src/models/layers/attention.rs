//! Attention layers.
//!
//! [`DecoderAttention`] is the causal grouped-query attention of every Qwen3 text decoder
//! (thinker, talker, code predictor, Qwen3-VL, and — without q/k norm, with a sliding
//! window — Code2Wav): projections, optional per-head RMSNorm of q and k *before* RoPE,
//! a KV cache, softmax in f32 (spec §2.2).
//!
//! [`segment_attention`] is the bidirectional attention of the audio and vision towers,
//! blocked into independent segments (audio windows, vision frame groups).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::kv_cache::KvCache;
use super::linear::Linear;
use super::norm::RmsNorm;
use super::rotary::apply_rotary;

/// Shape of a decoder attention layer, from the checkpoint config.
#[derive(Debug, Clone)]
pub struct AttentionConfig {
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// Per-head RMSNorm on q and k (`q_norm`/`k_norm` weights), Qwen3's "QK-norm".
    pub qk_norm: bool,
    pub rms_norm_eps: f64,
    /// Biases on q/k/v/o (`attention_bias`).
    pub bias: bool,
}

/// Causal self-attention with grouped KV heads.
#[derive(Debug, Clone)]
pub struct DecoderAttention {
    /// `q_proj`, `k_proj` and `v_proj` stacked into one `[(Hq + 2·Hkv)·D, hidden]` projection:
    /// one pass over the input (one weight stream in decode) instead of three.
    qkv_proj: Linear,
    o_proj: Linear,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    scale: f64,
}

impl DecoderAttention {
    /// Loads `{vb}.{q,k,v,o}_proj` and, with `qk_norm`, `{vb}.{q,k}_norm`.
    pub fn new(cfg: &AttentionConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.num_kv_heads == 0 || !cfg.num_heads.is_multiple_of(cfg.num_kv_heads) {
            candle_core::bail!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                cfg.num_heads,
                cfg.num_kv_heads
            )
        }
        let (h, d) = (cfg.hidden_size, cfg.head_dim);
        let (q_norm, k_norm) = if cfg.qk_norm {
            (
                Some(RmsNorm::new(d, cfg.rms_norm_eps, vb.pp("q_norm"))?),
                Some(RmsNorm::new(d, cfg.rms_norm_eps, vb.pp("k_norm"))?),
            )
        } else {
            (None, None)
        };
        let q = Linear::new(h, cfg.num_heads * d, cfg.bias, vb.pp("q_proj"))?;
        let k = Linear::new(h, cfg.num_kv_heads * d, cfg.bias, vb.pp("k_proj"))?;
        let v = Linear::new(h, cfg.num_kv_heads * d, cfg.bias, vb.pp("v_proj"))?;
        Ok(Self {
            qkv_proj: Linear::stack_outputs(&[&q, &k, &v])?,
            o_proj: Linear::new(cfg.num_heads * d, h, cfg.bias, vb.pp("o_proj"))?,
            q_norm,
            k_norm,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: d,
            scale: (d as f64).powf(-0.5),
        })
    }

    /// How many query heads share one KV head.
    pub fn group_size(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }

    /// `xs: [B, S, hidden]`; `cos/sin: [S, head_dim/2]`; `mask`: additive `[group·S, past+S]`
    /// from [`causal_mask`] (None for a single new token without a window).
    pub fn forward(
        &self,
        xs: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, s, _) = xs.dims3()?;
        let d = self.head_dim;
        let (nq, nkv) = (self.num_heads * d, self.num_kv_heads * d);
        let qkv = self.qkv_proj.forward(xs)?;
        let split = |start: usize, width: usize, heads: usize, norm: &Option<RmsNorm>| -> Result<Tensor> {
            let t = qkv.narrow(2, start, width)?.reshape((b, s, heads, d))?;
            let t = match norm {
                Some(n) => n.forward(&t.contiguous()?)?,
                None => t,
            };
            t.transpose(1, 2)?.contiguous() // b, heads, s, d
        };
        let q = apply_rotary(&split(0, nq, self.num_heads, &self.q_norm)?, cos, sin)?;
        let k = apply_rotary(&split(nq, nkv, self.num_kv_heads, &self.k_norm)?, cos, sin)?;
        let v = split(nq + nkv, nkv, self.num_kv_heads, &None)?;
        let (k, v) = cache.append(&k, &v)?;

        // Grouped-query attention without materialising repeated KV heads: query heads
        // h = kv·group + r share KV head kv, so [b, Hq, s, d] → [b, Hkv, group·s, d].
        let group = self.group_size();
        let q = q.reshape((b, self.num_kv_heads, group * s, d))?;
        let scores = (q.matmul(&k.t()?)? * self.scale)?; // b, Hkv, group·s, T
        let scores = match mask {
            Some(m) => scores.broadcast_add(&m.to_dtype(scores.dtype())?)?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(xs.dtype())?;
        let out = probs.matmul(&v)?; // b, Hkv, group·s, d
        let out = out.reshape((b, self.num_heads, s, d))?.transpose(1, 2)?.reshape((b, s, self.num_heads * d))?;
        self.o_proj.forward(&out)
    }
}

/// Additive causal mask for `new` queries after `past` cached positions, repeated for
/// `group` query heads per KV head: `[group·new, past+new]`, 0 where visible, −∞ elsewhere.
/// `window` restricts each query to the last `window` keys (Code2Wav's sliding window:
/// key j visible to query i iff `i − window < j ≤ i`). Returns `None` when nothing is masked.
pub fn causal_mask(
    past: usize,
    new: usize,
    group: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Option<Tensor>> {
    let total = past + new;
    let mut any = false;
    let mut rows = Vec::with_capacity(new * total);
    for i in 0..new {
        let qi = past + i;
        for j in 0..total {
            let visible = j <= qi && window.is_none_or(|w| j + w > qi);
            any |= !visible;
            rows.push(if visible { 0f32 } else { f32::NEG_INFINITY });
        }
    }
    if !any {
        return Ok(None);
    }
    let m = Tensor::from_vec(rows, (new, total), device)?;
    Ok(Some(if group > 1 { m.repeat((group, 1))? } else { m }))
}

/// Bidirectional attention inside independent segments of a packed sequence.
/// `q, k, v: [N, heads, d]`, `segments`: lengths summing to N. Returns `[N, heads·d]`.
/// Softmax in f32, as the reference's sdpa/eager paths do.
pub fn segment_attention(q: &Tensor, k: &Tensor, v: &Tensor, segments: &[usize], scale: f64) -> Result<Tensor> {
    let (n, heads, d) = q.dims3()?;
    let total: usize = segments.iter().sum();
    if total != n {
        candle_core::bail!("attention segments cover {total} rows, the sequence has {n}")
    }
    let mut outs = Vec::with_capacity(segments.len());
    let mut start = 0;
    for &len in segments {
        if len == 0 {
            continue;
        }
        let take = |t: &Tensor| -> Result<Tensor> { t.narrow(0, start, len)?.transpose(0, 1)?.contiguous() }; // heads, len, d
        let (qs, ks, vs) = (take(q)?, take(k)?, take(v)?);
        let scores = (qs.matmul(&ks.t()?)? * scale)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(q.dtype())?;
        outs.push(probs.matmul(&vs)?.transpose(0, 1)?.reshape((len, heads * d))?);
        start += len;
    }
    Tensor::cat(&outs, 0)
}
