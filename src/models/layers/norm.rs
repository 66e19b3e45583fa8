//! Normalisation layers with the reference's numerics. Statistics are taken in f32 for f32 and
//! half-precision activations (as transformers does) and in f64 for f64 activations, so an f64
//! run (used to check ill-conditioned random fixtures) stays f64 end to end.

use crate::models::weights::Weights;
use candle_core::{DType, Module, Result, Tensor, D};

/// RMSNorm as in Qwen3: statistics in f32, cast back to the activation dtype, *then*
/// multiply by the weight (spec §2.1, pitfall §11.1). No bias, no `1 + w` offset.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Loads `{vb}.weight` of shape `[size]`.
    pub fn new(size: usize, eps: f64, vb: Weights) -> Result<Self> {
        Ok(Self { weight: vb.get(size, "weight")?, eps })
    }
}

impl RmsNorm {
    /// `weight [size]`, for fused kernels that apply the norm themselves.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The epsilon added to the mean square.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl Module for RmsNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        if dtype == DType::F32 && xs.is_contiguous() {
            // Same arithmetic as the reference in f32, through candle's fused kernel.
            return candle_nn::ops::rms_norm(xs, &self.weight, self.eps as f32);
        }
        let wide = xs.to_dtype(stats_dtype(dtype))?;
        let variance = wide.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = wide.broadcast_div(&(variance + self.eps)?.sqrt()?)?;
        normed.to_dtype(dtype)?.broadcast_mul(&self.weight)
    }
}

/// Precision of normalisation statistics for activations of `dtype`.
fn stats_dtype(dtype: DType) -> DType {
    if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// LayerNorm with weight and bias (audio tower eps 1e-5, vision tower 1e-6).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Loads `{vb}.weight` and `{vb}.bias`, both `[size]`.
    pub fn new(size: usize, eps: f64, vb: Weights) -> Result<Self> {
        Ok(Self { weight: vb.get(size, "weight")?, bias: vb.get(size, "bias")?, eps })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        if dtype == DType::F64 {
            return candle_nn::ops::layer_norm_slow(xs, &self.weight, &self.bias, self.eps as f32);
        }
        // torch computes LayerNorm statistics in f32 for half inputs and returns the input dtype.
        let xs32 = xs.to_dtype(DType::F32)?.contiguous()?;
        let w = self.weight.to_dtype(DType::F32)?;
        let b = self.bias.to_dtype(DType::F32)?;
        candle_nn::ops::layer_norm(&xs32, &w, &b, self.eps as f32)?.to_dtype(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::layers::rotary::apply_rotary;
    use candle_core::Device;
    use omnid_kernels::fused_ops::RmsNormRope;

    /// The fused QK-norm + rotary op the GPU path uses means what RmsNorm then rotate-half means:
    /// equal in f32, within candle's per-operation bf16 rounding in bf16.
    #[test]
    fn fused_norm_rope_op_matches_the_layers() {
        let dev = Device::Cpu;
        let (b, s, h, d) = (2, 3, 4, 16);
        let x = (Tensor::randn(0f32, 2.0, (b, s, h, d), &dev).unwrap() + 0.5).unwrap();
        let weight = Tensor::randn(1f32, 0.3, d, &dev).unwrap();
        let angles = Tensor::randn(0f32, 3.0, (s, d / 2), &dev).unwrap();
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        for (dtype, tol) in [(DType::F32, 1e-5f32), (DType::BF16, 2f32.powi(-6))] {
            let norm = RmsNorm { weight: weight.to_dtype(dtype).unwrap(), eps: 1e-6 };
            let (xd, cd, sd) = (x.to_dtype(dtype).unwrap(), cos.to_dtype(dtype).unwrap(), sin.to_dtype(dtype).unwrap());
            let layers =
                apply_rotary(&norm.forward(&xd).unwrap().transpose(1, 2).unwrap().contiguous().unwrap(), &cd, &sd)
                    .unwrap();
            let table = Tensor::stack(&[&cd, &sd], 1).unwrap();
            let fused = xd
                .apply_op3_no_bwd(norm.weight(), &table, &RmsNormRope { seq: s, eps: 1e-6 })
                .unwrap()
                .transpose(1, 2)
                .unwrap();
            let diff = (fused.to_dtype(DType::F32).unwrap() - layers.to_dtype(DType::F32).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let scale =
                layers.to_dtype(DType::F32).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff <= tol * scale && scale > 1.0, "{dtype:?}: {diff} (scale {scale})");
        }
    }
}
