//! Process-wide settings for tensor work on the CPU, applied once at start-up by the stage and bench
//! binaries.

/// glibc's malloc hands every block above its mmap threshold straight from the kernel and returns it on
/// free, so each tensor op's fresh output buffer is faulted in and zeroed page by page (21-31% of the
/// embedding benchmark's samples). Raising the threshold (to 32 MB, the most glibc allows) and the trim
/// limit keeps freed blocks for reuse: 30-40% faster forward passes on the benchmark's small model, same
/// results. (Turning mmap off altogether speeds up `--full` training on the demo, whose 39 MB embedding
/// buffers stay above the threshold, but slowed the DoRA training benchmark by ~8%.) One arena: a
/// training step runs on rayon's threads, and per-thread arenas would each keep their own freed blocks
/// (measured: peak memory of a GradCache step 1.2 -> 2.2 GB, and slower).
///
/// Call once at start-up, before any large allocation.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// candle runs element-wise ops on a pool of its own whose workers spin between ops, next to rayon's
/// pool (matmuls, our fused ops). On a training step, which runs inside rayon's pool, the two pools
/// fight for the cores: element-wise ops on the calling thread (`CANDLE_NUM_THREADS=1`) made steps
/// 15-50% faster on both benchmark configs. A value the user set is kept.
///
/// Call at the start of `main`, before any thread exists (it sets an environment variable).
pub fn elementwise_on_calling_thread() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}
