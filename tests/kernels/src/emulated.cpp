// The kernels of model/kernels/fused.cu on the CPU: one C function per kernel that launches it on a
// one-dimensional grid of emulated threads.
#include "fused.cu"
#include "attention.cu"

#define LAUNCH(...) emulated_launch(grid, block, [=] { __VA_ARGS__; })

extern "C" {
void emulated_swiglu_fwd_f32(unsigned grid, unsigned block, const float* gate, const float* up, float* out, size_t n) {
    LAUNCH(swiglu_fwd_f32(gate, up, out, n));
}
void emulated_swiglu_fwd_bf16(unsigned grid, unsigned block, const __nv_bfloat16* gate, const __nv_bfloat16* up,
                              __nv_bfloat16* out, size_t n) {
    LAUNCH(swiglu_fwd_bf16(gate, up, out, n));
}
void emulated_swiglu_bwd_f32(unsigned grid, unsigned block, const float* gate, const float* up, const float* grad,
                             float* grads, size_t n) {
    LAUNCH(swiglu_bwd_f32(gate, up, grad, grads, n));
}
void emulated_swiglu_bwd_bf16(unsigned grid, unsigned block, const __nv_bfloat16* gate, const __nv_bfloat16* up,
                              const __nv_bfloat16* grad, __nv_bfloat16* grads, size_t n) {
    LAUNCH(swiglu_bwd_bf16(gate, up, grad, grads, n));
}
void emulated_rms_norm_bwd_f32(unsigned grid, unsigned block, const float* x, const float* w, const float* grad,
                               float* dx, float* dw_rows, int want_dw, size_t rows, int dim, float eps) {
    LAUNCH(rms_norm_bwd_f32(x, w, grad, dx, dw_rows, want_dw, rows, dim, eps));
}
void emulated_rms_norm_bwd_bf16(unsigned grid, unsigned block, const __nv_bfloat16* x, const __nv_bfloat16* w,
                                const __nv_bfloat16* grad, __nv_bfloat16* dx, float* dw_rows, int want_dw, size_t rows,
                                int dim, float eps) {
    LAUNCH(rms_norm_bwd_bf16(x, w, grad, dx, dw_rows, want_dw, rows, dim, eps));
}
void emulated_dora_fwd_f32(unsigned grid, unsigned block, const float* q, const float* lr, const float* ratio,
                           const float* bias, float a, float s, float* out, size_t rows, int dim) {
    LAUNCH(dora_fwd_f32(q, lr, ratio, bias, a, s, out, rows, dim));
}
void emulated_dora_bwd_f32(unsigned grid, unsigned block, const float* q, const float* lr, const float* ratio,
                           const float* bias, const float* grad, float a, float s, float* grads, size_t rows, int dim) {
    LAUNCH(dora_bwd_f32(q, lr, ratio, bias, grad, a, s, grads, rows, dim));
}

void emulated_attn_visible(unsigned grid, unsigned block, const float* mask, unsigned* visible, size_t rows, int len) {
    LAUNCH(attn_visible_u32(mask, visible, rows, len));
}
}

// Attention: a grid of (query or key tiles, heads or KV heads, batch) blocks of ATT_THREADS threads.
#define ATTENTION(NAME, T)                                                                                         \
    extern "C" void emulated_attn_fwd_##NAME(int batch, const T* q, const T* k, const T* v, const float* mask,    \
                                             const unsigned* visible, T* out, float* lse, int len, int heads,      \
                                             int kv_heads, int d, float scale) {                                   \
        dim3 grid{unsigned((len + ATT_BQ - 1) / ATT_BQ), unsigned(heads), unsigned(batch)};                       \
        emulated_launch(grid, ATT_THREADS,                                                                         \
                        [=] { attn_fwd_##NAME(q, k, v, mask, visible, out, lse, len, heads, kv_heads, d, scale); });\
    }                                                                                                              \
    extern "C" void emulated_attn_bwd_##NAME(int batch, const T* q, const T* k, const T* v, const float* mask,    \
                                             const unsigned* visible, const T* grad, const float* lse,             \
                                             const float* row_dot, T* dq, T* dk, T* dv, int len, int heads,        \
                                             int kv_heads, int d, float scale) {                                   \
        dim3 queries{unsigned((len + ATT_BQ - 1) / ATT_BQ), unsigned(heads), unsigned(batch)};                    \
        emulated_launch(queries, ATT_THREADS, [=] {                                                                \
            attn_bwd_dq_##NAME(q, k, v, mask, visible, grad, lse, row_dot, dq, len, heads, kv_heads, d, scale);   \
        });                                                                                                        \
        dim3 keys{unsigned((len + ATT_BK - 1) / ATT_BK), unsigned(kv_heads), unsigned(batch)};                    \
        emulated_launch(keys, ATT_THREADS, [=] {                                                                   \
            attn_bwd_dkv_##NAME(q, k, v, mask, visible, grad, lse, row_dot, dk, dv, len, heads, kv_heads, d,      \
                                scale);                                                                            \
        });                                                                                                        \
    }

ATTENTION(f32, float)
ATTENTION(bf16, __nv_bfloat16)
