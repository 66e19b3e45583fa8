//! The routed experts of a few tokens (a decode step) with weights in ggml block formats:
//! `y[t] = Σ_e w[t,e] · Down_e(silu(Gate_e(x[t])) ⊙ Up_e(x[t]))`, in two parallel passes over all
//! selected experts at once, like [`crate::moe_experts`] for f32 weights.
//!
//! Going through a general quantized matmul per expert costs a dozen tensor ops and two thread-pool
//! round trips per expert, ~16 per layer and token for top-8 routing; here each token row is
//! quantized to the weights' dot-product format once, every (expert, row chunk) of gate/up runs in
//! one pass and every (expert, row chunk) of down in a second one. The block dot products are
//! candle's (`GgmlType::vec_dot`, SIMD on x86 and ARM), so the numbers are those of candle's
//! quantized matmul up to summation order.
//!
//! Each expert's `gate_up` (`[2I, H]`, gate rows first) and `down` (`[H, I]`) are the raw blocks of
//! one matrix, rows contiguous. Expert outputs are accumulated in ascending expert order.

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ4_0, BlockQ5K, BlockQ6K, BlockQ8_0, GgmlType};
use candle_core::quantized::GgmlDType;
use rayon::prelude::*;

use crate::moe_routing::ExpertGroup;

/// Output rows per task: enough to amortise scheduling, small enough to balance the pool.
const ROWS_PER_TASK: usize = 64;

/// One expert's weights as raw blocks.
#[derive(Debug, Clone, Copy)]
pub struct QuantExpert<'a> {
    /// `[2I, H]` in `gate_up_format`.
    pub gate_up: &'a [u8],
    /// `[H, I]` in `down_format`.
    pub down: &'a [u8],
}

/// Sizes and formats of the experts.
#[derive(Debug, Clone, Copy)]
pub struct QuantExpertShape {
    pub hidden: usize,
    pub intermediate: usize,
    pub gate_up_format: GgmlDType,
    pub down_format: GgmlDType,
}

/// Whether [`expert_ffn_quantized`] runs this format.
pub fn supports(format: GgmlDType) -> bool {
    matches!(format, GgmlDType::Q4_0 | GgmlDType::Q8_0 | GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K)
}

/// Runs the experts of `groups` for the token rows `x: [tokens, H]` and returns `[tokens, H]`.
/// `experts[e]` holds expert `e`'s blocks. Errors (not panics) on unsupported formats, sizes that
/// do not match the formats, or misaligned blocks: the caller falls back to the general path.
pub fn expert_ffn_quantized(
    x: &[f32],
    tokens: usize,
    groups: &[ExpertGroup],
    experts: &[QuantExpert],
    s: QuantExpertShape,
) -> Result<Vec<f32>, String> {
    if x.len() != tokens * s.hidden {
        return Err(format!("x holds {} values, not {tokens} × {}", x.len(), s.hidden));
    }
    if let Some(g) = groups.iter().find(|g| g.expert as usize >= experts.len()) {
        return Err(format!("expert {} of {}", g.expert, experts.len()));
    }
    macro_rules! with_down {
        ($g:ty) => {
            match s.down_format {
                GgmlDType::Q4_0 => run::<$g, BlockQ4_0>(x, groups, experts, s),
                GgmlDType::Q8_0 => run::<$g, BlockQ8_0>(x, groups, experts, s),
                GgmlDType::Q4K => run::<$g, BlockQ4K>(x, groups, experts, s),
                GgmlDType::Q5K => run::<$g, BlockQ5K>(x, groups, experts, s),
                GgmlDType::Q6K => run::<$g, BlockQ6K>(x, groups, experts, s),
                other => Err(format!("down_proj format {other:?} is not supported here")),
            }
        };
    }
    match s.gate_up_format {
        GgmlDType::Q4_0 => with_down!(BlockQ4_0),
        GgmlDType::Q8_0 => with_down!(BlockQ8_0),
        GgmlDType::Q4K => with_down!(BlockQ4K),
        GgmlDType::Q5K => with_down!(BlockQ5K),
        GgmlDType::Q6K => with_down!(BlockQ6K),
        other => Err(format!("gate_up_proj format {other:?} is not supported here")),
    }
}

/// `bytes` as `rows` rows of `row_len` values in format `T`.
fn blocks<T: GgmlType>(bytes: &[u8], rows: usize, row_len: usize) -> Result<&[T], String> {
    if !row_len.is_multiple_of(T::BLCK_SIZE) {
        return Err(format!("rows of {row_len} values do not fill {:?} blocks", T::DTYPE));
    }
    let n = rows * row_len / T::BLCK_SIZE;
    if bytes.len() != n * std::mem::size_of::<T>() {
        return Err(format!("{} bytes for {rows} × {row_len} {:?} values", bytes.len(), T::DTYPE));
    }
    if !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err("misaligned blocks".into());
    }
    // SAFETY: length and alignment checked above; the block types are plain `repr(C)` data valid
    // for any bit pattern (integers and f16 scales).
    Ok(unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, n) })
}

/// Quantizes rows of `len` values to `T`'s blocks, one `Vec` per row.
fn quantize_rows<T: GgmlType>(rows: impl Iterator<Item = Vec<f32>>, len: usize) -> Vec<Vec<T>> {
    rows.map(|r| {
        let mut b = vec![T::zeros(); len / T::BLCK_SIZE];
        T::from_float(&r, &mut b);
        b
    })
    .collect()
}

/// `(group, first row, output)` for every chunk of [`ROWS_PER_TASK`] of `rows` rows of every group;
/// each task fills its own output, merged after the parallel pass.
fn row_tasks(groups: usize, rows: usize) -> Vec<(usize, usize, Vec<f32>)> {
    (0..groups).flat_map(|gi| (0..rows).step_by(ROWS_PER_TASK).map(move |r0| (gi, r0, Vec::new()))).collect()
}

fn run<G: GgmlType + Sync, D: GgmlType + Sync>(
    x: &[f32],
    groups: &[ExpertGroup],
    experts: &[QuantExpert],
    s: QuantExpertShape,
) -> Result<Vec<f32>, String>
where
    G::VecDotType: Sync + Send,
    D::VecDotType: Sync + Send,
{
    let (h, i) = (s.hidden, s.intermediate);
    if !h.is_multiple_of(G::VecDotType::BLCK_SIZE) || !i.is_multiple_of(D::VecDotType::BLCK_SIZE) {
        return Err("widths do not fill the activation blocks".into());
    }
    let used: Vec<(&[G], &[D])> = groups
        .iter()
        .map(|g| {
            let e = &experts[g.expert as usize];
            Ok((blocks::<G>(e.gate_up, 2 * i, h)?, blocks::<D>(e.down, h, i)?))
        })
        .collect::<Result<_, String>>()?;
    let tokens = x.len() / h;
    // Each token row quantized once, shared by all its experts.
    let xq: Vec<Vec<G::VecDotType>> = quantize_rows(x.chunks(h).map(<[f32]>::to_vec), h);
    let (nb_h, nb_i) = (h / G::BLCK_SIZE, i / D::BLCK_SIZE);

    // Pass 1: gate/up rows for every (group, row chunk), token-major per group ([m, 2I]).
    let mut gu: Vec<Vec<f32>> = groups.iter().map(|g| vec![0f32; g.tokens.len() * 2 * i]).collect();
    let mut tasks = row_tasks(groups.len(), 2 * i);
    tasks.par_iter_mut().for_each(|(gi, r0, out)| {
        let g = &groups[*gi];
        let w = used[*gi].0;
        let rows = ROWS_PER_TASK.min(2 * i - *r0);
        out.resize(rows * g.tokens.len(), 0.0);
        for r in 0..rows {
            let row = &w[(*r0 + r) * nb_h..(*r0 + r + 1) * nb_h];
            for (j, &t) in g.tokens.iter().enumerate() {
                out[r * g.tokens.len() + j] = G::vec_dot(h, row, &xq[t as usize]);
            }
        }
    });
    for (gi, r0, out) in tasks {
        let m = groups[gi].tokens.len();
        for r in 0..out.len() / m {
            for j in 0..m {
                gu[gi][j * 2 * i + r0 + r] = out[r * m + j];
            }
        }
    }
    // silu(gate) ⊙ up, quantized for the down projection.
    let acts: Vec<Vec<Vec<D::VecDotType>>> = gu
        .iter()
        .map(|g| {
            let rows = g
                .chunks(2 * i)
                .map(|row| (0..i).map(|c| row[c] / (1.0 + (-row[c]).exp()) * row[i + c]).collect::<Vec<f32>>());
            quantize_rows(rows, i)
        })
        .collect();

    // Pass 2: down rows for every (group, row chunk).
    let mut tasks = row_tasks(groups.len(), h);
    tasks.par_iter_mut().for_each(|(gi, r0, out)| {
        let m = groups[*gi].tokens.len();
        let w = used[*gi].1;
        let rows = ROWS_PER_TASK.min(h - *r0);
        out.resize(rows * m, 0.0);
        for r in 0..rows {
            let row = &w[(*r0 + r) * nb_i..(*r0 + r + 1) * nb_i];
            for (j, act) in acts[*gi].iter().enumerate() {
                out[r * m + j] = D::vec_dot(i, row, act);
            }
        }
    });
    // Weighted sum in ascending expert order (groups come sorted by expert; tasks by group).
    let mut y = vec![0f32; tokens * h];
    for (gi, r0, out) in tasks {
        let g = &groups[gi];
        let m = g.tokens.len();
        for r in 0..out.len() / m {
            for (j, (&t, &wt)) in g.tokens.iter().zip(&g.weights).enumerate() {
                y[t as usize * h + r0 + r] += out[r * m + j] * wt;
            }
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe_routing::{group_by_expert, route};

    fn val(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|j| (((j * 7919 + seed * 104_729) % 1009) as f32 - 504.0) / 1000.0).collect()
    }

    fn quantize<T: GgmlType>(v: &[f32]) -> Vec<u8> {
        let mut b = vec![T::zeros(); v.len() / T::BLCK_SIZE];
        T::from_float(v, &mut b);
        // SAFETY: plain data, viewed as bytes.
        unsafe { std::slice::from_raw_parts(b.as_ptr() as *const u8, std::mem::size_of_val(b.as_slice())) }.to_vec()
    }

    fn dequantize<T: GgmlType>(bytes: &[u8], n: usize) -> Vec<f32> {
        let b = blocks::<T>(bytes, 1, n).unwrap();
        let mut out = vec![0f32; n];
        T::to_float(b, &mut out);
        out
    }

    /// Against a plain f64 loop over the dequantized weights: the only differences are the 8-bit
    /// rounding of the activations, so the error is bounded relative to the output's scale.
    fn check<G: GgmlType, D: GgmlType>(gf: GgmlDType, df: GgmlDType) {
        let (e, h, i, tokens, k) = (5usize, 256usize, 256usize, 3usize, 2usize);
        let (x, logits) = (val(tokens * h, 1), val(tokens * e, 4));
        let weights: Vec<(Vec<u8>, Vec<u8>)> =
            (0..e).map(|ex| (quantize::<G>(&val(2 * i * h, 10 + ex)), quantize::<D>(&val(h * i, 20 + ex)))).collect();
        let experts: Vec<QuantExpert> = weights.iter().map(|(g, d)| QuantExpert { gate_up: g, down: d }).collect();
        let groups = group_by_expert(&route(&logits, e, k, true), e);
        let shape = QuantExpertShape { hidden: h, intermediate: i, gate_up_format: gf, down_format: df };
        let got = expert_ffn_quantized(&x, tokens, &groups, &experts, shape).unwrap();
        let mut want = vec![0f64; tokens * h];
        for g in &groups {
            let ex = g.expert as usize;
            let gu = dequantize::<G>(&weights[ex].0, 2 * i * h);
            let dn = dequantize::<D>(&weights[ex].1, h * i);
            for (&t, &wt) in g.tokens.iter().zip(&g.weights) {
                let xt = &x[t as usize * h..(t as usize + 1) * h];
                let proj = |row: usize| -> f64 { (0..h).map(|c| gu[row * h + c] as f64 * xt[c] as f64).sum() };
                let act: Vec<f64> = (0..i).map(|c| proj(c) / (1.0 + (-proj(c)).exp()) * proj(i + c)).collect();
                for o in 0..h {
                    let d: f64 = (0..i).map(|c| dn[o * i + c] as f64 * act[c]).sum();
                    want[t as usize * h + o] += d * wt as f64;
                }
            }
        }
        let scale = (want.iter().map(|w| w * w).sum::<f64>() / want.len() as f64).sqrt();
        let err = got.iter().zip(&want).map(|(g, w)| (*g as f64 - w).abs()).fold(0.0, f64::max);
        assert!(err < 0.05 * scale && scale > 0.0, "{gf:?}/{df:?}: max error {err} vs rms {scale}");
    }

    #[test]
    fn matches_dequantized_weights_in_every_format() {
        check::<BlockQ8_0, BlockQ8_0>(GgmlDType::Q8_0, GgmlDType::Q8_0);
        check::<BlockQ4_0, BlockQ4_0>(GgmlDType::Q4_0, GgmlDType::Q4_0);
        check::<BlockQ4K, BlockQ8_0>(GgmlDType::Q4K, GgmlDType::Q8_0);
        check::<BlockQ5K, BlockQ6K>(GgmlDType::Q5K, GgmlDType::Q6K);
        check::<BlockQ6K, BlockQ4K>(GgmlDType::Q6K, GgmlDType::Q4K);
    }

    #[test]
    fn bad_sizes_are_errors_not_panics() {
        let shape = QuantExpertShape {
            hidden: 256,
            intermediate: 256,
            gate_up_format: GgmlDType::Q8_0,
            down_format: GgmlDType::Q8_0,
        };
        let groups = vec![ExpertGroup { expert: 0, tokens: vec![0], weights: vec![1.0] }];
        let short = vec![0u8; 10];
        let experts = [QuantExpert { gate_up: &short, down: &short }];
        let e = expert_ffn_quantized(&vec![0.0; 256], 1, &groups, &experts, shape).unwrap_err();
        assert!(e.contains("bytes for"), "{e}");
        let e = expert_ffn_quantized(&vec![0.0; 256], 1, &groups, &[], shape).unwrap_err();
        assert!(e.contains("expert 0 of 0"), "{e}");
        let f16 = QuantExpertShape { gate_up_format: GgmlDType::F16, ..shape };
        assert!(expert_ffn_quantized(&vec![0.0; 256], 1, &groups, &experts, f16)
            .unwrap_err()
            .contains("not supported"));
    }
}
