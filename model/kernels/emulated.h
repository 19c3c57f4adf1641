// The CUDA names compat.cuh and fused.cu use, for running the kernels on the CPU in tests: each thread of
// a block is an OS thread, `__syncthreads` a barrier, `__shared__` memory a static shared by the block's
// threads (blocks run one after another). Only the features the kernels use are here.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;
inline std::barrier<>* emulated_barrier = nullptr;
inline std::mutex emulated_launch_lock;

inline void __syncthreads() { emulated_barrier->arrive_and_wait(); }

struct __nv_bfloat16 {
    uint16_t bits;
};

inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = uint32_t(h.bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

inline __nv_bfloat16 __float2bfloat16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return {uint16_t((u >> 16) | 0x40)};  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return {uint16_t(u >> 16)};
}

// Runs `kernel` once per thread of every block of the grid (blocks of `block` threads along x). One
// launch at a time: the grid, the barrier and shared memory are global.
template <class Kernel>
void emulated_launch(dim3 grid, unsigned block, Kernel kernel) {
    std::lock_guard<std::mutex> lock(emulated_launch_lock);
    gridDim = grid;
    blockDim = {block, 1, 1};
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                std::barrier<> barrier(block);
                emulated_barrier = &barrier;
                std::vector<std::thread> threads;
                threads.reserve(block);
                for (unsigned t = 0; t < block; ++t) {
                    threads.emplace_back([=] {
                        blockIdx = {x, y, z};
                        threadIdx = {t, 1, 1};
                        kernel();
                    });
                }
                for (auto& thread : threads) thread.join();
            }
}

template <class Kernel>
void emulated_launch(unsigned grid, unsigned block, Kernel kernel) {
    emulated_launch(dim3{grid, 1, 1}, block, kernel);
}
