//! CUDA builds: compiles kernels/fused.cu and kernels/attention.cu to PTX (`OUT_DIR/ptx.rs`: `FUSED`,
//! `ATTENTION`) with the nvcc and compute
//! capability (`CUDA_COMPUTE_CAP`) that build candle's kernels.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels");
    #[cfg(feature = "cuda")]
    {
        let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
        let ptx = cudaforge::KernelBuilder::new()
            .source_files(["kernels/fused.cu", "kernels/attention.cu"])
            .arg("-std=c++17")
            .arg("-O3")
            .build_ptx()
            .unwrap_or_else(|e| panic!("nvcc could not compile model/kernels/: {e}"));
        ptx.write(out.join("ptx.rs"))
            .unwrap_or_else(|e| panic!("writing {}: {e}", out.join("ptx.rs").display()));
    }
}
