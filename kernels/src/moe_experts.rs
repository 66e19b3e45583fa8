//! The routed experts of a mixture-of-experts layer for a few tokens (a decode step):
//! `y[t] = Σ_e w[t,e] · Down_e(silu(Gate_e(x[t])) ⊙ Up_e(x[t]))`, in two parallel passes over
//! *all* selected experts at once (gate/up, then down) instead of a pair of matrix products per
//! expert — one thread-pool round trip per pass instead of one per expert and matrix, with the
//! same weight streaming as [`crate::gemv`].
//!
//! Expert weights are the stacked checkpoint tensors: `gate_up [E, 2I, H]` (gate rows first)
//! and `down [E, H, I]`. Expert outputs are accumulated in ascending expert order, the order
//! the reference adds them in.

use rayon::prelude::*;

use crate::gemv::{rows_block, ROWS_PER_TASK};
use crate::moe_routing::ExpertGroup;

/// Sizes of the expert tensors.
#[derive(Debug, Clone, Copy)]
pub struct ExpertShape {
    pub num_experts: usize,
    pub hidden: usize,
    pub intermediate: usize,
}

/// Runs the experts of `groups` for the token rows `x: [tokens, H]` and returns `[tokens, H]`.
///
/// Panics on inconsistent sizes or an expert id out of range (caller bugs: the layer checks
/// shapes at load and the router only emits valid ids).
pub fn expert_ffn_f32(
    x: &[f32],
    tokens: usize,
    groups: &[ExpertGroup],
    gate_up: &[f32],
    down: &[f32],
    s: ExpertShape,
) -> Vec<f32> {
    let (h, i) = (s.hidden, s.intermediate);
    assert!(x.len() == tokens * h, "expert_ffn_f32: x size; this is a bug");
    assert!(
        gate_up.len() == s.num_experts * 2 * i * h && down.len() == s.num_experts * h * i,
        "expert_ffn_f32: weight sizes; this is a bug"
    );
    // Rows of x for each group, gathered once.
    let inputs: Vec<Vec<f32>> = groups
        .iter()
        .map(|g| g.tokens.iter().flat_map(|&t| x[t as usize * h..(t as usize + 1) * h].iter().copied()).collect())
        .collect();

    // Pass 1: gate/up for every (expert, output-row chunk), output-major per group.
    let mut gu: Vec<Vec<f32>> = groups.iter().map(|g| vec![0f32; 2 * i * g.tokens.len()]).collect();
    run_tasks(groups, &mut gu, 2 * i, |gi, rows0, rows, out| {
        let e = groups[gi].expert as usize;
        let m = groups[gi].tokens.len();
        let w = &gate_up[(e * 2 * i + rows0) * h..(e * 2 * i + rows0 + rows) * h];
        rows_block(w, rows, h, &inputs[gi], m, out);
    });
    // silu(gate) ⊙ up, per token: [m, I] row-major.
    let acts: Vec<Vec<f32>> = groups
        .iter()
        .zip(&gu)
        .map(|(g, gu)| {
            let m = g.tokens.len();
            let mut a = vec![0f32; m * i];
            for r in 0..m {
                for c in 0..i {
                    let gate = gu[c * m + r];
                    let up = gu[(i + c) * m + r];
                    a[r * i + c] = gate / (1.0 + (-gate).exp()) * up;
                }
            }
            a
        })
        .collect();

    // Pass 2: down for every (expert, output-row chunk).
    let mut dn: Vec<Vec<f32>> = groups.iter().map(|g| vec![0f32; h * g.tokens.len()]).collect();
    run_tasks(groups, &mut dn, h, |gi, rows0, rows, out| {
        let e = groups[gi].expert as usize;
        let m = groups[gi].tokens.len();
        let w = &down[(e * h + rows0) * i..(e * h + rows0 + rows) * i];
        rows_block(w, rows, i, &acts[gi], m, out);
    });

    // Weighted sum in ascending expert order (groups come sorted by expert).
    let mut y = vec![0f32; tokens * h];
    for (g, d) in groups.iter().zip(&dn) {
        let m = g.tokens.len();
        for (r, (&t, &wt)) in g.tokens.iter().zip(&g.weights).enumerate() {
            let row = &mut y[t as usize * h..(t as usize + 1) * h];
            for (c, v) in row.iter_mut().enumerate() {
                *v += d[c * m + r] * wt;
            }
        }
    }
    y
}

/// Splits every group's output (`rows_per_group` rows × its token count, output-major) into
/// chunks of [`ROWS_PER_TASK`] rows and runs them all on the pool.
fn run_tasks(
    groups: &[ExpertGroup],
    outs: &mut [Vec<f32>],
    rows_per_group: usize,
    f: impl Fn(usize, usize, usize, &mut [f32]) + Sync,
) {
    debug_assert!(outs.iter().zip(groups).all(|(o, g)| o.len() == rows_per_group * g.tokens.len()));
    let mut tasks: Vec<(usize, usize, &mut [f32])> = Vec::new();
    for (gi, out) in outs.iter_mut().enumerate() {
        let m = groups[gi].tokens.len();
        for (c, chunk) in out.chunks_mut(ROWS_PER_TASK * m).enumerate() {
            tasks.push((gi, c * ROWS_PER_TASK, chunk));
        }
    }
    tasks.into_par_iter().for_each(|(gi, rows0, chunk)| {
        let m = groups[gi].tokens.len();
        f(gi, rows0, chunk.len() / m, chunk);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe_routing::{group_by_expert, route};

    #[test]
    fn matches_a_plain_loop() {
        let (e, h, i, tokens, k) = (5usize, 24usize, 20usize, 3usize, 2usize);
        let val = |n: usize, seed: usize| -> Vec<f32> {
            (0..n).map(|j| (((j * 7919 + seed) % 101) as f32 - 50.0) / 200.0).collect()
        };
        let (x, gate_up, down) = (val(tokens * h, 1), val(e * 2 * i * h, 2), val(e * h * i, 3));
        let logits = val(tokens * e, 4);
        let groups = group_by_expert(&route(&logits, e, k, true), e);
        let got = expert_ffn_f32(
            &x,
            tokens,
            &groups,
            &gate_up,
            &down,
            ExpertShape { num_experts: e, hidden: h, intermediate: i },
        );
        let mut want = vec![0f64; tokens * h];
        for g in &groups {
            let ex = g.expert as usize;
            for (&t, &wt) in g.tokens.iter().zip(&g.weights) {
                let xt = &x[t as usize * h..(t as usize + 1) * h];
                let proj = |row: usize| -> f64 {
                    (0..h).map(|c| gate_up[(ex * 2 * i + row) * h + c] as f64 * xt[c] as f64).sum()
                };
                let act: Vec<f64> = (0..i)
                    .map(|c| {
                        let gt = proj(c);
                        gt / (1.0 + (-gt).exp()) * proj(i + c)
                    })
                    .collect();
                for o in 0..h {
                    let d: f64 = (0..i).map(|c| down[(ex * h + o) * i + c] as f64 * act[c]).sum();
                    want[t as usize * h + o] += d * wt as f64;
                }
            }
        }
        for (g, w) in got.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
        }
    }
}
