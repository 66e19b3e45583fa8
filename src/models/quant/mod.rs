//! Quantized weights: which matrices get which ggml block format ([`plan`]), and the single-file
//! model that holds them once quantized ([`store`]).

pub mod plan;
pub mod store;
