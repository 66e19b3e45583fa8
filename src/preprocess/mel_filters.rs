//! The fixed matrices of the Whisper front end, built in `f64` with the same operation order as transformers'
//! `audio_utils` (`mel_filter_bank`, `window_function`) and numpy (`linspace`, `hanning`), so the filters agree
//! with the reference to the last bit or two.

use std::f64::consts::PI;

/// numpy's `linspace(start, stop, num)` (endpoint included): `start + i·step` with `step = (stop − start) /
/// (num − 1)`, and the last element set to `stop` exactly.
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// Periodic Hann window of length `n`: numpy's `hanning(n + 1)[:-1]`, i.e. `0.5 + 0.5·cos(π·k / n)` for
/// `k = −n, −n + 2, …` (transformers' `window_function(n, "hann")`).
pub fn hann_periodic(n: usize) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    let m = (n + 1) as f64;
    // numpy: k = arange(1 - M, M, 2); w = 0.5 + 0.5 * cos(pi * k / (M - 1)), then drop the last sample.
    (0..n).map(|i| 0.5 + 0.5 * (PI * (1.0 - m + 2.0 * i as f64) / (m - 1.0)).cos()).collect()
}

const SLANEY_MIN_LOG_HZ: f64 = 1000.0;
const SLANEY_MIN_LOG_MEL: f64 = 15.0;

/// Slaney mel scale (librosa's default, `htk=False`): linear below 1 kHz, logarithmic above.
pub fn hertz_to_mel_slaney(hz: f64) -> f64 {
    if hz >= SLANEY_MIN_LOG_HZ {
        let logstep = 27.0 / 6.4f64.ln();
        SLANEY_MIN_LOG_MEL + (hz / SLANEY_MIN_LOG_HZ).ln() * logstep
    } else {
        3.0 * hz / 200.0
    }
}

/// Inverse of [`hertz_to_mel_slaney`].
pub fn mel_to_hertz_slaney(mel: f64) -> f64 {
    if mel >= SLANEY_MIN_LOG_MEL {
        let logstep = 6.4f64.ln() / 27.0;
        SLANEY_MIN_LOG_HZ * (logstep * (mel - SLANEY_MIN_LOG_MEL)).exp()
    } else {
        200.0 * mel / 3.0
    }
}

/// A mel filter bank stored sparsely: each filter is a triangle covering a few consecutive FFT bins.
#[derive(Debug, Clone)]
pub struct MelFilterBank {
    /// Number of one-sided FFT bins the filters apply to (`n_fft / 2 + 1`).
    pub n_freqs: usize,
    /// Per mel filter: the first bin with a non-zero weight and the weights from there on.
    pub filters: Vec<(usize, Vec<f64>)>,
}

impl MelFilterBank {
    /// Slaney-scale, Slaney-normalised triangular filters between `min_hz` and `max_hz`, exactly as
    /// transformers' `mel_filter_bank(num_frequency_bins, num_mel_filters, min_frequency, max_frequency,
    /// sampling_rate, norm="slaney", mel_scale="slaney")` with its default float64 dtype.
    pub fn slaney(n_freqs: usize, n_mels: usize, min_hz: f64, max_hz: f64, sampling_rate: usize) -> Self {
        let mel_min = hertz_to_mel_slaney(min_hz);
        let mel_max = hertz_to_mel_slaney(max_hz);
        let filter_hz: Vec<f64> = linspace(mel_min, mel_max, n_mels + 2).into_iter().map(mel_to_hertz_slaney).collect();
        // Python: np.linspace(0, sampling_rate // 2, num_frequency_bins) (integer division).
        let fft_hz = linspace(0.0, (sampling_rate / 2) as f64, n_freqs);
        let diff: Vec<f64> = filter_hz.windows(2).map(|w| w[1] - w[0]).collect();
        let filters = (0..n_mels)
            .map(|m| {
                // Slaney area normalisation: 2 / (width of the triangle's base in Hz).
                let enorm = 2.0 / (filter_hz[m + 2] - filter_hz[m]);
                let weights: Vec<f64> = fft_hz
                    .iter()
                    .map(|&f| {
                        // slopes = filter_freqs - fft_freq; down = -slopes[m] / diff[m]; up = slopes[m+2] / diff[m+1]
                        let down = -(filter_hz[m] - f) / diff[m];
                        let up = (filter_hz[m + 2] - f) / diff[m + 1];
                        0f64.max(down.min(up)) * enorm
                    })
                    .collect();
                let first = weights.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = weights.iter().rposition(|&w| w != 0.0).map_or(first, |p| p + 1);
                (first, weights[first..last].to_vec())
            })
            .collect();
        Self { n_freqs, filters }
    }

    /// Applies every filter to one power spectrum of `n_freqs` bins.
    pub fn apply(&self, power: &[f64], out: &mut [f64]) {
        for ((start, weights), o) in self.filters.iter().zip(out.iter_mut()) {
            *o = weights.iter().zip(&power[*start..]).map(|(w, p)| w * p).sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy_endpoints() {
        let v = linspace(0.0, 8000.0, 201);
        assert_eq!(v[0], 0.0);
        assert_eq!(v[1], 40.0);
        assert_eq!(v[200], 8000.0);
        assert_eq!(linspace(2.0, 3.0, 5), vec![2.0, 2.25, 2.5, 2.75, 3.0]);
    }

    #[test]
    fn hann_is_periodic() {
        let w = hann_periodic(400);
        assert_eq!(w.len(), 400);
        assert!(w[0].abs() < 1e-15);
        assert!((w[200] - 1.0).abs() < 1e-15);
        assert!((w[100] - 0.5).abs() < 1e-12);
        assert!((w[1] - w[399]).abs() < 1e-15, "periodic window is symmetric about n/2");
    }

    #[test]
    fn slaney_scale_round_trips_and_is_linear_below_1khz() {
        assert_eq!(hertz_to_mel_slaney(200.0), 3.0);
        assert!((hertz_to_mel_slaney(1000.0) - 15.0).abs() < 1e-12);
        for hz in [0.0, 333.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hertz_slaney(hertz_to_mel_slaney(hz)) - hz).abs() < 1e-9, "{hz}");
        }
    }

    #[test]
    fn filters_have_slaney_area() {
        // With Slaney normalisation each triangle integrates (in Hz) to ~1: sum(w) * bin_width ~ 1 once the
        // triangles span several 40 Hz bins (the upper filters; the lowest ones are narrower than a bin).
        let bank = MelFilterBank::slaney(201, 128, 0.0, 8000.0, 16000);
        assert_eq!(bank.filters.len(), 128);
        for (m, (_, w)) in bank.filters.iter().enumerate().skip(100) {
            let area = w.iter().sum::<f64>() * 40.0;
            assert!((area - 1.0).abs() < 0.05, "filter {m}: area {area}");
        }
    }
}
