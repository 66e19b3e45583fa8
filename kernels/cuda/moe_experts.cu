// The routed SwiGLU experts of a few tokens (decode steps) in two passes over stacked weights,
// gate_up [E, 2I, H] (gate rows first) and down [E, H, I], in f32 or bf16; activations in f32.
// The routing is moe_route's output, [tokens, k, 2] (expert id, weight bits). No host round trip:
// the experts are read from device memory by each warp.

// Pass 1, one warp per (token, slot, row r < I): act[t, j, r] = silu(gate_r·x_t) · (up_r·x_t).
template <typename W>
__device__ void omnid_moe_gate_up(const float *x, const unsigned *routing, const W *gate_up, float *act, int tokens,
                                  int k, int n_experts, int hidden, int inter) {
  const long unit = omnid_warp_index();
  const int lane = omnid_lane();
  if (unit >= (long)tokens * k * inter) return;
  const long slot = unit / inter; // t·k + j
  const int r = (int)(unit % inter);
  const long t = slot / k;
  const unsigned e = routing[2 * slot];
  float g = 0.0f, u = 0.0f;
  if (e < (unsigned)n_experts) {
    const W *gate_row = gate_up + ((long)e * 2 * inter + r) * hidden;
    const W *up_row = gate_row + (long)inter * hidden;
    const float *xt = x + t * hidden;
    for (int i = lane; i < hidden; i += 32) {
      const float xi = xt[i];
      g += omnid_load(gate_row, i) * xi;
      u += omnid_load(up_row, i) * xi;
    }
    g = omnid_warp_sum(g);
    u = omnid_warp_sum(u);
  }
  if (lane == 0) act[unit] = g / (1.0f + expf(-g)) * u;
}

// Pass 2, one warp per (token, output channel c): y[t, c] = Σ_j w_j · (down[e_j, c]·act[t, j]),
// summed in ascending expert order (the order the reference adds expert outputs in).
template <typename W>
__device__ void omnid_moe_down(const float *act, const unsigned *routing, const W *down, float *y, int tokens, int k,
                               int n_experts, int hidden, int inter) {
  const long unit = omnid_warp_index();
  const int lane = omnid_lane();
  if (unit >= (long)tokens * hidden) return;
  const long t = unit / hidden;
  const int c = (int)(unit % hidden);
  const unsigned *rt = routing + t * k * 2;
  float out = 0.0f;
  long previous = -1; // the expert id added last
  for (int n = 0; n < k; ++n) {
    int pick = -1;
    unsigned pick_id = 0xffffffffu;
    for (int j = 0; j < k; ++j) { // the next larger expert id (top-k ids are distinct)
      const unsigned e = rt[2 * j];
      if ((long)e > previous && e < pick_id) {
        pick_id = e;
        pick = j;
      }
    }
    if (pick < 0 || pick_id >= (unsigned)n_experts) break;
    previous = pick_id;
    const W *row = down + ((long)pick_id * hidden + c) * inter;
    const float *a = act + (t * k + pick) * inter;
    float s = 0.0f;
    for (int i = lane; i < inter; i += 32) s += omnid_load(row, i) * a[i];
    out += omnid_warp_sum(s) * __uint_as_float(rt[2 * pick + 1]);
  }
  if (lane == 0) y[unit] = out;
}

#define OMNID_MOE_EXPERTS(SUFFIX, W)                                                                             \
  extern "C" __global__ void omnid_moe_gate_up_##SUFFIX(const float *x, const unsigned *routing,               \
                                                         const W *gate_up, float *act, int tokens, int k,        \
                                                         int n_experts, int hidden, int inter) {                 \
    omnid_moe_gate_up<W>(x, routing, gate_up, act, tokens, k, n_experts, hidden, inter);                        \
  }                                                                                                              \
  extern "C" __global__ void omnid_moe_down_##SUFFIX(const float *act, const unsigned *routing, const W *down,  \
                                                      float *y, int tokens, int k, int n_experts, int hidden,    \
                                                      int inter) {                                               \
    omnid_moe_down<W>(act, routing, down, y, tokens, k, n_experts, hidden, inter);                              \
  }

OMNID_MOE_EXPERTS(f32, float)
OMNID_MOE_EXPERTS(bf16, omnid_bf16)
