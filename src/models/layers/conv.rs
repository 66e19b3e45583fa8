//! Causal 1-D convolutions of the Code2Wav codec decoder (spec §8.7), on `[B, C, L]` tensors.
//!
//! * [`CausalConv1d`] (transformers' `CausalConvNet`, stride 1): zero padding of
//!   `(k − 1)·dilation` on the left only, so the length is preserved and sample t sees only
//!   samples ≤ t. Depthwise convs (`groups == channels`) are computed as k shifted
//!   multiply-adds: candle would otherwise run one tiny convolution per channel.
//! * [`CausalConvTranspose1d`] (`CausalTransConvNet`): a full transposed conv, then `k − s`
//!   samples dropped on the left *and* on the right. For `k = 2s` the output has `(L − 1)·s`
//!   samples and output block j reads inputs j and j + 1 (one frame of look-ahead).
//!
//! Both also run as streams (`forward_stream`): a [`ConvTape`] keeps, per convolution, the input
//! samples its next call needs — the last `(k − 1)·dilation` for a conv, the last one for a
//! transposed conv — so a signal fed in pieces gives exactly the samples of one call on the
//! whole signal, piece by piece (the transposed conv's last block waits for the next input).
//! The one-call `forward` is the stream with a fresh tape: one code path.

use crate::models::weights::Weights;
use candle_core::{Module, Result, Tensor};

/// Per-stream state of a chain of causal convolutions: one slot per convolution, used in the
/// order the convolutions run (call [`ConvTape::rewind`] before each pass over the chain).
#[derive(Debug, Clone, Default)]
pub struct ConvTape {
    slots: Vec<Option<Tensor>>,
    cursor: usize,
}

impl ConvTape {
    /// Back to the first convolution, for the next piece of the signal.
    pub fn rewind(&mut self) {
        self.cursor = 0;
    }

    fn slot(&mut self) -> &mut Option<Tensor> {
        if self.cursor == self.slots.len() {
            self.slots.push(None);
        }
        self.cursor += 1;
        &mut self.slots[self.cursor - 1]
    }
}

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
        vb: Weights,
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

impl CausalConv1d {
    /// The next piece `[B, C, L]` of a signal whose earlier pieces went through the same `tape`
    /// slot: the missing history is the tape's (zeros before the first piece).
    pub fn forward_stream(&self, xs: &Tensor, tape: &mut ConvTape) -> Result<Tensor> {
        let (_, ch, len) = xs.dims3()?;
        let reach = self.left_reach();
        let slot = tape.slot();
        if len == 0 {
            return xs.narrow(1, 0, 0)?.pad_with_zeros(1, 0, self.weight.dim(0)?);
        }
        let padded = match slot.take() {
            Some(history) => Tensor::cat(&[&history, xs], 2)?,
            None => xs.pad_with_zeros(2, reach, 0)?,
        };
        if reach > 0 {
            *slot = Some(padded.narrow(2, padded.dim(2)? - reach, reach)?.contiguous()?);
        }
        if self.groups > 1 && self.groups == ch && self.weight.dim(0)? == ch {
            return self.depthwise(&padded, len);
        }
        padded.conv1d(&self.weight, 0, 1, self.dilation, self.groups)?.broadcast_add(&self.bias)
    }
}

impl Module for CausalConv1d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_stream(xs, &mut ConvTape::default())
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
    pub fn new(in_ch: usize, out_ch: usize, kernel: usize, stride: usize, vb: Weights) -> Result<Self> {
        if stride == 0 || kernel < stride {
            candle_core::bail!("transposed conv {}: kernel {kernel} shorter than stride {stride}", vb.prefix())
        }
        let weight = vb.get((in_ch, out_ch, kernel), "weight")?;
        let bias = vb.get(out_ch, "bias")?.reshape((1, out_ch, 1))?;
        Ok(Self { weight, bias, stride, trim: kernel - stride })
    }
}

impl CausalConvTranspose1d {
    fn whole(&self, xs: &Tensor) -> Result<Tensor> {
        let full = xs.conv_transpose1d(&self.weight, 0, 0, self.stride, 1, 1)?; // b, out, (L−1)·s + k
        let keep = full.dim(2)?.saturating_sub(2 * self.trim);
        full.narrow(2, self.trim, keep)?.broadcast_add(&self.bias)
    }

    /// The next piece of a signal (see [`CausalConv1d::forward_stream`]). With `k = 2s` output
    /// block j needs inputs j and j + 1, so each piece completes the block left open by the
    /// previous one and leaves its own last block open. With `k = s` nothing is carried over.
    pub fn forward_stream(&self, xs: &Tensor, tape: &mut ConvTape) -> Result<Tensor> {
        if self.trim == 0 {
            return self.whole(xs);
        }
        if self.trim != self.stride {
            candle_core::bail!(
                "streaming a transposed conv needs kernel = stride or 2·stride (stride {}, trim {})",
                self.stride,
                self.trim
            )
        }
        let slot = tape.slot();
        let len = xs.dim(2)?;
        if len == 0 {
            return xs.narrow(1, 0, 0)?.pad_with_zeros(1, 0, self.weight.dim(1)?);
        }
        let joined = match slot.take() {
            Some(last) => Tensor::cat(&[&last, xs], 2)?,
            None => xs.clone(),
        };
        *slot = Some(joined.narrow(2, joined.dim(2)? - 1, 1)?.contiguous()?);
        self.whole(&joined)
    }
}

impl Module for CausalConvTranspose1d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_stream(xs, &mut ConvTape::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    /// Random `{name}.weight` of `shape` and `{name}.bias` of `[out]`.
    fn builder(name: &str, shape: &[usize], out: usize) -> Weights<'static> {
        let dev = Device::Cpu;
        let mut ts = HashMap::new();
        ts.insert(format!("{name}.weight"), Tensor::randn(0f64, 1., shape, &dev).unwrap());
        ts.insert(format!("{name}.bias"), Tensor::randn(0f64, 1., out, &dev).unwrap());
        Weights::dense(candle_nn::VarBuilder::from_tensors(ts, DType::F64, &dev))
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

    /// Feeds `xs` to `run` in pieces of the given sizes and joins the outputs.
    fn in_pieces(xs: &Tensor, sizes: &[usize], mut run: impl FnMut(&Tensor, &mut ConvTape) -> Tensor) -> Tensor {
        let mut tape = ConvTape::default();
        let mut at = 0;
        let mut outs = Vec::new();
        for &n in sizes {
            tape.rewind();
            outs.push(run(&xs.narrow(2, at, n).unwrap(), &mut tape));
            at += n;
        }
        Tensor::cat(&outs, 2).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        assert_eq!(a.dims(), b.dims());
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
    }

    #[test]
    fn streamed_convs_equal_one_call() {
        let dev = Device::Cpu;
        let xs = Tensor::randn(0f64, 1., (1, 3, 23), &dev).unwrap();
        let sizes = [1, 0, 5, 2, 9, 6];
        let conv = CausalConv1d::new(3, 2, 3, 4, 1, builder("c", &[2, 3, 3], 2).pp("c")).unwrap();
        let whole = conv.forward(&xs).unwrap();
        let streamed = in_pieces(&xs, &sizes, |x, t| conv.forward_stream(x, t).unwrap());
        assert!(max_diff(&whole, &streamed) < 1e-12);
        let dw = CausalConv1d::new(3, 3, 7, 1, 3, builder("d", &[3, 1, 7], 3).pp("d")).unwrap();
        let streamed = in_pieces(&xs, &sizes, |x, t| dw.forward_stream(x, t).unwrap());
        assert!(max_diff(&dw.forward(&xs).unwrap(), &streamed) < 1e-12);
        // Transposed conv with look-ahead: each piece completes the previous piece's last block.
        let up = CausalConvTranspose1d::new(3, 2, 8, 4, builder("t", &[3, 2, 8], 2).pp("t")).unwrap();
        let whole = up.forward(&xs).unwrap();
        assert_eq!(whole.dim(2).unwrap(), 22 * 4);
        let streamed = in_pieces(&xs, &sizes, |x, t| up.forward_stream(x, t).unwrap());
        assert!(max_diff(&whole, &streamed) < 1e-12);
        // A chain: the tape keeps one slot per conv, in call order.
        let chain = |x: &Tensor, t: &mut ConvTape| {
            let h = conv.forward_stream(x, t).unwrap();
            up.forward_stream(&h.pad_with_zeros(1, 0, 1).unwrap(), t).unwrap()
        };
        let whole = chain(&xs, &mut ConvTape::default());
        let streamed = in_pieces(&xs, &sizes, chain);
        assert!(max_diff(&whole, &streamed) < 1e-12);
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
