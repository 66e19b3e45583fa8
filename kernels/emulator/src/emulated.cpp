// omnid's CUDA kernels compiled for the CPU emulator, with one C entry point per kernel that takes
// the launch geometry (grid and block sizes, as the GPU launcher computes them) and the arguments.
#include "emulate.hpp"

// The same concatenation the GPU path hands to NVRTC: common helpers, then each kernel file.
#include "common.cuh"
#include "moe_experts.cu"
#include "moe_route.cu"
#include "rms_norm_rope.cu"
#include "snake_beta.cu"

extern "C" {

void omnid_emu_moe_route(unsigned grid, unsigned block, const float *logits, int tokens, int n_experts, int k,
                         int renormalize, unsigned *out) {
  omnid_launch(omnid_moe_route, grid, block, logits, tokens, n_experts, k, renormalize, out);
}

// Each entry point takes its dtype-generic operands as untyped pointers and a bf16 flag, and
// launches the f32 or the bf16 instance of the kernel.
#define OMNID_PICK(FLAG, KERNEL, T_F32, T_BF16, ...)                                                              \
  if (FLAG) {                                                                                                    \
    using T = T_BF16;                                                                                            \
    omnid_launch(KERNEL##_bf16, __VA_ARGS__);                                                                    \
  } else {                                                                                                       \
    using T = T_F32;                                                                                             \
    omnid_launch(KERNEL##_f32, __VA_ARGS__);                                                                     \
  }

void omnid_emu_moe_gate_up(unsigned grid, unsigned block, int bf16, const float *x, const unsigned *routing,
                           const void *gate_up, float *act, int tokens, int k, int n_experts, int hidden, int inter) {
  OMNID_PICK(bf16, omnid_moe_gate_up, float, omnid_bf16, grid, block, x, routing, (const T *)gate_up, act, tokens, k,
             n_experts, hidden, inter)
}

void omnid_emu_moe_down(unsigned grid, unsigned block, int bf16, const float *act, const unsigned *routing,
                        const void *down, float *y, int tokens, int k, int n_experts, int hidden, int inter) {
  OMNID_PICK(bf16, omnid_moe_down, float, omnid_bf16, grid, block, act, routing, (const T *)down, y, tokens, k,
             n_experts, hidden, inter)
}

void omnid_emu_rms_norm_rope(unsigned grid, unsigned block, int bf16, const void *x, const void *weight,
                             const void *cos_sin, void *y, int rows, int seq, int heads, int d, float eps) {
  OMNID_PICK(bf16, omnid_rms_norm_rope, float, omnid_bf16, grid, block, (const T *)x, (const T *)weight,
             (const T *)cos_sin, (T *)y, rows, seq, heads, d, eps)
}

void omnid_emu_snake_beta(unsigned grid, unsigned block, int bf16, const void *x, const void *alpha,
                          const void *inv_beta, void *y, long total, int channels, int len) {
  OMNID_PICK(bf16, omnid_snake_beta, float, omnid_bf16, grid, block, (const T *)x, (const T *)alpha,
             (const T *)inv_beta, (T *)y, total, channels, len)
}
}
