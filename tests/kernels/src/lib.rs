//! Safe calls into the CUDA kernels of `model/kernels/fused.cu`, compiled for the CPU with every CUDA
//! thread an OS thread (`model/kernels/emulated.h`), so CI checks the kernels' arithmetic, indexing and
//! synchronisation without a GPU. The same sources run on the GPU through `saha_model::fused` (CUDA
//! builds), where `scripts/gpu/check.sh` compares them with the CPU ops again.

use half::bf16;

/// Blocks and threads per block of a one-dimensional launch.
#[derive(Debug, Clone, Copy)]
pub struct Launch {
    pub blocks: u32,
    pub threads: u32,
}

mod ffi {
    use half::bf16;

    extern "C" {
        pub fn emulated_attn_visible(g: u32, b: u32, mask: *const f32, visible: *mut u32, rows: usize, len: i32);
        pub fn emulated_swiglu_fwd_f32(g: u32, b: u32, gate: *const f32, up: *const f32, out: *mut f32, n: usize);
        pub fn emulated_swiglu_fwd_bf16(g: u32, b: u32, gate: *const bf16, up: *const bf16, out: *mut bf16, n: usize);
        pub fn emulated_swiglu_bwd_f32(
            g: u32,
            b: u32,
            gate: *const f32,
            up: *const f32,
            grad: *const f32,
            grads: *mut f32,
            n: usize,
        );
        pub fn emulated_swiglu_bwd_bf16(
            g: u32,
            b: u32,
            gate: *const bf16,
            up: *const bf16,
            grad: *const bf16,
            grads: *mut bf16,
            n: usize,
        );
        pub fn emulated_rms_norm_bwd_f32(
            g: u32,
            b: u32,
            x: *const f32,
            w: *const f32,
            grad: *const f32,
            dx: *mut f32,
            dw_rows: *mut f32,
            want_dw: i32,
            rows: usize,
            dim: i32,
            eps: f32,
        );
        pub fn emulated_rms_norm_bwd_bf16(
            g: u32,
            b: u32,
            x: *const bf16,
            w: *const bf16,
            grad: *const bf16,
            dx: *mut bf16,
            dw_rows: *mut f32,
            want_dw: i32,
            rows: usize,
            dim: i32,
            eps: f32,
        );
        pub fn emulated_dora_fwd_f32(
            g: u32,
            b: u32,
            q: *const f32,
            lr: *const f32,
            ratio: *const f32,
            bias: *const f32,
            a: f32,
            s: f32,
            out: *mut f32,
            rows: usize,
            dim: i32,
        );
        pub fn emulated_dora_bwd_f32(
            g: u32,
            b: u32,
            q: *const f32,
            lr: *const f32,
            ratio: *const f32,
            bias: *const f32,
            grad: *const f32,
            a: f32,
            s: f32,
            grads: *mut f32,
            rows: usize,
            dim: i32,
        );
    }
}

/// An emulated SwiGLU forward launch: grid, block, gate, up, out, elements.
pub type SwigluForward<T> = unsafe extern "C" fn(u32, u32, *const T, *const T, *mut T, usize);
/// An emulated SwiGLU backward launch: grid, block, gate, up, output gradient, gate-and-up gradient, elements.
pub type SwigluBackward<T> = unsafe extern "C" fn(u32, u32, *const T, *const T, *const T, *mut T, usize);
/// An emulated RMSNorm backward launch (see `rms_norm_bwd` in fused.cu for the arguments).
pub type RmsNormBackward<T> =
    unsafe extern "C" fn(u32, u32, *const T, *const T, *const T, *mut T, *mut f32, i32, usize, i32, f32);

/// `emulated_attn_fwd_*`: `(batch, q, k, v, mask, visible, out, lse, len, heads, kv_heads, d, scale)`.
pub type AttentionForward<T> = unsafe extern "C" fn(
    i32,
    *const T,
    *const T,
    *const T,
    *const f32,
    *const u32,
    *mut T,
    *mut f32,
    i32,
    i32,
    i32,
    i32,
    f32,
);
/// `emulated_attn_bwd_*`: `(batch, q, k, v, mask, visible, grad, lse, row_dot, dq, dk, dv, len, heads,
/// kv_heads, d, scale)`.
pub type AttentionBackward<T> = unsafe extern "C" fn(
    i32,
    *const T,
    *const T,
    *const T,
    *const f32,
    *const u32,
    *const T,
    *const f32,
    *const f32,
    *mut T,
    *mut T,
    *mut T,
    i32,
    i32,
    i32,
    i32,
    f32,
);

extern "C" {
    fn emulated_attn_fwd_f32(
        batch: i32,
        q: *const f32,
        k: *const f32,
        v: *const f32,
        mask: *const f32,
        visible: *const u32,
        out: *mut f32,
        lse: *mut f32,
        len: i32,
        heads: i32,
        kv_heads: i32,
        d: i32,
        scale: f32,
    );
    fn emulated_attn_fwd_bf16(
        batch: i32,
        q: *const bf16,
        k: *const bf16,
        v: *const bf16,
        mask: *const f32,
        visible: *const u32,
        out: *mut bf16,
        lse: *mut f32,
        len: i32,
        heads: i32,
        kv_heads: i32,
        d: i32,
        scale: f32,
    );
    fn emulated_attn_bwd_f32(
        batch: i32,
        q: *const f32,
        k: *const f32,
        v: *const f32,
        mask: *const f32,
        visible: *const u32,
        grad: *const f32,
        lse: *const f32,
        row_dot: *const f32,
        dq: *mut f32,
        dk: *mut f32,
        dv: *mut f32,
        len: i32,
        heads: i32,
        kv_heads: i32,
        d: i32,
        scale: f32,
    );
    fn emulated_attn_bwd_bf16(
        batch: i32,
        q: *const bf16,
        k: *const bf16,
        v: *const bf16,
        mask: *const f32,
        visible: *const u32,
        grad: *const bf16,
        lse: *const f32,
        row_dot: *const f32,
        dq: *mut bf16,
        dk: *mut bf16,
        dv: *mut bf16,
        len: i32,
        heads: i32,
        kv_heads: i32,
        d: i32,
        scale: f32,
    );
}

/// An element type the row kernels are instantiated for.
pub trait Element: Copy + Default {
    #[doc(hidden)]
    const SWIGLU_FWD: SwigluForward<Self>;
    #[doc(hidden)]
    const SWIGLU_BWD: SwigluBackward<Self>;
    #[doc(hidden)]
    const RMS_NORM_BWD: RmsNormBackward<Self>;
    #[doc(hidden)]
    const ATTN_FWD: AttentionForward<Self>;
    #[doc(hidden)]
    const ATTN_BWD: AttentionBackward<Self>;
}

impl Element for f32 {
    const ATTN_FWD: AttentionForward<Self> = emulated_attn_fwd_f32;
    const ATTN_BWD: AttentionBackward<Self> = emulated_attn_bwd_f32;
    const SWIGLU_FWD: SwigluForward<Self> = ffi::emulated_swiglu_fwd_f32;
    const SWIGLU_BWD: SwigluBackward<Self> = ffi::emulated_swiglu_bwd_f32;
    const RMS_NORM_BWD: RmsNormBackward<Self> = ffi::emulated_rms_norm_bwd_f32;
}

impl Element for bf16 {
    const ATTN_FWD: AttentionForward<Self> = emulated_attn_fwd_bf16;
    const ATTN_BWD: AttentionBackward<Self> = emulated_attn_bwd_bf16;
    const SWIGLU_FWD: SwigluForward<Self> = ffi::emulated_swiglu_fwd_bf16;
    const SWIGLU_BWD: SwigluBackward<Self> = ffi::emulated_swiglu_bwd_bf16;
    const RMS_NORM_BWD: RmsNormBackward<Self> = ffi::emulated_rms_norm_bwd_bf16;
}

/// `silu(gate) ⊙ up`.
pub fn swiglu_fwd<T: Element>(l: Launch, gate: &[T], up: &[T]) -> Vec<T> {
    assert_eq!(gate.len(), up.len());
    let mut out = vec![T::default(); gate.len()];
    // SAFETY: every pointer covers the `n` elements the kernel reads or writes.
    unsafe {
        T::SWIGLU_FWD(
            l.blocks,
            l.threads,
            gate.as_ptr(),
            up.as_ptr(),
            out.as_mut_ptr(),
            gate.len(),
        )
    };
    out
}

/// `(d gate, d up)`.
pub fn swiglu_bwd<T: Element>(l: Launch, gate: &[T], up: &[T], grad: &[T]) -> (Vec<T>, Vec<T>) {
    let n = gate.len();
    assert!(up.len() == n && grad.len() == n);
    let mut grads = vec![T::default(); 2 * n];
    // SAFETY: as above; `grads` holds 2n.
    unsafe {
        T::SWIGLU_BWD(
            l.blocks,
            l.threads,
            gate.as_ptr(),
            up.as_ptr(),
            grad.as_ptr(),
            grads.as_mut_ptr(),
            n,
        )
    };
    let d_up = grads.split_off(n);
    (grads, d_up)
}

/// `(dx, each row's share of dw)` (the second when `want_dw`); `l.threads` must be a power of two up to 256.
pub fn rms_norm_bwd<T: Element>(
    l: Launch,
    x: &[T],
    w: &[T],
    grad: &[T],
    eps: f32,
    want_dw: bool,
) -> (Vec<T>, Option<Vec<f32>>) {
    let dim = w.len();
    assert!(x.len() % dim == 0 && grad.len() == x.len());
    assert!(l.threads.is_power_of_two() && l.threads <= 256);
    let mut dx = vec![T::default(); x.len()];
    let mut dw_rows = vec![0f32; if want_dw { x.len() } else { 1 }];
    // SAFETY: as above; `dw_rows` is written only when `want_dw`.
    unsafe {
        T::RMS_NORM_BWD(
            l.blocks,
            l.threads,
            x.as_ptr(),
            w.as_ptr(),
            grad.as_ptr(),
            dx.as_mut_ptr(),
            dw_rows.as_mut_ptr(),
            want_dw as i32,
            x.len() / dim,
            dim as i32,
            eps,
        )
    };
    (dx, want_dw.then_some(dw_rows))
}

/// DoRA's `a q + (ratio − 1)(q − bias) + s ratio lr`.
pub fn dora_fwd(l: Launch, q: &[f32], lr: &[f32], ratio: &[f32], bias: &[f32], a: f32, s: f32) -> Vec<f32> {
    let dim = ratio.len();
    assert!(bias.len() == dim && q.len() % dim == 0 && lr.len() == q.len());
    let mut out = vec![0f32; q.len()];
    // SAFETY: as above.
    unsafe {
        ffi::emulated_dora_fwd_f32(
            l.blocks,
            l.threads,
            q.as_ptr(),
            lr.as_ptr(),
            ratio.as_ptr(),
            bias.as_ptr(),
            a,
            s,
            out.as_mut_ptr(),
            q.len() / dim,
            dim as i32,
        )
    };
    out
}

/// DoRA's `(dq, dlr, each row's share of d ratio)`.
#[allow(clippy::too_many_arguments)]
pub fn dora_bwd(
    l: Launch,
    q: &[f32],
    lr: &[f32],
    ratio: &[f32],
    bias: &[f32],
    grad: &[f32],
    a: f32,
    s: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (dim, n) = (ratio.len(), q.len());
    assert!(bias.len() == dim && n % dim == 0 && lr.len() == n && grad.len() == n);
    let mut grads = vec![0f32; 3 * n];
    // SAFETY: as above; `grads` holds 3n.
    unsafe {
        ffi::emulated_dora_bwd_f32(
            l.blocks,
            l.threads,
            q.as_ptr(),
            lr.as_ptr(),
            ratio.as_ptr(),
            bias.as_ptr(),
            grad.as_ptr(),
            a,
            s,
            grads.as_mut_ptr(),
            n / dim,
            dim as i32,
        )
    };
    let d_ratio_rows = grads.split_off(2 * n);
    let dl = grads.split_off(n);
    (grads, dl, d_ratio_rows)
}

/// Sizes of an attention problem: q `[batch, len, heads, d]`, k and v `[batch, len, kv_heads, d]`, mask
/// `[batch, len, len]`.
#[derive(Debug, Clone, Copy)]
pub struct Attention {
    pub batch: usize,
    pub len: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub d: usize,
}

impl Attention {
    fn check<T>(&self, q: &[T], k: &[T], v: &[T], mask: &[f32]) {
        let rows = self.batch * self.len;
        assert!(q.len() == rows * self.heads * self.d && k.len() == rows * self.kv_heads * self.d);
        assert!(v.len() == k.len() && mask.len() == rows * self.len && self.d <= 128);
        assert!(self.heads % self.kv_heads == 0);
    }

    fn scale(&self) -> f32 {
        1.0 / (self.d as f32).sqrt()
    }

    /// One past each query row's last unmasked key.
    pub fn visible(&self, mask: &[f32]) -> Vec<u32> {
        let rows = self.batch * self.len;
        assert_eq!(mask.len(), rows * self.len);
        let mut visible = vec![0u32; rows];
        // SAFETY: `mask` holds rows x len values, `visible` rows.
        unsafe { ffi::emulated_attn_visible(2, 64, mask.as_ptr(), visible.as_mut_ptr(), rows, self.len as i32) };
        visible
    }

    /// `(out, lse)`: `[batch, len, heads, d]` and `[batch, len, heads]`.
    pub fn forward<T: Element>(&self, q: &[T], k: &[T], v: &[T], mask: &[f32]) -> (Vec<T>, Vec<f32>) {
        self.check(q, k, v, mask);
        let visible = self.visible(mask);
        let mut out = vec![T::default(); q.len()];
        let mut lse = vec![0f32; self.batch * self.len * self.heads];
        // SAFETY: every buffer has the size `check` asserts for the kernel's indexing.
        unsafe {
            T::ATTN_FWD(
                self.batch as i32,
                q.as_ptr(),
                k.as_ptr(),
                v.as_ptr(),
                mask.as_ptr(),
                visible.as_ptr(),
                out.as_mut_ptr(),
                lse.as_mut_ptr(),
                self.len as i32,
                self.heads as i32,
                self.kv_heads as i32,
                self.d as i32,
                self.scale(),
            )
        };
        (out, lse)
    }

    /// `(dq, dk, dv)` for the output gradient `grad`, from the forward's `lse` and `row_dot` =
    /// rowsum(grad ⊙ out) `[batch, len, heads]`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Element>(
        &self,
        q: &[T],
        k: &[T],
        v: &[T],
        mask: &[f32],
        grad: &[T],
        lse: &[f32],
        row_dot: &[f32],
    ) -> (Vec<T>, Vec<T>, Vec<T>) {
        self.check(q, k, v, mask);
        assert!(grad.len() == q.len() && lse.len() == q.len() / self.d && row_dot.len() == lse.len());
        let visible = self.visible(mask);
        let (mut dq, mut dk, mut dv) = (
            vec![T::default(); q.len()],
            vec![T::default(); k.len()],
            vec![T::default(); v.len()],
        );
        // SAFETY: as above.
        unsafe {
            T::ATTN_BWD(
                self.batch as i32,
                q.as_ptr(),
                k.as_ptr(),
                v.as_ptr(),
                mask.as_ptr(),
                visible.as_ptr(),
                grad.as_ptr(),
                lse.as_ptr(),
                row_dot.as_ptr(),
                dq.as_mut_ptr(),
                dk.as_mut_ptr(),
                dv.as_mut_ptr(),
                self.len as i32,
                self.heads as i32,
                self.kv_heads as i32,
                self.d as i32,
                self.scale(),
            )
        };
        (dq, dk, dv)
    }
}
