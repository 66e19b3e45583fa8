// Helpers shared by omnid's CUDA kernels.
//
// Every kernel source is compiled as this file followed by the kernel's own file: by NVRTC at run
// time on the GPU machine (no include paths there, so no cuda_bf16.h: bf16 is handled as raw bits),
// and as C++ by the CPU emulator in tests (kernels/emulator), which defines the CUDA subset used
// here. Kernels keep warp-level cooperation only (no __syncthreads, no shared memory), and every
// early return is uniform across a warp, which is what the emulator supports.

typedef unsigned short omnid_bf16; // bfloat16 as its raw bits

// -∞ (NVRTC has no <cmath>, so no INFINITY).
#define OMNID_NEG_INF __uint_as_float(0xff800000u)

__device__ __forceinline__ float omnid_load(const float *p, long i) { return p[i]; }
__device__ __forceinline__ float omnid_load(const omnid_bf16 *p, long i) {
  return __uint_as_float(((unsigned)p[i]) << 16);
}

// f32 to bf16, rounding to nearest even like candle's (the half crate's) conversion.
__device__ __forceinline__ omnid_bf16 omnid_to_bf16(float f) {
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    return (omnid_bf16)((u >> 16) | 0x40u); // NaN stays a (quiet) NaN
  }
  u += 0x7fffu + ((u >> 16) & 1u);
  return (omnid_bf16)(u >> 16);
}

__device__ __forceinline__ void omnid_store(float *p, long i, float v) { p[i] = v; }
__device__ __forceinline__ void omnid_store(omnid_bf16 *p, long i, float v) { p[i] = omnid_to_bf16(v); }

// The value as the activation dtype holds it (a rounding point of the reference).
__device__ __forceinline__ float omnid_round(const float *, float v) { return v; }
__device__ __forceinline__ float omnid_round(const omnid_bf16 *, float v) {
  return __uint_as_float(((unsigned)omnid_to_bf16(v)) << 16);
}

// Butterfly reductions: every lane ends with the same value, bit for bit (each step adds a pair in
// both lanes, and float addition is commutative).
__device__ __forceinline__ float omnid_warp_sum(float v) {
  for (int m = 16; m > 0; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
  return v;
}

__device__ __forceinline__ float omnid_warp_max(float v) {
  for (int m = 16; m > 0; m >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, m));
  return v;
}

// The index of this thread's warp across the grid, for kernels that give one warp to each unit.
__device__ __forceinline__ long omnid_warp_index() {
  return (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
}

__device__ __forceinline__ int omnid_lane() { return threadIdx.x % 32; }
