//! Quantized weights: which matrices get which ggml block format ([`plan`]), the single-file
//! model that holds them once quantized ([`store`]), and llama.cpp's GGUF files of Qwen3-VL read
//! under the checkpoint's names ([`llama_cpp`]).

pub mod llama_cpp;
pub mod plan;
pub mod store;
