//! Building blocks shared by every model in omnid: one copy of each layer, used by the
//! thinker, the talker, the code predictor, Code2Wav and Qwen3-VL alike.
//!
//! | module | job |
//! |---|---|
//! | [`linear`] | `y = x·Wᵀ + b`, the one place where weight variants (quantized, CUDA) plug in |
//! | [`norm`] | RMSNorm (f32 statistics, cast, then weight) and LayerNorm |
//! | [`activation`] | the activations named in HF configs (`silu`, `gelu`, `gelu_pytorch_tanh`) |
//! | [`rotary`] | inverse frequencies, interleaved multimodal RoPE tables, 2-D vision rotary |
//! | [`attention`] | causal GQA decoder attention with optional q/k norm, optional sliding window and a KV cache; segment-blocked bidirectional attention for the encoders |
//! | [`conv`] | causal Conv1d (left padding, depthwise fast path) and causal ConvTranspose1d (Code2Wav) |
//! | [`kv_cache`] | a key/value cache that appends without copying the past |
//! | [`mlp`] | SwiGLU MLP |
//! | [`moe`] | sparse mixture of experts (top-k routing, optional gated shared expert) |

pub mod activation;
pub mod attention;
pub mod conv;
pub mod kv_cache;
pub mod linear;
pub mod mlp;
pub mod moe;
pub mod norm;
pub mod rotary;
