// The kernels of model/kernels/fused.cu on the CPU: one C function per kernel that launches it on a
// one-dimensional grid of emulated threads.
#include "fused.cu"

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
}
