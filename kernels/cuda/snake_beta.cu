// Code2Wav's SnakeBeta activation, y = x + sin²(x·a_c) · ib_c over x: [batch, channels, len], with
// a = e^α and ib = 1 / (e^β + 1e-9) per channel (taken once at load). Computed in f32 and rounded
// once; candle's chain of bf16 ops rounds after each, so bf16 results may differ by a bf16 ulp.
// Grid-stride loop, one element per thread and step.

template <typename T>
__device__ void omnid_snake_beta(const T *x, const T *alpha, const T *inv_beta, T *y, long total, int channels,
                                 int len) {
  const long stride = (long)gridDim.x * blockDim.x;
  for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int c = (int)((i / len) % channels);
    const float v = omnid_load(x, i);
    const float s = sinf(v * omnid_load(alpha, c));
    omnid_store(y, i, v + s * s * omnid_load(inv_beta, c));
  }
}

extern "C" __global__ void omnid_snake_beta_f32(const float *x, const float *alpha, const float *inv_beta, float *y,
                                                long total, int channels, int len) {
  omnid_snake_beta<float>(x, alpha, inv_beta, y, total, channels, len);
}

extern "C" __global__ void omnid_snake_beta_bf16(const omnid_bf16 *x, const omnid_bf16 *alpha,
                                                 const omnid_bf16 *inv_beta, omnid_bf16 *y, long total, int channels,
                                                 int len) {
  omnid_snake_beta<omnid_bf16>(x, alpha, inv_beta, y, total, channels, len);
}
