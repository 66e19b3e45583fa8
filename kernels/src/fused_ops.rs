//! candle ops for omnid's own kernels. Each op's CPU forward is the reference definition, written
//! as plain loops; with the `cuda` feature its CUDA forward launches the kernel of the same name in
//! `kernels/cuda/` ([`crate::cuda`]). The models use these ops on CUDA devices only (their CPU
//! paths are tested against transformers directly), and the tests check the kernels, through the
//! CPU emulator, against the CPU forwards here.
//!
//! | op | inputs → output |
//! |---|---|
//! | [`MoeRoute`] | router logits `[T, E]` f32 → `[T, k, 2]` u32 (expert id, weight as f32 bits) |
//! | [`MoeExperts`] | `x [T, H]` f32, `gate_up [E, 2I, H]`, `down [E, H, I]` (f32 or bf16) + a routing → `[T, H]` f32 |
//! | [`RmsNormRope`] | `x [.., heads, d]`, `weight [d]`, `cos_sin [seq, 2, d/2]` → like `x` |
//! | [`SnakeBeta`] | `x [B, C, L]`, `alpha [C]`, `inv_beta [C]` → like `x` |

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};
use half::bf16;

use crate::moe_experts::{expert_ffn_f32, ExpertShape};
use crate::moe_routing::{self, Routing};

/// The contiguous elements of a CPU operand.
fn cpu_slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&s.as_slice::<T>()?[start..end]),
        None => bail!("{what} must be contiguous"),
    }
}

/// Top-k routing of router logits on the device (no host round trip).
#[derive(Debug, Clone, Copy)]
pub struct MoeRoute {
    pub k: usize,
    /// Divide the k weights by their sum (`norm_topk_prob`).
    pub renormalize: bool,
}

impl MoeRoute {
    /// `(tokens, experts)` of `logits`, checked.
    pub(crate) fn sizes(&self, l: &Layout) -> Result<(usize, usize)> {
        let (tokens, experts) = l.shape().dims2()?;
        if self.k == 0 || self.k > experts || experts > crate::cuda_kernels::MAX_ROUTE_EXPERTS {
            bail!(
                "moe route: top-{} over {experts} experts (at most {})",
                self.k,
                crate::cuda_kernels::MAX_ROUTE_EXPERTS
            )
        }
        Ok((tokens, experts))
    }
}

/// Packs a routing as the kernels exchange it: `[T, k, 2]` (expert id, weight bits).
pub fn pack_routing(r: &Routing) -> Vec<u32> {
    r.experts.iter().zip(&r.weights).flat_map(|(&e, w)| [e, w.to_bits()]).collect()
}

/// The experts per token of a packed routing, skipping ids ≥ `n_experts` (NaN logits).
pub fn unpack_routing(packed: &[u32], k: usize, n_experts: usize) -> Vec<moe_routing::ExpertGroup> {
    let mut groups: Vec<moe_routing::ExpertGroup> = (0..n_experts as u32)
        .map(|expert| moe_routing::ExpertGroup { expert, tokens: Vec::new(), weights: Vec::new() })
        .collect();
    for (slot, pair) in packed.chunks_exact(2).enumerate() {
        if let Some(g) = groups.get_mut(pair[0] as usize) {
            g.tokens.push((slot / k) as u32);
            g.weights.push(f32::from_bits(pair[1]));
        }
    }
    groups.retain(|g| !g.tokens.is_empty());
    groups
}

impl CustomOp1 for MoeRoute {
    fn name(&self) -> &'static str {
        "omnid-moe-route"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (tokens, experts) = self.sizes(l)?;
        let logits = cpu_slice::<f32>(s, l, "router logits (f32)")?;
        let routing = moe_routing::route(logits, experts, self.k, self.renormalize);
        Ok((CpuStorage::U32(pack_routing(&routing)), Shape::from((tokens, self.k, 2))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &candle_core::CudaStorage, l: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::moe_route(self, s, l)
    }
}

/// The routed SwiGLU experts of a few tokens: `y[t] = Σ_j w_j · down_e(silu(gate_e x_t) ⊙ up_e x_t)`
/// with the experts and weights of `routing` ([`MoeRoute`]'s output), summed in ascending expert
/// order like the reference.
#[derive(Debug, Clone)]
pub struct MoeExperts {
    /// `[T, k, 2]` u32 on the same device as the operands.
    pub routing: Tensor,
}

/// Sizes of a [`MoeExperts`] call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExpertCall {
    pub tokens: usize,
    pub k: usize,
    pub experts: usize,
    pub hidden: usize,
    pub inter: usize,
}

impl MoeExperts {
    pub(crate) fn sizes(&self, x: &Layout, gate_up: &Layout, down: &Layout) -> Result<ExpertCall> {
        let (tokens, hidden) = x.shape().dims2()?;
        let (experts, two_i, h2) = gate_up.shape().dims3()?;
        let (rt, k, two) = self.routing.dims3()?;
        let inter = two_i / 2;
        if h2 != hidden || two_i % 2 != 0 || down.shape().dims() != [experts, hidden, inter] || rt != tokens || two != 2
        {
            bail!(
                "moe experts: x {:?}, gate_up {:?}, down {:?}, routing {:?} do not fit together",
                x.shape(),
                gate_up.shape(),
                down.shape(),
                self.routing.shape()
            )
        }
        Ok(ExpertCall { tokens, k, experts, hidden, inter })
    }
}

/// Weights of either dtype as f32 (bf16 widens exactly).
fn widened(s: &CpuStorage, l: &Layout, what: &str) -> Result<Vec<f32>> {
    match s.dtype() {
        DType::F32 => Ok(cpu_slice::<f32>(s, l, what)?.to_vec()),
        DType::BF16 => Ok(cpu_slice::<bf16>(s, l, what)?.iter().map(|v| v.to_f32()).collect()),
        other => bail!("{what}: {other:?} weights, expected f32 or bf16"),
    }
}

impl CustomOp3 for MoeExperts {
    fn name(&self) -> &'static str {
        "omnid-moe-experts"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let c = self.sizes(xl, gl, dl)?;
        let x = cpu_slice::<f32>(xs, xl, "expert input x (f32)")?;
        let routing: Vec<u32> = self.routing.flatten_all()?.to_vec1()?;
        let groups = unpack_routing(&routing, c.k, c.experts);
        let shape = ExpertShape { num_experts: c.experts, hidden: c.hidden, intermediate: c.inter };
        let y = expert_ffn_f32(
            x,
            c.tokens,
            &groups,
            &widened(gs, gl, "experts.gate_up")?,
            &widened(ds, dl, "experts.down")?,
            shape,
        );
        Ok((CpuStorage::F32(y), Shape::from((c.tokens, c.hidden))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
        ds: &candle_core::CudaStorage,
        dl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::moe_experts(self, (xs, xl), (gs, gl), (ds, dl))
    }
}

/// An element type of the normalisation and activation ops: f32 or bf16, computed in f32.
pub trait Elem: WithDType {
    fn widen(self) -> f32;
    fn narrow(v: f32) -> Self;
}

impl Elem for f32 {
    fn widen(self) -> f32 {
        self
    }
    fn narrow(v: f32) -> Self {
        v
    }
}

impl Elem for bf16 {
    fn widen(self) -> f32 {
        self.to_f32()
    }
    fn narrow(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

/// Runs the f32 or the bf16 instance of an op whose three operands share the activations' dtype.
fn same_dtype_op(
    what: &str,
    operands: [(&CpuStorage, &Layout, &str); 3],
    f32_op: impl FnOnce([&[f32]; 3]) -> Vec<f32>,
    bf16_op: impl FnOnce([&[bf16]; 3]) -> Vec<bf16>,
) -> Result<CpuStorage> {
    let dtype = operands[0].0.dtype();
    if let Some((s, _, name)) = operands.iter().find(|(s, _, _)| s.dtype() != dtype) {
        bail!("{what}: {name} is {:?}, the activations {dtype:?}", s.dtype())
    }
    fn slices<'a, T: WithDType>(operands: &[(&'a CpuStorage, &Layout, &str); 3]) -> Result<[&'a [T]; 3]> {
        let [a, b, c] = operands;
        Ok([cpu_slice(a.0, a.1, a.2)?, cpu_slice(b.0, b.1, b.2)?, cpu_slice(c.0, c.1, c.2)?])
    }
    match dtype {
        DType::F32 => Ok(CpuStorage::F32(f32_op(slices(&operands)?))),
        DType::BF16 => Ok(CpuStorage::BF16(bf16_op(slices(&operands)?))),
        other => bail!("{what}: {other:?} activations, expected f32 or bf16"),
    }
}

/// Per-head RMSNorm (Qwen3's QK-norm) then rotate-half rotary embeddings, in one pass.
/// Rows of `x` are `b·seq + s`; row `s` of the `[seq, 2, d/2]` table (cos, then sin) rotates them.
#[derive(Debug, Clone, Copy)]
pub struct RmsNormRope {
    pub seq: usize,
    pub eps: f32,
}

/// Sizes of an [`RmsNormRope`] call: `x [rows, heads, d]`.
#[derive(Debug, Clone, Copy)]
pub struct RopeShape {
    pub rows: usize,
    pub heads: usize,
    pub d: usize,
}

impl RmsNormRope {
    pub(crate) fn sizes(&self, x: &Layout, w: &Layout, cs: &Layout) -> Result<RopeShape> {
        let dims = x.shape().dims();
        let (heads, d) = match dims {
            [.., h, d] => (*h, *d),
            _ => bail!("rms norm rope: x {:?} needs [.., heads, head_dim]", x.shape()),
        };
        let rows = x.shape().elem_count() / (heads * d).max(1);
        if d % 2 != 0 || w.shape().elem_count() != d || cs.shape().dims() != [self.seq, 2, d / 2] {
            bail!(
                "rms norm rope: head_dim {d} (must be even), weight {:?}, table {:?} (expected [{}, 2, {}])",
                w.shape(),
                cs.shape(),
                self.seq,
                d / 2
            )
        }
        if self.seq == 0 || !rows.is_multiple_of(self.seq) {
            bail!("rms norm rope: {rows} rows are not whole sequences of {}", self.seq)
        }
        Ok(RopeShape { rows, heads, d })
    }

    /// The CPU reference: the reference's rounding points (normalised value, then times the
    /// weight, each rounded to `T`), the rotation in f32 rounded once.
    pub fn reference<T: Elem>(&self, x: &[T], weight: &[T], cos_sin: &[T], s: RopeShape) -> Vec<T> {
        let (d, half) = (s.d, s.d / 2);
        let mut y = vec![T::narrow(0.0); x.len()];
        for (unit, (xv, yv)) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)).enumerate() {
            let pos = (unit / s.heads) % self.seq;
            let ss: f32 = xv.iter().map(|v| v.widen() * v.widen()).sum();
            let rms = (ss / d as f32 + self.eps).sqrt();
            let normed = |i: usize| T::narrow(T::narrow(xv[i].widen() / rms).widen() * weight[i].widen()).widen();
            let cs = &cos_sin[pos * d..(pos + 1) * d];
            for j in 0..half {
                let (a, b) = (normed(j), normed(j + half));
                let (c, sn) = (cs[j].widen(), cs[half + j].widen());
                yv[j] = T::narrow(a * c - b * sn);
                yv[j + half] = T::narrow(b * c + a * sn);
            }
        }
        y
    }
}

impl CustomOp3 for RmsNormRope {
    fn name(&self) -> &'static str {
        "omnid-rms-norm-rope"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        cs: &CpuStorage,
        cl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let s = self.sizes(xl, wl, cl)?;
        let operands = [(xs, xl, "x"), (ws, wl, "weight"), (cs, cl, "cos_sin")];
        let out = same_dtype_op(
            "rms norm rope",
            operands,
            |[x, w, c]| self.reference(x, w, c, s),
            |[x, w, c]| self.reference(x, w, c, s),
        )?;
        Ok((out, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ws: &candle_core::CudaStorage,
        wl: &Layout,
        cs: &candle_core::CudaStorage,
        cl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::rms_norm_rope(self, (xs, xl), (ws, wl), (cs, cl))
    }
}

/// Code2Wav's SnakeBeta, `y = x + sin²(x·a_c)·ib_c` over `x [B, C, L]`, computed in f32.
#[derive(Debug, Clone, Copy)]
pub struct SnakeBeta;

impl SnakeBeta {
    /// `(channels, len)` of `x`, checked against the per-channel operands.
    pub(crate) fn sizes(x: &Layout, a: &Layout, b: &Layout) -> Result<(usize, usize)> {
        let (_, channels, len) = x.shape().dims3()?;
        if a.shape().elem_count() != channels || b.shape().elem_count() != channels {
            bail!("snake beta: x {:?} with alpha {:?} and inv_beta {:?}", x.shape(), a.shape(), b.shape())
        }
        Ok((channels, len))
    }

    /// The CPU reference.
    pub fn reference<T: Elem>(x: &[T], alpha: &[T], inv_beta: &[T], len: usize) -> Vec<T> {
        let channels = alpha.len();
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = (i / len.max(1)) % channels;
                let s = (v.widen() * alpha[c].widen()).sin();
                T::narrow(v.widen() + s * s * inv_beta[c].widen())
            })
            .collect()
    }
}

impl CustomOp3 for SnakeBeta {
    fn name(&self) -> &'static str {
        "omnid-snake-beta"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        a_s: &CpuStorage,
        al: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, len) = Self::sizes(xl, al, bl)?;
        let operands = [(xs, xl, "x"), (a_s, al, "alpha"), (bs, bl, "inv_beta")];
        let out = same_dtype_op(
            "snake beta",
            operands,
            |[x, a, b]| Self::reference(x, a, b, len),
            |[x, a, b]| Self::reference(x, a, b, len),
        )?;
        Ok((out, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        a_s: &candle_core::CudaStorage,
        al: &Layout,
        bs: &candle_core::CudaStorage,
        bl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::cuda::snake_beta((xs, xl), (a_s, al), (bs, bl))
    }
}
