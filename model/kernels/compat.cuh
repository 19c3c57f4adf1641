// What the kernels need from CUDA, and the same on the CPU when tests/kernels compiles these sources
// with emulated.h (SAHA_EMULATED): element conversions and grid-stride indices.
#pragma once

#ifdef SAHA_EMULATED
#include "emulated.h"
#else
#include <cuda_bf16.h>
#include <stdint.h>
#endif

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
// Round to nearest even, as a cast in candle or PyTorch does.
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16(x); }

__device__ __forceinline__ size_t global_index() { return blockIdx.x * (size_t)blockDim.x + threadIdx.x; }
__device__ __forceinline__ size_t global_stride() { return (size_t)blockDim.x * gridDim.x; }
