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
//! The talker adds a gated shared expert to every layer (spec §7.3):
//! `out = routed + sigmoid(x·w_sgᵀ) · SwiGLU_shared(x)`.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Module, Result, Shape, Tensor, D};
use candle_nn::VarBuilder;
use omnid_kernels::moe_experts::{expert_ffn_f32, ExpertShape};
use omnid_kernels::moe_routing;

use super::activation::Activation;
use super::linear::{matmul_wt, Linear};
use super::mlp::GatedMlp;

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

/// Router + experts (+ an optional gated shared expert).
#[derive(Debug, Clone)]
pub struct SparseMoe {
    router: Linear,
    gate_up: Tensor,
    down: Tensor,
    shared: Option<SharedExpert>,
    cfg: MoeConfig,
}

impl SparseMoe {
    /// Loads `{vb}.gate.weight` and the experts in either storage.
    pub fn new(cfg: &MoeConfig, vb: VarBuilder) -> Result<Self> {
        let (e, h, i) = (cfg.num_experts, cfg.hidden_size, cfg.moe_intermediate_size);
        if cfg.top_k == 0 || cfg.top_k > e {
            candle_core::bail!("num_experts_per_tok {} must be in 1..={e}", cfg.top_k)
        }
        let router = Linear::new(h, e, false, vb.pp("gate"))?;
        let xv = vb.pp("experts");
        let (gate_up, down) = match cfg.storage {
            ExpertStorage::PerExpert => {
                let mut gu = Vec::with_capacity(e);
                let mut dn = Vec::with_capacity(e);
                for ex in 0..e {
                    let p = xv.pp(ex);
                    let g = p.pp("gate_proj").get((i, h), "weight")?;
                    let u = p.pp("up_proj").get((i, h), "weight")?;
                    gu.push(Tensor::cat(&[g, u], 0)?);
                    dn.push(p.pp("down_proj").get((h, i), "weight")?);
                }
                (Tensor::stack(&gu, 0)?, Tensor::stack(&dn, 0)?)
            }
            ExpertStorage::Fused => {
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
                let dn = xv.get_unchecked("down_proj")?;
                let dn = match dn.dims() {
                    [ee, a, b] if *ee == e && *a == h && *b == i => dn,
                    [ee, a, b] if *ee == e && *a == i && *b == h => dn.transpose(1, 2)?.contiguous()?,
                    other => candle_core::bail!(
                        "experts.down_proj has shape {other:?}, expected [{e}, {h}, {i}] or [{e}, {i}, {h}]"
                    ),
                };
                (gu, dn)
            }
        };
        let shared = match cfg.shared_expert_intermediate_size {
            Some(width) => Some(SharedExpert {
                mlp: GatedMlp::new(h, width, cfg.act, vb.pp("shared_expert"))?,
                gate: Linear::new(h, 1, false, vb.pp("shared_expert_gate"))?,
            }),
            None => None,
        };
        Ok(Self { router, gate_up, down, shared, cfg: cfg.clone() })
    }
}

impl Module for SparseMoe {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims().to_vec();
        let h = self.cfg.hidden_size;
        let rows = xs.elem_count() / h;
        let flat = xs.reshape((rows, h))?;
        let logits = self.router.forward(&flat)?;
        // Host sync: routing decides which expert matmuls to launch, so the top-k must be
        // known on the host. On the CPU this is a plain read of memory.
        let logits: Vec<f32> = logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let routing = moe_routing::route(&logits, self.cfg.num_experts, self.cfg.top_k, self.cfg.norm_topk_prob);
        let groups = moe_routing::group_by_expert(&routing, self.cfg.num_experts);
        let out = if self.fused_decode_applies(&flat) {
            flat.contiguous()?.apply_op3_no_bwd(&self.gate_up, &self.down, &ExpertFfn { groups, cfg: &self.cfg })?
        } else {
            self.experts_one_by_one(&flat, groups)?
        };
        // Added after the routed experts, as the reference does (`expert_output + shared`).
        let out = match &self.shared {
            Some(s) => {
                let gate = candle_nn::ops::sigmoid(&s.gate.forward(&flat)?)?;
                (out + s.mlp.forward(&flat)?.broadcast_mul(&gate)?)?
            }
            None => out,
        };
        out.reshape(dims)
    }
}

impl SparseMoe {
    /// A few f32 token rows on the CPU (a decode step) go through the fused kernel.
    fn fused_decode_applies(&self, flat: &Tensor) -> bool {
        flat.device().is_cpu()
            && flat.dtype() == DType::F32
            && self.gate_up.dtype() == DType::F32
            && flat.dim(0).is_ok_and(|r| r <= omnid_kernels::gemv::MAX_ROWS)
            && self.cfg.act == Activation::Silu
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
            let gu = matmul_wt(&x, &self.gate_up.get(e)?)?; // n, 2I
            let act = self.cfg.act.apply(&gu.narrow(D::Minus1, 0, i)?)?;
            let y = matmul_wt(&(act * gu.narrow(D::Minus1, i, i)?)?, &self.down.get(e)?)?; // n, H
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
