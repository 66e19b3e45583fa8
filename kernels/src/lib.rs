//! Compute kernels for omnid.
//!
//! Each kernel has a CPU reference implementation here, written to be the readable
//! definition of what the op computes; accelerated variants are added beside it and tested
//! against it.
//!
//! | module | op |
//! |---|---|
//! | [`moe_routing`] | softmax → top-k → renormalise router probabilities, then group tokens by expert |
//! | [`gemv`] | `y = x·Wᵀ` for a few rows `x` (decode steps): streams `W` once, no packing |
//! | [`moe_experts`] | the routed experts of a few tokens in two parallel passes (decode steps) |
//! | [`moe_experts_quantized`] | the same with weights in ggml block formats (`--quant`) |
//! | [`fused_ops`] | candle ops for the CUDA kernels (MoE routing and experts, QK-norm + rotary, SnakeBeta), with CPU references |
//! | [`cuda_kernels`] | the CUDA C sources of those kernels (`kernels/cuda/`) and their launch geometry |

#[cfg(feature = "cuda")]
pub mod cuda;
pub mod cuda_kernels;
pub mod fused_ops;
pub mod gemv;
pub mod moe_experts;
pub mod moe_experts_quantized;
pub mod moe_routing;
