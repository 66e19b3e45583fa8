//! `code2wav_config` of a Qwen3-Omni `config.json`, mirrored from transformers 5.23
//! `Qwen3OmniMoeCode2WavConfig`. Defaults are that class's defaults, which are also the real
//! checkpoint's values (spec §1.3, §1.4).

use serde::Deserialize;

use crate::models::config::RopeFields;
use crate::models::layers::activation::Activation;
use crate::models::layers::attention::AttentionConfig;

/// The codec decoder's configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct Code2WavConfig {
    /// Entries per codebook; codes must be below this.
    #[serde(default = "crate::models::config::default_usize::<2048>")]
    pub codebook_size: usize,
    /// Codebooks per frame (the talker's code groups).
    #[serde(default = "crate::models::config::default_usize::<16>")]
    pub num_quantizers: usize,
    #[serde(default = "crate::models::config::default_usize::<1024>")]
    pub hidden_size: usize,
    #[serde(default = "crate::models::config::default_usize::<8>")]
    pub num_hidden_layers: usize,
    #[serde(default = "crate::models::config::default_usize::<16>")]
    pub num_attention_heads: usize,
    #[serde(default = "crate::models::config::default_usize::<16>")]
    pub num_key_value_heads: usize,
    /// Not a declared field; transformers falls back to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default)]
    pub attention_bias: bool,
    /// Causal attention window of the pre-transformer, in frames.
    #[serde(default = "crate::models::config::default_usize::<72>")]
    pub sliding_window: usize,
    #[serde(default = "crate::models::config::default_usize::<3072>")]
    pub intermediate_size: usize,
    #[serde(default = "crate::models::config::silu")]
    pub hidden_act: Activation,
    /// Initial value of the layer-scale vectors (the checkpoint holds the trained ones).
    #[serde(default = "ls_init")]
    pub layer_scale_initial_scale: f64,
    #[serde(default = "eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "crate::models::config::default_usize::<8000>")]
    pub max_position_embeddings: usize,
    /// Decoder-block upsampling factors (transposed conv stride; kernel 2·rate).
    #[serde(default = "rates")]
    pub upsample_rates: Vec<usize>,
    /// Upsampling factors of the ConvNeXt stages before the decoder (kernel = stride).
    #[serde(default = "ratios")]
    pub upsampling_ratios: Vec<usize>,
    /// Channels entering the first decoder block; halved by every block.
    #[serde(default = "crate::models::config::default_usize::<1536>")]
    pub decoder_dim: usize,
    #[serde(flatten)]
    pub rope: RopeFields,
}

impl Code2WavConfig {
    /// Checks the relations the decoder relies on (spec §10.2).
    pub fn validate(&self) -> Result<(), String> {
        let nonzero = [
            ("codebook_size", self.codebook_size),
            ("num_quantizers", self.num_quantizers),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("sliding_window", self.sliding_window),
            ("decoder_dim", self.decoder_dim),
        ];
        if let Some((name, _)) = nonzero.iter().find(|(_, v)| *v == 0) {
            return Err(format!("code2wav_config.{name} must be positive"));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "code2wav_config.hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.upsample_rates.iter().chain(&self.upsampling_ratios).any(|&r| r == 0) {
            return Err("code2wav_config upsampling factors must be positive".into());
        }
        if self.upsample_rates.is_empty() {
            return Err("code2wav_config.upsample_rates is empty".into());
        }
        let halvings = 1usize << self.upsample_rates.len();
        if !self.decoder_dim.is_multiple_of(halvings) {
            return Err(format!(
                "code2wav_config.decoder_dim {} is not divisible by 2^{} (one halving per upsample rate)",
                self.decoder_dim,
                self.upsample_rates.len()
            ));
        }
        self.rope.resolve(DEFAULT_ROPE_THETA, None).map(|_| ())
    }

    /// Query/key/value head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// RoPE base (spec §3.2: 1e4).
    pub fn rope_theta(&self) -> Result<f64, String> {
        Ok(self.rope.resolve(DEFAULT_ROPE_THETA, None)?.theta)
    }

    /// The pre-transformer's attention: MHA/GQA without q/k norm, causal sliding window.
    pub fn attention(&self) -> AttentionConfig {
        AttentionConfig {
            hidden_size: self.hidden_size,
            num_heads: self.num_attention_heads,
            num_kv_heads: self.num_key_value_heads,
            head_dim: self.head_dim(),
            qk_norm: false,
            rms_norm_eps: self.rms_norm_eps,
            bias: self.attention_bias,
            sliding_window: Some(self.sliding_window),
        }
    }

    /// Output samples per codec frame: the product of every upsampling factor (1920 for the
    /// real model, i.e. 12.5 frames/s at 24 kHz).
    pub fn total_upsample(&self) -> usize {
        self.upsample_rates.iter().chain(&self.upsampling_ratios).product()
    }

    /// Samples a decode of T frames lacks at its end (spec §8.8): each decoder block's transposed
    /// conv has one input frame of look-ahead, so its last `rate` output samples are dropped,
    /// and the blocks after it multiply that loss. 8·5·4·3 + 5·4·3 + 4·3 + 3 = 555 for the real model.
    pub fn lookahead_samples(&self) -> usize {
        (0..self.upsample_rates.len()).map(|i| self.upsample_rates[i..].iter().product::<usize>()).sum()
    }

    /// Length of the waveform decoded from `frames` frames: `total_upsample·T − lookahead`
    /// (0 when a single frame cannot produce anything).
    pub fn output_len(&self, frames: usize) -> usize {
        (self.total_upsample() * frames).saturating_sub(self.lookahead_samples())
    }
}

/// transformers' default RoPE base when a config names none.
const DEFAULT_ROPE_THETA: f64 = 10_000.0;

fn ls_init() -> f64 {
    0.01
}
fn eps() -> f64 {
    1e-5
}
fn rates() -> Vec<usize> {
    vec![8, 5, 4, 3]
}
fn ratios() -> Vec<usize> {
    vec![2, 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_real_model_and_its_length_law() {
        let c: Code2WavConfig = serde_json::from_str("{}").unwrap();
        c.validate().unwrap();
        assert_eq!((c.codebook_size, c.num_quantizers, c.hidden_size, c.decoder_dim), (2048, 16, 1024, 1536));
        assert_eq!(c.head_dim(), 64);
        assert_eq!(c.rope_theta().unwrap(), 10_000.0);
        assert_eq!(c.total_upsample(), 1920);
        assert_eq!(c.lookahead_samples(), 555);
        assert_eq!(c.output_len(1), 1365);
        assert_eq!(c.output_len(10), 19_200 - 555);
    }

    #[test]
    fn decoder_dim_must_halve_per_block() {
        let c: Code2WavConfig = serde_json::from_str(r#"{"decoder_dim": 20}"#).unwrap();
        assert!(c.validate().unwrap_err().contains("decoder_dim"));
    }
}
