//! Attention layers.
//!
//! [`DecoderAttention`] is the causal grouped-query attention of the Qwen3 text decoders
//! (thinker, Qwen3-VL, the code predictor; later the talker): fused q/k/v projection, optional
//! per-head RMSNorm of q and k *before* RoPE, a KV cache, softmax in f32 (spec §2.2), queries
//! in blocks so memory stays bounded on long prompts. Code2Wav's pre-transformer uses the same
//! layer without q/k norm and with a causal sliding window.
//!
//! [`segment_attention`] is the bidirectional attention of the audio and vision towers,
//! blocked into independent segments (audio windows, vision frame groups).

use crate::models::weights::Weights;
use candle_core::{DType, Device, Module, Result, Tensor};

use super::kv_cache::KvCache;
use super::linear::Linear;
use super::norm::RmsNorm;
use super::rotary::apply_rotary;
use omnid_kernels::fused_ops::RmsNormRope;

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
    /// Causal sliding window (`sliding_window`, Code2Wav): query i sees keys j with
    /// `i − window < j ≤ i`, as transformers' `sliding_window_overlay`. `None`: all past keys.
    pub sliding_window: Option<usize>,
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
    sliding_window: Option<usize>,
}

impl DecoderAttention {
    /// Loads `{vb}.{q,k,v,o}_proj` and, with `qk_norm`, `{vb}.{q,k}_norm`.
    pub fn new(cfg: &AttentionConfig, vb: Weights) -> Result<Self> {
        if cfg.sliding_window == Some(0) {
            candle_core::bail!("sliding_window 0 would hide every key")
        }
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
            sliding_window: cfg.sliding_window,
        })
    }

    /// How many query heads share one KV head.
    pub fn group_size(&self) -> usize {
        self.num_heads / self.num_kv_heads
    }

    /// `xs: [B, S, hidden]` (the new positions, after those in `cache`); `cos/sin: [S, head_dim/2]`.
    pub fn forward(&self, xs: &Tensor, cos: &Tensor, sin: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let qkv = self.qkv_proj.forward(xs)?;
        self.o_proj.forward(&self.attend(&qkv, cos, sin, cache)?)
    }

    /// One new position for each of several independent sequences (a batched decode step):
    /// `xs: [N, 1, hidden]`, row `i` belongs to the sequence of `caches[i]` and sits at the
    /// position of `cos/sin` row `i` (`[N, head_dim/2]`). The projections run once for all rows
    /// (one pass over each weight matrix); attention runs per sequence over its own cache,
    /// whose lengths differ.
    pub fn forward_rows(&self, xs: &Tensor, cos: &Tensor, sin: &Tensor, caches: &mut [&mut KvCache]) -> Result<Tensor> {
        let (n, s, _) = xs.dims3()?;
        if s != 1 || n != caches.len() || cos.dim(0)? != n {
            candle_core::bail!(
                "batched decode: {n} rows of {s} positions, {} caches, {} rotary rows",
                caches.len(),
                cos.dim(0)?
            )
        }
        let qkv = self.qkv_proj.forward(xs)?;
        let rows = caches
            .iter_mut()
            .enumerate()
            .map(|(i, cache)| self.attend(&qkv.narrow(0, i, 1)?, &cos.narrow(0, i, 1)?, &sin.narrow(0, i, 1)?, cache))
            .collect::<Result<Vec<_>>>()?;
        self.o_proj.forward(&Tensor::cat(&rows, 0)?)
    }

    /// Attention of projected `qkv: [B, S, (Hq + 2·Hkv)·D]` over `cache` (appending the new
    /// keys and values); returns `[B, S, Hq·D]` before the output projection.
    fn attend(&self, qkv: &Tensor, cos: &Tensor, sin: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let (b, s, _) = qkv.dims3()?;
        let d = self.head_dim;
        let (nq, nkv) = (self.num_heads * d, self.num_kv_heads * d);
        let split = |start: usize, width: usize, heads: usize, norm: &Option<RmsNorm>| -> Result<Tensor> {
            let t = qkv.narrow(2, start, width)?.reshape((b, s, heads, d))?;
            let t = match norm {
                Some(n) => n.forward(&t.contiguous()?)?,
                None => t,
            };
            t.transpose(1, 2)?.contiguous() // b, heads, s, d
        };
        // On a GPU, QK-norm and the rotation are one fused kernel per projection, reading cos and
        // sin from one table built once for q and k.
        let fused_table =
            if qkv.device().is_cuda() && self.q_norm.is_some() { Some(Tensor::stack(&[cos, sin], 1)?) } else { None }; // [S, 2, d/2]
        let norm_rotate = |start: usize, width: usize, heads: usize, norm: &Option<RmsNorm>| -> Result<Tensor> {
            match (norm, &fused_table) {
                (Some(n), Some(table)) => {
                    let t = qkv.narrow(2, start, width)?.reshape((b, s, heads, d))?.contiguous()?;
                    let op = RmsNormRope { seq: s, eps: n.eps() as f32 };
                    t.apply_op3_no_bwd(n.weight(), table, &op)?.transpose(1, 2)?.contiguous()
                }
                _ => apply_rotary(&split(start, width, heads, norm)?, cos, sin),
            }
        };
        let q = norm_rotate(0, nq, self.num_heads, &self.q_norm)?;
        let k = norm_rotate(nq, nkv, self.num_kv_heads, &self.k_norm)?;
        let v = split(nq + nkv, nkv, self.num_kv_heads, &None)?;
        let past = cache.len();
        let (k, v) = cache.append(&k, &v)?;
        let total = past + s;

        // Grouped-query attention without materialising repeated KV heads: query heads
        // h = kv·group + r share KV head kv, so a block of n queries [b, Hq, n, d] is viewed as
        // [b, Hkv, group·n, d]. Queries go in blocks so the score matrix stays within
        // SCORE_BUDGET_BYTES whatever the prompt length.
        let group = self.group_size();
        let block = query_block(b * self.num_heads, total);
        let kt = k.t()?;
        let mut outs = Vec::with_capacity(s.div_ceil(block));
        for q0 in (0..s).step_by(block) {
            let n = block.min(s - q0);
            let qb = q.narrow(2, q0, n)?.reshape((b, self.num_kv_heads, group * n, d))?;
            let scores = (qb.matmul(&kt)? * self.scale)?; // b, Hkv, group·n, T
            let mask = causal_mask(past + q0, n, total, group, self.sliding_window, qkv.device())?;
            let scores = match mask {
                Some(m) => scores.broadcast_add(&m.to_dtype(scores.dtype())?)?,
                None => scores,
            };
            let probs = softmax_at_least_f32(&scores)?;
            outs.push(probs.matmul(&v)?.reshape((b, self.num_heads, n, d))?); // b, Hq, n, d
        }
        let out = if outs.len() == 1 { outs.pop().expect("one block") } else { Tensor::cat(&outs, 2)? };
        out.transpose(1, 2)?.reshape((b, s, self.num_heads * d))
    }
}

/// Upper bound on one attention score matrix (f32), so long prompts and large images are
/// processed in query blocks instead of one `heads × S × S` matrix.
const SCORE_BUDGET_BYTES: usize = 256 << 20;

/// Queries per block for `heads` heads attending over `keys` keys.
fn query_block(heads: usize, keys: usize) -> usize {
    (SCORE_BUDGET_BYTES / (4 * heads.max(1) * keys.max(1))).max(1)
}

/// Softmax over the last dim in f32 for half-precision scores (spec §11.3) and in the scores'
/// own precision when that is wider (f64 runs stay f64 end to end), cast back to the input dtype.
fn softmax_at_least_f32(scores: &Tensor) -> Result<Tensor> {
    let dtype = scores.dtype();
    if dtype == DType::F64 {
        return candle_nn::ops::softmax_last_dim(scores);
    }
    candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)
}

/// Additive causal mask for `n` queries at absolute positions `first..first+n` over `total`
/// keys, repeated for `group` query heads per KV head: `[group·n, total]`, 0 where visible
/// (key j ≤ query position, and `j > position − window` with a sliding window), −∞
/// elsewhere. `None` when nothing is masked.
pub fn causal_mask(
    first: usize,
    n: usize,
    total: usize,
    group: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Option<Tensor>> {
    // Some key lies beyond some query iff the first query is not the last position; some key
    // lies before the window iff the last query's window does not reach key 0.
    let last = first + n.max(1) - 1;
    let future_hidden = first + 1 < total;
    let past_hidden = window.is_some_and(|w| last >= w);
    if !future_hidden && !past_hidden {
        return Ok(None);
    }
    let mut rows = Vec::with_capacity(n * total);
    for i in 0..n {
        let qi = first + i;
        let oldest = window.map_or(0, |w| (qi + 1).saturating_sub(w));
        rows.extend((0..total).map(|j| if j <= qi && j >= oldest { 0f32 } else { f32::NEG_INFINITY }));
    }
    let m = Tensor::from_vec(rows, (n, total), device)?;
    Ok(Some(if group > 1 { m.repeat((group, 1))? } else { m }))
}

/// Bidirectional attention inside independent segments of a packed sequence.
/// `q, k, v: [N, heads, d]`, `segments`: lengths summing to N. Returns `[N, heads·d]`.
/// Softmax in f32, as the reference's sdpa/eager paths do; queries in blocks within
/// `SCORE_BUDGET_BYTES` (a 12-megapixel image is ~47k patches in one segment).
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
        let kt = ks.t()?;
        let block = query_block(heads, len);
        for q0 in (0..len).step_by(block) {
            let rows = block.min(len - q0);
            let scores = (qs.narrow(1, q0, rows)?.matmul(&kt)? * scale)?; // heads, rows, len
            let probs = candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(q.dtype())?;
            outs.push(probs.matmul(&vs)?.transpose(0, 1)?.reshape((rows, heads * d))?);
        }
        start += len;
    }
    Tensor::cat(&outs, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible(first: usize, n: usize, total: usize, window: Option<usize>) -> Vec<Vec<bool>> {
        match causal_mask(first, n, total, 1, window, &Device::Cpu).unwrap() {
            None => vec![vec![true; total]; n],
            Some(m) => m.to_vec2::<f32>().unwrap().iter().map(|r| r.iter().map(|v| *v == 0.0).collect()).collect(),
        }
    }

    #[test]
    fn sliding_window_sees_the_last_window_keys() {
        // transformers: key j visible to query i iff i − window < j ≤ i.
        let rows = visible(0, 6, 6, Some(3));
        for (i, row) in rows.iter().enumerate() {
            let want: Vec<bool> = (0..6).map(|j| j <= i && j + 3 > i).collect();
            assert_eq!(row, &want, "query {i}");
        }
        // A single last query: nothing in the future, but the window still hides old keys.
        assert_eq!(visible(5, 1, 6, Some(3))[0], vec![false, false, false, true, true, true]);
        assert!(causal_mask(5, 1, 6, 1, None, &Device::Cpu).unwrap().is_none());
        assert!(causal_mask(2, 1, 3, 1, Some(3), &Device::Cpu).unwrap().is_none());
    }
}
