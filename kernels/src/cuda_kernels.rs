//! omnid's CUDA kernels: their CUDA C sources (`kernels/cuda/`) and launch geometry.
//!
//! The sources are compiled at run time by NVRTC (feature `cuda`, [`crate::cuda`]), so the binary
//! needs no nvcc and carries no PTX for a fixed architecture. The same sources are compiled as C++
//! by the CPU emulator in tests (`kernels/emulator`), with the geometry computed here, and checked
//! against the CPU reference ops of [`crate::fused_ops`]; `tests/cuda_nvrtc.rs` compiles them with
//! NVRTC wherever its library is present.

/// Helpers every kernel source starts with.
const COMMON: &str = include_str!("../cuda/common.cuh");

/// One NVRTC compilation unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CudaModule {
    /// `omnid_moe_route`: softmax → top-k → renormalise, one warp per token.
    MoeRoute,
    /// `omnid_moe_gate_up_{f32,bf16}`, `omnid_moe_down_{f32,bf16}`: the routed experts of a decode step.
    MoeExperts,
    /// `omnid_rms_norm_rope_{f32,bf16}`: per-head RMSNorm fused with rotary embeddings.
    RmsNormRope,
    /// `omnid_snake_beta_{f32,bf16}`: Code2Wav's SnakeBeta activation.
    SnakeBeta,
}

impl CudaModule {
    /// Every module.
    pub const ALL: [CudaModule; 4] =
        [CudaModule::MoeRoute, CudaModule::MoeExperts, CudaModule::RmsNormRope, CudaModule::SnakeBeta];

    /// The module's name (also its file name without `.cu`).
    pub fn name(self) -> &'static str {
        match self {
            CudaModule::MoeRoute => "moe_route",
            CudaModule::MoeExperts => "moe_experts",
            CudaModule::RmsNormRope => "rms_norm_rope",
            CudaModule::SnakeBeta => "snake_beta",
        }
    }

    /// The kernels (`extern "C"` entry points) the module defines.
    pub fn entry_points(self) -> &'static [&'static str] {
        match self {
            CudaModule::MoeRoute => &["omnid_moe_route"],
            CudaModule::MoeExperts => {
                &["omnid_moe_gate_up_f32", "omnid_moe_gate_up_bf16", "omnid_moe_down_f32", "omnid_moe_down_bf16"]
            }
            CudaModule::RmsNormRope => &["omnid_rms_norm_rope_f32", "omnid_rms_norm_rope_bf16"],
            CudaModule::SnakeBeta => &["omnid_snake_beta_f32", "omnid_snake_beta_bf16"],
        }
    }

    /// The complete source handed to NVRTC: the common helpers, then the module's file.
    pub fn source(self) -> String {
        let own = match self {
            CudaModule::MoeRoute => include_str!("../cuda/moe_route.cu"),
            CudaModule::MoeExperts => include_str!("../cuda/moe_experts.cu"),
            CudaModule::RmsNormRope => include_str!("../cuda/rms_norm_rope.cu"),
            CudaModule::SnakeBeta => include_str!("../cuda/snake_beta.cu"),
        };
        format!("{COMMON}\n{own}")
    }
}

/// The most experts `omnid_moe_route` handles (64 per lane: one 64-bit mask of taken experts).
pub const MAX_ROUTE_EXPERTS: usize = 2048;

/// Warps per block for the kernels that give one warp to each unit of work: 4 warps (128 threads)
/// keep several blocks resident per SM without a shared-memory budget to plan.
pub const WARPS_PER_BLOCK: u32 = 4;

/// Threads per block of the grid-stride elementwise kernels.
pub const ELEMENTWISE_BLOCK: u32 = 256;

/// Most blocks of an elementwise launch; the grid-stride loop covers the rest. 65,535 blocks of
/// 256 threads is far more than any GPU keeps resident.
const ELEMENTWISE_MAX_GRID: usize = 65_535;

/// A 1-D launch: `grid` blocks of `block` threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub grid: u32,
    pub block: u32,
}

/// One warp per unit of work (a token, a (row, head), an output element). Errors when the grid
/// would exceed CUDA's 2³¹ − 1 blocks.
pub fn warp_per_unit(units: usize) -> Result<Launch, String> {
    let grid = units.div_ceil(WARPS_PER_BLOCK as usize).max(1);
    let grid = u32::try_from(grid)
        .ok()
        .filter(|&g| g <= i32::MAX as u32)
        .ok_or_else(|| format!("{units} warps of work exceed one CUDA launch"))?;
    Ok(Launch { grid, block: WARPS_PER_BLOCK * 32 })
}

/// A grid-stride launch over `total` elements.
pub fn elementwise(total: usize) -> Launch {
    let grid = total.div_ceil(ELEMENTWISE_BLOCK as usize).clamp(1, ELEMENTWISE_MAX_GRID) as u32;
    Launch { grid, block: ELEMENTWISE_BLOCK }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_point_is_defined_in_its_source() {
        for m in CudaModule::ALL {
            let src = m.source();
            assert!(src.starts_with(COMMON), "{}", m.name());
            for e in m.entry_points() {
                // Either written out or produced by the module's macro from a suffix.
                let suffix = e.rsplit('_').next().unwrap();
                let stem = e.trim_end_matches(suffix).trim_end_matches('_');
                assert!(
                    src.contains(&format!("void {e}(")) || src.contains(&format!("{stem}_##SUFFIX")),
                    "{e} is not defined in {}.cu",
                    m.name()
                );
            }
        }
    }

    #[test]
    fn launch_geometry_covers_the_work() {
        let l = warp_per_unit(9).unwrap();
        assert_eq!((l.grid, l.block), (3, 128));
        assert_eq!(warp_per_unit(0).unwrap().grid, 1);
        assert!(warp_per_unit(usize::MAX / 2).is_err());
        assert_eq!(elementwise(257), Launch { grid: 2, block: 256 });
        assert_eq!(elementwise(usize::MAX / 4).grid, 65_535);
    }
}
