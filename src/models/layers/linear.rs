//! Linear layers. Every projection in omnid goes through [`Linear`] (or [`MatrixWeight`] for
//! weights held elsewhere, like the experts), so a weight variant (quantized blocks, a GPU
//! kernel) is added here once instead of in every model file.
//!
//! Quantized matrices (ggml block formats, see `models::quant`) run through candle's quantized
//! matmul: the input rows are quantized to 8 bits once and dotted with the weight blocks in
//! integer arithmetic (AVX-512 VNNI / AVX2 on x86), reading 4.5–8.5 bits per weight instead of 32.
//!
//! Decode steps multiply one or a few rows by each weight; for those the `omnid-kernels`
//! GEMV streams the f32 weight once instead of packing it like a general matmul does
//! (twice the decode speed on the benchmark model). Larger row counts use candle's GEMM.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Module, Result, Shape, Tensor};
use omnid_kernels::gemv;

use crate::models::weights::Weights;

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

/// A `[out, in]` weight matrix (or a stack `[.., out, in]`), dense or in a ggml block format.
#[derive(Debug, Clone)]
pub enum MatrixWeight {
    Dense(Tensor),
    Quantized(Arc<QTensor>),
    /// Row blocks of one `[out, in]` matrix held in different formats: llama.cpp's Q4_K_M keeps
    /// `attn_v` at q6_k beside q4_k `attn_q` / `attn_k`, which omnid runs as one q/k/v projection.
    /// Each block multiplies on its own and the outputs are concatenated.
    Parts {
        parts: Vec<MatrixWeight>,
        dims: [usize; 2],
    },
}

impl MatrixWeight {
    /// `x·Wᵀ` for `x: [m, in]`.
    pub fn matmul_t(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            MatrixWeight::Dense(w) => matmul_wt(x, w),
            MatrixWeight::Quantized(q) => {
                // candle's quantized matmul takes f32 rows on the CPU; other dtypes round-trip.
                let dtype = x.dtype();
                let on_cpu = x.device().is_cpu();
                let x = if on_cpu && dtype != DType::F32 { x.to_dtype(DType::F32)? } else { x.clone() };
                let y = x.contiguous()?.apply_op1_no_bwd(q.as_ref())?;
                if y.dtype() == dtype {
                    Ok(y)
                } else {
                    y.to_dtype(dtype)
                }
            }
            MatrixWeight::Parts { parts, .. } => {
                let ys = parts.iter().map(|p| p.matmul_t(x)).collect::<Result<Vec<_>>>()?;
                Tensor::cat(&ys, candle_core::D::Minus1)
            }
        }
    }

    /// The shape `[.., out, in]`.
    pub fn dims(&self) -> &[usize] {
        match self {
            MatrixWeight::Dense(w) => w.dims(),
            MatrixWeight::Quantized(q) => q.shape().dims(),
            MatrixWeight::Parts { dims, .. } => dims,
        }
    }

    /// Matrix `i` of a stack `[n, out, in]`.
    pub fn get(&self, i: usize) -> Result<MatrixWeight> {
        match self {
            MatrixWeight::Dense(w) => Ok(MatrixWeight::Dense(w.get(i)?)),
            MatrixWeight::Quantized(q) => {
                let dims = q.shape().dims();
                let (n, rest) =
                    dims.split_first().ok_or_else(|| candle_core::Error::msg("get on a 0-d quantized tensor"))?;
                if i >= *n {
                    candle_core::bail!("matrix {i} of a stack of {n}")
                }
                let data = q.data()?;
                let per = data.len() / n;
                Ok(MatrixWeight::Quantized(Arc::new(quantized_from_bytes(
                    &data[i * per..(i + 1) * per],
                    q.dtype(),
                    rest,
                    &q.device(),
                )?)))
            }
            MatrixWeight::Parts { .. } => candle_core::bail!("matrix {i} of a matrix held in parts"),
        }
    }

    /// Storage bytes (for memory reports).
    pub fn size_in_bytes(&self) -> usize {
        match self {
            MatrixWeight::Dense(w) => w.elem_count() * w.dtype().size_in_bytes(),
            MatrixWeight::Quantized(q) => q.storage_size_in_bytes(),
            MatrixWeight::Parts { parts, .. } => parts.iter().map(MatrixWeight::size_in_bytes).sum(),
        }
    }

    /// Rows of several matrices of the same width stacked into one (`[Σout, in]`): one tensor when
    /// all are dense or all share one block format, [`MatrixWeight::Parts`] otherwise.
    pub fn stack_rows(parts: &[&MatrixWeight]) -> Result<MatrixWeight> {
        let widths: Vec<usize> = parts.iter().map(|p| p.dims().last().copied().unwrap_or(0)).collect();
        if parts.is_empty() || widths.iter().any(|w| *w != widths[0]) || parts.iter().any(|p| p.dims().len() != 2) {
            candle_core::bail!("stack_rows: matrices of widths {widths:?} cannot be stacked")
        }
        let one_format = parts.iter().all(|p| match (p, parts[0]) {
            (MatrixWeight::Dense(_), MatrixWeight::Dense(_)) => true,
            (MatrixWeight::Quantized(a), MatrixWeight::Quantized(b)) => a.dtype() == b.dtype(),
            _ => false,
        });
        if !one_format {
            let rows = parts.iter().map(|p| p.dims()[0]).sum();
            let flat = parts
                .iter()
                .flat_map(|p| match p {
                    MatrixWeight::Parts { parts, .. } => parts.clone(),
                    other => vec![(*other).clone()],
                })
                .collect();
            return Ok(MatrixWeight::Parts { parts: flat, dims: [rows, widths[0]] });
        }
        // One format: all dense, or all quantized alike (rows are whole blocks, so bytes append).
        if let MatrixWeight::Dense(_) = parts[0] {
            let dense: Vec<&Tensor> =
                parts.iter().filter_map(|p| if let MatrixWeight::Dense(w) = p { Some(w) } else { None }).collect();
            return Ok(MatrixWeight::Dense(Tensor::cat(&dense, 0)?));
        }
        let qs: Vec<&Arc<QTensor>> =
            parts.iter().filter_map(|p| if let MatrixWeight::Quantized(q) = p { Some(q) } else { None }).collect();
        let mut bytes = Vec::new();
        for q in &qs {
            bytes.extend_from_slice(&q.data()?);
        }
        let rows = parts.iter().map(|p| p.dims()[0]).sum::<usize>();
        let matrix = quantized_from_bytes(&bytes, qs[0].dtype(), &[rows, widths[0]], &qs[0].device())?;
        Ok(MatrixWeight::Quantized(Arc::new(matrix)))
    }
}

/// Quantizes `t` (rows along its last dimension) to `format`.
pub fn quantize(t: &Tensor, format: GgmlDType) -> Result<QTensor> {
    // candle quantizes the tensor's whole storage, whatever the view's offset and length, so a
    // view (one expert of a stack) would be read wrongly: quantize a copy of exactly the view.
    // The copy is transient and cheaper than the quantization itself.
    QTensor::quantize(&t.force_contiguous()?, format)
}

/// A quantized tensor from its raw blocks (rows are whole blocks, so row slices of a quantized
/// matrix are byte slices).
fn quantized_from_bytes(bytes: &[u8], dtype: GgmlDType, dims: &[usize], device: &Device) -> Result<QTensor> {
    let storage = QStorage::from_data(std::borrow::Cow::Borrowed(bytes), device, dtype)?;
    QTensor::new(storage, dims.to_vec())
}

/// `y = x·Wᵀ + b` with `W: [out, in]` as stored in Hugging Face checkpoints.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: MatrixWeight,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `{vb}.weight` `[out, in]` (quantized if the load's plan says so) and, if `bias`,
    /// `{vb}.bias` `[out]`.
    pub fn new(in_dim: usize, out_dim: usize, bias: bool, vb: Weights) -> Result<Self> {
        let weight = vb.matrix(out_dim, in_dim, "weight")?;
        let bias = if bias { Some(vb.get(out_dim, "bias")?) } else { None };
        Ok(Self { weight, bias })
    }

    /// Wraps a weight that was built elsewhere (e.g. a tied embedding table).
    pub fn from_weights(weight: MatrixWeight, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// One layer computing several layers' outputs side by side (their weights stacked along
    /// the output dimension), e.g. q/k/v: the input is read once.
    pub fn stack_outputs(parts: &[&Linear]) -> Result<Self> {
        let weights: Vec<&MatrixWeight> = parts.iter().map(|p| &p.weight).collect();
        let bias = if parts.iter().all(|p| p.bias.is_some()) {
            let b: Vec<&Tensor> = parts.iter().filter_map(|p| p.bias.as_ref()).collect();
            Some(Tensor::cat(&b, 0)?)
        } else if parts.iter().any(|p| p.bias.is_some()) {
            candle_core::bail!("stack_outputs: either every part has a bias or none")
        } else {
            None
        };
        Ok(Self { weight: MatrixWeight::stack_rows(&weights)?, bias })
    }

    /// The `[out, in]` weight.
    pub fn weight(&self) -> &MatrixWeight {
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
        let ys = self.weight.matmul_t(&xs.reshape((rows, in_dim))?)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Deterministic values in [-1, 1) with a few large ones, as trained weights have.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let v = ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                if i % 97 == 0 {
                    v * 4.0
                } else {
                    v
                }
            })
            .collect()
    }

    fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        let n = b.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        (d / n).sqrt()
    }

    #[test]
    fn quantized_matrices_stay_close_to_dense_and_stack_exactly() {
        let dev = Device::Cpu;
        let (out, inp) = (64, 512);
        let w = Tensor::from_vec(values(out * inp, 1), (out, inp), &dev).unwrap();
        for rows in [1, 3, 20] {
            let x = Tensor::from_vec(values(rows * inp, 2 + rows as u64), (rows, inp), &dev).unwrap();
            let dense = MatrixWeight::Dense(w.clone()).matmul_t(&x).unwrap();
            // Bounds: the relative error of one dot product with both operands rounded
            // (weights to the format, inputs to 8 bits), with a margin.
            // (measured: 1.1–1.3%, 1.9–2.1%, 7.1–7.7%).
            for (format, bound) in [(GgmlDType::Q8_0, 0.015), (GgmlDType::Q6K, 0.025), (GgmlDType::Q4K, 0.09)] {
                let q = MatrixWeight::Quantized(Arc::new(quantize(&w, format).unwrap()));
                let y = q.matmul_t(&x).unwrap();
                let e = rel_err(&y, &dense);
                assert!(e < bound && e > 0.0, "{format:?}, {rows} rows: relative error {e}");
                // Stacking quantized matrices by rows and picking them out again moves bytes only.
                let stacked = MatrixWeight::stack_rows(&[&q, &q]).unwrap();
                assert_eq!(stacked.dims(), &[2 * out, inp]);
                let both = stacked.matmul_t(&x).unwrap();
                let again = both.narrow(1, out, out).unwrap();
                assert_eq!(rel_err(&again, &y), 0.0, "{format:?}: the stacked copy differs");
            }
        }
    }

    #[test]
    fn quantized_stacks_split_per_matrix_and_mixed_stacks_multiply_by_parts() {
        let dev = Device::Cpu;
        let w = Tensor::from_vec(values(3 * 8 * 64, 5), (3, 8, 64), &dev).unwrap();
        let q = MatrixWeight::Quantized(Arc::new(quantize(&w, GgmlDType::Q8_0).unwrap()));
        let x = Tensor::from_vec(values(2 * 64, 6), (2, 64), &dev).unwrap();
        for e in 0..3 {
            let one = MatrixWeight::Quantized(Arc::new(quantize(&w.get(e).unwrap(), GgmlDType::Q8_0).unwrap()));
            let (a, b) = (q.get(e).unwrap().matmul_t(&x).unwrap(), one.matmul_t(&x).unwrap());
            assert_eq!(rel_err(&a, &b), 0.0, "expert {e}");
        }
        assert!(q.get(3).is_err());
        // Dense beside q8_0 beside q4_0 (as llama.cpp's mixes store q/k/v): held in parts, and the
        // product is the parts' products side by side.
        let dense = MatrixWeight::Dense(w.get(0).unwrap());
        let q8 = q.get(1).unwrap();
        let q4 = MatrixWeight::Quantized(Arc::new(quantize(&w.get(2).unwrap(), GgmlDType::Q4_0).unwrap()));
        let mixed = MatrixWeight::stack_rows(&[&dense, &q8, &q4]).unwrap();
        assert!(matches!(&mixed, MatrixWeight::Parts { parts, .. } if parts.len() == 3));
        assert_eq!(mixed.dims(), &[24, 64]);
        let y = mixed.matmul_t(&x).unwrap();
        let want =
            Tensor::cat(&[dense.matmul_t(&x).unwrap(), q8.matmul_t(&x).unwrap(), q4.matmul_t(&x).unwrap()], 1).unwrap();
        assert_eq!(rel_err(&y, &want), 0.0);
        let e = MatrixWeight::stack_rows(&[
            &dense,
            &MatrixWeight::Dense(Tensor::zeros((2, 32), DType::F32, &dev).unwrap()),
        ]);
        assert!(e.unwrap_err().to_string().contains("cannot be stacked"));
    }
}
