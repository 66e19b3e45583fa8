//! Sample-rate conversion of a whole mono `f32` buffer (e.g. 44.1 / 48 kHz uploads to the 16 kHz the audio
//! encoder expects), using rubato's synchronous FFT resampler.
//!
//! The output is aligned with the input — rubato's start-up delay is trimmed, so an event at input time `t`
//! lands at output time `t` — and has exactly `round(n · to / from)` samples, so durations (and therefore audio
//! token counts) do not drift by a sample depending on the resampler's internal block size.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::{CodecError, Result};

/// Input frames per FFT chunk. rubato rounds the internal block size up to a multiple of
/// `from / gcd(from, to)`; 1024 keeps the delay (and the work done on padding) small for speech-length clips
/// while giving sub-chunks of a few hundred frames, the size rubato recommends for quality.
pub(crate) const CHUNK_FRAMES: usize = 1024;

/// Resamples mono `samples` from `from_hz` to `to_hz`.
///
/// Returns a copy when the rates match and an empty vector for empty input. The result has
/// `round(samples.len() · to_hz / from_hz)` samples (halves round up) and no leading delay.
pub fn resample(samples: &[f32], from_hz: u32, to_hz: u32) -> Result<Vec<f32>> {
    if from_hz == 0 || to_hz == 0 {
        return Err(CodecError::InvalidSampleRate { from_hz, to_hz });
    }
    if from_hz == to_hz {
        return Ok(samples.to_vec());
    }
    let n = samples.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let target = output_len(n, from_hz, to_hz);
    let fail = |detail: String| CodecError::Resample { from_hz, to_hz, detail };

    let mut resampler = Fft::<f32>::new(from_hz as usize, to_hz as usize, CHUNK_FRAMES, 1, FixedSync::Input)
        .map_err(|e| fail(e.to_string()))?;
    let input = InterleavedSlice::new(samples, 1, n).map_err(|e| fail(e.to_string()))?;
    // `process_all` feeds the clip chunk by chunk, pads the tail with silence and drops the first
    // `output_delay()` frames, returning ceil(n · ratio) delay-compensated frames.
    let mut out = resampler.process_all(&input, n, None).map_err(|e| fail(format!("{e:?}")))?.take_data();
    if out.len() < target {
        return Err(fail(format!("resampler produced {} samples, expected at least {target}", out.len())));
    }
    out.truncate(target);
    Ok(out)
}

/// `round(n · to / from)` with halves rounded up, in exact integer arithmetic.
pub fn output_len(n: usize, from_hz: u32, to_hz: u32) -> usize {
    if from_hz == 0 {
        return 0;
    }
    let num = n as u128 * u128::from(to_hz);
    let den = u128::from(from_hz);
    ((num + den / 2) / den) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_len_rounds_half_up() {
        assert_eq!(output_len(44100, 44100, 16000), 16000);
        assert_eq!(output_len(1, 44100, 16000), 0); // 0.36 -> 0
        assert_eq!(output_len(3, 2, 1), 2); // 1.5 -> 2
        assert_eq!(output_len(5, 48000, 16000), 2); // 1.67 -> 2
        assert_eq!(output_len(7, 48000, 16000), 2); // 2.33 -> 2
    }

    #[test]
    fn rejects_zero_rates() {
        assert!(matches!(resample(&[0.0; 4], 0, 16000), Err(CodecError::InvalidSampleRate { .. })));
        assert!(matches!(resample(&[0.0; 4], 16000, 0), Err(CodecError::InvalidSampleRate { .. })));
    }

    #[test]
    fn identity_and_empty() {
        let x = [0.5f32, -0.25, 0.125];
        assert_eq!(resample(&x, 16000, 16000).unwrap(), x.to_vec());
        assert!(resample(&[], 48000, 16000).unwrap().is_empty());
    }
}
