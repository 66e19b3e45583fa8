//! Next-token selection with Hugging Face `generate()` semantics, applied in its order:
//! repetition penalty (over the prompt and everything generated), temperature, top-k
//! (ties with the k-th kept), top-p (smallest set whose renormalised mass reaches p), then
//! a draw from a seeded generator. Greedy is argmax (lowest id on ties, like torch).
//!
//! candle-transformers' `LogitsProcessor` was checked and not used: its top-k-then-top-p
//! compares p with the *un-renormalised* top-k mass, which keeps more tokens than
//! transformers does.

use super::rng::Xoshiro256;

/// Decoding settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Argmax decoding; the other fields except the penalty are ignored.
    pub greedy: bool,
    pub temperature: f64,
    /// 0 disables top-k.
    pub top_k: usize,
    /// 1.0 disables top-p.
    pub top_p: f64,
    /// 1.0 disables the penalty.
    pub repetition_penalty: f64,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self { greedy: true, temperature: 1.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 0 }
    }
}

impl SamplingParams {
    /// Rejects values transformers would reject (or that make no sense).
    pub fn validate(&self) -> Result<(), String> {
        // The logits are divided by the temperature in f32: below f32's smallest normal it is 0.
        let usable = self.temperature.is_finite() && self.temperature >= f32::MIN_POSITIVE as f64;
        if !self.greedy && !usable {
            return Err(format!("temperature must be a positive number when sampling (got {})", self.temperature));
        }
        if self.top_p.is_nan() || self.top_p <= 0.0 || self.top_p > 1.0 {
            return Err(format!("top_p must be in (0, 1] (got {})", self.top_p));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(format!("repetition_penalty must be > 0 (got {})", self.repetition_penalty));
        }
        Ok(())
    }
}

/// Picks tokens for one sequence.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Xoshiro256,
}

impl Sampler {
    /// A sampler seeded from `params.seed`.
    pub fn new(params: SamplingParams) -> Self {
        let rng = Xoshiro256::new(params.seed);
        Self { params, rng }
    }

    /// Chooses the next token from `logits` (f32, one row), given every id seen so far
    /// (prompt and generated), which the repetition penalty applies to.
    pub fn sample(&mut self, logits: &[f32], seen: &[u32]) -> u32 {
        let mut scores: Vec<f32> = logits.to_vec();
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            let pen = p.repetition_penalty as f32;
            let mut done = vec![false; scores.len()];
            for &id in seen {
                if let Some(s) = scores.get_mut(id as usize) {
                    if !done[id as usize] {
                        *s = if *s < 0.0 { *s * pen } else { *s / pen };
                        done[id as usize] = true;
                    }
                }
            }
        }
        if p.greedy {
            return argmax(&scores);
        }
        let t = p.temperature as f32;
        for s in scores.iter_mut() {
            *s /= t;
        }
        if p.top_k > 0 && p.top_k < scores.len() {
            // The k-th largest score, found in linear time; ties with it are kept.
            let mut tmp = scores.clone();
            let (_, kth, _) = tmp.select_nth_unstable_by(p.top_k - 1, |a, b| b.total_cmp(a));
            let kth = *kth;
            for s in scores.iter_mut() {
                if *s < kth {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        let mut probs = softmax(&scores);
        if p.top_p < 1.0 {
            // Keep the most likely tokens until their (renormalised) mass reaches top_p. Only
            // tokens still in play after top-k are sorted.
            let mut order: Vec<usize> = (0..probs.len()).filter(|&i| probs[i] > 0.0).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            let mut mass = 0f64;
            let mut keep = vec![false; probs.len()];
            for &i in &order {
                keep[i] = true;
                mass += probs[i] as f64;
                if mass >= p.top_p {
                    break;
                }
            }
            for (i, pr) in probs.iter_mut().enumerate() {
                if !keep[i] {
                    *pr = 0.0;
                }
            }
        }
        let total: f64 = probs.iter().map(|&x| x as f64).sum();
        let mut u = self.rng.uniform() * total;
        let mut last_nonzero = 0;
        for (i, &pr) in probs.iter().enumerate() {
            if pr > 0.0 {
                last_nonzero = i;
                if u < pr as f64 {
                    return i as u32;
                }
                u -= pr as f64;
            }
        }
        last_nonzero as u32
    }
}

/// Index of the largest value; the lowest index wins ties (torch.argmax does the same).
pub fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

fn softmax(xs: &[f32]) -> Vec<f32> {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = xs.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The `n` largest logits as `(id, value)`, best first (the `first_step_top5` field).
pub fn top_n(logits: &[f32], n: usize) -> Vec<(u32, f32)> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    idx.into_iter().take(n).map(|i| (i as u32, logits[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(temperature: f64, top_k: usize, top_p: f64) -> SamplingParams {
        SamplingParams { greedy: false, temperature, top_k, top_p, repetition_penalty: 1.0, seed: 7 }
    }

    #[test]
    fn greedy_is_argmax_with_low_index_on_ties() {
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&[0.1, 3.0, 3.0, -1.0], &[]), 1);
    }

    #[test]
    fn repetition_penalty_follows_transformers() {
        // Positive logits are divided, negative multiplied; a penalty of 2 turns 3.0 into 1.5.
        let mut s = Sampler::new(SamplingParams { repetition_penalty: 2.0, ..Default::default() });
        assert_eq!(s.sample(&[1.0, 3.0, 2.0], &[1, 1]), 2);
        let mut s = Sampler::new(SamplingParams { repetition_penalty: 2.0, ..Default::default() });
        assert_eq!(s.sample(&[-1.0, -0.6, -0.8], &[1]), 2);
    }

    #[test]
    fn top_p_renormalises_after_top_k() {
        // probs ∝ 0.5, 0.1, 0.4 → top-2 keeps {0, 2}: renormalised 0.556, 0.444.
        // top_p 0.5: transformers keeps only token 0 (0.556 ≥ 0.5); every draw must be 0.
        let logits: Vec<f32> = [0.5f32, 0.1, 0.4].iter().map(|p| p.ln()).collect();
        let mut s = Sampler::new(sampling(1.0, 2, 0.5));
        for _ in 0..200 {
            assert_eq!(s.sample(&logits, &[]), 0);
        }
    }

    #[test]
    fn sampling_follows_the_distribution_and_is_seeded() {
        let logits: Vec<f32> = [0.7f32, 0.2, 0.1].iter().map(|p| p.ln()).collect();
        let mut s = Sampler::new(sampling(1.0, 0, 1.0));
        let draws: Vec<u32> = (0..4000).map(|_| s.sample(&logits, &[])).collect();
        let share0 = draws.iter().filter(|&&t| t == 0).count() as f64 / 4000.0;
        assert!((share0 - 0.7).abs() < 0.03, "{share0}");
        let mut again = Sampler::new(sampling(1.0, 0, 1.0));
        let replay: Vec<u32> = (0..4000).map(|_| again.sample(&logits, &[])).collect();
        assert_eq!(draws, replay);
    }

    #[test]
    fn top_n_orders_best_first() {
        assert_eq!(top_n(&[0.0, 5.0, -1.0, 2.0], 2), vec![(1, 5.0), (3, 2.0)]);
    }
}
