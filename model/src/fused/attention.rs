//! Attention: rotary embedding and the softmax-attention core.

use candle_core::Tensor;

use super::kernels::masked_softmax_row;
use super::{attach, for_rows, with_values};
use crate::error::Result;

/// NeoX rotary embedding of `x` `[batch, heads, len, head_dim]` with tables `[batch, len, head_dim / 2]`.
/// A rotation's backward is the rotation by the opposite angle: `rope(grad, cos, −sin)`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let out = candle_nn::rotary_emb::rope(&x.detach().contiguous()?, cos, sin)?;
    let (cos, neg_sin) = (cos.detach(), sin.detach().neg()?);
    attach(
        "rope",
        &[x],
        out,
        Box::new(move |_, _, grad| {
            Ok(vec![Some(candle_nn::rotary_emb::rope(
                &grad.contiguous()?,
                &cos,
                &neg_sin,
            )?)])
        }),
    )
}

/// Grouped-query attention core: `softmax(q kᵀ · scale + mask) v`.
///
/// `q` is `[batch, kv_heads, group · len, head_dim]` (the query heads sharing a KV head stacked along
/// the sequence), `k` and `v` `[batch, kv_heads, len, head_dim]`, `mask` additive `[batch, 1, len, len]`
/// with `f32::MIN` where a query may not look. The probabilities `p` are recomputed in the backward
/// rather than kept, so the graph holds no `len²` tensor: `dv = pᵀ do`, `ds = p ⊙ (do vᵀ − rowsum(do ⊙ o))
/// · scale`, `dq = ds k`, `dk = dsᵀ q`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let mask = mask.detach();
    let probs = probabilities(&q.detach(), &k.detach(), &mask, scale)?;
    let out = probs.matmul(&v.detach())?;
    attach(
        "attention",
        &[q, k, v],
        out,
        Box::new(move |inputs, out, grad_out| {
            let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
            let grad_out = grad_out.contiguous()?;
            let probs = probabilities(q, k, &mask, scale).map_err(candle_core::Error::wrap)?;
            let grad_v = probs.t()?.matmul(&grad_out)?;
            let grad_probs = grad_out.matmul(&v.t()?)?;
            let len = probs.dim(3)?;
            let head_dim = out.dim(3)?;
            let grad_scores = with_values(&[&probs, &grad_probs, out, &grad_out], |t| {
                let (p, dp, o, d_o) = (t[0], t[1], t[2], t[3]);
                let mut ds = vec![0f32; p.len()];
                for_rows(&mut ds, len, |row, ds| {
                    let (o, d_o) = (&o[row * head_dim..][..head_dim], &d_o[row * head_dim..][..head_dim]);
                    let row_dot: f32 = o.iter().zip(d_o).map(|(a, b)| a * b).sum();
                    let (p, dp) = (&p[row * len..][..len], &dp[row * len..][..len]);
                    for j in 0..len {
                        ds[j] = p[j] * (dp[j] - row_dot) * scale as f32;
                    }
                });
                ds
            })?;
            let grad_scores = Tensor::from_vec(grad_scores, probs.shape(), probs.device())?;
            let grad_q = grad_scores.matmul(k)?;
            let grad_k = grad_scores.t()?.matmul(q)?;
            Ok(vec![Some(grad_q), Some(grad_k), Some(grad_v)])
        }),
    )
}

/// `softmax(q kᵀ · scale + mask)` in the stacked-group layout `[batch, kv_heads, group · len, len]`, one
/// vectorised pass per row.
fn probabilities(q: &Tensor, k: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, kv_heads, rows, _) = q.dims4()?;
    let len = k.dim(2)?;
    let mut scores = q.matmul(&k.t()?)?.flatten_all()?.to_vec1::<f32>()?;
    let scale = scale as f32;
    let per_batch = kv_heads * rows;
    with_values(&[mask], |m| {
        let mask = m[0];
        for_rows(&mut scores, len, |row, x| {
            let (batch, query) = (row / per_batch, row % len);
            masked_softmax_row(x, &mask[(batch * len + query) * len..][..len], scale);
        });
    })?;
    Ok(Tensor::from_vec(scores, (b, kv_heads, rows, len), q.device())?)
}
