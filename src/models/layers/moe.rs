//! Sparse mixture-of-experts FFN (spec §2.3).
//!
//! Experts are held as two stacked tensors, `gate_up [E, 2I, H]` (gate rows first) and
//! `down [E, H, I]`, whatever the on-disk layout:
//! * Qwen3-Omni stores one tensor per expert (`experts.{e}.{gate,up,down}_proj.weight`);
//! * Qwen3-VL-MoE stores fused tensors, on the hub as `[E, H, 2I]` / `[E, I, H]` and as
//!   `[E, 2I, H]` / `[E, H, I]` when re-saved by transformers 5.x — the orientation is
//!   decided by comparing the shapes with (H, I).
//!
//! Routing (softmax in f32 → top-k → optional renormalisation) is the CPU reference op
//! of `omnid-kernels`; each expert then runs once over all the tokens routed to it.
//!
//! Quantized experts (`--quant`) are held one `[2I, H]` / `[H, I]` pair per expert, so that each
//! expert's blocks are contiguous and a decode step reads only the experts it routes to.
//!
//! The talker adds a gated shared expert to every layer (spec §7.3):
//! `out = routed + sigmoid(x·w_sgᵀ) · SwiGLU_shared(x)`.

use candle_core::quantized::GgmlDType;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Module, Result, Shape, Tensor, D};
use omnid_kernels::moe_experts::{expert_ffn_f32, ExpertShape};
use omnid_kernels::moe_experts_quantized::{self, expert_ffn_quantized, QuantExpert, QuantExpertShape};
use omnid_kernels::moe_routing;

use super::activation::Activation;
use super::linear::{Linear, MatrixWeight};
use super::mlp::GatedMlp;
use crate::models::weights::Weights;

/// How a checkpoint stores its experts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertStorage {
    /// `experts.{e}.gate_proj / up_proj / down_proj .weight` (Qwen3-Omni).
    PerExpert,
    /// `experts.gate_up_proj` and `experts.down_proj`, 3-D (Qwen3-VL-MoE).
    Fused,
}

/// MoE sizes from the config.
#[derive(Debug, Clone)]
pub struct MoeConfig {
    pub hidden_size: usize,
    pub num_experts: usize,
    pub top_k: usize,
    pub moe_intermediate_size: usize,
    pub norm_topk_prob: bool,
    pub act: Activation,
    pub storage: ExpertStorage,
    /// Width of the gated shared expert (`shared_expert_intermediate_size`, the talker's 768);
    /// `None` for blocks without one (thinker, Qwen3-VL-MoE).
    pub shared_expert_intermediate_size: Option<usize>,
}

/// The talker's always-on expert and its scalar sigmoid gate.
#[derive(Debug, Clone)]
struct SharedExpert {
    mlp: GatedMlp,
    /// `shared_expert_gate.weight` `[1, hidden]`.
    gate: Linear,
}

/// The routed experts' weights.
#[derive(Debug, Clone)]
enum Experts {
    /// Stacked dense tensors `gate_up [E, 2I, H]` and `down [E, H, I]`.
    Stacked { gate_up: Tensor, down: Tensor },
    /// One `(gate_up [2I, H], down [H, I])` pair per expert, each quantized or (where its rows
    /// fit no block format) dense.
    PerExpert(Vec<(MatrixWeight, MatrixWeight)>),
}

impl Experts {
    /// Expert `e`'s `(gate_up, down)`: views of the stacked tensors, or the stored pair.
    fn expert(&self, e: usize) -> Result<(MatrixWeight, MatrixWeight)> {
        match self {
            Experts::Stacked { gate_up, down } => {
                Ok((MatrixWeight::Dense(gate_up.get(e)?), MatrixWeight::Dense(down.get(e)?)))
            }
            Experts::PerExpert(pairs) => Ok(pairs[e].clone()),
        }
    }

    /// Builds the experts from per-expert matrices: stacked if all are dense.
    fn from_pairs(pairs: Vec<(MatrixWeight, MatrixWeight)>) -> Result<Self> {
        let dense = |m: &MatrixWeight| match m {
            MatrixWeight::Dense(t) => Some(t.clone()),
            _ => None,
        };
        let gu: Option<Vec<Tensor>> = pairs.iter().map(|(g, _)| dense(g)).collect();
        let dn: Option<Vec<Tensor>> = pairs.iter().map(|(_, d)| dense(d)).collect();
        match (gu, dn) {
            (Some(gu), Some(dn)) => {
                Ok(Experts::Stacked { gate_up: Tensor::stack(&gu, 0)?, down: Tensor::stack(&dn, 0)? })
            }
            _ => Ok(Experts::PerExpert(pairs)),
        }
    }
}

/// Router + experts (+ an optional gated shared expert).
#[derive(Debug, Clone)]
pub struct SparseMoe {
    router: Linear,
    experts: Experts,
    shared: Option<SharedExpert>,
    cfg: MoeConfig,
}

impl SparseMoe {
    /// Loads `{vb}.gate.weight` and the experts in either storage.
    pub fn new(cfg: &MoeConfig, vb: Weights) -> Result<Self> {
        let (e, h, i) = (cfg.num_experts, cfg.hidden_size, cfg.moe_intermediate_size);
        if cfg.top_k == 0 || cfg.top_k > e {
            candle_core::bail!("num_experts_per_tok {} must be in 1..={e}", cfg.top_k)
        }
        let router = Linear::new(h, e, false, vb.pp("gate"))?;
        let xv = vb.pp("experts");
        let experts = match cfg.storage {
            ExpertStorage::PerExpert => {
                let mut pairs = Vec::with_capacity(e);
                for ex in 0..e {
                    let p = xv.pp(ex);
                    let g = p.pp("gate_proj").matrix(i, h, "weight")?;
                    let u = p.pp("up_proj").matrix(i, h, "weight")?;
                    pairs.push((MatrixWeight::stack_rows(&[&g, &u])?, p.pp("down_proj").matrix(h, i, "weight")?));
                }
                Experts::from_pairs(pairs)?
            }
            ExpertStorage::Fused => Self::fused_experts(cfg, &xv)?,
        };
        let shared = match cfg.shared_expert_intermediate_size {
            Some(width) => Some(SharedExpert {
                mlp: GatedMlp::new(h, width, cfg.act, vb.pp("shared_expert"))?,
                gate: Linear::new(h, 1, false, vb.pp("shared_expert_gate"))?,
            }),
            None => None,
        };
        Ok(Self { router, experts, shared, cfg: cfg.clone() })
    }

    /// `experts.gate_up_proj` / `experts.down_proj` (Qwen3-VL-MoE), in either orientation, or as
    /// stored quantized (always `[E, 2I, H]` / `[E, H, I]`: blocks run along the input dimension).
    fn fused_experts(cfg: &MoeConfig, xv: &Weights) -> Result<Experts> {
        let (e, h, i) = (cfg.num_experts, cfg.hidden_size, cfg.moe_intermediate_size);
        let stored = |name: &str, want: [usize; 3]| -> Result<Option<MatrixWeight>> {
            match xv.stored_quantized(name)? {
                Some(q) if q.shape().dims() == want => Ok(Some(MatrixWeight::Quantized(q))),
                Some(q) => {
                    candle_core::bail!("experts.{name} is stored with shape {:?}, expected {want:?}", q.shape().dims())
                }
                None => Ok(None),
            }
        };
        let gate_up = match stored("gate_up_proj", [e, 2 * i, h])? {
            Some(q) => q,
            None => {
                let gu = xv.get_unchecked("gate_up_proj")?;
                let gu = match gu.dims() {
                    [ee, a, b] if *ee == e && *a == 2 * i && *b == h => gu,
                    [ee, a, b] if *ee == e && *a == h && *b == 2 * i => gu.transpose(1, 2)?.contiguous()?,
                    other => candle_core::bail!(
                        "experts.gate_up_proj has shape {other:?}, expected [{e}, {}, {h}] or [{e}, {h}, {}]",
                        2 * i,
                        2 * i
                    ),
                };
                xv.planned("gate_up_proj", gu)?
            }
        };
        let down = match stored("down_proj", [e, h, i])? {
            Some(q) => q,
            None => {
                let dn = xv.get_unchecked("down_proj")?;
                let dn = match dn.dims() {
                    [ee, a, b] if *ee == e && *a == h && *b == i => dn,
                    [ee, a, b] if *ee == e && *a == i && *b == h => dn.transpose(1, 2)?.contiguous()?,
                    other => candle_core::bail!(
                        "experts.down_proj has shape {other:?}, expected [{e}, {h}, {i}] or [{e}, {i}, {h}]"
                    ),
                };
                xv.planned("down_proj", dn)?
            }
        };
        match (gate_up, down) {
            (MatrixWeight::Dense(gate_up), MatrixWeight::Dense(down)) => Ok(Experts::Stacked { gate_up, down }),
            (gu, dn) => Ok(Experts::PerExpert((0..e).map(|x| Ok((gu.get(x)?, dn.get(x)?))).collect::<Result<_>>()?)),
        }
    }
}

impl Module for SparseMoe {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims().to_vec();
        let h = self.cfg.hidden_size;
        let rows = xs.elem_count() / h;
        let flat = xs.reshape((rows, h))?;
        let logits = self.router.forward(&flat)?;
        if let Some((gate_up, down)) = self.device_decode_applies(&flat) {
            let out = self.device_decode(&flat, &logits, gate_up, down)?;
            return self.add_shared(out, &flat)?.reshape(dims);
        }
        // Host sync: routing decides which expert matmuls to launch, so the top-k must be
        // known on the host. On the CPU this is a plain read of memory.
        let logits: Vec<f32> = logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let routing = moe_routing::route(&logits, self.cfg.num_experts, self.cfg.top_k, self.cfg.norm_topk_prob);
        let groups = moe_routing::group_by_expert(&routing, self.cfg.num_experts);
        let out = if let Some((gate_up, down)) = self.fused_decode_applies(&flat) {
            flat.contiguous()?.apply_op3_no_bwd(gate_up, down, &ExpertFfn { groups, cfg: &self.cfg })?
        } else if let Some(shape) = self.fused_quantized_decode_applies(&flat) {
            self.quantized_decode(&flat, &groups, shape)?
        } else {
            self.experts_one_by_one(&flat, groups)?
        };
        self.add_shared(out, &flat)?.reshape(dims)
    }
}

/// Most token rows of a step that the GPU decode kernels take: their work is one warp per output
/// row and token, which stays latency-bound (and beats grouping by expert) for a batch of decode
/// steps; prefill chunks go through the grouped matrix products.
const DEVICE_DECODE_MAX_ROWS: usize = 32;

impl SparseMoe {
    /// Adds the gated shared expert, after the routed experts as the reference does
    /// (`expert_output + shared`).
    fn add_shared(&self, routed: Tensor, flat: &Tensor) -> Result<Tensor> {
        match &self.shared {
            Some(s) => {
                let gate = candle_nn::ops::sigmoid(&s.gate.forward(flat)?)?;
                routed + s.mlp.forward(flat)?.broadcast_mul(&gate)?
            }
            None => Ok(routed),
        }
    }

    /// A decode step on a GPU with dense stacked SwiGLU experts (f32 or bf16) runs routing and
    /// experts in omnid's kernels; returns the stacked weights when it does.
    fn device_decode_applies(&self, flat: &Tensor) -> Option<(&Tensor, &Tensor)> {
        let Experts::Stacked { gate_up, down } = &self.experts else { return None };
        let applies = flat.device().is_cuda()
            && matches!(gate_up.dtype(), DType::F32 | DType::BF16)
            && flat.dim(0).is_ok_and(|r| r <= DEVICE_DECODE_MAX_ROWS)
            && self.cfg.num_experts <= omnid_kernels::cuda_kernels::MAX_ROUTE_EXPERTS
            && self.cfg.act == Activation::Silu;
        applies.then_some((gate_up, down))
    }

    /// Routing and routed experts on the device, with no host round trip: the top-k stays in
    /// device memory and the expert kernels read it there. Computed in f32 (the routing weights
    /// are not rounded to bf16 first as the reference does: within bf16 rounding of it).
    fn device_decode(&self, flat: &Tensor, logits: &Tensor, gate_up: &Tensor, down: &Tensor) -> Result<Tensor> {
        use omnid_kernels::fused_ops::{MoeExperts, MoeRoute};
        let route = MoeRoute { k: self.cfg.top_k, renormalize: self.cfg.norm_topk_prob };
        let routing = logits.to_dtype(DType::F32)?.contiguous()?.apply_op1_no_bwd(&route)?;
        let x = flat.to_dtype(DType::F32)?.contiguous()?;
        x.apply_op3_no_bwd(gate_up, down, &MoeExperts { routing })?.to_dtype(flat.dtype())
    }

    /// A few f32 token rows on the CPU (a decode step) with dense f32 experts go through the
    /// fused kernel; returns the stacked weights when they do.
    fn fused_decode_applies(&self, flat: &Tensor) -> Option<(&Tensor, &Tensor)> {
        let Experts::Stacked { gate_up, down } = &self.experts else { return None };
        let applies = flat.device().is_cpu()
            && flat.dtype() == DType::F32
            && gate_up.dtype() == DType::F32
            && flat.dim(0).is_ok_and(|r| r <= omnid_kernels::gemv::MAX_ROWS)
            && self.cfg.act == Activation::Silu;
        applies.then_some((gate_up, down))
    }

    /// A few f32 token rows on the CPU with every expert quantized in a format for which the fused
    /// kernel beats candle's quantized matmul (one format for all gate_up matrices, one for all
    /// down matrices); returns the shape.
    ///
    /// candle repacks Q8_0 and Q4_K weights into AVX-512 VNNI tiles even for one row, which
    /// outruns the fused kernel's per-row block dot products despite two matmul calls per expert
    /// (measured on the 4-layer, 64-expert benchmark checkpoint, decode: q8_0 45 vs 31 tok/s,
    /// q4_k 47 vs 31); for one row it does not repack Q6_K, Q5_K or Q4_0, and there the fused
    /// kernel wins (q6_k 35 vs 30 tok/s).
    fn fused_quantized_decode_applies(&self, flat: &Tensor) -> Option<QuantExpertShape> {
        let Experts::PerExpert(pairs) = &self.experts else { return None };
        if !(flat.device().is_cpu()
            && flat.dtype() == DType::F32
            && flat.dim(0).is_ok_and(|r| r <= omnid_kernels::gemv::MAX_ROWS)
            && self.cfg.act == Activation::Silu)
        {
            return None;
        }
        let candle_repacks_one_row = |f: GgmlDType| matches!(f, GgmlDType::Q8_0 | GgmlDType::Q4K);
        let format = |m: &MatrixWeight| match m {
            MatrixWeight::Quantized(q)
                if q.device().is_cpu()
                    && moe_experts_quantized::supports(q.dtype())
                    && !candle_repacks_one_row(q.dtype()) =>
            {
                Some(q.dtype())
            }
            _ => None,
        };
        let (g0, d0) = (format(&pairs.first()?.0)?, format(&pairs.first()?.1)?);
        pairs.iter().all(|(g, d)| format(g) == Some(g0) && format(d) == Some(d0)).then_some(QuantExpertShape {
            hidden: self.cfg.hidden_size,
            intermediate: self.cfg.moe_intermediate_size,
            gate_up_format: g0,
            down_format: d0,
        })
    }

    /// The routed experts of a decode step through the fused quantized kernel.
    fn quantized_decode(
        &self,
        flat: &Tensor,
        groups: &[moe_routing::ExpertGroup],
        shape: QuantExpertShape,
    ) -> Result<Tensor> {
        let Experts::PerExpert(pairs) = &self.experts else {
            candle_core::bail!("quantized_decode on stacked experts; this is a bug")
        };
        fn raw(m: &MatrixWeight) -> Result<std::borrow::Cow<'_, [u8]>> {
            match m {
                MatrixWeight::Quantized(q) => q.data(),
                _ => candle_core::bail!("quantized_decode on a dense expert; this is a bug"),
            }
        }
        // Borrowed views of each expert's blocks (no copy on the CPU).
        type Blocks<'a> = std::borrow::Cow<'a, [u8]>;
        let data: Vec<(Blocks, Blocks)> = pairs.iter().map(|(g, d)| Ok((raw(g)?, raw(d)?))).collect::<Result<_>>()?;
        let experts: Vec<QuantExpert> = data.iter().map(|(g, d)| QuantExpert { gate_up: g, down: d }).collect();
        let (rows, h) = flat.dims2()?;
        let x: Vec<f32> = flat.flatten_all()?.to_vec1()?;
        let y = expert_ffn_quantized(&x, rows, groups, &experts, shape)
            .map_err(|e| candle_core::Error::msg(format!("quantized experts: {e}")))?;
        Tensor::from_vec(y, (rows, h), flat.device())
    }

    /// One pair of matrix products per expert over all its tokens (prefill, other dtypes).
    /// The weighted expert outputs are added into the result in one pass, in ascending expert
    /// order per token — the order the reference accumulates them in.
    fn experts_one_by_one(&self, flat: &Tensor, groups: Vec<moe_routing::ExpertGroup>) -> Result<Tensor> {
        let (rows, h) = flat.dims2()?;
        let i = self.cfg.moe_intermediate_size;
        let mut outputs = Vec::with_capacity(groups.len());
        let mut targets: Vec<u32> = Vec::with_capacity(rows * self.cfg.top_k);
        for group in groups {
            let e = group.expert as usize;
            let idx = Tensor::new(group.tokens.as_slice(), flat.device())?;
            let x = flat.index_select(&idx, 0)?;
            let (gate_up, down) = self.experts.expert(e)?;
            let gu = gate_up.matmul_t(&x)?; // n, 2I
            let act = self.cfg.act.apply(&gu.narrow(D::Minus1, 0, i)?)?;
            let y = down.matmul_t(&(act * gu.narrow(D::Minus1, i, i)?)?)?; // n, H
                                                                           // The reference casts routing weights to the activation dtype before scaling.
            let w = Tensor::new(group.weights.as_slice(), flat.device())?.to_dtype(flat.dtype())?.unsqueeze(1)?;
            outputs.push(y.broadcast_mul(&w)?);
            targets.extend_from_slice(&group.tokens);
        }
        let out = Tensor::zeros((rows, h), flat.dtype(), flat.device())?;
        if outputs.is_empty() {
            return Ok(out);
        }
        out.index_add(&Tensor::new(targets.as_slice(), flat.device())?, &Tensor::cat(&outputs, 0)?, 0)
    }
}

/// candle glue for [`omnid_kernels::moe_experts::expert_ffn_f32`]: `(x, gate_up, down)`,
/// contiguous f32 on the CPU (checked by [`SparseMoe::fused_decode_applies`]).
struct ExpertFfn<'a> {
    groups: Vec<moe_routing::ExpertGroup>,
    cfg: &'a MoeConfig,
}

impl CustomOp3 for ExpertFfn<'_> {
    fn name(&self) -> &'static str {
        "omnid-moe-experts"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(gu), CpuStorage::F32(dn)) = (s1, s2, s3) else {
            candle_core::bail!("moe experts: f32 operands expected; this is a bug")
        };
        let (Some((x0, x1)), Some((g0, g1)), Some((d0, d1))) =
            (l1.contiguous_offsets(), l2.contiguous_offsets(), l3.contiguous_offsets())
        else {
            candle_core::bail!("moe experts: contiguous operands expected; this is a bug")
        };
        let (tokens, h) = l1.shape().dims2()?;
        let shape =
            ExpertShape { num_experts: self.cfg.num_experts, hidden: h, intermediate: self.cfg.moe_intermediate_size };
        let y = expert_ffn_f32(&x[x0..x1], tokens, &self.groups, &gu[g0..g1], &dn[d0..d1], shape);
        Ok((CpuStorage::F32(y), Shape::from((tokens, h))))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use candle_core::Device;

    use super::*;
    use crate::models::quant::plan::QuantPlan;
    use crate::models::weights::WeightOptions;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|j| (((j * 7919 + seed * 104_729) % 1009) as f32 - 504.0) / 2000.0).collect()
    }

    /// A 4-expert layer of width 256 in per-expert storage, quantized by `quant` (or `dense`).
    fn layer(quant: &str) -> SparseMoe {
        let (e, h, i) = (4, 256, 256);
        let dev = Device::Cpu;
        let mut ts = HashMap::new();
        ts.insert("gate.weight".to_string(), Tensor::from_vec(values(e * h, 1), (e, h), &dev).unwrap());
        for ex in 0..e {
            for (k, name, shape) in [(0, "gate_proj", (i, h)), (1, "up_proj", (i, h)), (2, "down_proj", (h, i))] {
                let t = Tensor::from_vec(values(h * i, 10 + 3 * ex + k), shape, &dev).unwrap();
                ts.insert(format!("experts.{ex}.{name}.weight"), t);
            }
        }
        let vb = candle_nn::VarBuilder::from_tensors(ts, DType::F32, &dev);
        let plan = (quant != "dense").then(|| QuantPlan::parse(quant).unwrap());
        let options = WeightOptions { plan, ..Default::default() };
        let cfg = MoeConfig {
            hidden_size: h,
            num_experts: e,
            top_k: 2,
            moe_intermediate_size: i,
            norm_topk_prob: true,
            act: Activation::Silu,
            storage: ExpertStorage::PerExpert,
            shared_expert_intermediate_size: None,
        };
        SparseMoe::new(&cfg, Weights::new(vb, Arc::new(options))).unwrap()
    }

    /// The fused quantized decode kernel (q6_k experts) gives what one quantized matmul per expert
    /// gives, up to summation order; q8_0 experts take candle's matmul (faster there).
    #[test]
    fn quantized_decode_kernel_matches_the_per_expert_path() {
        let moe = layer("q6_k");
        let x = Tensor::from_vec(values(3 * 256, 99), (3, 256), &Device::Cpu).unwrap();
        let shape = moe.fused_quantized_decode_applies(&x).expect("q6_k experts take the fused kernel");
        assert_eq!((shape.gate_up_format, shape.down_format), (GgmlDType::Q6K, GgmlDType::Q6K));
        let fused = moe.forward(&x).unwrap();
        let logits: Vec<f32> = moe.router.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let routing = moe_routing::route(&logits, 4, 2, true);
        let groups = moe_routing::group_by_expert(&routing, 4);
        let plain = moe.experts_one_by_one(&x, groups).unwrap();
        let diff = (&fused - &plain).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let scale = plain.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff <= 1e-4 * scale && scale > 0.0, "fused vs per-expert: {diff} (scale {scale})");
        assert!(layer("q8_0").fused_quantized_decode_applies(&x).is_none());
    }

    /// The GPU decode path (routing and experts in omnid's kernels, here through their CPU
    /// definitions) gives what the host routing and grouped matmuls give, in f32 and bf16 weights.
    #[test]
    fn device_decode_ops_match_the_host_path() {
        let moe = layer("dense");
        let x = Tensor::from_vec(values(3 * 256, 98), (3, 256), &Device::Cpu).unwrap();
        let Experts::Stacked { gate_up, down } = &moe.experts else { panic!("dense experts are stacked") };
        let logits = moe.router.forward(&x).unwrap();
        let host = moe.forward(&x).unwrap();
        let scale = host.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        for dtype in [DType::F32, DType::BF16] {
            let (g, d) = (gate_up.to_dtype(dtype).unwrap(), down.to_dtype(dtype).unwrap());
            let fused = moe.device_decode(&x, &logits, &g, &d).unwrap();
            let diff = (&fused - &host).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            // bf16 weights: the host path has f32 weights, so allow bf16's relative precision.
            let tol = if dtype == DType::F32 { 1e-5 } else { 1e-2 };
            assert!(diff <= tol * scale && scale > 0.0, "{dtype:?}: {diff} (scale {scale})");
        }
        assert!(moe.device_decode_applies(&x).is_none(), "CPU tensors keep the host path");
    }
}
