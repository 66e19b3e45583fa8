//! Linear layers. Every projection in omnid goes through [`Linear`] (or [`matmul_wt`] for
//! weights held elsewhere, like stacked experts), so a weight variant (quantized blocks, a GPU
//! kernel) is added here once instead of in every model file.
//!
//! Decode steps multiply one or a few rows by each weight; for those the `omnid-kernels`
//! GEMV streams the f32 weight once instead of packing it like a general matmul does
//! (twice the decode speed on the benchmark model). Larger row counts use candle's GEMM.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Module, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use omnid_kernels::gemv;

/// `x·wᵀ` for `x: [m, k]` and `w: [n, k]` (the checkpoint orientation).
pub fn matmul_wt(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (m, _) = x.dims2()?;
    let on_cpu = x.device().is_cpu() && w.device().is_cpu();
    if on_cpu && m <= gemv::MAX_ROWS && x.dtype() == DType::F32 && w.dtype() == DType::F32 && w.is_contiguous() {
        return x.contiguous()?.apply_op2_no_bwd(w, &Gemv);
    }
    x.matmul(&w.t()?)
}

/// candle glue for [`gemv::gemv_f32`]; both operands contiguous f32 (checked by the caller).
struct Gemv;

impl CustomOp2 for Gemv {
    fn name(&self) -> &'static str {
        "omnid-gemv"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (n, k2) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("gemv: x has {k} columns, the weight {k2}")
        }
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (s1, s2) else {
            candle_core::bail!("gemv: f32 operands expected; this is a bug")
        };
        let (Some((x0, x1)), Some((w0, w1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("gemv: contiguous operands expected; this is a bug")
        };
        let mut y = vec![0f32; m * n];
        gemv::gemv_f32(&x[x0..x1], &w[w0..w1], m, n, k, &mut y);
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }
}

/// `y = x·Wᵀ + b` with `W: [out, in]` as stored in Hugging Face checkpoints.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `{vb}.weight` `[out, in]` and, if `bias`, `{vb}.bias` `[out]`.
    pub fn new(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias { Some(vb.get(out_dim, "bias")?) } else { None };
        Ok(Self { weight, bias })
    }

    /// Wraps tensors that were built elsewhere (e.g. a tied embedding table).
    pub fn from_weights(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// One layer computing several layers' outputs side by side (their weights stacked along
    /// the output dimension), e.g. q/k/v: the input is read once.
    pub fn stack_outputs(parts: &[&Linear]) -> Result<Self> {
        let weights: Vec<&Tensor> = parts.iter().map(|p| &p.weight).collect();
        let bias = if parts.iter().all(|p| p.bias.is_some()) {
            let b: Vec<&Tensor> = parts.iter().filter_map(|p| p.bias.as_ref()).collect();
            Some(Tensor::cat(&b, 0)?)
        } else if parts.iter().any(|p| p.bias.is_some()) {
            candle_core::bail!("stack_outputs: either every part has a bias or none")
        } else {
            None
        };
        Ok(Self { weight: Tensor::cat(&weights, 0)?, bias })
    }

    /// The `[out, in]` weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        // Flatten leading dims so one 2-D matmul runs against the transposed weight view
        // (candle reads the transpose through strides; nothing is copied).
        let dims = xs.dims().to_vec();
        let in_dim = dims[dims.len() - 1];
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let ys = matmul_wt(&xs.reshape((rows, in_dim))?, &self.weight)?;
        let ys = match &self.bias {
            Some(b) => ys.broadcast_add(b)?,
            None => ys,
        };
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = self.weight.dims()[0];
        ys.reshape(out_dims)
    }
}
