//! omnid's CUDA kernels (`kernels/cuda/*.cu`) compiled for the CPU, for tests on machines without
//! a GPU. Each CUDA thread is an OS thread, so warp shuffles are real exchanges between lanes; see
//! `src/emulate.hpp`. The wrappers take the launch geometry the GPU launcher would use, check the
//! slice lengths the kernel will touch, and run the launch to completion.
//!
//! bf16 data is passed as its raw `u16` bits, as the kernels see it.

use std::ffi::c_void;
use std::os::raw::{c_int, c_long};

mod ffi {
    use std::ffi::c_void;
    use std::os::raw::{c_int, c_long, c_uint};
    extern "C" {
        pub fn omnid_emu_moe_route(
            grid: c_uint,
            block: c_uint,
            logits: *const f32,
            tokens: c_int,
            n_experts: c_int,
            k: c_int,
            renormalize: c_int,
            out: *mut c_uint,
        );
        pub fn omnid_emu_moe_gate_up(
            grid: c_uint,
            block: c_uint,
            bf16: c_int,
            x: *const f32,
            routing: *const c_uint,
            gate_up: *const c_void,
            act: *mut f32,
            tokens: c_int,
            k: c_int,
            n_experts: c_int,
            hidden: c_int,
            inter: c_int,
        );
        pub fn omnid_emu_moe_down(
            grid: c_uint,
            block: c_uint,
            bf16: c_int,
            act: *const f32,
            routing: *const c_uint,
            down: *const c_void,
            y: *mut f32,
            tokens: c_int,
            k: c_int,
            n_experts: c_int,
            hidden: c_int,
            inter: c_int,
        );
        pub fn omnid_emu_rms_norm_rope(
            grid: c_uint,
            block: c_uint,
            bf16: c_int,
            x: *const c_void,
            weight: *const c_void,
            cos_sin: *const c_void,
            y: *mut c_void,
            rows: c_int,
            seq: c_int,
            heads: c_int,
            d: c_int,
            eps: f32,
        );
        pub fn omnid_emu_snake_beta(
            grid: c_uint,
            block: c_uint,
            bf16: c_int,
            x: *const c_void,
            alpha: *const c_void,
            inv_beta: *const c_void,
            y: *mut c_void,
            total: c_long,
            channels: c_int,
            len: c_int,
        );
    }
}

/// A 1-D launch: `grid` blocks of `block` threads (whole warps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub grid: u32,
    pub block: u32,
}

/// An element type the kernels take: `f32`, or `u16` holding bf16 bits.
pub trait Elem: Copy {
    /// The kernel instance's flag (1 for bf16).
    const BF16: c_int;
    /// What outputs are filled with before the launch, so an element the kernel skips shows.
    const UNWRITTEN: Self;
}

impl Elem for f32 {
    const BF16: c_int = 0;
    const UNWRITTEN: Self = f32::NAN;
}

impl Elem for u16 {
    const BF16: c_int = 1;
    const UNWRITTEN: Self = 0xffff; // a bf16 NaN
}

fn int(v: usize) -> c_int {
    c_int::try_from(v).expect("size exceeds the kernels' int arguments")
}

fn ptr<T>(v: &[T]) -> *const c_void {
    v.as_ptr().cast()
}

/// `omnid_moe_route`: `logits [tokens, n_experts]` → `[tokens, k, 2]` (expert, weight bits).
pub fn moe_route(launch: Launch, logits: &[f32], n_experts: usize, k: usize, renormalize: bool) -> Vec<u32> {
    let tokens = logits.len() / n_experts;
    assert_eq!(tokens * n_experts, logits.len());
    let mut out = vec![u32::MAX; tokens * k * 2];
    // SAFETY: the kernel reads tokens·n_experts logits and writes tokens·k·2 words.
    unsafe {
        ffi::omnid_emu_moe_route(
            launch.grid,
            launch.block,
            logits.as_ptr(),
            int(tokens),
            int(n_experts),
            int(k),
            c_int::from(renormalize),
            out.as_mut_ptr(),
        )
    };
    out
}

/// Sizes of a routed-expert launch.
#[derive(Debug, Clone, Copy)]
pub struct ExpertSizes {
    pub tokens: usize,
    pub k: usize,
    pub n_experts: usize,
    pub hidden: usize,
    pub inter: usize,
}

/// `omnid_moe_gate_up_*`: `x [tokens, hidden]`, routing `[tokens, k, 2]`, `gate_up [E, 2I, H]` →
/// `act [tokens, k, I]`.
pub fn moe_gate_up<W: Elem>(launch: Launch, x: &[f32], routing: &[u32], gate_up: &[W], s: ExpertSizes) -> Vec<f32> {
    assert_eq!(x.len(), s.tokens * s.hidden);
    assert_eq!(routing.len(), s.tokens * s.k * 2);
    assert_eq!(gate_up.len(), s.n_experts * 2 * s.inter * s.hidden);
    let mut act = vec![f32::NAN; s.tokens * s.k * s.inter];
    // SAFETY: lengths checked above; expert ids ≥ n_experts are skipped by the kernel.
    unsafe {
        ffi::omnid_emu_moe_gate_up(
            launch.grid,
            launch.block,
            W::BF16,
            x.as_ptr(),
            routing.as_ptr(),
            ptr(gate_up),
            act.as_mut_ptr(),
            int(s.tokens),
            int(s.k),
            int(s.n_experts),
            int(s.hidden),
            int(s.inter),
        )
    };
    act
}

/// `omnid_moe_down_*`: `act [tokens, k, I]`, routing, `down [E, H, I]` → `y [tokens, H]`.
pub fn moe_down<W: Elem>(launch: Launch, act: &[f32], routing: &[u32], down: &[W], s: ExpertSizes) -> Vec<f32> {
    assert_eq!(act.len(), s.tokens * s.k * s.inter);
    assert_eq!(routing.len(), s.tokens * s.k * 2);
    assert_eq!(down.len(), s.n_experts * s.hidden * s.inter);
    let mut y = vec![f32::NAN; s.tokens * s.hidden];
    // SAFETY: lengths checked above.
    unsafe {
        ffi::omnid_emu_moe_down(
            launch.grid,
            launch.block,
            W::BF16,
            act.as_ptr(),
            routing.as_ptr(),
            ptr(down),
            y.as_mut_ptr(),
            int(s.tokens),
            int(s.k),
            int(s.n_experts),
            int(s.hidden),
            int(s.inter),
        )
    };
    y
}

/// Sizes of a QK-norm + rotary launch: `x [rows, heads, d]`, tables for `seq` positions.
#[derive(Debug, Clone, Copy)]
pub struct RopeSizes {
    pub rows: usize,
    pub seq: usize,
    pub heads: usize,
    pub d: usize,
    pub eps: f32,
}

/// `omnid_rms_norm_rope_*`: `x`, `weight [d]`, `cos_sin [seq, 2, d/2]` → like `x`.
pub fn rms_norm_rope<T: Elem>(launch: Launch, x: &[T], weight: &[T], cos_sin: &[T], s: RopeSizes) -> Vec<T> {
    assert_eq!(x.len(), s.rows * s.heads * s.d);
    assert_eq!(weight.len(), s.d);
    assert_eq!(cos_sin.len(), s.seq * s.d);
    assert!(s.d.is_multiple_of(2) && s.seq > 0);
    let mut y = vec![T::UNWRITTEN; x.len()];
    // SAFETY: lengths checked above.
    unsafe {
        ffi::omnid_emu_rms_norm_rope(
            launch.grid,
            launch.block,
            T::BF16,
            ptr(x),
            ptr(weight),
            ptr(cos_sin),
            y.as_mut_ptr().cast(),
            int(s.rows),
            int(s.seq),
            int(s.heads),
            int(s.d),
            s.eps,
        )
    };
    y
}

/// `omnid_snake_beta_*` over `x [batch, channels, len]` with per-channel `alpha` and `inv_beta`.
pub fn snake_beta<T: Elem>(launch: Launch, x: &[T], alpha: &[T], inv_beta: &[T], len: usize) -> Vec<T> {
    let channels = alpha.len();
    assert_eq!(inv_beta.len(), channels);
    assert!(channels * len > 0 && x.len().is_multiple_of(channels * len));
    let mut y = vec![T::UNWRITTEN; x.len()];
    // SAFETY: lengths checked above.
    unsafe {
        ffi::omnid_emu_snake_beta(
            launch.grid,
            launch.block,
            T::BF16,
            ptr(x),
            ptr(alpha),
            ptr(inv_beta),
            y.as_mut_ptr().cast(),
            c_long::try_from(x.len()).expect("too many elements"),
            int(channels),
            int(len),
        )
    };
    y
}
