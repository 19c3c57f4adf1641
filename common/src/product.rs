//! One call into the gemm crate for the matrix products the stages compute outside candle.

use std::mem::MaybeUninit;

/// `out ← a @ b`: `a` `[m, k]` row-major, `b` `[k, n]` by its (row, column) strides, `out` `[m, n]`
/// row-major. Every element of `out` is written and none is read, so `out` may be uninitialised (a
/// `Vec`'s spare capacity: no zero-fill before the product overwrites it).
pub fn product_into(
    out: &mut [MaybeUninit<f32>],
    a: &[f32],
    (m, k, n): (usize, usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    parallelism: gemm::Parallelism,
) {
    assert_eq!(a.len(), m * k, "left operand");
    assert_eq!(out.len(), m * n, "output");
    assert!(
        k == 0 || n == 0 || (k - 1) * b_rs + (n - 1) * b_cs < b.len(),
        "right operand"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        out.fill(MaybeUninit::new(0.0));
        return;
    }
    // SAFETY: the strides describe the three buffers, whose extents were checked above; with `read_dst`
    // false gemm writes every element of `out` and reads none.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr() as *mut f32,
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// An initialised buffer as the output of [`product_into`], which only ever writes floats into it.
pub fn overwritten(out: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and `product_into` stores only initialised values,
    // so the buffer holds valid floats whenever the caller reads it again.
    unsafe { &mut *(out as *mut [f32] as *mut [MaybeUninit<f32>]) }
}
