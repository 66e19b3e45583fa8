//! Whisper log-mel features as Qwen3-Omni's audio encoder expects them (spec §4.1), and the number of audio
//! tokens they turn into (spec §4.4).
//!
//! The reference is `WhisperFeatureExtractor._np_extract_fbank_features` (transformers 5.23), reproduced step by
//! step, including where it rounds to `f32`:
//! 1. reflect-pad `n_fft / 2` samples on both sides (`center=True`), promote to `f64`;
//! 2. per hop: multiply by the periodic Hann window, one-sided DFT in `f64`, **store as complex64** (numpy's
//!    `spectrogram` writes each frame into a `complex64` buffer), power `|X|²` back in `f64`;
//! 3. Slaney mel filters (0–8000 Hz) in `f64`, clamp at 1e-10, `log10`, then cast to `f32`;
//! 4. drop the last frame; `max(v, max_over_utterance − 8)` and `(v + 4) / 4` in `f32`.
//!
//! With torch installed, `WhisperFeatureExtractor.__call__` takes its torch path instead: MKL's `float32` STFT,
//! whose rounding depends on the CPU and differs from the numpy path by up to ~4e-5 on speech-like signals.
//! Neither can be matched to 1e-5 by anything but itself, so the deterministic numpy path is the one reproduced
//! here (max |diff| ≤ 1e-6 in the tests); the torch path is checked against a looser bound.

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;
use serde::Deserialize;

use super::mel_filters::{hann_periodic, MelFilterBank};
use super::{PreprocessError, Result};

/// Upper edge of the Whisper mel filters. `WhisperFeatureExtractor` hard-codes it regardless of the sample rate.
pub const WHISPER_MEL_MAX_HZ: f64 = 8000.0;

/// Floor applied to mel energies before the logarithm (`spectrogram(mel_floor=1e-10)`).
const MEL_FLOOR: f64 = 1e-10;

/// Dynamic range kept below the utterance maximum, in log10 units (80 dB).
const LOG_DYNAMIC_RANGE: f32 = 8.0;

/// The `WhisperFeatureExtractor` fields of a checkpoint's `preprocessor_config.json`.
///
/// Missing keys take `WhisperFeatureExtractor`'s class defaults; other keys in the file (image processor
/// fields, `chunk_length`, `n_samples`, ...) are ignored — padding and truncation to 30 s / 300 s are not
/// used at inference (the Omni processor calls the extractor with `padding=True, truncation=False`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FeatureExtractorConfig {
    /// Number of mel bins (`feature_size`; 128 for Qwen3-Omni).
    #[serde(default = "default_feature_size")]
    pub feature_size: usize,
    /// Expected input sample rate in Hz.
    #[serde(default = "default_sampling_rate")]
    pub sampling_rate: usize,
    /// Samples between successive frames.
    #[serde(default = "default_hop_length")]
    pub hop_length: usize,
    /// FFT size and window length.
    #[serde(default = "default_n_fft")]
    pub n_fft: usize,
    /// Value used to pad raw audio in a batch. Single-utterance extraction never pads; kept for fidelity.
    #[serde(default)]
    pub padding_value: f64,
    /// Gaussian dither amplitude; must be 0 (random noise cannot be reproduced).
    #[serde(default)]
    pub dither: f64,
}

fn default_feature_size() -> usize {
    80
}
fn default_sampling_rate() -> usize {
    16000
}
fn default_hop_length() -> usize {
    160
}
fn default_n_fft() -> usize {
    400
}

impl FeatureExtractorConfig {
    /// Parses the feature-extractor fields from the text of a `preprocessor_config.json` and validates them.
    pub fn from_json_str(json: &str) -> Result<Self> {
        Self::parse(json, "feature extractor config")
    }

    fn parse(json: &str, source_name: &str) -> Result<Self> {
        let cfg: Self = serde_json::from_str(json).map_err(|e| PreprocessError::InvalidConfig {
            source_name: source_name.to_owned(),
            detail: e.to_string(),
        })?;
        cfg.validate(source_name)?;
        Ok(cfg)
    }

    fn validate(&self, source_name: &str) -> Result<()> {
        let bad = |detail: String| PreprocessError::InvalidConfig { source_name: source_name.to_owned(), detail };
        if self.dither != 0.0 {
            return Err(bad(format!(
                "dither = {} is not supported (it adds random noise the reference cannot reproduce); use 0.0",
                self.dither
            )));
        }
        for (name, v) in [
            ("feature_size", self.feature_size),
            ("sampling_rate", self.sampling_rate),
            ("hop_length", self.hop_length),
            ("n_fft", self.n_fft),
        ] {
            if v == 0 {
                return Err(bad(format!("{name} must be > 0")));
            }
        }
        Ok(())
    }
}

/// Log-mel features of one utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct MelFeatures {
    /// Number of mel bins (rows).
    pub n_mels: usize,
    /// Number of frames (columns): `n_samples / hop_length`.
    pub n_frames: usize,
    /// Row-major `[n_mels, n_frames]` values, roughly in [-1.5, 1.5].
    pub data: Vec<f32>,
}

/// Number of feature frames for `n_samples` samples: the STFT yields `1 + n / hop` frames and the last is dropped.
pub fn mel_frame_count(n_samples: usize, hop_length: usize) -> usize {
    n_samples.checked_div(hop_length).unwrap_or(0)
}

/// Computes the log-mel spectrogram of mono `samples` at `cfg.sampling_rate` (the caller resamples first).
///
/// Fails with [`PreprocessError::AudioTooShort`] when the audio is shorter than one hop (no frames).
pub fn log_mel_spectrogram(samples: &[f32], cfg: &FeatureExtractorConfig) -> Result<MelFeatures> {
    cfg.validate("feature extractor config")?;
    let n_frames = mel_frame_count(samples.len(), cfg.hop_length);
    if n_frames == 0 {
        return Err(PreprocessError::AudioTooShort { samples: samples.len(), hop_length: cfg.hop_length });
    }
    let n_fft = cfg.n_fft;
    let n_freqs = n_fft / 2 + 1;
    let pad = n_fft / 2;
    let padded: Vec<f64> = (0..samples.len() + 2 * pad)
        .map(|i| f64::from(samples[reflect_index(i as isize - pad as isize, samples.len())]))
        .collect();
    let window = hann_periodic(n_fft);
    let bank = MelFilterBank::slaney(n_freqs, cfg.feature_size, 0.0, WHISPER_MEL_MAX_HZ, cfg.sampling_rate);
    let fft = FftPlanner::<f64>::new().plan_fft_forward(n_fft);
    let mut scratch = vec![Complex::new(0.0, 0.0); fft.get_inplace_scratch_len()];
    let mut buf = vec![Complex::new(0.0, 0.0); n_fft];
    let mut power = vec![0.0f64; n_freqs];
    let mut mel = vec![0.0f64; cfg.feature_size];

    // Only the first `n_frames` STFT frames are computed: the reference computes one more and drops it, and
    // the utterance maximum is taken after the drop.
    let mut log_mel = vec![0.0f32; cfg.feature_size * n_frames]; // [n_mels, n_frames]
    for t in 0..n_frames {
        let frame = &padded[t * cfg.hop_length..t * cfg.hop_length + n_fft];
        for ((b, &x), &w) in buf.iter_mut().zip(frame).zip(&window) {
            *b = Complex::new(x * w, 0.0);
        }
        fft.process_with_scratch(&mut buf, &mut scratch);
        for (p, z) in power.iter_mut().zip(&buf) {
            // numpy keeps the STFT in a complex64 array, then takes np.abs(..., dtype=float64) ** 2.
            let (re, im) = (f64::from(z.re as f32), f64::from(z.im as f32));
            *p = re.hypot(im).powi(2);
        }
        bank.apply(&power, &mut mel);
        for (m, &e) in mel.iter().enumerate() {
            log_mel[m * n_frames + t] = e.max(MEL_FLOOR).log10() as f32;
        }
    }
    let max = log_mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let floor = max - LOG_DYNAMIC_RANGE;
    for v in &mut log_mel {
        *v = ((*v).max(floor) + 4.0) / 4.0;
    }
    Ok(MelFeatures { n_mels: cfg.feature_size, n_frames, data: log_mel })
}

/// numpy's `pad(mode="reflect")` index map: mirror without repeating the edge sample, folding as often as
/// needed when the padding is longer than the signal. `len` must be > 0.
fn reflect_index(i: isize, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len as isize - 1);
    let m = i.rem_euclid(period);
    (if m < len as isize { m } else { period - m }) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_index_matches_numpy() {
        // np.pad([0,1,2,3], 5, 'reflect') -> [1,2,3,2,1, 0,1,2,3, 2,1,0,1,2]
        let got: Vec<usize> = (-5..9).map(|i| reflect_index(i, 4)).collect();
        assert_eq!(got, vec![1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1, 2]);
        assert_eq!(reflect_index(-3, 1), 0);
    }

    #[test]
    fn config_rejects_dither_and_parses_defaults() {
        let cfg = FeatureExtractorConfig::from_json_str(r#"{"feature_size": 128, "chunk_length": 300}"#).unwrap();
        assert_eq!((cfg.feature_size, cfg.sampling_rate, cfg.hop_length, cfg.n_fft), (128, 16000, 160, 400));
        let err = FeatureExtractorConfig::from_json_str(r#"{"dither": 0.0001}"#).unwrap_err();
        assert!(err.to_string().contains("dither"), "{err}");
        let err = FeatureExtractorConfig::from_json_str(r#"{"hop_length": 0}"#).unwrap_err();
        assert!(err.to_string().contains("hop_length"), "{err}");
    }

    #[test]
    fn too_short_audio_is_an_error() {
        let cfg = FeatureExtractorConfig::from_json_str("{}").unwrap();
        let err = log_mel_spectrogram(&[0.1; 159], &cfg).unwrap_err();
        assert!(matches!(err, PreprocessError::AudioTooShort { samples: 159, hop_length: 160 }), "{err:?}");
    }

    #[test]
    fn silence_is_constant_at_the_floor() {
        // All-zero input: every mel energy clamps to 1e-10 -> log10 = -10 -> (-10 + 4) / 4 = -1.5.
        let cfg = FeatureExtractorConfig::from_json_str(r#"{"feature_size": 128}"#).unwrap();
        let f = log_mel_spectrogram(&[0.0; 1600], &cfg).unwrap();
        assert_eq!((f.n_mels, f.n_frames), (128, 10));
        assert!(f.data.iter().all(|&v| v == -1.5));
    }
}
