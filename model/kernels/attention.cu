// Self-attention forward and backward in tiles, in the spirit of FlashAttention-2: no len x len tensor is
// written anywhere. The forward keeps a running max and sum per query row (online softmax) and writes the
// output and each row's log-sum-exp; the backward recomputes the probabilities from the log-sum-exp, one
// kernel for dQ (a block per query tile) and one for dK and dV (a block per key tile, looping over the
// query heads that share the KV head), so no two blocks write the same gradient and the sums are in a
// fixed order. Values in f32, element type T for inputs and outputs; CUDA cores only (no tensor cores).
//
// Layouts: q [batch, len, heads, d] and k, v [batch, len, kv_heads, d], rotated already, contiguous;
// mask [batch, len, len] additive f32 (f32::MIN where a query may not look); visible [batch * len] from
// attn_visible; lse and row_dot (rowsum(dO * O)) [batch, len, heads] f32. A query row with nothing visible
// attends to every key with equal weight, as softmax over an all-masked row does (model/src/fused/).
#include "compat.cuh"

#define ATT_BQ 16
#define ATT_BK 16
#define ATT_DMAX 128
#define ATT_THREADS 128
// Accumulators per thread: a 16 x d tile over 128 threads, d <= 128.
#define ATT_PER_THREAD (ATT_BQ * ATT_DMAX / ATT_THREADS)
// f32::MIN, the mask's "may not look".
#define ATT_MASKED (-3.40282347e+38f)

// One past each query row's last unmasked key (0: none).
__device__ void attn_visible(const float* mask, unsigned* visible, size_t rows, int len) {
    for (size_t r = global_index(); r < rows; r += global_stride()) {
        const float* m = mask + r * len;
        int v = len;
        while (v > 0 && m[v - 1] == ATT_MASKED) --v;
        visible[r] = v;
    }
}

__device__ __forceinline__ int attn_keys(unsigned visible, int len) { return visible == 0 ? len : (int)visible; }

// Keys the query tile from row q0 looks at: up to the furthest its rows see.
__device__ __forceinline__ int attn_tile_keys(const unsigned* tile_visible, int q0, int len) {
    int keys = 0;
    for (int r = 0; r < ATT_BQ && q0 + r < len; ++r) {
        const int kr = attn_keys(tile_visible[r], len);
        keys = kr > keys ? kr : keys;
    }
    return keys;
}

// The score softmax sees for (row, key); -INFINITY: left out (probability 0).
__device__ __forceinline__ float attn_score(float dot, float scale, const float* mask_row, int key, unsigned visible,
                                            int len) {
    if (key >= len) return -INFINITY;
    if (visible == 0) return 0.0f;
    if (key >= (int)visible) return -INFINITY;
    return dot * scale + mask_row[key];
}

template <typename T>
__device__ void attn_load(float (*tile)[ATT_DMAX + 1], const T* rows, size_t row_stride, int first, int count, int len,
                          int d) {
    for (int i = threadIdx.x; i < count * d; i += blockDim.x) {
        const int r = i / d, c = i % d, row = first + r;
        tile[r][c] = row < len ? to_float(rows[row * row_stride + c]) : 0.0f;
    }
}

template <typename T>
__device__ void attn_fwd(const T* q, const T* k, const T* v, const float* mask, const unsigned* visible, T* out,
                         float* lse, int len, int heads, int kv_heads, int d, float scale) {
    __shared__ float sQ[ATT_BQ][ATT_DMAX + 1];
    __shared__ float sK[ATT_BK][ATT_DMAX + 1];
    __shared__ float sV[ATT_BK][ATT_DMAX + 1];
    __shared__ float sP[ATT_BQ][ATT_BK];
    __shared__ float sMax[ATT_BQ], sSum[ATT_BQ], sAlpha[ATT_BQ];
    __shared__ unsigned sVis[ATT_BQ];
    __shared__ int sKeys;
    const int tid = threadIdx.x;
    const int q0 = blockIdx.x * ATT_BQ, h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (heads / kv_heads);
    const size_t q_stride = (size_t)heads * d, kv_stride = (size_t)kv_heads * d;
    const T* qb = q + (size_t)b * len * q_stride + h * d;
    const T* kb = k + (size_t)b * len * kv_stride + kvh * d;
    const T* vb = v + (size_t)b * len * kv_stride + kvh * d;
    const float* mb = mask + (size_t)b * len * len;

    attn_load(sQ, qb, q_stride, q0, ATT_BQ, len, d);
    if (tid < ATT_BQ) {
        const int row = q0 + tid;
        sVis[tid] = row < len ? visible[(size_t)b * len + row] : 1u;
        sMax[tid] = -INFINITY;
        sSum[tid] = 0.0f;
    }
    __syncthreads();
    if (tid == 0) sKeys = attn_tile_keys(sVis, q0, len);
    __syncthreads();
    const int keys = sKeys;
    float acc[ATT_PER_THREAD];
    for (int j = 0; j < ATT_PER_THREAD; ++j) acc[j] = 0.0f;

    for (int k0 = 0; k0 < keys; k0 += ATT_BK) {
        attn_load(sK, kb, kv_stride, k0, ATT_BK, len, d);
        attn_load(sV, vb, kv_stride, k0, ATT_BK, len, d);
        __syncthreads();
        for (int i = tid; i < ATT_BQ * ATT_BK; i += ATT_THREADS) {
            const int r = i / ATT_BK, c = i % ATT_BK, row = q0 + r;
            float s = -INFINITY;
            if (row < len) {
                float dot = 0.0f;
                for (int e = 0; e < d; ++e) dot += sQ[r][e] * sK[c][e];
                s = attn_score(dot, scale, mb + (size_t)row * len, k0 + c, sVis[r], len);
            }
            sP[r][c] = s;
        }
        __syncthreads();
        if (tid < ATT_BQ) {
            const int r = tid;
            float m = sMax[r];
            for (int c = 0; c < ATT_BK; ++c) m = fmaxf(m, sP[r][c]);
            const float alpha = m == -INFINITY ? 1.0f : expf(sMax[r] - m);
            float sum = sSum[r] * alpha;
            for (int c = 0; c < ATT_BK; ++c) {
                const float p = sP[r][c] == -INFINITY ? 0.0f : expf(sP[r][c] - m);
                sP[r][c] = p;
                sum += p;
            }
            sMax[r] = m;
            sSum[r] = sum;
            sAlpha[r] = alpha;
        }
        __syncthreads();
        for (int j = 0; j < ATT_PER_THREAD; ++j) {
            const int i = tid + j * ATT_THREADS;
            if (i < ATT_BQ * d) {
                const int r = i / d, c = i % d;
                float o = acc[j] * sAlpha[r];
                for (int kk = 0; kk < ATT_BK; ++kk) o += sP[r][kk] * sV[kk][c];
                acc[j] = o;
            }
        }
        __syncthreads();
    }
    for (int j = 0; j < ATT_PER_THREAD; ++j) {
        const int i = tid + j * ATT_THREADS;
        const int r = i / d, c = i % d, row = q0 + r;
        if (i < ATT_BQ * d && row < len) out[((size_t)b * len + row) * q_stride + h * d + c] = from_float<T>(acc[j] / sSum[r]);
    }
    if (tid < ATT_BQ && q0 + tid < len) lse[((size_t)b * len + q0 + tid) * heads + h] = sMax[tid] + logf(sSum[tid]);
}

// p and ds = p (dp - row_dot) scale for the query tile in sQ/sG and the key tile in sK/sV.
__device__ __forceinline__ void attn_probs_and_grads(float (*sQ)[ATT_DMAX + 1], float (*sG)[ATT_DMAX + 1],
                                                     float (*sK)[ATT_DMAX + 1], float (*sV)[ATT_DMAX + 1],
                                                     float (*sP)[ATT_BK], float (*sDS)[ATT_BK], const float* sLse,
                                                     const float* sDot, const unsigned* sVis, const float* mb, int q0,
                                                     int k0, int len, int d, float scale) {
    for (int i = threadIdx.x; i < ATT_BQ * ATT_BK; i += blockDim.x) {
        const int r = i / ATT_BK, c = i % ATT_BK, row = q0 + r;
        float p = 0.0f, ds = 0.0f;
        if (row < len) {
            float dot = 0.0f, dp = 0.0f;
            for (int e = 0; e < d; ++e) {
                dot += sQ[r][e] * sK[c][e];
                dp += sG[r][e] * sV[c][e];
            }
            const float s = attn_score(dot, scale, mb + (size_t)row * len, k0 + c, sVis[r], len);
            p = s == -INFINITY ? 0.0f : expf(s - sLse[r]);
            ds = p * (dp - sDot[r]) * scale;
        }
        sP[r][c] = p;
        sDS[r][c] = ds;
    }
}

// Loads a query tile's rows of q and dO and their per-row values.
template <typename T>
__device__ void attn_load_queries(float (*sQ)[ATT_DMAX + 1], float (*sG)[ATT_DMAX + 1], float* sLse, float* sDot,
                                  unsigned* sVis, const T* qb, const T* gb, size_t q_stride, const float* lse,
                                  const float* row_dot, const unsigned* visible, int b, int h, int heads, int q0,
                                  int len, int d) {
    attn_load(sQ, qb, q_stride, q0, ATT_BQ, len, d);
    attn_load(sG, gb, q_stride, q0, ATT_BQ, len, d);
    if (threadIdx.x < ATT_BQ) {
        const int row = q0 + threadIdx.x;
        const size_t at = ((size_t)b * len + row) * heads + h;
        sLse[threadIdx.x] = row < len ? lse[at] : 0.0f;
        sDot[threadIdx.x] = row < len ? row_dot[at] : 0.0f;
        sVis[threadIdx.x] = row < len ? visible[(size_t)b * len + row] : 1u;
    }
}

template <typename T>
__device__ void attn_bwd_dq(const T* q, const T* k, const T* v, const float* mask, const unsigned* visible,
                            const T* grad, const float* lse, const float* row_dot, T* dq, int len, int heads,
                            int kv_heads, int d, float scale) {
    __shared__ float sQ[ATT_BQ][ATT_DMAX + 1];
    __shared__ float sG[ATT_BQ][ATT_DMAX + 1];
    __shared__ float sK[ATT_BK][ATT_DMAX + 1];
    __shared__ float sV[ATT_BK][ATT_DMAX + 1];
    __shared__ float sP[ATT_BQ][ATT_BK];
    __shared__ float sDS[ATT_BQ][ATT_BK];
    __shared__ float sLse[ATT_BQ], sDot[ATT_BQ];
    __shared__ unsigned sVis[ATT_BQ];
    __shared__ int sKeys;
    const int tid = threadIdx.x;
    const int q0 = blockIdx.x * ATT_BQ, h = blockIdx.y, b = blockIdx.z;
    const int kvh = h / (heads / kv_heads);
    const size_t q_stride = (size_t)heads * d, kv_stride = (size_t)kv_heads * d;
    const size_t q_base = (size_t)b * len * q_stride + h * d;
    const T* kb = k + (size_t)b * len * kv_stride + kvh * d;
    const T* vb = v + (size_t)b * len * kv_stride + kvh * d;
    const float* mb = mask + (size_t)b * len * len;

    attn_load_queries(sQ, sG, sLse, sDot, sVis, q + q_base, grad + q_base, q_stride, lse, row_dot, visible, b, h,
                      heads, q0, len, d);
    __syncthreads();
    if (tid == 0) sKeys = attn_tile_keys(sVis, q0, len);
    __syncthreads();
    const int keys = sKeys;
    float acc[ATT_PER_THREAD];
    for (int j = 0; j < ATT_PER_THREAD; ++j) acc[j] = 0.0f;
    for (int k0 = 0; k0 < keys; k0 += ATT_BK) {
        attn_load(sK, kb, kv_stride, k0, ATT_BK, len, d);
        attn_load(sV, vb, kv_stride, k0, ATT_BK, len, d);
        __syncthreads();
        attn_probs_and_grads(sQ, sG, sK, sV, sP, sDS, sLse, sDot, sVis, mb, q0, k0, len, d, scale);
        __syncthreads();
        for (int j = 0; j < ATT_PER_THREAD; ++j) {
            const int i = tid + j * ATT_THREADS;
            if (i < ATT_BQ * d) {
                const int r = i / d, c = i % d;
                float sum = acc[j];
                for (int kk = 0; kk < ATT_BK; ++kk) sum += sDS[r][kk] * sK[kk][c];
                acc[j] = sum;
            }
        }
        __syncthreads();
    }
    for (int j = 0; j < ATT_PER_THREAD; ++j) {
        const int i = tid + j * ATT_THREADS;
        const int r = i / d, c = i % d, row = q0 + r;
        if (i < ATT_BQ * d && row < len) dq[q_base + row * q_stride + c] = from_float<T>(acc[j]);
    }
}

template <typename T>
__device__ void attn_bwd_dkv(const T* q, const T* k, const T* v, const float* mask, const unsigned* visible,
                             const T* grad, const float* lse, const float* row_dot, T* dk, T* dv, int len, int heads,
                             int kv_heads, int d, float scale) {
    __shared__ float sQ[ATT_BQ][ATT_DMAX + 1];
    __shared__ float sG[ATT_BQ][ATT_DMAX + 1];
    __shared__ float sK[ATT_BK][ATT_DMAX + 1];
    __shared__ float sV[ATT_BK][ATT_DMAX + 1];
    __shared__ float sP[ATT_BQ][ATT_BK];
    __shared__ float sDS[ATT_BQ][ATT_BK];
    __shared__ float sLse[ATT_BQ], sDot[ATT_BQ];
    __shared__ unsigned sVis[ATT_BQ];
    __shared__ int sSkip;
    const int tid = threadIdx.x;
    const int k0 = blockIdx.x * ATT_BK, kvh = blockIdx.y, b = blockIdx.z;
    const int group = heads / kv_heads;
    const size_t q_stride = (size_t)heads * d, kv_stride = (size_t)kv_heads * d;
    const size_t kv_base = (size_t)b * len * kv_stride + kvh * d;
    const float* mb = mask + (size_t)b * len * len;

    attn_load(sK, k + kv_base, kv_stride, k0, ATT_BK, len, d);
    attn_load(sV, v + kv_base, kv_stride, k0, ATT_BK, len, d);
    float dk_acc[ATT_PER_THREAD], dv_acc[ATT_PER_THREAD];
    for (int j = 0; j < ATT_PER_THREAD; ++j) dk_acc[j] = dv_acc[j] = 0.0f;
    for (int g = 0; g < group; ++g) {
        const int h = kvh * group + g;
        const size_t q_base = (size_t)b * len * q_stride + h * d;
        for (int q0 = 0; q0 < len; q0 += ATT_BQ) {
            attn_load_queries(sQ, sG, sLse, sDot, sVis, q + q_base, grad + q_base, q_stride, lse, row_dot, visible, b,
                              h, heads, q0, len, d);
            __syncthreads();
            if (tid == 0) {
                // No row of the tile sees a key of this block: nothing to add.
                int skip = 1;
                for (int r = 0; r < ATT_BQ && q0 + r < len; ++r) skip &= attn_keys(sVis[r], len) <= k0;
                sSkip = skip;
            }
            __syncthreads();
            if (!sSkip) {
                attn_probs_and_grads(sQ, sG, sK, sV, sP, sDS, sLse, sDot, sVis, mb, q0, k0, len, d, scale);
                __syncthreads();
                for (int j = 0; j < ATT_PER_THREAD; ++j) {
                    const int i = tid + j * ATT_THREADS;
                    if (i < ATT_BK * d) {
                        const int kr = i / d, c = i % d;
                        float sk = dk_acc[j], sv = dv_acc[j];
                        for (int r = 0; r < ATT_BQ; ++r) {
                            sv += sP[r][kr] * sG[r][c];
                            sk += sDS[r][kr] * sQ[r][c];
                        }
                        dk_acc[j] = sk;
                        dv_acc[j] = sv;
                    }
                }
            }
            __syncthreads();
        }
    }
    for (int j = 0; j < ATT_PER_THREAD; ++j) {
        const int i = tid + j * ATT_THREADS;
        const int kr = i / d, c = i % d, key = k0 + kr;
        if (i < ATT_BK * d && key < len) {
            dk[kv_base + key * kv_stride + c] = from_float<T>(dk_acc[j]);
            dv[kv_base + key * kv_stride + c] = from_float<T>(dv_acc[j]);
        }
    }
}

extern "C" __global__ void attn_visible_u32(const float* mask, unsigned* visible, size_t rows, int len) {
    attn_visible(mask, visible, rows, len);
}

#define ATTENTION_KERNELS(NAME, T)                                                                                    \
    extern "C" __global__ void attn_fwd_##NAME(const T* q, const T* k, const T* v, const float* mask,               \
                                               const unsigned* visible, T* out, float* lse, int len, int heads,       \
                                               int kv_heads, int d, float scale) {                                    \
        attn_fwd<T>(q, k, v, mask, visible, out, lse, len, heads, kv_heads, d, scale);                               \
    }                                                                                                                 \
    extern "C" __global__ void attn_bwd_dq_##NAME(const T* q, const T* k, const T* v, const float* mask,            \
                                                  const unsigned* visible, const T* grad, const float* lse,          \
                                                  const float* row_dot, T* dq, int len, int heads, int kv_heads,     \
                                                  int d, float scale) {                                               \
        attn_bwd_dq<T>(q, k, v, mask, visible, grad, lse, row_dot, dq, len, heads, kv_heads, d, scale);             \
    }                                                                                                                 \
    extern "C" __global__ void attn_bwd_dkv_##NAME(const T* q, const T* k, const T* v, const float* mask,           \
                                                   const unsigned* visible, const T* grad, const float* lse,         \
                                                   const float* row_dot, T* dk, T* dv, int len, int heads,           \
                                                   int kv_heads, int d, float scale) {                                \
        attn_bwd_dkv<T>(q, k, v, mask, visible, grad, lse, row_dot, dk, dv, len, heads, kv_heads, d, scale);       \
    }

ATTENTION_KERNELS(f32, float)
ATTENTION_KERNELS(bf16, __nv_bfloat16)
