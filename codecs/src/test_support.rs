//! Signals, a seeded PRNG and measurements shared by the audio unit tests (no `rand` dependency, so runs are
//! reproducible and the crate's dependency list stays as it is).

/// xorshift64* generator: tiny, seeded, good enough for test signals and chunk sizes.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced by a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// `count` random chunk sizes in `min..=max`.
pub fn chunk_sizes(rng: &mut Rng, count: usize, min: usize, max: usize) -> Vec<usize> {
    (0..count).map(|_| min + rng.below(max - min + 1)).collect()
}

/// `n` samples of `amplitude · sin(2π · freq · t)` at `rate` Hz.
pub fn sine(n: usize, rate: u32, freq: f64, amplitude: f64) -> Vec<f32> {
    (0..n)
        .map(|i| (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// Signal-to-noise ratio in dB of `test` against `reference` (the noise is their difference).
pub fn snr_db(reference: &[f32], test: &[f32]) -> f64 {
    assert_eq!(reference.len(), test.len(), "SNR of signals with different lengths");
    let signal: f64 = reference.iter().map(|&r| f64::from(r).powi(2)).sum();
    let noise: f64 = reference.iter().zip(test).map(|(&r, &t)| (f64::from(r) - f64::from(t)).powi(2)).sum();
    10.0 * (signal / noise.max(1e-30)).log10()
}

/// Frequency in Hz of a steady tone, from its rising zero crossings located by linear interpolation.
pub fn tone_frequency(signal: &[f32], rate: u32) -> f64 {
    let crossings: Vec<f64> = signal
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| i as f64 + f64::from(w[0]) / f64::from(w[0] - w[1]))
        .collect();
    assert!(crossings.len() >= 2, "too few zero crossings to measure a frequency");
    let span = crossings[crossings.len() - 1] - crossings[0];
    (crossings.len() - 1) as f64 * f64::from(rate) / span
}

/// Calls `f` on consecutive chunks of `data` whose sizes cycle through `sizes` (zero-sized chunks included,
/// as a client may send them); the last chunk is cut to what is left. `sizes` must hold a non-zero size.
pub fn for_each_chunk<T>(data: &[T], sizes: &[usize], mut f: impl FnMut(&[T])) {
    assert!(sizes.iter().any(|&s| s > 0), "chunk sizes must include a non-zero size");
    let mut at = 0;
    for &size in sizes.iter().cycle() {
        if at >= data.len() {
            break;
        }
        let end = (at + size).min(data.len());
        f(&data[at..end]);
        at = end;
    }
}
