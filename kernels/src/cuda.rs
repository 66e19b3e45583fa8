//! Launching omnid's kernels on candle's CUDA device (feature `cuda`).
//!
//! Each module of [`CudaModule`] is compiled by NVRTC the first time it is needed, for the
//! architecture of the device at hand, and loaded into candle's per-device module cache; the
//! kernels then run on candle's stream, so they are ordered with candle's own kernels and need no
//! synchronisation of their own. Operands must be contiguous (the callers make them so).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaView, DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use candle_core::cuda_backend::DeviceId;
use candle_core::{bail, CudaDevice, CudaStorage, DType, Layout, Result, Shape};
use half::bf16;

use crate::cuda_kernels::{elementwise, warp_per_unit, CudaModule, Launch};
use crate::fused_ops::{MoeExperts, MoeRoute, RmsNormRope, SnakeBeta};

/// `sm_XY` names NVRTC accepts, by compute capability (NVRTC wants a `&'static str`).
fn arch_name(major: i32, minor: i32) -> Result<&'static str> {
    Ok(match (major, minor) {
        (7, 0) => "sm_70",
        (7, 5) => "sm_75",
        (8, 0) => "sm_80",
        (8, 6) => "sm_86",
        (8, 7) => "sm_87",
        (8, 9) => "sm_89",
        (9, 0) => "sm_90",
        (10, 0) => "sm_100",
        (12, 0) => "sm_120",
        _ => bail!("compute capability {major}.{minor} is not one omnid's kernels are compiled for"),
    })
}

/// A module's PTX for `dev`: compiled by NVRTC for the device's architecture the first time, then
/// a map lookup per launch (launches happen every layer of every step; the PTX is tens of KB).
fn ptx(dev: &CudaDevice, module: CudaModule) -> Result<Arc<str>> {
    type Cache = Mutex<HashMap<(CudaModule, DeviceId), Arc<str>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (module, dev.id());
    if let Some(p) = cache.lock().map_err(|_| candle_core::Error::msg("PTX cache poisoned"))?.get(&key) {
        return Ok(p.clone());
    }
    let arch = device_arch(dev)?;
    let opts = CompileOptions { arch: Some(arch), name: Some(format!("{}.cu", module.name())), ..Default::default() };
    let compiled = compile_ptx_with_opts(module.source(), opts)
        .map_err(|e| candle_core::Error::Cuda(format!("NVRTC could not compile {}.cu: {e}", module.name()).into()))?;
    let src: Arc<str> = compiled.to_src().into();
    cache.lock().map_err(|_| candle_core::Error::msg("PTX cache poisoned"))?.insert(key, src.clone());
    Ok(src)
}

/// The device's architecture, from its compute capability.
fn device_arch(dev: &CudaDevice) -> Result<&'static str> {
    use candle_core::cuda_backend::cudarc::driver::sys::CUdevice_attribute as A;
    let ctx = dev.cuda_stream().context().clone();
    let major = ctx.attribute(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR).map_err(cuda_err)?;
    let minor = ctx.attribute(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR).map_err(cuda_err)?;
    arch_name(major, minor)
}

fn cuda_err(e: impl std::error::Error + Send + Sync + 'static) -> candle_core::Error {
    candle_core::Error::Cuda(Box::new(e))
}

/// Compiles every module for `dev` (the self-test does this up front, so a compile error is
/// reported as such rather than at the first model step).
pub fn compile_all(dev: &CudaDevice) -> Result<()> {
    for m in CudaModule::ALL {
        ptx(dev, m)?;
    }
    Ok(())
}

fn config(l: Launch) -> LaunchConfig {
    LaunchConfig { grid_dim: (l.grid, 1, 1), block_dim: (l.block, 1, 1), shared_mem_bytes: 0 }
}

/// The contiguous elements of a CUDA operand.
fn view<'a, T: candle_core::cuda_backend::CudaDType + DeviceRepr>(
    s: &'a CudaStorage,
    l: &Layout,
    what: &str,
) -> Result<CudaView<'a, T>> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(s.as_cuda_slice::<T>()?.slice(start..end)),
        None => bail!("{what} must be contiguous"),
    }
}

fn int(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| candle_core::Error::msg(format!("{what} = {v} exceeds the kernels' int range")))
}

pub(crate) fn moe_route(op: &MoeRoute, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
    let (tokens, experts) = op.sizes(l)?;
    if s.dtype() != DType::F32 {
        bail!("moe route: router logits are {:?}, expected f32", s.dtype())
    }
    let dev = s.device().clone();
    let logits = view::<f32>(s, l, "router logits")?;
    let f = dev.get_or_load_custom_func("omnid_moe_route", "omnid_moe_route", &ptx(&dev, CudaModule::MoeRoute)?)?;
    // SAFETY: every element is written by the kernel before it is read.
    let mut out = unsafe { dev.alloc::<u32>(tokens * op.k * 2)? };
    let (t, e, k, renorm) =
        (int(tokens, "tokens")?, int(experts, "experts")?, int(op.k, "k")?, i32::from(op.renormalize));
    let launch = warp_per_unit(tokens).map_err(candle_core::Error::msg)?;
    let mut b = f.builder();
    b.arg(&logits).arg(&t).arg(&e).arg(&k).arg(&renorm).arg(&mut out);
    // SAFETY: the arguments match omnid_moe_route's parameters; sizes checked above.
    unsafe { b.launch(config(launch)) }.map_err(cuda_err)?;
    Ok((CudaStorage::wrap_cuda_slice(out, dev), Shape::from((tokens, op.k, 2))))
}

type Operand<'a> = (&'a CudaStorage, &'a Layout);

pub(crate) fn moe_experts(
    op: &MoeExperts,
    x: Operand,
    gate_up: Operand,
    down: Operand,
) -> Result<(CudaStorage, Shape)> {
    let c = op.sizes(x.1, gate_up.1, down.1)?;
    if x.0.dtype() != DType::F32 || gate_up.0.dtype() != down.0.dtype() {
        bail!(
            "moe experts: x {:?} (expected f32), gate_up {:?}, down {:?}",
            x.0.dtype(),
            gate_up.0.dtype(),
            down.0.dtype()
        )
    }
    let suffix = match gate_up.0.dtype() {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        other => bail!("moe experts: {other:?} weights, expected f32 or bf16"),
    };
    let dev = x.0.device().clone();
    let ptx = ptx(&dev, CudaModule::MoeExperts)?;
    let gate_up_fn = dev.get_or_load_custom_func(&format!("omnid_moe_gate_up_{suffix}"), "omnid_moe_experts", &ptx)?;
    let down_fn = dev.get_or_load_custom_func(&format!("omnid_moe_down_{suffix}"), "omnid_moe_experts", &ptx)?;
    let routing_guard = op.routing.storage_and_layout();
    let routing = match &*routing_guard.0 {
        candle_core::Storage::Cuda(r) => view::<u32>(r, routing_guard.1, "routing")?,
        _ => bail!("moe experts: the routing must be on the same CUDA device as the experts"),
    };
    let xv = view::<f32>(x.0, x.1, "x")?;
    let (t, k, e, h, i) = (
        int(c.tokens, "tokens")?,
        int(c.k, "k")?,
        int(c.experts, "experts")?,
        int(c.hidden, "hidden")?,
        int(c.inter, "moe_intermediate_size")?,
    );
    // SAFETY (both allocations): every element is written by its kernel before it is read.
    let mut act = unsafe { dev.alloc::<f32>(c.tokens * c.k * c.inter)? };
    let mut y = unsafe { dev.alloc::<f32>(c.tokens * c.hidden)? };
    let first = warp_per_unit(c.tokens * c.k * c.inter).map_err(candle_core::Error::msg)?;
    let second = warp_per_unit(c.tokens * c.hidden).map_err(candle_core::Error::msg)?;
    macro_rules! run {
        ($w:ty) => {{
            let gu = view::<$w>(gate_up.0, gate_up.1, "gate_up")?;
            let dn = view::<$w>(down.0, down.1, "down")?;
            let mut b = gate_up_fn.builder();
            b.arg(&xv).arg(&routing).arg(&gu).arg(&mut act).arg(&t).arg(&k).arg(&e).arg(&h).arg(&i);
            // SAFETY: arguments match omnid_moe_gate_up_*; sizes checked by `sizes`.
            unsafe { b.launch(config(first)) }.map_err(cuda_err)?;
            let mut b = down_fn.builder();
            b.arg(&act).arg(&routing).arg(&dn).arg(&mut y).arg(&t).arg(&k).arg(&e).arg(&h).arg(&i);
            // SAFETY: arguments match omnid_moe_down_*; the stream orders it after pass 1.
            unsafe { b.launch(config(second)) }.map_err(cuda_err)?;
        }};
    }
    match suffix {
        "f32" => run!(f32),
        _ => run!(bf16),
    }
    drop(routing_guard);
    Ok((CudaStorage::wrap_cuda_slice(y, dev), Shape::from((c.tokens, c.hidden))))
}

pub(crate) fn rms_norm_rope(op: &RmsNormRope, x: Operand, w: Operand, cs: Operand) -> Result<(CudaStorage, Shape)> {
    let s = op.sizes(x.1, w.1, cs.1)?;
    let dtype = x.0.dtype();
    if w.0.dtype() != dtype || cs.0.dtype() != dtype {
        bail!("rms norm rope: x {dtype:?}, weight {:?}, table {:?} must share a dtype", w.0.dtype(), cs.0.dtype())
    }
    let dev = x.0.device().clone();
    let ptx = ptx(&dev, CudaModule::RmsNormRope)?;
    let (rows, seq, heads, d) =
        (int(s.rows, "rows")?, int(op.seq, "seq")?, int(s.heads, "heads")?, int(s.d, "head_dim")?);
    let launch = config(warp_per_unit(s.rows * s.heads).map_err(candle_core::Error::msg)?);
    let n = x.1.shape().elem_count();
    macro_rules! run {
        ($t:ty, $name:literal) => {{
            let f = dev.get_or_load_custom_func($name, "omnid_rms_norm_rope", &ptx)?;
            let (xv, wv, cv) =
                (view::<$t>(x.0, x.1, "x")?, view::<$t>(w.0, w.1, "weight")?, view::<$t>(cs.0, cs.1, "cos_sin")?);
            // SAFETY: every element is written by the kernel.
            let mut y = unsafe { dev.alloc::<$t>(n)? };
            let mut b = f.builder();
            b.arg(&xv).arg(&wv).arg(&cv).arg(&mut y).arg(&rows).arg(&seq).arg(&heads).arg(&d).arg(&op.eps);
            // SAFETY: arguments match the kernel's parameters; sizes checked by `sizes`.
            unsafe { b.launch(launch) }.map_err(cuda_err)?;
            CudaStorage::wrap_cuda_slice(y, dev.clone())
        }};
    }
    let out = match dtype {
        DType::F32 => run!(f32, "omnid_rms_norm_rope_f32"),
        DType::BF16 => run!(bf16, "omnid_rms_norm_rope_bf16"),
        other => bail!("rms norm rope: {other:?} activations, expected f32 or bf16"),
    };
    Ok((out, x.1.shape().clone()))
}

pub(crate) fn snake_beta(x: Operand, alpha: Operand, inv_beta: Operand) -> Result<(CudaStorage, Shape)> {
    let (channels, len) = SnakeBeta::sizes(x.1, alpha.1, inv_beta.1)?;
    let dtype = x.0.dtype();
    if alpha.0.dtype() != dtype || inv_beta.0.dtype() != dtype {
        bail!(
            "snake beta: x {dtype:?}, alpha {:?}, inv_beta {:?} must share a dtype",
            alpha.0.dtype(),
            inv_beta.0.dtype()
        )
    }
    let dev = x.0.device().clone();
    let ptx = ptx(&dev, CudaModule::SnakeBeta)?;
    let n = x.1.shape().elem_count();
    let (total, c, l) = (n as i64, int(channels, "channels")?, int(len, "len")?);
    let launch = config(elementwise(n));
    macro_rules! run {
        ($t:ty, $name:literal) => {{
            let f = dev.get_or_load_custom_func($name, "omnid_snake_beta", &ptx)?;
            let (xv, av, bv) = (
                view::<$t>(x.0, x.1, "x")?,
                view::<$t>(alpha.0, alpha.1, "alpha")?,
                view::<$t>(inv_beta.0, inv_beta.1, "inv_beta")?,
            );
            // SAFETY: every element is written by the kernel.
            let mut y = unsafe { dev.alloc::<$t>(n)? };
            let mut b = f.builder();
            b.arg(&xv).arg(&av).arg(&bv).arg(&mut y).arg(&total).arg(&c).arg(&l);
            // SAFETY: arguments match the kernel's parameters; sizes checked by `sizes`.
            unsafe { b.launch(launch) }.map_err(cuda_err)?;
            CudaStorage::wrap_cuda_slice(y, dev.clone())
        }};
    }
    let out = match dtype {
        DType::F32 => run!(f32, "omnid_snake_beta_f32"),
        DType::BF16 => run!(bf16, "omnid_snake_beta_bf16"),
        other => bail!("snake beta: {other:?} activations, expected f32 or bf16"),
    };
    Ok((out, x.1.shape().clone()))
}
