//! The training ops for every device and dtype but f32 on the CPU (which has kernels of its own): the
//! CUDA path, and bf16 anywhere. Built from candle's ops, which have CUDA kernels and cuBLAS products,
//! with the structure of the CPU ops: the forward runs outside the graph on the composite form's
//! arithmetic (same ops, same dtypes, so the same values), only the inputs stay in the graph, and the
//! backward computes just the gradients that are needed, in f32 where the composite form's autograd
//! would round twice. Attention recomputes its probabilities in the backward a block of query rows at
//! a time, so neither the graph nor the backward holds a `len x len` tensor per head.

use candle_core::{DType, Tensor, D};

use super::{attach, Heads};
use crate::error::Result;

/// Score elements (`batch · heads · rows · len`) one block of attention rows may hold.
const SCORE_BUDGET: usize = 1 << 25;

/// RMSNorm as the composite form computes it (statistics in f32, the normalised values cast back
/// before the weight), with `dx` from the f32 values: `dx = r gn − x r³ mean(gn ⊙ x)` where
/// `gn = grad ⊙ w`, and `dw = Σ_rows grad ⊙ normed` when the weight is trained.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    // On CUDA the backward is fused.cu's kernel.
    #[cfg(feature = "cuda")]
    let on_kernel = super::cuda::serves(x) && x.dtype() == weight.dtype();
    let dtype = x.dtype();
    let rms =
        move |x32: &Tensor| -> candle_core::Result<Tensor> { (x32.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt() };
    let x32 = x.detach().to_dtype(DType::F32)?;
    let normed = x32.broadcast_div(&rms(&x32)?)?.to_dtype(dtype)?;
    let out = normed.broadcast_mul(&weight.detach())?;
    let weight_trained = weight.track_op();
    attach(
        "rms-norm",
        &[x, weight],
        out,
        Box::new(move |inputs, _, grad| {
            let (x, w) = (&inputs[0], &inputs[1]);
            #[cfg(feature = "cuda")]
            if on_kernel {
                let (dx, dw) = super::cuda::rms_norm_backward(x, w, grad, eps as f32, weight_trained)?;
                return Ok(vec![Some(dx), dw.map(|dw| dw.to_dtype(w.dtype())).transpose()?]);
            }
            let x32 = x.to_dtype(DType::F32)?;
            let rms = rms(&x32)?;
            let r = rms.recip()?;
            let grad32 = grad.to_dtype(DType::F32)?;
            let gn = grad32.broadcast_mul(&w.to_dtype(DType::F32)?)?;
            let mean_gx = (&gn * &x32)?.mean_keepdim(D::Minus1)?;
            let dx = (gn.broadcast_mul(&r)? - x32.broadcast_mul(&(r.powf(3.0)? * mean_gx)?)?)?;
            let dw = if weight_trained {
                let normed = x32.broadcast_div(&rms)?.to_dtype(dtype)?.to_dtype(DType::F32)?;
                let dim = w.dim(0)?;
                let rows = (grad32 * normed)?.reshape(((), dim))?;
                Some(rows.sum(0)?.to_dtype(w.dtype())?)
            } else {
                None
            };
            Ok(vec![Some(dx.to_dtype(x.dtype())?), dw])
        }),
    )
}

/// SwiGLU's `silu(gate) ⊙ up` as the composite form computes it, with the gradients from f32 values:
/// `d gate = grad ⊙ up ⊙ σ(g)(1 + g(1 − σ(g)))`, `d up = grad ⊙ silu(g)`.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if super::cuda::serves(gate) && gate.dtype() == up.dtype() {
        let out = super::cuda::swiglu_forward(&gate.detach(), &up.detach())?;
        return attach(
            "swiglu",
            &[gate, up],
            out,
            Box::new(|inputs, _, grad| {
                let (d_gate, d_up) = super::cuda::swiglu_backward(&inputs[0], &inputs[1], grad)?;
                Ok(vec![Some(d_gate), Some(d_up)])
            }),
        );
    }
    let out = (gate.detach().silu()? * up.detach())?;
    attach(
        "swiglu",
        &[gate, up],
        out,
        Box::new(|inputs, _, grad| {
            let dtype = inputs[0].dtype();
            let g = inputs[0].to_dtype(DType::F32)?;
            let u = inputs[1].to_dtype(DType::F32)?;
            let d = grad.to_dtype(DType::F32)?;
            let sigmoid = candle_nn::ops::sigmoid(&g)?;
            let slope = (&sigmoid * ((&g * (1.0 - &sigmoid)?)? + 1.0)?)?;
            let d_gate = ((&d * &u)? * slope)?;
            let d_up = (d * (g * sigmoid)?)?;
            Ok(vec![Some(d_gate.to_dtype(dtype)?), Some(d_up.to_dtype(dtype)?)])
        }),
    )
}

/// DoRA's combination (see [`super::dora_combine`]) in f32 on any device.
pub fn dora_combine(
    q: &Tensor,
    lr: &Tensor,
    ratio: &Tensor,
    bias: Option<&Tensor>,
    scale: f64,
    q_is_base: bool,
) -> Result<Tensor> {
    let a = if q_is_base { 1.0 } else { 0.0 };
    #[cfg(feature = "cuda")]
    if super::cuda::serves(q) && q.dtype() == DType::F32 && q.rank() == 2 {
        let bias = match bias {
            Some(b) => b.detach(),
            None => ratio.zeros_like()?,
        };
        let params = move |ratio: &Tensor| Tensor::stack(&[ratio, &bias], 0);
        let out = super::cuda::dora_forward(
            &q.detach(),
            &lr.detach(),
            &params(&ratio.detach())?,
            a as f32,
            scale as f32,
        )?;
        return attach(
            "dora",
            &[q, lr, ratio],
            out,
            Box::new(move |inputs, _, grad| {
                let (q, lr) = (&inputs[0], &inputs[1]);
                let (dq, dl, d_ratio) =
                    super::cuda::dora_backward(q, lr, &params(&inputs[2])?, grad, a as f32, scale as f32)?;
                Ok(vec![Some(dq), Some(dl), Some(d_ratio)])
            }),
        );
    }
    let bias = bias.map(Tensor::detach);
    let less_bias = move |q: &Tensor| -> candle_core::Result<Tensor> {
        match &bias {
            Some(b) => q.broadcast_sub(b),
            None => Ok(q.clone()),
        }
    };
    let (q0, lr0, ratio0) = (q.detach(), lr.detach(), ratio.detach());
    let out = ((q0.affine(a, 0.0)? + less_bias(&q0)?.broadcast_mul(&(&ratio0 - 1.0)?)?)?
        + (lr0 * scale)?.broadcast_mul(&ratio0)?)?;
    attach(
        "dora",
        &[q, lr, ratio],
        out,
        Box::new(move |inputs, _, grad| {
            let (q, lr, ratio) = (&inputs[0], &inputs[1], &inputs[2]);
            let dq = grad.broadcast_mul(&(ratio + (a - 1.0))?)?;
            let dl = (grad.broadcast_mul(ratio)? * scale)?;
            let d_ratio = (grad * (less_bias(q)? + (lr * scale)?)?)?.sum(0)?;
            Ok(vec![Some(dq), Some(dl), Some(d_ratio)])
        }),
    )
}

/// NeoX rotary embedding as the composite form computes it (in f32, cast back); the backward rotates
/// the gradient by the opposite angle.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let out = rotate(&x.detach(), cos, sin)?;
    let (cos, neg_sin) = (cos.detach(), sin.detach().neg()?);
    attach(
        "rope",
        &[x],
        out,
        Box::new(move |_, _, grad| Ok(vec![Some(rotate(grad, &cos, &neg_sin)?)])),
    )
}

fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let x32 = x.to_dtype(DType::F32)?.contiguous()?;
    candle_nn::rotary_emb::rope(&x32, cos, sin)?.to_dtype(x.dtype())
}

/// Self-attention as [`super::self_attention`] defines it, on any device and dtype: the scores as the
/// composite form computes them (`q kᵀ / √d` in the input dtype, then f32 with the mask), softmax in
/// f32, probabilities cast back for the product with V. Query rows go in blocks of at most
/// [`SCORE_BUDGET`] scores.
pub fn self_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (cos, sin): (&Tensor, &Tensor),
    mask: &Tensor,
    h: Heads,
) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if super::cuda::serves(q) && h.head_dim <= super::cuda::ATTENTION_MAX_HEAD_DIM && tiled_attention_chosen() {
        return self_attention_tiled(q, k, v, (cos, sin), mask, h);
    }
    let (b, len, _) = q.dims3()?;
    let rows = (SCORE_BUDGET / (b * h.heads * len).max(1)).clamp(1, len);
    self_attention_in_blocks(q, k, v, (cos, sin), mask, h, rows)
}

/// Whether training on CUDA attends with the tiled kernels of model/kernels/attention.cu
/// (`SAHA_ATTENTION=tiled`) rather than in blocks of candle's ops (cuBLAS products). Both keep no
/// `len x len` tensor in the graph; the kernels keep none in memory at all but use CUDA cores only, so
/// which is faster is for the GPU check (scripts/gpu/check.sh) to measure.
#[cfg(feature = "cuda")]
fn tiled_attention_chosen() -> bool {
    std::env::var("SAHA_ATTENTION").is_ok_and(|v| v == "tiled")
}

/// [`self_attention`] on the tiled CUDA kernels (see [`self_attention_tiled_with`]). CUDA f32 or bf16,
/// head size at most 128.
#[cfg(feature = "cuda")]
pub fn self_attention_tiled(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (cos, sin): (&Tensor, &Tensor),
    mask: &Tensor,
    h: Heads,
) -> Result<Tensor> {
    self_attention_tiled_with(super::cuda::TiledAttention, q, k, v, (cos, sin), mask, h)
}

/// The kernels of a tiled attention, over rotated q `[batch, len, heads, d]`, k and v `[batch, len,
/// kv_heads, d]` and the additive mask `[batch, 1, len, len]` (f32): the CUDA kernels of
/// model/kernels/attention.cu, or (in CI) the same sources compiled for the CPU.
pub trait TiledAttentionKernels: Send + Sync + 'static {
    /// `(out, lse)`: out like q, each row's log-sum-exp `[batch, len, heads]` f32.
    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> candle_core::Result<(Tensor, Tensor)>;
    /// `(dq, dk, dv)` (of the rotated q and k) for the output gradient `grad` (like q), from the
    /// forward's `lse` and `row_dot` = rowsum(grad ⊙ out) `[batch, len, heads]` f32.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
        grad: &Tensor,
        lse: &Tensor,
        row_dot: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)>;
}

/// [`self_attention`] on tiled kernels: rotations with candle's kernel in the token-major layout (in
/// f32, as the composite form), the forward kernel's output and log-sum-exp, and a backward that
/// recomputes the probabilities tile by tile; the rotations are undone on dq and dk.
pub fn self_attention_tiled_with<K: TiledAttentionKernels>(
    kernels: K,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (cos, sin): (&Tensor, &Tensor),
    mask: &Tensor,
    h: Heads,
) -> Result<Tensor> {
    let (b, len, _) = q.dims3()?;
    let d = h.head_dim;
    let as_heads = move |t: &Tensor, n: usize| t.reshape((b, len, n, d));
    let merged = move |t: &Tensor, n: usize| t.reshape((b, len, n * d));
    // Rotation of [batch, len, heads, d] in f32, cast back.
    let rotate = |t: &Tensor, cos: &Tensor, sin: &Tensor| -> candle_core::Result<Tensor> {
        let t32 = t.to_dtype(DType::F32)?.contiguous()?;
        candle_nn::rotary_emb::rope_thd(&t32, cos, sin)?.to_dtype(t.dtype())
    };
    let (cos, sin) = (cos.detach(), sin.detach());
    let neg_sin = sin.neg()?;
    let mask = mask.detach().to_dtype(DType::F32)?.contiguous()?;
    let tables = (cos.clone(), sin);
    let heads = move |q: &Tensor, k: &Tensor, v: &Tensor| -> candle_core::Result<[Tensor; 3]> {
        let (cos, sin) = &tables;
        Ok([
            rotate(&as_heads(q, h.heads)?, cos, sin)?,
            rotate(&as_heads(k, h.kv_heads)?, cos, sin)?,
            as_heads(v, h.kv_heads)?,
        ])
    };
    let [qh, kh, vh] = heads(&q.detach(), &k.detach(), &v.detach())?;
    let (out, lse) = kernels.forward(&qh, &kh, &vh, &mask)?;
    let out = merged(&out, h.heads)?;
    attach(
        "self-attention",
        &[q, k, v],
        out,
        Box::new(move |inputs, out, grad| {
            let [qh, kh, vh] = heads(&inputs[0], &inputs[1], &inputs[2])?;
            let grad_heads = as_heads(grad, h.heads)?;
            let row_dot = (grad_heads.to_dtype(DType::F32)? * as_heads(out, h.heads)?.to_dtype(DType::F32)?)?.sum(3)?;
            let (dq, dk, dv) = kernels.backward(&qh, &kh, &vh, &mask, &grad_heads, &lse, &row_dot)?;
            let (cos, neg_sin) = (&cos, &neg_sin);
            Ok(vec![
                Some(merged(&rotate(&dq, cos, neg_sin)?, h.heads)?),
                Some(merged(&rotate(&dk, cos, neg_sin)?, h.kv_heads)?),
                Some(merged(&dv, h.kv_heads)?),
            ])
        }),
    )
}

/// [`self_attention`] with `block` query rows at a time (tests choose small blocks).
pub fn self_attention_in_blocks(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (cos, sin): (&Tensor, &Tensor),
    mask: &Tensor,
    h: Heads,
    block: usize,
) -> Result<Tensor> {
    let (b, len, _) = q.dims3()?;
    let attention = Attention {
        b,
        len,
        h,
        block,
        mask: mask.detach(),
        cos: cos.detach(),
        sin: sin.detach(),
    };
    let (q_heads, k_heads, v_heads) = attention.heads(&q.detach(), &k.detach(), &v.detach())?;
    let mut out = Vec::new();
    for (start, rows) in attention.blocks() {
        let probs = attention.probabilities(&q_heads, &k_heads, start, rows)?;
        let probs = attention.stacked(&probs.to_dtype(v_heads.dtype())?, rows)?;
        out.push(attention.unstacked(&probs.matmul(&v_heads)?, rows)?);
    }
    let out = attention.merge(&Tensor::cat(&out, 2)?, h.heads)?;
    attach(
        "self-attention",
        &[q, k, v],
        out,
        Box::new(move |inputs, out, grad| attention.backward(inputs, out, grad).map_err(candle_core::Error::wrap)),
    )
}

/// One self-attention's sizes and constant inputs.
struct Attention {
    b: usize,
    len: usize,
    h: Heads,
    block: usize,
    mask: Tensor,
    cos: Tensor,
    sin: Tensor,
}

impl Attention {
    fn group(&self) -> usize {
        self.h.heads / self.h.kv_heads
    }

    /// `(start, rows)` of each block of query rows.
    fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.len)
            .step_by(self.block)
            .map(|start| (start, self.block.min(self.len - start)))
    }

    /// `[batch, len, n · d]` to `[batch, n, len, d]`.
    fn split(&self, t: &Tensor, n: usize) -> candle_core::Result<Tensor> {
        t.reshape((self.b, self.len, n, self.h.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// `[batch, n, len, d]` to `[batch, len, n · d]`.
    fn merge(&self, t: &Tensor, n: usize) -> candle_core::Result<Tensor> {
        t.transpose(1, 2)?.reshape((self.b, self.len, n * self.h.head_dim))
    }

    /// Rotated query and key heads, and the value heads.
    fn heads(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        Ok((
            rotate(&self.split(q, self.h.heads)?, &self.cos, &self.sin)?,
            rotate(&self.split(k, self.h.kv_heads)?, &self.cos, &self.sin)?,
            self.split(v, self.h.kv_heads)?,
        ))
    }

    /// Rows `start..start + rows` of `[batch, heads, len, x]`, with the query heads that share a KV
    /// head stacked: `[batch, kv_heads, group · rows, x]`.
    fn stacked_rows(&self, t: &Tensor, start: usize, rows: usize) -> candle_core::Result<Tensor> {
        self.stacked(&t.narrow(2, start, rows)?, rows)
    }

    /// `[batch, heads, rows, x]` to `[batch, kv_heads, group · rows, x]`.
    fn stacked(&self, t: &Tensor, rows: usize) -> candle_core::Result<Tensor> {
        let x = t.dim(3)?;
        t.contiguous()?
            .reshape((self.b, self.h.kv_heads, self.group() * rows, x))
    }

    /// `[batch, kv_heads, group · rows, x]` to `[batch, heads, rows, x]`.
    fn unstacked(&self, t: &Tensor, rows: usize) -> candle_core::Result<Tensor> {
        let x = t.dim(3)?;
        t.reshape((self.b, self.h.heads, rows, x))
    }

    /// f32 `softmax(q kᵀ / √d + mask)` for query rows `start..start + rows`: `[batch, heads, rows, len]`.
    fn probabilities(&self, q: &Tensor, k: &Tensor, start: usize, rows: usize) -> candle_core::Result<Tensor> {
        let scores = (self.stacked_rows(q, start, rows)?.matmul(&k.t()?)? / (self.h.head_dim as f64).sqrt())?;
        let scores = self
            .unstacked(&scores, rows)?
            .to_dtype(DType::F32)?
            .broadcast_add(&self.mask.narrow(2, start, rows)?)?;
        candle_nn::ops::softmax_last_dim(&scores)
    }

    /// The inputs' gradients, block by block of query rows: `dv = Σ pᵀ do`, `ds = p ⊙ (do vᵀ − rowsum(do ⊙
    /// o)) / √d`, `dq = ds k`, `dk = Σ dsᵀ q`, then the rotations undone. Sums over blocks are in f32.
    fn backward(&self, inputs: &[Tensor], out: &Tensor, grad: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let dtype = inputs[0].dtype();
        let (q, k, v) = self.heads(&inputs[0], &inputs[1], &inputs[2])?;
        let grad_heads = self.split(grad, self.h.heads)?;
        let row_dots = (grad_heads.to_dtype(DType::F32)? * self.split(out, self.h.heads)?.to_dtype(DType::F32)?)?
            .sum_keepdim(3)?;
        let scale = 1.0 / (self.h.head_dim as f64).sqrt();
        let (mut dq, mut dk, mut dv) = (Vec::new(), None::<Tensor>, None::<Tensor>);
        let add = |sum: Option<Tensor>, part: Tensor| -> candle_core::Result<Option<Tensor>> {
            let part = part.to_dtype(DType::F32)?;
            Ok(Some(match sum {
                Some(s) => (s + part)?,
                None => part,
            }))
        };
        for (start, rows) in self.blocks() {
            let probs = self.probabilities(&q, &k, start, rows)?;
            let grad_rows = self.stacked_rows(&grad_heads, start, rows)?;
            dv = add(
                dv,
                self.stacked(&probs.to_dtype(dtype)?, rows)?.t()?.matmul(&grad_rows)?,
            )?;
            let grad_probs = self
                .unstacked(&grad_rows.matmul(&v.t()?)?, rows)?
                .to_dtype(DType::F32)?;
            let grad_scores = ((probs * grad_probs.broadcast_sub(&row_dots.narrow(2, start, rows)?)?)? * scale)?;
            let grad_scores = self.stacked(&grad_scores.to_dtype(dtype)?, rows)?;
            dq.push(self.unstacked(&grad_scores.matmul(&k)?, rows)?);
            dk = add(dk, grad_scores.t()?.matmul(&self.stacked_rows(&q, start, rows)?)?)?;
        }
        let (neg_sin, cos) = (self.sin.neg()?, &self.cos);
        let unrotate = |t: &Tensor| rotate(t, cos, &neg_sin);
        let dq = unrotate(&Tensor::cat(&dq, 2)?)?;
        let dk = unrotate(&dk.expect("at least one block"))?.to_dtype(dtype)?;
        let dv = dv.expect("at least one block").to_dtype(dtype)?;
        Ok(vec![
            Some(self.merge(&dq, self.h.heads)?),
            Some(self.merge(&dk, self.h.kv_heads)?),
            Some(self.merge(&dv, self.h.kv_heads)?),
        ])
    }
}
