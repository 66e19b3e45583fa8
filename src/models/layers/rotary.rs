//! Rotary position embeddings (spec §3, §5.4).
//!
//! * Text decoders (thinker, talker, Qwen3-VL) use *interleaved* multimodal RoPE: every
//!   token has three positions (t, h, w) and frequency `j` takes its position from
//!   H if `j % 3 == 1 && j < 3·section[1]`, from W if `j % 3 == 2 && j < 3·section[2]`,
//!   else from T. With all three positions equal this is ordinary RoPE, which is what
//!   the code predictor and Code2Wav use.
//! * The vision tower uses an axial 2-D rotary over (row, col) of each patch.
//!
//! Tables are computed on the host in f32 exactly as transformers does
//! (`angle = pos · inv_freq` in f32, then cos/sin) and applied with candle's rotate-half
//! kernel, which matches `q·cos + rotate_half(q)·sin`. For f64 activations the tables are
//! computed in f64 instead, so an f64 run (used to check ill-conditioned fixtures) has no f32 step.

use candle_core::{DType, Device, Result, Tensor};

/// `inv_freq[j] = 1 / theta^(2j/dim)` for `j < dim/2`, computed in f32 like the reference.
pub fn inv_freq(dim: usize, theta: f64) -> Vec<f32> {
    let theta = theta as f32;
    (0..dim / 2).map(|j| 1.0 / theta.powf((2 * j) as f32 / dim as f32)).collect()
}

/// Three position ids (t, h, w) per token, kept in f32 because Qwen3-Omni video positions
/// can be fractional (spec §11.10).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Positions3d {
    pub t: Vec<f32>,
    pub h: Vec<f32>,
    pub w: Vec<f32>,
}

impl Positions3d {
    /// Ordinary 1-D positions `start..start+len` on all three axes.
    pub fn sequential(start: f32, len: usize) -> Self {
        let v: Vec<f32> = (0..len).map(|i| start + i as f32).collect();
        Self { t: v.clone(), h: v.clone(), w: v }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// True when there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// Appends one token with equal positions on all axes.
    pub fn push_text(&mut self, p: f32) {
        self.t.push(p);
        self.h.push(p);
        self.w.push(p);
    }

    /// Appends one token with explicit (t, h, w).
    pub fn push(&mut self, t: f32, h: f32, w: f32) {
        self.t.push(t);
        self.h.push(h);
        self.w.push(w);
    }

    /// Largest coordinate over all axes (`-1` when empty, so `max + 1` starts at 0).
    pub fn max(&self) -> f32 {
        self.t.iter().chain(&self.h).chain(&self.w).fold(-1.0f32, |m, &v| m.max(v))
    }

    /// The `[3, S]` f32 tensor transformers calls `position_ids`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        let mut all = Vec::with_capacity(3 * self.len());
        all.extend_from_slice(&self.t);
        all.extend_from_slice(&self.h);
        all.extend_from_slice(&self.w);
        Tensor::from_vec(all, (3, self.len()), device)
    }
}

/// Which position axis each frequency reads (interleaved MRoPE layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Axis {
    T,
    H,
    W,
}

/// Rotary table builder for text decoders (multimodal or plain).
#[derive(Debug, Clone)]
pub struct TextRotary {
    inv_freq: Vec<f32>,
    /// The same frequencies in f64 (`1 / theta^(2j/dim)`), for f64 activations.
    inv_freq_f64: Vec<f64>,
    axis: Vec<Axis>,
}

impl TextRotary {
    /// `mrope_section = None` gives plain 1-D RoPE (only the T axis is read).
    pub fn new(head_dim: usize, theta: f64, mrope_section: Option<&[usize]>) -> Result<Self> {
        let inv_freq = inv_freq(head_dim, theta);
        let half = head_dim / 2;
        let axis = match mrope_section {
            None => vec![Axis::T; half],
            Some(sec) => {
                if sec.len() != 3 || sec.iter().sum::<usize>() != half {
                    candle_core::bail!("mrope_section {sec:?} must have 3 entries summing to head_dim/2 = {half}")
                }
                (0..half)
                    .map(|j| {
                        if j % 3 == 1 && j < 3 * sec[1] {
                            Axis::H
                        } else if j % 3 == 2 && j < 3 * sec[2] {
                            Axis::W
                        } else {
                            Axis::T
                        }
                    })
                    .collect()
            }
        };
        let inv_freq_f64 = (0..half).map(|j| 1.0 / theta.powf((2 * j) as f64 / head_dim as f64)).collect();
        Ok(Self { inv_freq, inv_freq_f64, axis })
    }

    /// `(cos, sin)` of shape `[S, head_dim/2]` in `dtype` (the reference casts the tables to
    /// the activation dtype before the multiply).
    pub fn cos_sin(&self, pos: &Positions3d, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        if dtype == DType::F64 {
            return self.cos_sin_f64(pos, device);
        }
        let half = self.inv_freq.len();
        let n = pos.len();
        let mut cos = Vec::with_capacity(n * half);
        let mut sin = Vec::with_capacity(n * half);
        for i in 0..n {
            for (j, &f) in self.inv_freq.iter().enumerate() {
                let p = match self.axis[j] {
                    Axis::T => pos.t[i],
                    Axis::H => pos.h[i],
                    Axis::W => pos.w[i],
                };
                let angle = p * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let cos = Tensor::from_vec(cos, (n, half), device)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (n, half), device)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }
}

impl TextRotary {
    fn position(&self, pos: &Positions3d, i: usize, j: usize) -> f32 {
        match self.axis[j] {
            Axis::T => pos.t[i],
            Axis::H => pos.h[i],
            Axis::W => pos.w[i],
        }
    }

    /// [`Self::cos_sin`] in f64 throughout.
    fn cos_sin_f64(&self, pos: &Positions3d, device: &Device) -> Result<(Tensor, Tensor)> {
        let (n, half) = (pos.len(), self.inv_freq_f64.len());
        let mut cos = Vec::with_capacity(n * half);
        let mut sin = Vec::with_capacity(n * half);
        for i in 0..n {
            for (j, &f) in self.inv_freq_f64.iter().enumerate() {
                let angle = self.position(pos, i, j) as f64 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok((Tensor::from_vec(cos, (n, half), device)?, Tensor::from_vec(sin, (n, half), device)?))
    }
}

/// Applies rotate-half RoPE to `xs: [B, H, S, D]` with tables `[S, D/2]`.
pub fn apply_rotary(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    candle_nn::rotary_emb::rope(&xs.contiguous()?, cos, sin)
}

/// Axial 2-D rotary tables for the vision tower: for each patch (row, col) the angles are
/// `[row·inv_freq, col·inv_freq]` with `inv_freq` over `head_dim/2` (spec §5.4). Returns
/// f32 `(cos, sin)` of shape `[N, head_dim/2]`; the vision tower applies them in f32.
pub fn vision_cos_sin(
    rows_cols: &[(u32, u32)],
    head_dim: usize,
    theta: f64,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let inv = inv_freq(head_dim / 2, theta);
    let quarter = inv.len();
    let n = rows_cols.len();
    let mut cos = Vec::with_capacity(n * 2 * quarter);
    let mut sin = Vec::with_capacity(n * 2 * quarter);
    for &(r, c) in rows_cols {
        for p in [r as f32, c as f32] {
            for &f in &inv {
                let a = p * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
    }
    Ok((Tensor::from_vec(cos, (n, 2 * quarter), device)?, Tensor::from_vec(sin, (n, 2 * quarter), device)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_axes_match_spec_partition() {
        // Real model: head_dim 128, section [24, 20, 20] → H = {1,4,…,58}, W = {2,5,…,59},
        // T = {0,3,…,57} ∪ {60,61,62,63} (spec §3.1).
        let r = TextRotary::new(128, 1e6, Some(&[24, 20, 20])).unwrap();
        let h: Vec<usize> = (0..64).filter(|&j| r.axis[j] == Axis::H).collect();
        let w: Vec<usize> = (0..64).filter(|&j| r.axis[j] == Axis::W).collect();
        let t: Vec<usize> = (0..64).filter(|&j| r.axis[j] == Axis::T).collect();
        assert_eq!(h, (0..20).map(|i| 1 + 3 * i).collect::<Vec<_>>());
        assert_eq!(w, (0..20).map(|i| 2 + 3 * i).collect::<Vec<_>>());
        assert_eq!(t.len(), 24);
        assert_eq!(&t[20..], &[60, 61, 62, 63]);
    }

    #[test]
    fn bad_section_is_an_error() {
        assert!(TextRotary::new(16, 1e6, Some(&[4, 2, 1])).is_err());
    }

    #[test]
    fn rope_rotates_pairs_half_apart() {
        // One head, D = 4: pairs (x0, x2) and (x1, x3) rotate by pos·inv_freq.
        let dev = Device::Cpu;
        let r = TextRotary::new(4, 10000.0, None).unwrap();
        let (cos, sin) = r.cos_sin(&Positions3d::sequential(3.0, 1), DType::F32, &dev).unwrap();
        let x = Tensor::new(&[[[[1f32, 2., 3., 4.]]]], &dev).unwrap();
        let y: Vec<f32> = apply_rotary(&x, &cos, &sin).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let (a0, a1) = (3.0f32, 3.0f32 * 0.01);
        let want = [
            1. * a0.cos() - 3. * a0.sin(),
            2. * a1.cos() - 4. * a1.sin(),
            3. * a0.cos() + 1. * a0.sin(),
            4. * a1.cos() + 2. * a1.sin(),
        ];
        for (g, w) in y.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{y:?} vs {want:?}");
        }
    }
}
