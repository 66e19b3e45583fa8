//! The waveform decoder (spec §8.5–8.6; `code2wav.decoder.*`): a causal conv into
//! `decoder_dim` channels, one block per `upsample_rates` entry (SnakeBeta → causal transposed
//! conv ×rate halving the channels → residual units with dilations 1, 3, 9), SnakeBeta and a
//! causal conv down to one channel. The final clamp is left to the caller.

use crate::models::weights::Weights;
use candle_core::{Module, Result, Tensor};

use super::config::Code2WavConfig;
use crate::models::layers::conv::{CausalConv1d, CausalConvTranspose1d, ConvTape};

/// Kernel of every non-transposed decoder conv except the 1×1 ones.
const KERNEL: usize = 7;
/// Dilations of the three residual units in each block.
const DILATIONS: [usize; 3] = [1, 3, 9];
/// Added to `exp(β)` before dividing (`no_div_by_zero` in the reference).
const SNAKE_EPS: f64 = 1e-9;

/// SnakeBeta: `x + sin²(x·e^α) / (e^β + 1e-9)` per channel. The checkpoint stores α and β as
/// logarithms; the exponentials are taken once at load.
#[derive(Debug, Clone)]
struct SnakeBeta {
    /// `e^α` as `[1, C, 1]`.
    alpha: Tensor,
    /// `1 / (e^β + 1e-9)` as `[1, C, 1]`.
    inv_beta: Tensor,
}

impl SnakeBeta {
    fn new(ch: usize, vb: Weights) -> Result<Self> {
        let alpha = vb.get(ch, "alpha")?.exp()?.reshape((1, ch, 1))?;
        let inv_beta = (vb.get(ch, "beta")?.exp()? + SNAKE_EPS)?.recip()?.reshape((1, ch, 1))?;
        Ok(Self { alpha, inv_beta })
    }
}

impl Module for SnakeBeta {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if xs.device().is_cuda() {
            // One fused kernel instead of five elementwise passes over the signal.
            return xs.contiguous()?.apply_op3_no_bwd(
                &self.alpha,
                &self.inv_beta,
                &omnid_kernels::fused_ops::SnakeBeta,
            );
        }
        let s = xs.broadcast_mul(&self.alpha)?.sin()?.sqr()?;
        xs + s.broadcast_mul(&self.inv_beta)?
    }
}

/// `x + conv2(snake2(conv1(snake1(x))))`, conv1 k=7 dilated, conv2 1×1.
#[derive(Debug, Clone)]
struct ResidualUnit {
    act1: SnakeBeta,
    conv1: CausalConv1d,
    act2: SnakeBeta,
    conv2: CausalConv1d,
}

impl ResidualUnit {
    fn new(ch: usize, dilation: usize, vb: Weights) -> Result<Self> {
        Ok(Self {
            act1: SnakeBeta::new(ch, vb.pp("act1"))?,
            conv1: CausalConv1d::new(ch, ch, KERNEL, dilation, 1, vb.pp("conv1").pp("conv"))?,
            act2: SnakeBeta::new(ch, vb.pp("act2"))?,
            conv2: CausalConv1d::new(ch, ch, 1, 1, 1, vb.pp("conv2").pp("conv"))?,
        })
    }
}

impl ResidualUnit {
    fn forward_stream(&self, xs: &Tensor, tape: &mut ConvTape) -> Result<Tensor> {
        let h = self.conv1.forward_stream(&self.act1.forward(xs)?, tape)?;
        xs + self.conv2.forward_stream(&self.act2.forward(&h)?, tape)?
    }
}

/// `decoder.{i+1}.block`: SnakeBeta, transposed conv (k = 2·rate, stride rate), 3 residual units.
#[derive(Debug, Clone)]
struct DecoderBlock {
    snake: SnakeBeta,
    up: CausalConvTranspose1d,
    units: Vec<ResidualUnit>,
}

impl DecoderBlock {
    fn new(in_ch: usize, out_ch: usize, rate: usize, vb: Weights) -> Result<Self> {
        let vb = vb.pp("block");
        let units = DILATIONS
            .iter()
            .enumerate()
            .map(|(j, &d)| ResidualUnit::new(out_ch, d, vb.pp(2 + j)))
            .collect::<Result<_>>()?;
        Ok(Self {
            snake: SnakeBeta::new(in_ch, vb.pp(0))?,
            up: CausalConvTranspose1d::new(in_ch, out_ch, 2 * rate, rate, vb.pp(1).pp("conv"))?,
            units,
        })
    }
}

impl DecoderBlock {
    fn forward_stream(&self, xs: &Tensor, tape: &mut ConvTape) -> Result<Tensor> {
        let mut xs = self.up.forward_stream(&self.snake.forward(xs)?, tape)?;
        for unit in &self.units {
            xs = unit.forward_stream(&xs, tape)?;
        }
        Ok(xs)
    }
}

/// The decoder weights.
#[derive(Debug, Clone)]
pub struct WaveDecoder {
    conv_in: CausalConv1d,
    blocks: Vec<DecoderBlock>,
    snake_out: SnakeBeta,
    conv_out: CausalConv1d,
}

impl WaveDecoder {
    /// `vb` points at `code2wav.decoder` (a flat list: 0 conv, 1..=n blocks, n+1 SnakeBeta, n+2 conv).
    pub fn new(cfg: &Code2WavConfig, vb: Weights) -> Result<Self> {
        let n = cfg.upsample_rates.len();
        let conv_in = CausalConv1d::new(cfg.hidden_size, cfg.decoder_dim, KERNEL, 1, 1, vb.pp(0).pp("conv"))?;
        let blocks = cfg
            .upsample_rates
            .iter()
            .enumerate()
            .map(|(i, &rate)| {
                let (c_in, c_out) = (cfg.decoder_dim >> i, cfg.decoder_dim >> (i + 1));
                DecoderBlock::new(c_in, c_out, rate, vb.pp(i + 1))
            })
            .collect::<Result<_>>()?;
        let out_ch = cfg.decoder_dim >> n;
        Ok(Self {
            conv_in,
            blocks,
            snake_out: SnakeBeta::new(out_ch, vb.pp(n + 1))?,
            conv_out: CausalConv1d::new(out_ch, 1, KERNEL, 1, 1, vb.pp(n + 2).pp("conv"))?,
        })
    }

    /// Left receptive field in codec frames, for input at `in_rate` samples per frame.
    /// The transposed convs reach forward (one frame of look-ahead), never back.
    pub fn left_reach_frames(&self, in_rate: usize, rates: &[usize]) -> f64 {
        let mut rate = in_rate;
        let mut reach = self.conv_in.left_reach() as f64 / rate as f64;
        for (block, &r) in self.blocks.iter().zip(rates) {
            rate *= r;
            reach += block.units.iter().map(|u| (u.conv1.left_reach() + u.conv2.left_reach()) as f64).sum::<f64>()
                / rate as f64;
        }
        reach + self.conv_out.left_reach() as f64 / rate as f64
    }
}

impl WaveDecoder {
    /// `[B, hidden, L]` → `[B, 1, L·Π rates − look-ahead]`, before the clamp, for the next piece
    /// of the signal; `tape` carries each conv's history between pieces (a fresh tape decodes a
    /// whole signal).
    pub fn forward_stream(&self, xs: &Tensor, tape: &mut ConvTape) -> Result<Tensor> {
        let mut xs = self.conv_in.forward_stream(xs, tape)?;
        for block in &self.blocks {
            xs = block.forward_stream(&xs, tape)?;
        }
        self.conv_out.forward_stream(&self.snake_out.forward(&xs)?, tape)
    }
}

impl Module for WaveDecoder {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_stream(xs, &mut ConvTape::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The fused SnakeBeta op the GPU path uses computes what the layer's chain of ops computes.
    #[test]
    fn fused_snake_beta_op_matches_the_layer() {
        let dev = Device::Cpu;
        let (c, len) = (6, 29);
        let snake = SnakeBeta {
            alpha: Tensor::randn(0f32, 0.5, c, &dev).unwrap().exp().unwrap().reshape((1, c, 1)).unwrap(),
            inv_beta: (Tensor::randn(0f32, 0.5, c, &dev).unwrap().exp().unwrap() + SNAKE_EPS)
                .unwrap()
                .recip()
                .unwrap()
                .reshape((1, c, 1))
                .unwrap(),
        };
        let x = Tensor::randn(0f32, 2.0, (2, c, len), &dev).unwrap();
        let layer = snake.forward(&x).unwrap();
        let fused = x.apply_op3_no_bwd(&snake.alpha, &snake.inv_beta, &omnid_kernels::fused_ops::SnakeBeta).unwrap();
        let diff = (&fused - &layer).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "{diff}");
        assert_eq!(fused.dtype(), DType::F32);
    }
}
