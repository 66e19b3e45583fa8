// Qwen3's per-head RMSNorm of q or k ("QK-norm") fused with rotate-half rotary embeddings.
// x: [rows, heads, d] with row = b·seq + s; weight: [d]; cos_sin: [seq, 2, d/2] (cos, then sin).
// One warp per (row, head). Rounding follows the reference: the normalised value is rounded to the
// activation dtype, then multiplied by the weight and rounded again; the rotation is computed in
// f32 and rounded once (candle's bf16 rotary rounds after each operation, so bf16 results may
// differ from it by one bf16 ulp).

template <typename T>
__device__ void omnid_rms_norm_rope(const T *x, const T *weight, const T *cos_sin, T *y, int rows, int seq, int heads,
                                    int d, float eps) {
  const long unit = omnid_warp_index();
  const int lane = omnid_lane();
  if (unit >= (long)rows * heads) return;
  const long s = (unit / heads) % seq;
  const T *xv = x + unit * d;
  T *yv = y + unit * d;
  float ss = 0.0f;
  for (int i = lane; i < d; i += 32) {
    const float v = omnid_load(xv, i);
    ss += v * v;
  }
  const float rms = sqrtf(omnid_warp_sum(ss) / d + eps); // divided by, as candle's rms_norm does
  const int half = d / 2;
  const T *cs = cos_sin + s * d;
  for (int j = lane; j < half; j += 32) {
    const float a = omnid_round(y, omnid_round(y, omnid_load(xv, j) / rms) * omnid_load(weight, j));
    const float b = omnid_round(y, omnid_round(y, omnid_load(xv, j + half) / rms) * omnid_load(weight, j + half));
    const float c = omnid_load(cs, j), sn = omnid_load(cs, half + j);
    omnid_store(yv, j, a * c - b * sn);
    omnid_store(yv, j + half, b * c + a * sn);
  }
}

extern "C" __global__ void omnid_rms_norm_rope_f32(const float *x, const float *weight, const float *cos_sin, float *y,
                                                   int rows, int seq, int heads, int d, float eps) {
  omnid_rms_norm_rope<float>(x, weight, cos_sin, y, rows, seq, heads, d, eps);
}

extern "C" __global__ void omnid_rms_norm_rope_bf16(const omnid_bf16 *x, const omnid_bf16 *weight,
                                                    const omnid_bf16 *cos_sin, omnid_bf16 *y, int rows, int seq,
                                                    int heads, int d, float eps) {
  omnid_rms_norm_rope<omnid_bf16>(x, weight, cos_sin, y, rows, seq, heads, d, eps);
}
