//! Code2Wav, Qwen3-Omni's codec decoder (spec §8; transformers 5.23 `Qwen3OmniMoeCode2Wav`):
//! `num_quantizers` codes per frame at 12.5 frames/s → 24 kHz mono waveform in [−1, 1].
//!
//! codes → mean of the quantizers' embeddings (one shared table, quantizer q offset by
//! q·codebook_size) → [`transformer`] (sliding-window pre-transformer) → channels first →
//! [`upsample`] (×Π upsampling_ratios) → [`decoder`] (×Π upsample_rates) → clamp.
//! A decode of T frames yields `total_upsample·T − lookahead` samples (1920·T − 555): the model
//! is causal except for one frame of look-ahead per decoder block, so the last samples wait for
//! the next frame. [`stream::Code2WavStream`] decodes incrementally and re-emits those samples.
//!
//! Only batch 1. Weights load from the checkpoint's `code2wav.*` tensors in any float dtype; f32
//! is the production path, f64 is what the parity tests use (see `tests/code2wav.rs`).

pub mod config;
mod decoder;
pub mod stream;
mod transformer;
mod upsample;

use std::path::Path;
use std::sync::Arc;

use crate::models::weights::Weights;
use candle_core::{DType, Device, Result, Tensor};

pub use self::config::Code2WavConfig;
use self::decoder::WaveDecoder;
pub use self::stream::{Code2WavStream, StreamConfig};
use self::transformer::{PreTransformer, TransformerState};
use self::upsample::Upsampler;
use crate::models::checkpoint::Checkpoint;
use crate::models::layers::conv::ConvTape;
use crate::models::qwen3_omni::config::Qwen3OmniMoeConfig;

/// Why codes cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodesError {
    #[error("no codec frames to decode")]
    NoFrames,
    #[error("codes have {got} quantizers (codebooks) per frame, the model expects {want}")]
    WrongQuantizers { got: usize, want: usize },
    #[error("{len} codes do not form whole frames of {quantizers} quantizers")]
    PartialFrame { len: usize, quantizers: usize },
    #[error("code {code} at frame {frame}, quantizer {quantizer} is outside the codebook of {codebook_size} entries")]
    OutOfRange { code: i64, frame: usize, quantizer: usize, codebook_size: usize },
    #[error("codes tensor of shape {dims:?} and dtype {dtype:?}: expected integers shaped [quantizers, frames] or [1, quantizers, frames]")]
    BadTensor { dims: Vec<usize>, dtype: DType },
}

impl From<CodesError> for candle_core::Error {
    fn from(e: CodesError) -> Self {
        candle_core::Error::Msg(e.to_string())
    }
}

/// Code2Wav weights.
#[derive(Debug, Clone)]
pub struct Code2Wav {
    /// `code_embedding.weight` `[num_quantizers·codebook_size, hidden]`.
    code_embedding: Tensor,
    pre_transformer: PreTransformer,
    upsample: Upsampler,
    decoder: WaveDecoder,
    cfg: Code2WavConfig,
}

impl Code2Wav {
    /// `vb` is the checkpoint root (the thinker's `Weights`); tensors come from `code2wav.*`.
    pub fn new(cfg: &Code2WavConfig, vb: Weights) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::msg)?;
        let vb = vb.pp("code2wav");
        let rows = cfg.num_quantizers * cfg.codebook_size;
        Ok(Self {
            code_embedding: vb.pp("code_embedding").get((rows, cfg.hidden_size), "weight")?,
            pre_transformer: PreTransformer::new(cfg, vb.pp("pre_transformer"))?,
            upsample: Upsampler::new(cfg, vb.pp("upsample"))?,
            decoder: WaveDecoder::new(cfg, vb.pp("decoder"))?,
            cfg: cfg.clone(),
        })
    }

    /// Opens a Qwen3-Omni checkpoint directory (its `config.json` and safetensors shards) and
    /// loads the Code2Wav part in `dtype`.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| candle_core::Error::msg(format!("{}: cannot read: {e}", path.display())))?;
        let cfg: Qwen3OmniMoeConfig = serde_json::from_str(&text)
            .map_err(|e| candle_core::Error::msg(format!("{}: not a Qwen3-Omni config: {e}", path.display())))?;
        let Some(c2w) = cfg.code2wav_config.filter(|_| cfg.enable_audio_output) else {
            candle_core::bail!("{}: this checkpoint has no speech output (no code2wav_config)", path.display())
        };
        let ckpt = Arc::new(Checkpoint::open_dir(dir).map_err(candle_core::Error::wrap)?);
        Self::new(&c2w, Weights::dense(ckpt.var_builder(dtype, device)))
    }

    /// The config the weights were built from.
    pub fn config(&self) -> &Code2WavConfig {
        &self.cfg
    }

    /// Activation dtype (that of the weights).
    pub fn dtype(&self) -> DType {
        self.code_embedding.dtype()
    }

    /// Frames of left context after which a re-decode of a window reproduces the full decode
    /// (up to rounding): every pre-transformer layer looks `sliding_window − 1` frames back and
    /// the causal convs add their reach.
    pub fn exact_left_context(&self) -> usize {
        let layers = self.pre_transformer.num_layers() * (self.cfg.sliding_window - 1);
        let ratio: usize = self.cfg.upsampling_ratios.iter().product();
        let convs = self.upsample.left_reach_frames(&self.cfg.upsampling_ratios)
            + self.decoder.left_reach_frames(ratio, &self.cfg.upsample_rates);
        layers + convs.ceil() as usize
    }

    /// Checks codes given frame-major (`frames[t·Q + q]` is quantizer q of frame t) and returns
    /// embedding row ids quantizer-major (`[Q, T]`, offset by `q·codebook_size`).
    fn row_ids(&self, frames: &[i64]) -> std::result::Result<(Vec<u32>, usize), CodesError> {
        let (q_n, size) = (self.cfg.num_quantizers, self.cfg.codebook_size);
        if frames.is_empty() {
            return Err(CodesError::NoFrames);
        }
        if !frames.len().is_multiple_of(q_n) {
            return Err(CodesError::PartialFrame { len: frames.len(), quantizers: q_n });
        }
        let t_n = frames.len() / q_n;
        let mut ids = vec![0u32; frames.len()];
        for (i, &code) in frames.iter().enumerate() {
            let (t, q) = (i / q_n, i % q_n);
            if code < 0 || code as usize >= size {
                return Err(CodesError::OutOfRange { code, frame: t, quantizer: q, codebook_size: size });
            }
            ids[q * t_n + t] = (q * size) as u32 + code as u32;
        }
        Ok((ids, t_n))
    }

    /// Converts an integer codes tensor `[Q, T]` or `[1, Q, T]` (the reference's layout) to
    /// frame-major host values.
    fn frames_of(&self, codes: &Tensor) -> Result<Vec<i64>> {
        let bad = || CodesError::BadTensor { dims: codes.dims().to_vec(), dtype: codes.dtype() };
        let codes = match codes.rank() {
            2 => codes.clone(),
            3 if codes.dim(0)? == 1 => codes.squeeze(0)?,
            _ => return Err(bad().into()),
        };
        if !matches!(codes.dtype(), DType::U8 | DType::U32 | DType::I64) {
            return Err(bad().into());
        }
        let (q, t) = codes.dims2()?;
        if q != self.cfg.num_quantizers {
            return Err(CodesError::WrongQuantizers { got: q, want: self.cfg.num_quantizers }.into());
        }
        if t == 0 {
            return Err(CodesError::NoFrames.into());
        }
        codes.t()?.to_dtype(DType::I64)?.flatten_all()?.to_vec1::<i64>()
    }

    /// Pre-transformer output `[1, T, hidden]` for frame-major codes, continuing `state`.
    fn hidden_of_frames(&self, frames: &[i64], state: &mut TransformerState) -> Result<Tensor> {
        let (ids, t) = self.row_ids(frames)?;
        let (q, h) = (self.cfg.num_quantizers, self.cfg.hidden_size);
        let ids = Tensor::from_vec(ids, q * t, self.code_embedding.device())?;
        // Mean over quantizers of each frame's embeddings, as `code_embedding(codes + offset).mean(1)`.
        let emb = self.code_embedding.index_select(&ids, 0)?.reshape((q, t, h))?.mean(0)?;
        self.pre_transformer.forward_stream(&emb.unsqueeze(0)?, state)
    }

    /// Waveform before the final clamp, `[samples]`, of the next frames of a stream (fresh
    /// states: a whole decode). `tape` must be rewound before each call.
    fn unclamped_stream(&self, frames: &[i64], state: &mut TransformerState, tape: &mut ConvTape) -> Result<Tensor> {
        let hidden = self.hidden_of_frames(frames, state)?.transpose(1, 2)?.contiguous()?; // 1, hidden, T
        let up = self.upsample.forward_stream(&hidden, tape)?;
        self.decoder.forward_stream(&up, tape)?.flatten_all() // 1, 1, samples → samples
    }

    /// Waveform before the final clamp, `[samples]`.
    fn unclamped_of_frames(&self, frames: &[i64]) -> Result<Tensor> {
        self.unclamped_stream(frames, &mut TransformerState::default(), &mut ConvTape::default())
    }

    /// The next frames of a carried-state stream (see [`Code2WavStream`]): the samples that
    /// became final, in [−1, 1].
    pub(crate) fn decode_frames_stream(
        &self,
        frames: &[i64],
        state: &mut TransformerState,
        tape: &mut ConvTape,
    ) -> Result<Tensor> {
        self.unclamped_stream(frames, state, tape)?.clamp(-1f64, 1f64)
    }

    /// Decodes frame-major codes (`frames[t·Q + q]`) to `[1920·T − 555]` samples in [−1, 1].
    pub fn decode_frames(&self, frames: &[i64]) -> Result<Tensor> {
        self.unclamped_of_frames(frames)?.clamp(-1f64, 1f64)
    }

    /// Full decode of `codes` (`[Q, T]` or `[1, Q, T]`, integers) to `[1920·T − 555]` samples.
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        self.decode_frames(&self.frames_of(codes)?)
    }

    /// [`Self::decode`] as f32 host samples.
    pub fn decode_to_vec(&self, codes: &Tensor) -> Result<Vec<f32>> {
        self.decode(codes)?.to_dtype(DType::F32)?.to_vec1()
    }

    /// The waveform before the final clamp (diagnostics and parity tests: the clamp hides
    /// differences in saturated samples).
    pub fn decode_unclamped(&self, codes: &Tensor) -> Result<Tensor> {
        self.unclamped_of_frames(&self.frames_of(codes)?)
    }

    /// The pre-transformer's output `[1, T, hidden]` (parity tests: the sliding window only
    /// matters past `sliding_window` frames, longer than a waveform fixture can be).
    pub fn pre_transformer_states(&self, codes: &Tensor) -> Result<Tensor> {
        self.hidden_of_frames(&self.frames_of(codes)?, &mut TransformerState::default())
    }

    /// transformers' `chunked_decode`: chunks of `chunk_size` frames, each decoded with up to
    /// `left_context` earlier frames whose samples are then dropped. Like the reference it
    /// leaves a hole of `lookahead` samples at every chunk boundary (spec §8.9); use
    /// [`Code2WavStream`] for gap-free streaming.
    pub fn chunked_decode(&self, codes: &Tensor, chunk_size: usize, left_context: usize) -> Result<Tensor> {
        if chunk_size == 0 {
            candle_core::bail!("chunk_size must be positive")
        }
        let frames = self.frames_of(codes)?;
        let q = self.cfg.num_quantizers;
        let t = frames.len() / q;
        let mut parts = Vec::with_capacity(t.div_ceil(chunk_size));
        let mut start = 0;
        while start < t {
            let end = (start + chunk_size).min(t);
            let context = left_context.min(start);
            let wav = self.decode_frames(&frames[(start - context) * q..end * q])?;
            let skip = context * self.cfg.total_upsample();
            parts.push(wav.narrow(0, skip.min(wav.dim(0)?), wav.dim(0)?.saturating_sub(skip))?);
            start = end;
        }
        Tensor::cat(&parts, 0)
    }
}
