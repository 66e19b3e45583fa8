//! Mixture-of-experts routing (spec §2.3, pitfall §11.2).
//!
//! The router's logits are turned into probabilities with a softmax in f32 over all
//! experts, the `k` largest are kept and, when `renormalize` is set, divided by their sum.
//! The engine then runs each expert once on all the tokens routed to it, so the result
//! is grouped per expert: no per-token loop over experts.

/// Top-k routing of a batch of tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    /// Experts per token.
    pub k: usize,
    /// `[tokens·k]` chosen expert ids, best first within each token.
    pub experts: Vec<u32>,
    /// `[tokens·k]` routing weights (f32), aligned with `experts`.
    pub weights: Vec<f32>,
}

/// Tokens routed to one expert.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpertGroup {
    pub expert: u32,
    /// Token rows routed to this expert, ascending.
    pub tokens: Vec<u32>,
    /// The routing weight of each of those tokens for this expert.
    pub weights: Vec<f32>,
}

/// Routes `tokens` rows of `logits` (`[tokens, n_experts]`, row-major, f32).
///
/// Panics only on inconsistent sizes (`logits.len() != tokens·n_experts` or
/// `k > n_experts`), which are programming errors checked by the caller's config validation.
pub fn route(logits: &[f32], n_experts: usize, k: usize, renormalize: bool) -> Routing {
    assert!(k <= n_experts && n_experts > 0, "top-k {k} over {n_experts} experts; this is a bug");
    assert_eq!(logits.len() % n_experts, 0, "router logits not a multiple of the expert count; this is a bug");
    let tokens = logits.len() / n_experts;
    let mut experts = Vec::with_capacity(tokens * k);
    let mut weights = Vec::with_capacity(tokens * k);
    let mut probs = vec![0f32; n_experts];
    let mut order: Vec<u32> = Vec::with_capacity(n_experts);
    for row in logits.chunks_exact(n_experts) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for (p, &l) in probs.iter_mut().zip(row) {
            *p = (l - max).exp();
            sum += *p;
        }
        for p in probs.iter_mut() {
            *p /= sum;
        }
        order.clear();
        order.extend(0..n_experts as u32);
        // Stable sort by descending probability: ties keep the lower expert id first.
        order.sort_by(|&a, &b| probs[b as usize].total_cmp(&probs[a as usize]));
        let top = &order[..k];
        let total: f32 = top.iter().map(|&e| probs[e as usize]).sum();
        for &e in top {
            experts.push(e);
            let p = probs[e as usize];
            weights.push(if renormalize { p / total } else { p });
        }
    }
    Routing { k, experts, weights }
}

/// Groups a routing by expert, in ascending expert order (the order the reference
/// accumulates expert outputs in). Experts that received no token are omitted.
pub fn group_by_expert(routing: &Routing, n_experts: usize) -> Vec<ExpertGroup> {
    let mut groups: Vec<ExpertGroup> =
        (0..n_experts as u32).map(|expert| ExpertGroup { expert, tokens: Vec::new(), weights: Vec::new() }).collect();
    for (i, (&e, &w)) in routing.experts.iter().zip(&routing.weights).enumerate() {
        let g = &mut groups[e as usize];
        g.tokens.push((i / routing.k) as u32);
        g.weights.push(w);
    }
    groups.retain(|g| !g.tokens.is_empty());
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top2_renormalised() {
        // logits ln(1), ln(2), ln(3), ln(4): probs 0.1 0.2 0.3 0.4 → top-2 {3, 2} → 4/7, 3/7.
        let logits: Vec<f32> = [1f32, 2., 3., 4.].iter().map(|x| x.ln()).collect();
        let r = route(&logits, 4, 2, true);
        assert_eq!(r.experts, vec![3, 2]);
        assert!((r.weights[0] - 4.0 / 7.0).abs() < 1e-6 && (r.weights[1] - 3.0 / 7.0).abs() < 1e-6);
        let r = route(&logits, 4, 2, false);
        assert!((r.weights[0] - 0.4).abs() < 1e-6 && (r.weights[1] - 0.3).abs() < 1e-6);
    }

    #[test]
    fn grouping_collects_tokens_per_expert_in_order() {
        let r = Routing { k: 2, experts: vec![1, 0, 1, 2, 0, 2], weights: vec![0.6, 0.4, 0.7, 0.3, 0.5, 0.5] };
        let g = group_by_expert(&r, 4);
        assert_eq!(g.len(), 3);
        assert_eq!((g[0].expert, g[0].tokens.clone(), g[0].weights.clone()), (0, vec![0, 2], vec![0.4, 0.5]));
        assert_eq!((g[1].expert, g[1].tokens.clone()), (1, vec![0, 1]));
        assert_eq!((g[2].expert, g[2].tokens.clone()), (2, vec![1, 2]));
    }

    #[test]
    fn weights_sum_to_one_when_renormalised() {
        let logits: Vec<f32> = (0..5 * 8).map(|i| ((i * 37 % 11) as f32) * 0.3 - 1.0).collect();
        let r = route(&logits, 8, 3, true);
        for w in r.weights.chunks(3) {
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }
}
