//! Linear layers: a frozen projection, and DoRA's combination of base and low-rank outputs.

use candle_core::{Tensor, D};
use saha_common::product::product_into;

use super::{any_device, attach, column_sums, for_rows, for_rows2, supported, with_values};
use crate::error::Result;

/// `x @ Wᵀ + b` outside the graph: the output is detached, for callers through which no gradient flows
/// (`Linear::needs_graph`) or that attach their own backward (`frozen_linear`). On the CPU in f32 the
/// product goes straight into a fresh buffer and the bias is added in place: candle's matmul zero-fills
/// its output on the calling thread first (5% of an image batch) and adds the bias as a broadcast op.
/// Same products, same threads, same bits.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    // One [rows, in] x [in, out] product rather than one per leading index.
    let (out_dim, in_dim) = weight.dims2()?;
    let mut out_shape = x.dims().to_vec();
    *out_shape.last_mut().expect("x has dimensions") = out_dim;
    if !supported(x) || !supported(weight) {
        let out = x.detach().reshape(((), in_dim))?.matmul(&weight.t()?)?;
        let out = match bias {
            Some(b) => out.broadcast_add(b)?,
            None => out,
        };
        return Ok(out.reshape(out_shape)?);
    }
    let mut tensors = vec![x, weight];
    tensors.extend(bias);
    let out = with_values(&tensors, |v| {
        let rows = v[0].len() / in_dim;
        // Wᵀ `[in, out]` read in place from W `[out, in]`.
        let mut out = product(v[0], (rows, in_dim, out_dim), v[1], (1, in_dim));
        if let Some(bias) = v.get(2) {
            for_rows(&mut out, out_dim, |_, row| {
                for (o, b) in row.iter_mut().zip(bias.iter()) {
                    *o += b;
                }
            });
        }
        out
    })?;
    Ok(Tensor::from_vec(out, out_shape, x.device())?)
}

/// `a @ b` into a new buffer: `a` `[m, k]` row-major, `b` `[k, n]` by its (row, column) strides.
/// Threaded as candle threads its matmul, so the values are candle's to the bit.
fn product(a: &[f32], mkn: (usize, usize, usize), b: &[f32], b_strides: (usize, usize)) -> Vec<f32> {
    let len = mkn.0 * mkn.2;
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let mut out = Vec::with_capacity(len);
    product_into(&mut out.spare_capacity_mut()[..len], a, mkn, b, b_strides, parallelism);
    // SAFETY: `product_into` wrote all `len` elements.
    unsafe { out.set_len(len) };
    out
}

/// `x @ Wᵀ + b` for a weight and bias that are not trained: the backward computes the input's gradient
/// only (`grad @ W`), never the frozen weight's.
pub fn frozen_linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let out_dim = weight.dim(0)?;
    let out = linear(x, weight, bias)?;
    let weight = weight.detach();
    attach(
        "frozen-linear",
        &[x],
        out,
        Box::new(move |inputs, _, grad| {
            if !supported(grad) || !supported(&weight) {
                let rows = grad.reshape(((), out_dim))?.matmul(&weight)?;
                return Ok(vec![Some(rows.reshape(inputs[0].shape())?)]);
            }
            let in_dim = weight.dim(1)?;
            let rows = with_values(&[grad, &weight], |v| {
                product(v[0], (v[0].len() / out_dim, out_dim, in_dim), v[1], (in_dim, 1))
            })?;
            Ok(vec![Some(Tensor::from_vec(rows, inputs[0].shape(), grad.device())?)])
        }),
    )
}

/// DoRA's output from its parts, in one op: `out = a·q + (ratio − 1) ⊙ (q − bias) + s · ratio ⊙ lr`, per
/// output column. Without dropout PEFT reuses the base output: `q = base = W x + b` and `a = 1`, giving
/// the adapted layer's output. With dropout `q = W drop(x)`, `a = 0` and no bias, giving the delta to add
/// to the base output. `lr = B A drop(x)` `[rows, out]`, `ratio = m / ‖W + s B A‖` `[out]`.
/// Gradients: `dq = g ⊙ (a + ratio − 1)`, `dlr = s · g ⊙ ratio`, `dratio = Σ_rows g ⊙ (q − bias + s · lr)`.
pub fn dora_combine(
    q: &Tensor,
    lr: &Tensor,
    ratio: &Tensor,
    bias: Option<&Tensor>,
    scale: f64,
    q_is_base: bool,
) -> Result<Tensor> {
    if !supported(q) {
        return any_device::dora_combine(q, lr, ratio, bias, scale, q_is_base);
    }
    let dim = ratio.dim(0)?;
    let bias = match bias {
        Some(b) => b.to_vec1::<f32>()?,
        None => vec![0f32; dim],
    };
    let (a, s) = (if q_is_base { 1f32 } else { 0f32 }, scale as f32);
    let out = with_values(&[q, lr, &ratio.detach()], |v| {
        let (q, l, r) = (v[0], v[1], v[2]);
        let mut out = vec![0f32; q.len()];
        for_rows(&mut out, dim, |row, o| {
            let (q, l) = (&q[row * dim..][..dim], &l[row * dim..][..dim]);
            for c in 0..dim {
                o[c] = a * q[c] + (r[c] - 1.0) * (q[c] - bias[c]) + s * r[c] * l[c];
            }
        });
        out
    })?;
    let out = Tensor::from_vec(out, q.shape(), q.device())?;
    attach(
        "dora",
        &[q, lr, ratio],
        out,
        Box::new(move |inputs, _, grad| {
            let (shape, device) = (inputs[0].shape(), inputs[0].device());
            let (dq, dl, d_ratio) = with_values(&[&inputs[0], &inputs[1], &inputs[2], grad], |v| {
                let (q, l, r, g) = (v[0], v[1], v[2], v[3]);
                let (mut dq, mut dl) = (vec![0f32; q.len()], vec![0f32; q.len()]);
                for_rows2(&mut dq, &mut dl, dim, |row, dq, dl| {
                    let g = &g[row * dim..][..dim];
                    for c in 0..dim {
                        dq[c] = g[c] * (a + r[c] - 1.0);
                        dl[c] = s * g[c] * r[c];
                    }
                });
                let d_ratio = column_sums(q.len() / dim, dim, |row, acc| {
                    let i = row * dim;
                    let (q, l, g) = (&q[i..i + dim], &l[i..i + dim], &g[i..i + dim]);
                    for c in 0..dim {
                        acc[c] += g[c] * (q[c] - bias[c] + s * l[c]);
                    }
                });
                (dq, dl, d_ratio)
            })?;
            Ok(vec![
                Some(Tensor::from_vec(dq, shape, device)?),
                Some(Tensor::from_vec(dl, shape, device)?),
                Some(Tensor::from_vec(d_ratio, inputs[2].dim(D::Minus1)?, device)?),
            ])
        }),
    )
}
