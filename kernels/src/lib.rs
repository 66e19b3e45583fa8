//! Compute kernels for omnid.
//!
//! Each kernel has a CPU reference implementation here, written to be the readable
//! definition of what the op computes; accelerated variants (CUDA, behind the `cuda`
//! feature) must match it and are tested against it.
//!
//! | module | op |
//! |---|---|
//! | [`moe_routing`] | softmax → top-k → renormalise router probabilities, then group tokens by expert |

pub mod moe_routing;
