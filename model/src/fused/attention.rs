//! Attention: rotary embedding and the softmax-attention core.

use candle_core::Tensor;

use super::attend::decoder_attention;
use super::kernels::{masked_softmax_row, visible_len};
use super::{any_device, attach, for_rows, supported, with_values};
use crate::error::Result;

/// NeoX rotary embedding of `x` `[batch, heads, len, head_dim]` with tables `[batch, len, head_dim / 2]`.
/// A rotation's backward is the rotation by the opposite angle: `rope(grad, cos, −sin)`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !supported(x) {
        return any_device::rope(x, cos, sin);
    }
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

/// Head counts and size of a grouped-query attention.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// Self-attention from the projections to the input of the output projection, as one op: split into
/// heads, rotary embedding (`cos`, `sin` `[batch, len, head_dim / 2]`), `softmax(q kᵀ / √d + mask) v`
/// with grouped KV heads, and heads merged back. `q` is `[batch, len, heads · head_dim]`, `k` and `v`
/// `[batch, len, kv_heads · head_dim]`, `mask` additive `[batch, 1, len, len]` with `f32::MIN` where a
/// query may not look; the result is `[batch, len, heads · head_dim]`.
///
/// The forward is the inference kernel ([`decoder_attention`]). The backward works on the query heads
/// sharing a KV head stacked along the sequence, so one batched matmul serves the group without copying
/// K and V; the probabilities `p` are recomputed there rather than kept, so the graph holds no `len²`
/// tensor (only the op's inputs): `dv = pᵀ do`, `ds = p ⊙ (do vᵀ − rowsum(do ⊙ o)) / √d`,
/// `dq = ds k`, `dk = dsᵀ q`, then the rotations undone (`rope(·, cos, −sin)`).
pub fn self_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (cos, sin): (&Tensor, &Tensor),
    mask: &Tensor,
    h: Heads,
) -> Result<Tensor> {
    if !supported(q) {
        return any_device::self_attention(q, k, v, (cos, sin), mask, h);
    }
    let (b, len, _) = q.dims3()?;
    let group = h.heads / h.kv_heads;
    let scale = 1.0 / (h.head_dim as f64).sqrt();
    // [batch, len, n · d] -> [batch, n, len, d] and back.
    let split = move |t: &Tensor, n: usize| -> candle_core::Result<Tensor> {
        t.reshape((b, len, n, h.head_dim))?.transpose(1, 2)?.contiguous()
    };
    let merge = move |t: &Tensor, n: usize| -> candle_core::Result<Tensor> {
        t.reshape((b, n, len, h.head_dim))?
            .transpose(1, 2)?
            .reshape((b, len, n * h.head_dim))
    };
    let stacked = move |t: Tensor| t.reshape((b, h.kv_heads, group * len, h.head_dim));
    let mask = mask.detach();
    let (cos, sin) = (cos.detach(), sin.detach());
    let out = decoder_attention(&q.detach(), &k.detach(), &v.detach(), (&cos, &sin), &mask, h)?;
    let visible: Vec<usize> = with_values(&[&mask], |m| m[0].chunks(len).map(visible_len).collect())?;
    let neg_sin = sin.neg()?;
    attach(
        "self-attention",
        &[q, k, v],
        out,
        Box::new(move |inputs, out, grad| {
            let q_heads = stacked(candle_nn::rotary_emb::rope(&split(&inputs[0], h.heads)?, &cos, &sin)?)?;
            let k_heads = candle_nn::rotary_emb::rope(&split(&inputs[1], h.kv_heads)?, &cos, &sin)?;
            let v_heads = split(&inputs[2], h.kv_heads)?;
            let grad_heads = stacked(split(grad, h.heads)?)?;
            let probs = probabilities(&q_heads, &k_heads, &mask, &visible, scale).map_err(candle_core::Error::wrap)?;
            let grad_v = probs.t()?.matmul(&grad_heads)?;
            let grad_probs = grad_heads.matmul(&v_heads.t()?)?;
            // rowsum(do ⊙ o) per stacked row (batch, head, query), read in the merged layout.
            let (d, heads) = (h.head_dim, h.heads);
            let row_dot = with_values(&[out, grad], |t| {
                let (o, g) = (t[0], t[1]);
                let mut dots = vec![0f32; b * heads * len];
                for_rows(&mut dots, len, |bh, dots| {
                    let (batch, head) = (bh / heads, bh % heads);
                    for (i, dot) in dots.iter_mut().enumerate() {
                        let at = (batch * len + i) * heads * d + head * d;
                        *dot = o[at..at + d].iter().zip(&g[at..at + d]).map(|(a, b)| a * b).sum();
                    }
                });
                dots
            })?;
            let grad_scores = with_values(&[&probs, &grad_probs], |t| {
                let (p, dp) = (t[0], t[1]);
                let mut ds = vec![0f32; p.len()];
                let per_batch = heads * len;
                for_rows(&mut ds, len, |row, ds| {
                    // p is 0 past the visible part, and so is ds (a row with nothing visible is uniform).
                    let end = match visible[(row / per_batch) * len + row % len] {
                        0 => len,
                        v => v,
                    };
                    let (p, dp) = (&p[row * len..][..end], &dp[row * len..][..end]);
                    for j in 0..end {
                        ds[j] = p[j] * (dp[j] - row_dot[row]) * scale as f32;
                    }
                });
                ds
            })?;
            let grad_scores = Tensor::from_vec(grad_scores, probs.shape(), probs.device())?;
            let grad_q = grad_scores.matmul(&k_heads)?.reshape((b, h.heads, len, h.head_dim))?;
            let grad_k = grad_scores.t()?.matmul(&q_heads)?;
            let unrotate = |t: &Tensor| candle_nn::rotary_emb::rope(&t.contiguous()?, &cos, &neg_sin);
            Ok(vec![
                Some(merge(&unrotate(&grad_q)?, h.heads)?),
                Some(merge(&unrotate(&grad_k)?, h.kv_heads)?),
                Some(merge(&grad_v, h.kv_heads)?),
            ])
        }),
    )
}

/// `softmax(q kᵀ · scale + mask)` in the stacked-group layout `[batch, kv_heads, group · len, len]`, one
/// vectorised pass per row.
fn probabilities(q: &Tensor, k: &Tensor, mask: &Tensor, visible: &[usize], scale: f64) -> Result<Tensor> {
    let (b, kv_heads, rows, _) = q.dims4()?;
    let len = k.dim(2)?;
    let mut scores = q.matmul(&k.t()?)?.flatten_all()?.to_vec1::<f32>()?;
    let scale = scale as f32;
    let per_batch = kv_heads * rows;
    with_values(&[mask], |m| {
        let mask = m[0];
        for_rows(&mut scores, len, |row, x| {
            let at = (row / per_batch) * len + row % len;
            masked_softmax_row(x, &mask[at * len..][..len], visible[at], scale);
        });
    })?;
    Ok(Tensor::from_vec(scores, (b, kv_heads, rows, len), q.device())?)
}
