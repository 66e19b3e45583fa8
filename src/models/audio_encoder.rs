//! The Qwen3-Omni audio encoder ("AuT", spec §4.2–4.5): per-second chunks of log-mel
//! frames go through three stride-2 convolutions, a linear projection and a sinusoidal
//! position table that restarts in every chunk; the valid rows of all chunks are packed
//! and run through a transformer with bidirectional attention inside fixed windows
//! (8 s by default), then projected to the thinker's width.
//!
//! Reference: transformers 5.23 `Qwen3OmniMoeAudioEncoder` with `chunk_and_pad_features`,
//! `get_valid_indices`, `get_audio_cu_seqlens`. Batch effects are reproduced on purpose: all
//! chunks of one call are padded to the longest chunk of the call, and the attention
//! window is `n(longest chunk) · n_window_infer / (2·n_window)` tokens (spec §4.2).

use crate::models::weights::Weights;
use candle_core::{DType, Module, Result, Tensor};
use serde::Deserialize;

use super::layers::activation::Activation;
use super::layers::attention::segment_attention;
use super::layers::linear::Linear;
use super::layers::norm::LayerNorm;

/// `thinker_config.audio_config` (`qwen3_omni_moe_audio_encoder`).
#[derive(Debug, Clone, Deserialize)]
pub struct AudioEncoderConfig {
    #[serde(default = "crate::models::config::default_usize::<128>")]
    pub num_mel_bins: usize,
    #[serde(default = "crate::models::config::default_usize::<32>", alias = "num_hidden_layers")]
    pub encoder_layers: usize,
    #[serde(default = "crate::models::config::default_usize::<20>", alias = "num_attention_heads")]
    pub encoder_attention_heads: usize,
    #[serde(default = "crate::models::config::default_usize::<5120>", alias = "intermediate_size")]
    pub encoder_ffn_dim: usize,
    #[serde(default = "crate::models::config::default_usize::<1280>", alias = "hidden_size")]
    pub d_model: usize,
    #[serde(default = "gelu")]
    pub activation_function: Activation,
    #[serde(default)]
    pub scale_embedding: bool,
    #[serde(default = "crate::models::config::default_usize::<1500>")]
    pub max_source_positions: usize,
    /// Half a chunk, in mel frames (chunks are `2·n_window` = 100 frames = 1 s).
    #[serde(default = "crate::models::config::default_usize::<50>")]
    pub n_window: usize,
    #[serde(default = "crate::models::config::default_usize::<3584>")]
    pub output_dim: usize,
    /// Attention window in mel frames (800 = 8 s in the real model).
    #[serde(default = "crate::models::config::default_usize::<800>")]
    pub n_window_infer: usize,
    #[serde(default = "crate::models::config::default_usize::<480>")]
    pub downsample_hidden_size: usize,
}

fn gelu() -> Activation {
    Activation::GeluErf
}

impl AudioEncoderConfig {
    /// Checks the relations the encoder relies on (spec §10.2).
    pub fn validate(&self, text_hidden: usize) -> Result<()> {
        for (key, v) in [
            ("num_mel_bins", self.num_mel_bins),
            ("encoder_layers", self.encoder_layers),
            ("encoder_ffn_dim", self.encoder_ffn_dim),
            ("downsample_hidden_size", self.downsample_hidden_size),
            ("max_source_positions", self.max_source_positions),
        ] {
            if v == 0 {
                candle_core::bail!("audio_config.{key} must be > 0")
            }
        }
        if self.output_dim != text_hidden {
            candle_core::bail!("audio output_dim {} differs from the text hidden_size {text_hidden}", self.output_dim)
        }
        if self.n_window == 0 || !self.n_window_infer.is_multiple_of(2 * self.n_window) || self.n_window_infer == 0 {
            candle_core::bail!(
                "audio n_window_infer {} must be a positive multiple of 2·n_window = {}",
                self.n_window_infer,
                2 * self.n_window
            )
        }
        if self.encoder_attention_heads == 0 || !self.d_model.is_multiple_of(self.encoder_attention_heads) {
            candle_core::bail!("audio d_model {} not divisible by {} heads", self.d_model, self.encoder_attention_heads)
        }
        if self.scale_embedding {
            candle_core::bail!(
                "audio scale_embedding=true is not used by any Qwen3-Omni checkpoint and is not supported"
            )
        }
        Ok(())
    }
}

/// Rows one chunk of `frames` mel frames yields after the three stride-2 convolutions:
/// `ceil(ceil(ceil(r/2)/2)/2)`, with `n(0) = 0` (spec §4.4).
pub fn conv_output_len(frames: usize) -> usize {
    frames.div_ceil(2).div_ceil(2).div_ceil(2)
}

/// Audio tokens for an utterance of `frames` mel frames: 13 per full 1 s chunk plus the
/// partial chunk's rows (transformers `_get_feat_extract_output_lengths`).
pub fn audio_token_count(frames: usize, n_window: usize) -> usize {
    let chunk = 2 * n_window;
    conv_output_len(chunk) * (frames / chunk) + conv_output_len(frames % chunk)
}

/// Chunks (1 s of audio each) convolved together; see [`AudioEncoder::forward`].
const CONV_BATCH: usize = 32;

#[derive(Debug, Clone)]
struct EncoderLayer {
    attn_norm: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ffn_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// The audio tower.
#[derive(Debug, Clone)]
pub struct AudioEncoder {
    conv1: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    conv3: (Tensor, Tensor),
    conv_out: Linear,
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    ln_post: LayerNorm,
    proj1: Linear,
    proj2: Linear,
    /// Activation dtype (the weights may be quantized).
    dtype: DType,
    cfg: AudioEncoderConfig,
}

impl AudioEncoder {
    /// `vb` points at `thinker.audio_tower`.
    pub fn new(cfg: &AudioEncoderConfig, vb: Weights) -> Result<Self> {
        let c = cfg.downsample_hidden_size;
        let d = cfg.d_model;
        let conv = |name: &str, cin: usize| -> Result<(Tensor, Tensor)> {
            let p = vb.pp(name);
            Ok((p.get((c, cin, 3, 3), "weight")?, p.get(c, "bias")?))
        };
        let freq_out = conv_output_len(cfg.num_mel_bins);
        let mut layers = Vec::with_capacity(cfg.encoder_layers);
        for i in 0..cfg.encoder_layers {
            let l = vb.pp("layers").pp(i);
            let a = l.pp("self_attn");
            layers.push(EncoderLayer {
                attn_norm: LayerNorm::new(d, 1e-5, l.pp("self_attn_layer_norm"))?,
                q: Linear::new(d, d, true, a.pp("q_proj"))?,
                k: Linear::new(d, d, true, a.pp("k_proj"))?,
                v: Linear::new(d, d, true, a.pp("v_proj"))?,
                out: Linear::new(d, d, true, a.pp("out_proj"))?,
                ffn_norm: LayerNorm::new(d, 1e-5, l.pp("final_layer_norm"))?,
                fc1: Linear::new(d, cfg.encoder_ffn_dim, true, l.pp("fc1"))?,
                fc2: Linear::new(cfg.encoder_ffn_dim, d, true, l.pp("fc2"))?,
            });
        }
        Ok(Self {
            dtype: vb.dtype(),
            conv1: conv("conv2d1", 1)?,
            conv2: conv("conv2d2", c)?,
            conv3: conv("conv2d3", c)?,
            conv_out: Linear::new(c * freq_out, d, false, vb.pp("conv_out"))?,
            positions: sinusoids(cfg.max_source_positions, d, vb.device())?.to_dtype(vb.dtype())?,
            layers,
            ln_post: LayerNorm::new(d, 1e-5, vb.pp("ln_post"))?,
            proj1: Linear::new(d, d, true, vb.pp("proj1"))?,
            proj2: Linear::new(d, cfg.output_dim, true, vb.pp("proj2"))?,
            cfg: cfg.clone(),
        })
    }

    /// The encoder's config.
    pub fn config(&self) -> &AudioEncoderConfig {
        &self.cfg
    }

    /// Encodes the log-mel features of several audios, each `[num_mel_bins, frames]`, in one
    /// call (as the reference does for all audios of a prompt). Returns the packed tokens
    /// of all audios in order, `[Σ tokens, output_dim]`.
    pub fn forward(&self, features: &[Tensor]) -> Result<Tensor> {
        let chunk = 2 * self.cfg.n_window;
        let dtype = self.dtype;
        let mut chunks: Vec<Tensor> = Vec::new();
        let mut chunk_lens: Vec<usize> = Vec::new();
        let mut audio_frames = Vec::with_capacity(features.len());
        for f in features {
            let (bins, frames) = f.dims2()?;
            if bins != self.cfg.num_mel_bins {
                candle_core::bail!("audio features have {bins} mel bins, the encoder expects {}", self.cfg.num_mel_bins)
            }
            if frames == 0 {
                candle_core::bail!("audio clip has no mel frames (shorter than one 10 ms hop)")
            }
            audio_frames.push(frames);
            let mut start = 0;
            while start < frames {
                let len = chunk.min(frames - start);
                chunks.push(f.narrow(1, start, len)?);
                chunk_lens.push(len);
                start += len;
            }
        }
        if chunks.is_empty() {
            candle_core::bail!("no audio to encode")
        }
        // Pad every chunk with zeros (log-mel 0.0, not silence) to the longest chunk of the call.
        let max_len = *chunk_lens.iter().max().expect("non-empty");
        let padded = chunks
            .iter()
            .map(|c| {
                let len = c.dim(1)?;
                if len == max_len {
                    Ok(c.clone())
                } else {
                    c.pad_with_zeros(1, 0, max_len - len)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        // The convolution stack runs in f32 whatever the model dtype: candle's CPU conv2d has
        // no bf16/f16 kernel, and these three small convs are a negligible share of the work.
        // Chunks are independent, so they go through in batches (the reference uses
        // `conv_chunksize` = 500; 32 keeps the conv buffers near 1 GB at the real width).
        let conv = |xs: &Tensor, (w, b): &(Tensor, Tensor)| -> Result<Tensor> {
            let (w, b) = (w.to_dtype(DType::F32)?, b.to_dtype(DType::F32)?);
            xs.conv2d(&w, 1, 2, 1, 1)?.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?.gelu_erf()
        };
        let mut embedded = Vec::with_capacity(padded.len().div_ceil(CONV_BATCH));
        for batch in padded.chunks(CONV_BATCH) {
            let xs = Tensor::stack(batch, 0)?.unsqueeze(1)?.to_dtype(DType::F32)?; // chunks, 1, mel, T
            let xs = conv(&conv(&conv(&xs, &self.conv1)?, &self.conv2)?, &self.conv3)?.to_dtype(dtype)?; // chunks, C, F, t
            let (b, c, f, t) = xs.dims4()?;
            let xs = xs.permute((0, 3, 1, 2))?.reshape((b, t, c * f))?; // chunks, t, C·F (channel-major)
            embedded.push(self.conv_out.forward(&xs)?.broadcast_add(&self.positions.narrow(0, 0, t)?.unsqueeze(0)?)?);
        }
        let xs = Tensor::cat(&embedded, 0)?; // chunks, t, d_model
        let (n_chunks, t, _) = xs.dims3()?;

        // Keep the valid rows of each chunk and pack them.
        let mut rows: Vec<u32> = Vec::new();
        for (i, &len) in chunk_lens.iter().enumerate() {
            rows.extend((0..conv_output_len(len)).map(|r| (i * t + r) as u32));
        }
        let d = self.cfg.d_model;
        let idx = Tensor::new(rows.as_slice(), xs.device())?;
        let mut xs = xs.reshape((n_chunks * t, d))?.index_select(&idx, 0)?;

        // Attention windows: per audio, blocks of `window` tokens plus a remainder.
        let window = conv_output_len(max_len) * (self.cfg.n_window_infer / chunk);
        let mut segments = Vec::new();
        for &frames in &audio_frames {
            let n = audio_token_count(frames, self.cfg.n_window);
            segments.extend(std::iter::repeat_n(window, n / window));
            if !n.is_multiple_of(window) {
                segments.push(n % window);
            }
        }
        let heads = self.cfg.encoder_attention_heads;
        let hd = d / heads;
        let n = xs.dim(0)?;
        let scale = (hd as f64).powf(-0.5);
        for (i, l) in self.layers.iter().enumerate() {
            let _span = tracing::trace_span!("audio.layer", i).entered();
            let h = l.attn_norm.forward(&xs)?;
            let split = |p: &Linear| -> Result<Tensor> { p.forward(&h)?.reshape((n, heads, hd)) };
            let attn = segment_attention(&split(&l.q)?, &split(&l.k)?, &split(&l.v)?, &segments, scale)?;
            xs = (&xs + l.out.forward(&attn)?)?;
            let h = l.ffn_norm.forward(&xs)?;
            xs = (&xs + l.fc2.forward(&self.cfg.activation_function.apply(&l.fc1.forward(&h)?)?)?)?;
        }
        let xs = self.ln_post.forward(&xs)?;
        self.proj2.forward(&self.cfg.activation_function.apply(&self.proj1.forward(&xs)?)?)
    }
}

/// Whisper-style sinusoid table `[length, channels]`: `[sin(t·inv), cos(t·inv)]` with
/// `inv[i] = exp(−i·ln(10000)/(channels/2 − 1))`, computed in f32 like the reference.
fn sinusoids(length: usize, channels: usize, device: &candle_core::Device) -> Result<Tensor> {
    let half = channels / 2;
    let inc = (10000f64.ln() / (half as f64 - 1.0)) as f32;
    let inv: Vec<f32> = (0..half).map(|i| (-inc * i as f32).exp()).collect();
    let mut data = Vec::with_capacity(length * channels);
    for t in 0..length {
        let row: Vec<f32> = inv.iter().map(|&f| t as f32 * f).collect();
        data.extend(row.iter().map(|a| a.sin()));
        data.extend(row.iter().map(|a| a.cos()));
    }
    Tensor::from_vec(data, (length, channels), device)?.to_dtype(DType::F32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_counts_match_spec_examples() {
        // 0.3 s → 4; 0.5 s → 7; 1 s → 13; 2.37 s → 31; 9.05 s → 118; 10 s → 130; 60 s → 780.
        for (secs, want) in [(0.3, 4), (0.5, 7), (1.0, 13), (2.37, 31), (9.05, 118), (10.0, 130), (60.0, 780)] {
            let frames = (secs * 16000.0f64).round() as usize / 160;
            assert_eq!(audio_token_count(frames, 50), want, "{secs} s");
        }
        assert_eq!(conv_output_len(0), 0);
        assert_eq!(conv_output_len(100), 13);
    }
}
