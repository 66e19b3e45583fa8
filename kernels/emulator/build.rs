//! Compiles the kernels in ../cuda as C++ against emulate.hpp (the CUDA subset they use).

fn main() {
    let cuda = std::path::Path::new("../cuda");
    for entry in std::fs::read_dir(cuda).expect("kernels/cuda is missing") {
        let path = entry.expect("reading kernels/cuda").path();
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-changed=src/emulate.hpp");
    println!("cargo:rerun-if-changed=src/emulated.cpp");
    cc::Build::new()
        .cpp(true)
        .std("c++20") // std::barrier
        .include("src")
        .include(cuda)
        .opt_level(2)
        .warnings(true)
        .file("src/emulated.cpp")
        .compile("omnid_cuda_emulated");
}
