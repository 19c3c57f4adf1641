//! Compiles model/kernels/{fused,attention}.cu as C++ with the CUDA names emulated (model/kernels/emulated.h).

fn main() {
    let kernels = std::path::Path::new("../../model/kernels");
    for file in ["fused.cu", "attention.cu", "compat.cuh", "emulated.h"] {
        println!("cargo::rerun-if-changed={}", kernels.join(file).display());
    }
    println!("cargo::rerun-if-changed=src/emulated.cpp");
    cc::Build::new()
        .cpp(true)
        .std("c++20")
        .flag("-pthread")
        .define("SAHA_EMULATED", None)
        .include(kernels)
        .file("src/emulated.cpp")
        .compile("saha_emulated_kernels");
    println!("cargo::rustc-link-lib=pthread");
}
