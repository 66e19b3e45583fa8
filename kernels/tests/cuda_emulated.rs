//! omnid's CUDA kernels, run on the CPU by the emulator (one OS thread per CUDA thread, so warp
//! shuffles are real exchanges), against the CPU reference of each op in `fused_ops`. The launch
//! geometry is the one the GPU launcher uses (`cuda_kernels`).

use candle_core::{Device, Tensor};
use half::bf16;
use omnid_cuda_emulator as emu;
use omnid_kernels::cuda_kernels::{elementwise, warp_per_unit};
use omnid_kernels::fused_ops::{pack_routing, MoeExperts, RmsNormRope, RopeShape, SnakeBeta};
use omnid_kernels::moe_routing::route;

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn geometry(units: usize) -> emu::Launch {
    let l = warp_per_unit(units).unwrap();
    emu::Launch { grid: l.grid, block: l.block }
}

fn max_rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    got.iter().zip(want).map(|(g, w)| (g - w).abs() / scale).fold(0f32, f32::max)
}

#[test]
fn route_kernel_picks_the_reference_experts_and_weights() {
    for (tokens, experts, k) in [(5, 70, 8), (3, 128, 8), (2, 6, 2), (1, 33, 33)] {
        let logits = values(tokens * experts, experts as u64, 4.0);
        for renormalize in [true, false] {
            let want = pack_routing(&route(&logits, experts, k, renormalize));
            let got = emu::moe_route(geometry(tokens), &logits, experts, k, renormalize);
            for (slot, (g, w)) in got.chunks(2).zip(want.chunks(2)).enumerate() {
                assert_eq!(g[0], w[0], "expert of slot {slot} ({tokens}×{experts}, k {k})");
                let (gw, ww) = (f32::from_bits(g[1]), f32::from_bits(w[1]));
                assert!((gw - ww).abs() <= 1e-6 * ww.max(1e-3), "weight of slot {slot}: {gw} vs {ww}");
            }
        }
    }
}

#[test]
fn route_kernel_breaks_ties_towards_the_lower_expert() {
    // Experts 3, 40 and 41 share the top logit; lane 8 holds expert 40, lane 9 expert 41, lane 3
    // expert 3: the warp reduction must still rank 3, 40, 41.
    let mut logits = vec![0.0f32; 64];
    for e in [41, 40, 3] {
        logits[e] = 2.0;
    }
    let got = emu::moe_route(geometry(1), &logits, 64, 4, false);
    let ids: Vec<u32> = got.chunks(2).map(|p| p[0]).collect();
    assert_eq!(ids, vec![3, 40, 41, 0]);
    let want = pack_routing(&route(&logits, 64, 4, false));
    for (g, w) in got.chunks(2).zip(want.chunks(2)) {
        assert_eq!(g[0], w[0]);
        assert!((f32::from_bits(g[1]) - f32::from_bits(w[1])).abs() < 1e-6);
    }
}

#[test]
fn expert_kernels_match_the_reference_in_f32_and_bf16() {
    let (tokens, k, experts, hidden, inter) = (3, 2, 6, 40, 24);
    let x = values(tokens * hidden, 1, 1.0);
    let logits = values(tokens * experts, 2, 2.0);
    let packed = pack_routing(&route(&logits, experts, k, true));
    let gate_up = values(experts * 2 * inter * hidden, 3, 0.3);
    let down = values(experts * hidden * inter, 4, 0.3);
    let sizes = emu::ExpertSizes { tokens, k, n_experts: experts, hidden, inter };
    let cpu = Device::Cpu;
    let routing = Tensor::from_vec(packed.clone(), (tokens, k, 2), &cpu).unwrap();
    let xt = Tensor::from_vec(x.clone(), (tokens, hidden), &cpu).unwrap();
    let gt = Tensor::from_vec(gate_up.clone(), (experts, 2 * inter, hidden), &cpu).unwrap();
    let dt = Tensor::from_vec(down.clone(), (experts, hidden, inter), &cpu).unwrap();
    for bf in [false, true] {
        let (g, d) = if bf {
            (gt.to_dtype(candle_core::DType::BF16).unwrap(), dt.to_dtype(candle_core::DType::BF16).unwrap())
        } else {
            (gt.clone(), dt.clone())
        };
        let want: Vec<f32> = xt
            .apply_op3_no_bwd(&g, &d, &MoeExperts { routing: routing.clone() })
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let bits = |t: &Tensor| -> Vec<u16> {
            t.flatten_all().unwrap().to_vec1::<bf16>().unwrap().iter().map(|v| v.to_bits()).collect()
        };
        let (gb, db) = if bf { (bits(&g), bits(&d)) } else { (Vec::new(), Vec::new()) };
        let got = if bf {
            let act = emu::moe_gate_up(geometry(tokens * k * inter), &x, &packed, &gb, sizes);
            emu::moe_down(geometry(tokens * hidden), &act, &packed, &db, sizes)
        } else {
            let act = emu::moe_gate_up(geometry(tokens * k * inter), &x, &packed, &gate_up, sizes);
            emu::moe_down(geometry(tokens * hidden), &act, &packed, &down, sizes)
        };
        let err = max_rel_err(&got, &want);
        assert!(err < 1e-5, "bf16 weights {bf}: relative error {err}");
        assert!(want.iter().any(|v| v.abs() > 1e-3), "the check needs non-trivial outputs");
    }
}

#[test]
fn expert_kernels_skip_an_out_of_range_expert() {
    // The route kernel writes id n_experts for a token whose logits are NaN; the expert kernels
    // must treat it as contributing nothing rather than read out of bounds.
    let (tokens, k, experts, hidden, inter) = (1, 2, 3, 32, 8);
    let x = values(hidden, 5, 1.0);
    let gate_up = values(experts * 2 * inter * hidden, 6, 0.3);
    let down = values(experts * hidden * inter, 7, 0.3);
    let sizes = emu::ExpertSizes { tokens, k, n_experts: experts, hidden, inter };
    let packed = vec![1, 1.0f32.to_bits(), experts as u32, 0.5f32.to_bits()];
    let act = emu::moe_gate_up(geometry(k * inter), &x, &packed, &gate_up, sizes);
    assert!(act[inter..].iter().all(|&v| v == 0.0), "the skipped slot's activations are zero");
    let got = emu::moe_down(geometry(hidden), &act, &packed, &down, sizes);
    let only = vec![1, 1.0f32.to_bits(), 2, 0.0f32.to_bits()];
    let want = emu::moe_down(geometry(hidden), &act, &only, &down, sizes);
    assert_eq!(got, want);
}

#[test]
fn rms_norm_rope_kernel_matches_the_reference() {
    for (batch, seq, heads, d) in [(2, 3, 4, 64), (1, 5, 2, 10), (1, 1, 3, 128)] {
        let rows = batch * seq;
        let op = RmsNormRope { seq, eps: 1e-6 };
        let shape = RopeShape { rows, heads, d };
        let x = values(rows * heads * d, d as u64, 3.0);
        let w = values(d, 11, 1.5);
        let angles = values(seq * d / 2, 12, 3.0);
        let mut cs = Vec::with_capacity(seq * d);
        for row in angles.chunks(d / 2) {
            cs.extend(row.iter().map(|a| a.cos()));
            cs.extend(row.iter().map(|a| a.sin()));
        }
        let sizes = emu::RopeSizes { rows, seq, heads, d, eps: 1e-6 };
        let want = op.reference(&x, &w, &cs, shape);
        let got = emu::rms_norm_rope(geometry(rows * heads), &x, &w, &cs, sizes);
        let err = max_rel_err(&got, &want);
        assert!(err < 1e-5, "f32 [{rows}, {heads}, {d}]: relative error {err}");

        let to_bf = |v: &[f32]| -> Vec<bf16> { v.iter().map(|&f| bf16::from_f32(f)).collect() };
        let (xb, wb, cb) = (to_bf(&x), to_bf(&w), to_bf(&cs));
        let want = op.reference(&xb, &wb, &cb, shape);
        let raw = |v: &[bf16]| -> Vec<u16> { v.iter().map(|b| b.to_bits()).collect() };
        let got = emu::rms_norm_rope(geometry(rows * heads), &raw(&xb), &raw(&wb), &raw(&cb), sizes);
        // Rounding points are the same; the sum of squares differs in order, so allow one bf16 ulp.
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let (g, w) = (bf16::from_bits(*g).to_f32(), w.to_f32());
            assert!((g - w).abs() <= w.abs() * 2f32.powi(-7) + 1e-6, "bf16 element {i}: {g} vs {w}");
        }
    }
}

#[test]
fn snake_beta_kernel_matches_the_reference_with_a_grid_stride() {
    let (batch, channels, len) = (2, 5, 37);
    let x = values(batch * channels * len, 21, 2.0);
    let alpha: Vec<f32> = values(channels, 22, 0.5).iter().map(|v| v.exp()).collect();
    let inv_beta: Vec<f32> = values(channels, 23, 0.5).iter().map(|v| 1.0 / (v.exp() + 1e-9)).collect();
    let want = SnakeBeta::reference(&x, &alpha, &inv_beta, len);
    let full = elementwise(x.len());
    // Two blocks of 64 threads cover 370 elements only through the grid-stride loop.
    for launch in [emu::Launch { grid: full.grid, block: full.block }, emu::Launch { grid: 2, block: 64 }] {
        let got = emu::snake_beta(launch, &x, &alpha, &inv_beta, len);
        assert!(max_rel_err(&got, &want) < 1e-6, "{launch:?}");
    }
    let to_bits = |v: &[f32]| -> Vec<u16> { v.iter().map(|&f| bf16::from_f32(f).to_bits()).collect() };
    let from = |v: &[u16]| -> Vec<bf16> { v.iter().map(|&b| bf16::from_bits(b)).collect() };
    let (xb, ab, bb) = (to_bits(&x), to_bits(&alpha), to_bits(&inv_beta));
    let want = SnakeBeta::reference(&from(&xb), &from(&ab), &from(&bb), len);
    let got = emu::snake_beta(emu::Launch { grid: full.grid, block: full.block }, &xb, &ab, &bb, len);
    for (i, (g, w)) in from(&got).iter().zip(&want).enumerate() {
        let (g, w) = (g.to_f32(), w.to_f32());
        assert!((g - w).abs() <= w.abs() * 2f32.powi(-7) + 1e-6, "bf16 element {i}: {g} vs {w}");
    }
}
