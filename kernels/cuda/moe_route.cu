// Mixture-of-experts routing: softmax in f32 over all experts, the k most probable (ties go to the
// lower expert id), optionally renormalised to sum to one. Same definition as
// omnid_kernels::moe_routing::route. One warp per token.
//
// out: [tokens, k, 2] u32, each pair (expert id, routing weight as f32 bits), best first.

#define OMNID_ROUTE_MAX_EXPERTS 2048 // 64 experts per lane: one 64-bit mask of taken experts

extern "C" __global__ void omnid_moe_route(const float *logits, int tokens, int n_experts, int k, int renormalize,
                                           unsigned *out) {
  const long token = omnid_warp_index();
  const int lane = omnid_lane();
  if (token >= tokens) return;
  const float *row = logits + token * n_experts;

  float mx = OMNID_NEG_INF;
  for (int e = lane; e < n_experts; e += 32) mx = fmaxf(mx, row[e]);
  mx = omnid_warp_max(mx);
  float sum = 0.0f;
  for (int e = lane; e < n_experts; e += 32) sum += expf(row[e] - mx);
  sum = omnid_warp_sum(sum);

  unsigned long long taken = 0; // bit s: expert lane + 32·s is chosen
  float total = 0.0f;
  unsigned *dst = out + token * k * 2;
  for (int j = 0; j < k; ++j) {
    float best = -1.0f; // below every probability
    int best_id = n_experts;
    int slot = 0;
    for (int e = lane; e < n_experts; e += 32, ++slot) {
      if ((taken >> slot) & 1ull) continue;
      const float p = expf(row[e] - mx) / sum;
      if (p > best) { // ascending ids within a lane: a tie keeps the lower id
        best = p;
        best_id = e;
      }
    }
    for (int m = 16; m > 0; m >>= 1) {
      const float other = __shfl_xor_sync(0xffffffffu, best, m);
      const int other_id = __shfl_xor_sync(0xffffffffu, best_id, m);
      if (other > best || (other == best && other_id < best_id)) {
        best = other;
        best_id = other_id;
      }
    }
    if (best_id < n_experts && best_id % 32 == lane) taken |= 1ull << (best_id / 32);
    if (best_id < n_experts) total += best;
    // An id of n_experts (only when the logits hold NaN) is skipped by the expert kernels.
    if (lane == 0) {
      dst[2 * j] = (unsigned)best_id;
      dst[2 * j + 1] = __float_as_uint(best_id < n_experts ? best : 0.0f);
    }
  }
  if (renormalize && lane == 0) {
    for (int j = 0; j < k; ++j) dst[2 * j + 1] = __float_as_uint(__uint_as_float(dst[2 * j + 1]) / total);
  }
}
