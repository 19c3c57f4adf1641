// Elementwise and row kernels of the fused training ops on CUDA (model/src/fused/cuda.rs), compiled to PTX
// by model/build.rs with the nvcc that builds candle's kernels. Values are computed in f32 and rounded
// once to the element type. References: the CPU ops in model/src/fused/ (scripts/gpu/check.sh compares
// them on a GPU) and, in CI, these sources compiled for the CPU (tests/kernels).
#include "compat.cuh"

// Threads per block of rms_norm_bwd (a power of two: its reduction halves).
#define RMS_THREADS 256

// silu(gate) * up.
template <typename T>
__device__ void swiglu_fwd(const T* gate, const T* up, T* out, size_t n) {
    for (size_t i = global_index(); i < n; i += global_stride()) {
        const float g = to_float(gate[i]);
        out[i] = from_float<T>(g / (1.0f + expf(-g)) * to_float(up[i]));
    }
}

// d gate = grad * up * s (1 + g (1 - s)), d up = grad * g * s, with s = sigmoid(g); written to
// grads[0..n) and grads[n..2n).
template <typename T>
__device__ void swiglu_bwd(const T* gate, const T* up, const T* grad, T* grads, size_t n) {
    for (size_t i = global_index(); i < n; i += global_stride()) {
        const float g = to_float(gate[i]), u = to_float(up[i]), d = to_float(grad[i]);
        const float s = 1.0f / (1.0f + expf(-g));
        grads[i] = from_float<T>(d * u * s * (1.0f + g * (1.0f - s)));
        grads[n + i] = from_float<T>(d * g * s);
    }
}

// RMSNorm's input gradient, one block per row: with r = 1 / sqrt(mean(x^2) + eps) and gn = grad * w,
// dx = r gn - x r^3 mean(gn * x). When want_dw, also each row's share of the weight's gradient,
// grad * round(x r), into dw_rows (summed over rows by the caller).
template <typename T>
__device__ void rms_norm_bwd(const T* x, const T* w, const T* grad, T* dx, float* dw_rows, int want_dw,
                             size_t rows, int dim, float eps) {
    __shared__ float sums[2][RMS_THREADS];
    const unsigned tid = threadIdx.x;
    for (size_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xr = x + row * dim;
        const T* gr = grad + row * dim;
        float squares = 0.0f, dot = 0.0f;
        for (int i = tid; i < dim; i += blockDim.x) {
            const float xv = to_float(xr[i]);
            squares += xv * xv;
            dot += to_float(gr[i]) * to_float(w[i]) * xv;
        }
        sums[0][tid] = squares;
        sums[1][tid] = dot;
        __syncthreads();
        for (unsigned half = blockDim.x / 2; half > 0; half >>= 1) {
            if (tid < half) {
                sums[0][tid] += sums[0][tid + half];
                sums[1][tid] += sums[1][tid + half];
            }
            __syncthreads();
        }
        const float r = 1.0f / sqrtf(sums[0][0] / dim + eps);
        const float mean_dot = sums[1][0] / dim;
        // Every thread has read the sums before the next row overwrites them.
        __syncthreads();
        for (int i = tid; i < dim; i += blockDim.x) {
            const float xv = to_float(xr[i]), g = to_float(gr[i]);
            dx[row * dim + i] = from_float<T>(r * g * to_float(w[i]) - xv * r * r * r * mean_dot);
            if (want_dw) dw_rows[row * dim + i] = g * to_float(from_float<T>(xv * r));
        }
    }
}

// DoRA's combination, f32: out = a q + (ratio - 1)(q - bias) + s ratio lr, per output column.
__device__ void dora_fwd(const float* q, const float* lr, const float* ratio, const float* bias, float a, float s,
                         float* out, size_t rows, int dim) {
    for (size_t i = global_index(); i < rows * dim; i += global_stride()) {
        const int c = i % dim;
        const float r = ratio[c];
        out[i] = a * q[i] + (r - 1.0f) * (q[i] - bias[c]) + s * r * lr[i];
    }
}

// Its gradients: dq = g (a + ratio - 1), dlr = s g ratio, and each row's share of d ratio,
// g (q - bias + s lr), into grads[0..n), grads[n..2n), grads[2n..3n) (the last summed over rows by the
// caller).
__device__ void dora_bwd(const float* q, const float* lr, const float* ratio, const float* bias, const float* grad,
                         float a, float s, float* grads, size_t rows, int dim) {
    const size_t n = rows * dim;
    for (size_t i = global_index(); i < n; i += global_stride()) {
        const int c = i % dim;
        const float r = ratio[c], g = grad[i];
        grads[i] = g * (a + r - 1.0f);
        grads[n + i] = s * g * r;
        grads[2 * n + i] = g * (q[i] - bias[c] + s * lr[i]);
    }
}

#define ROW_KERNELS(NAME, T)                                                                                    \
    extern "C" __global__ void swiglu_fwd_##NAME(const T* gate, const T* up, T* out, size_t n) {                \
        swiglu_fwd<T>(gate, up, out, n);                                                                        \
    }                                                                                                           \
    extern "C" __global__ void swiglu_bwd_##NAME(const T* gate, const T* up, const T* grad, T* grads, size_t n) { \
        swiglu_bwd<T>(gate, up, grad, grads, n);                                                                \
    }                                                                                                           \
    extern "C" __global__ void rms_norm_bwd_##NAME(const T* x, const T* w, const T* grad, T* dx, float* dw_rows, \
                                                   int want_dw, size_t rows, int dim, float eps) {              \
        rms_norm_bwd<T>(x, w, grad, dx, dw_rows, want_dw, rows, dim, eps);                                     \
    }

ROW_KERNELS(f32, float)
ROW_KERNELS(bf16, __nv_bfloat16)

extern "C" __global__ void dora_fwd_f32(const float* q, const float* lr, const float* ratio, const float* bias,
                                        float a, float s, float* out, size_t rows, int dim) {
    dora_fwd(q, lr, ratio, bias, a, s, out, rows, dim);
}

extern "C" __global__ void dora_bwd_f32(const float* q, const float* lr, const float* ratio, const float* bias,
                                        const float* grad, float a, float s, float* grads, size_t rows, int dim) {
    dora_bwd(q, lr, ratio, bias, grad, a, s, grads, rows, dim);
}
