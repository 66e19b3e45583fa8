//! Every CUDA kernel source compiles with NVRTC, the compiler the GPU path uses at run time.
//! NVRTC needs no GPU and no driver, only `libnvrtc.so.13`: CI installs it from NVIDIA's PyPI
//! wheel and sets `OMNID_REQUIRE_NVRTC=1`, which turns a missing library into a failure; without
//! that variable a machine lacking the library skips the check and says so.

use omnid_kernels::cuda_kernels::CudaModule;

/// Whether NVRTC can be loaded. cudarc panics on a missing library in run-time loading builds, so
/// ask first; a `cuda` build links NVRTC and would not have started without it.
fn nvrtc_present() -> bool {
    #[cfg(feature = "cuda")]
    return true;
    // SAFETY: only probes whether the shared library can be opened.
    #[cfg(not(feature = "cuda"))]
    unsafe {
        cudarc::nvrtc::sys::is_culib_present()
    }
}

/// Runs `check` when NVRTC can be loaded.
fn with_nvrtc(check: impl FnOnce()) {
    if nvrtc_present() {
        check();
    } else if std::env::var_os("OMNID_REQUIRE_NVRTC").is_some() {
        panic!("OMNID_REQUIRE_NVRTC is set but libnvrtc.so.13 cannot be loaded (LD_LIBRARY_PATH?)");
    } else {
        eprintln!("skipped: libnvrtc.so.13 is not on this machine (set OMNID_REQUIRE_NVRTC=1 to require it)");
    }
}

#[test]
fn every_kernel_module_compiles_for_hopper_and_ampere() {
    with_nvrtc(|| {
        for arch in ["sm_90", "sm_80"] {
            for m in CudaModule::ALL {
                let opts = cudarc::nvrtc::CompileOptions { arch: Some(arch), ..Default::default() };
                let ptx = cudarc::nvrtc::compile_ptx_with_opts(m.source(), opts)
                    .unwrap_or_else(|e| panic!("{}.cu for {arch}: {e}", m.name()));
                let src = ptx.to_src();
                for entry in m.entry_points() {
                    assert!(
                        src.contains(&format!(".entry {entry}(")),
                        "{entry} missing from the PTX of {}.cu",
                        m.name()
                    );
                }
            }
        }
    });
}

#[test]
fn a_broken_source_is_reported_with_the_compiler_log() {
    with_nvrtc(|| {
        let err = cudarc::nvrtc::compile_ptx("extern \"C\" __global__ void k() { undefined_name = 1; }")
            .expect_err("an undefined name must not compile");
        assert!(format!("{err:?}").contains("undefined_name"), "{err:?}");
    });
}
