//! Causal 1-D convolutions of the Code2Wav codec decoder (spec §8.7), on `[B, C, L]` tensors.
//!
//! * [`CausalConv1d`] (transformers' `CausalConvNet`, stride 1): zero padding of
//!   `(k − 1)·dilation` on the left only, so the length is preserved and sample t sees only
//!   samples ≤ t. Depthwise convs (`groups == channels`) are computed as k shifted
//!   multiply-adds: candle would otherwise run one tiny convolution per channel.
//! * [`CausalConvTranspose1d`] (`CausalTransConvNet`): a full transposed conv, then `k − s`
//!   samples dropped on the left *and* on the right. For `k = 2s` the output has `(L − 1)·s`
//!   samples and output block j reads inputs j and j + 1 (one frame of look-ahead).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Causal stride-1 Conv1d with bias, weight `[out, in/groups, k]`.
#[derive(Debug, Clone)]
pub struct CausalConv1d {
    weight: Tensor,
    /// `[1, out, 1]`, ready to broadcast.
    bias: Tensor,
    dilation: usize,
    groups: usize,
}

impl CausalConv1d {
    /// Loads `{vb}.weight` and `{vb}.bias`.
    pub fn new(
        in_ch: usize,
        out_ch: usize,
        kernel: usize,
        dilation: usize,
        groups: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        if groups == 0 || !in_ch.is_multiple_of(groups) || !out_ch.is_multiple_of(groups) {
            candle_core::bail!("conv {}: {in_ch}→{out_ch} channels cannot form {groups} groups", vb.prefix())
        }
        let weight = vb.get((out_ch, in_ch / groups, kernel), "weight")?;
        let bias = vb.get(out_ch, "bias")?.reshape((1, out_ch, 1))?;
        Ok(Self { weight, bias, dilation, groups })
    }

    /// Receptive field reaching back from each output sample, in input samples.
    pub fn left_reach(&self) -> usize {
        (self.weight.dim(2).unwrap_or(1) - 1) * self.dilation
    }

    fn depthwise(&self, padded: &Tensor, len: usize) -> Result<Tensor> {
        let (_, _, k) = self.weight.dims3()?;
        let mut acc: Option<Tensor> = None;
        for tap in 0..k {
            let w = self.weight.narrow(2, tap, 1)?.reshape((1, (), 1))?; // 1, C, 1
            let term = padded.narrow(2, tap * self.dilation, len)?.broadcast_mul(&w)?;
            acc = Some(match acc {
                Some(a) => (a + term)?,
                None => term,
            });
        }
        acc.expect("kernel has at least one tap").broadcast_add(&self.bias)
    }
}

impl Module for CausalConv1d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (_, ch, len) = xs.dims3()?;
        let padded = xs.pad_with_zeros(2, self.left_reach(), 0)?;
        if self.groups > 1 && self.groups == ch && self.weight.dim(0)? == ch {
            return self.depthwise(&padded, len);
        }
        padded.conv1d(&self.weight, 0, 1, self.dilation, self.groups)?.broadcast_add(&self.bias)
    }
}

/// Causal ConvTranspose1d with bias, weight `[in, out, k]` (torch's transposed layout).
#[derive(Debug, Clone)]
pub struct CausalConvTranspose1d {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    /// `k − s` samples trimmed on each side.
    trim: usize,
}

impl CausalConvTranspose1d {
    /// Loads `{vb}.weight` `[in, out, k]` and `{vb}.bias` `[out]`.
    pub fn new(in_ch: usize, out_ch: usize, kernel: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        if stride == 0 || kernel < stride {
            candle_core::bail!("transposed conv {}: kernel {kernel} shorter than stride {stride}", vb.prefix())
        }
        let weight = vb.get((in_ch, out_ch, kernel), "weight")?;
        let bias = vb.get(out_ch, "bias")?.reshape((1, out_ch, 1))?;
        Ok(Self { weight, bias, stride, trim: kernel - stride })
    }
}

impl Module for CausalConvTranspose1d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let full = xs.conv_transpose1d(&self.weight, 0, 0, self.stride, 1, 1)?; // b, out, (L−1)·s + k
        let keep = full.dim(2)?.saturating_sub(2 * self.trim);
        full.narrow(2, self.trim, keep)?.broadcast_add(&self.bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    /// Random `{name}.weight` of `shape` and `{name}.bias` of `[out]`.
    fn builder(name: &str, shape: &[usize], out: usize) -> VarBuilder<'static> {
        let dev = Device::Cpu;
        let mut ts = HashMap::new();
        ts.insert(format!("{name}.weight"), Tensor::randn(0f64, 1., shape, &dev).unwrap());
        ts.insert(format!("{name}.bias"), Tensor::randn(0f64, 1., out, &dev).unwrap());
        VarBuilder::from_tensors(ts, DType::F64, &dev)
    }

    #[test]
    fn depthwise_matches_grouped_conv() {
        let conv = CausalConv1d::new(3, 3, 4, 2, 3, builder("c", &[3, 1, 4], 3).pp("c")).unwrap();
        let xs = Tensor::randn(0f64, 1., (2, 3, 11), &Device::Cpu).unwrap();
        let fast = conv.forward(&xs).unwrap();
        let padded = xs.pad_with_zeros(2, conv.left_reach(), 0).unwrap();
        let slow = padded.conv1d(&conv.weight, 0, 1, 2, 3).unwrap().broadcast_add(&conv.bias).unwrap();
        let d: f64 = (fast - slow).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-12, "{d}");
    }

    #[test]
    fn causal_conv_ignores_the_future() {
        let conv = CausalConv1d::new(2, 2, 3, 3, 1, builder("c", &[2, 2, 3], 2).pp("c")).unwrap();
        let xs = Tensor::randn(0f64, 1., (1, 2, 12), &Device::Cpu).unwrap();
        let full = conv.forward(&xs).unwrap();
        let head = conv.forward(&xs.narrow(2, 0, 7).unwrap()).unwrap();
        let d: f64 =
            (full.narrow(2, 0, 7).unwrap() - head).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert_eq!(full.dim(2).unwrap(), 12);
        assert!(d < 1e-12, "{d}");
    }

    #[test]
    fn transposed_conv_length_is_l_minus_one_strides() {
        let conv = CausalConvTranspose1d::new(2, 3, 10, 5, builder("t", &[2, 3, 10], 3).pp("t")).unwrap();
        let xs = Tensor::randn(0f64, 1., (1, 2, 6), &Device::Cpu).unwrap();
        let full = conv.forward(&xs).unwrap();
        assert_eq!(full.dims(), &[1, 3, 25]);
        // Output block j reads inputs j and j + 1 only: a prefix of the input gives a prefix.
        let head = conv.forward(&xs.narrow(2, 0, 4).unwrap()).unwrap();
        let d: f64 =
            (full.narrow(2, 0, 15).unwrap() - head).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-12, "{d}");
    }
}
