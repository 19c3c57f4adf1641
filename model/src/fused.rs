//! Training-path ops with hand-written backward passes.
//!
//! candle differentiates op by op: a composite softmax keeps every intermediate of every layer alive
//! until `backward` ends, and a matmul's backward also computes the gradient of a frozen weight. These ops
//! run the forward with the fused inference kernels, keep only their inputs in the graph, and compute
//! just the gradients that are needed (recomputing attention probabilities instead of storing them).
//! They serve f32 tensors on the CPU (the trainer's setting); `supported` says when a caller may use them.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Tensor, D};

use crate::error::Result;

/// Whether the fused training ops serve `x`.
pub fn supported(x: &Tensor) -> bool {
    x.dtype() == DType::F32 && matches!(x.device(), Device::Cpu)
}

/// `(inputs, output, grad of output)` to the inputs' gradients (`None`: not needed).
type Backward =
    Box<dyn Fn(&[Tensor], &Tensor, &Tensor) -> candle_core::Result<Vec<Option<Tensor>>> + Send + Sync>;

/// An output computed outside the graph, attached to its inputs with the backward that differentiates
/// it. The output is handed over (not kept) when candle asks for the op's forward.
struct Attached {
    name: &'static str,
    output: Mutex<Option<Tensor>>,
    backward: Backward,
}

impl Attached {
    fn forward(&self) -> candle_core::Result<(CpuStorage, Shape)> {
        let output = self
            .output
            .lock()
            .expect("not poisoned")
            .take()
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: forward ran twice", self.name)))?;
        let shape = output.shape().clone();
        let values = output.flatten_all()?.to_vec1::<f32>()?;
        Ok((CpuStorage::F32(values), shape))
    }
}

impl CustomOp1 for Attached {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward()
    }
    fn bwd(&self, a: &Tensor, out: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok((self.backward)(&[a.detach()], &out.detach(), grad)?.into_iter().next().flatten())
    }
}

impl CustomOp2 for Attached {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward()
    }
    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let mut g = (self.backward)(&[a.detach(), b.detach()], &out.detach(), grad)?.into_iter();
        Ok((g.next().flatten(), g.next().flatten()))
    }
}

impl CustomOp3 for Attached {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward()
    }
    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let mut g = (self.backward)(&[a.detach(), b.detach(), c.detach()], &out.detach(), grad)?.into_iter();
        Ok((g.next().flatten(), g.next().flatten(), g.next().flatten()))
    }
}

/// Attaches `output` (computed from detached copies of `inputs`) to `inputs`, so that backpropagation
/// calls `backward(inputs, grad_of_output)` for the inputs' gradients. Untracked inputs get `output` as is.
fn attach(name: &'static str, inputs: &[&Tensor], output: Tensor, backward: Backward) -> Result<Tensor> {
    if !inputs.iter().any(|t| t.track_op()) {
        return Ok(output);
    }
    let op = Attached {
        name,
        output: Mutex::new(Some(output)),
        backward,
    };
    Ok(match inputs {
        [a] => a.apply_op1(op)?,
        [a, b] => a.apply_op2(b, op)?,
        [a, b, c] => a.apply_op3(b, c, op)?,
        _ => unreachable!("ops here take one to three inputs"),
    })
}

/// `x @ Wᵀ + b` for a weight and bias that are not trained: the backward computes the input's gradient
/// only (`grad @ W`), never the frozen weight's.
pub fn frozen_linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    // One [rows, in] x [in, out] product rather than one per leading index.
    let (out_dim, in_dim) = weight.dims2()?;
    let mut out_shape = x.dims().to_vec();
    *out_shape.last_mut().expect("x has dimensions") = out_dim;
    let rows = x.detach().reshape(((), in_dim))?;
    let out = rows.matmul(&weight.t()?)?;
    let out = match bias {
        Some(b) => out.broadcast_add(b)?,
        None => out,
    }
    .reshape(out_shape)?;
    let weight = weight.detach();
    attach(
        "frozen-linear",
        &[x],
        out,
        Box::new(move |inputs, _, grad| {
            let rows = grad.reshape(((), out_dim))?.matmul(&weight)?;
            Ok(vec![Some(rows.reshape(inputs[0].shape())?)])
        }),
    )
}

/// Qwen2's RMSNorm, `w ⊙ x / sqrt(mean(x²) + eps)` over the last dimension, differentiable in `x` and,
/// when it is trained, in `w`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let out = candle_nn::ops::rms_norm(&x.detach().contiguous()?, &weight.detach(), eps as f32)?;
    let weight_trained = weight.track_op();
    attach(
        "rms-norm",
        &[x, weight],
        out,
        Box::new(move |inputs, _, grad| {
            let (x, w) = (&inputs[0], &inputs[1]);
            let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
            let (x_values, g_values, w) = (flat(x)?, flat(grad)?, w.to_vec1::<f32>()?);
            let (dx, dw) = rms_norm_backward(&x_values, &g_values, &w, eps as f32, weight_trained);
            let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
            let dw = dw.map(|dw| Tensor::from_vec(dw, w.len(), x.device())).transpose()?;
            Ok(vec![Some(dx), dw])
        }),
    )
}

/// Per row, with `r = 1 / sqrt(mean(x²) + eps)` and `g = w ⊙ grad`:
/// `dx = r g − x r³ mean(g ⊙ x)`; `dw = Σ_rows grad ⊙ x r`. Rows are the last dimension of `x`.
fn rms_norm_backward(x: &[f32], grad: &[f32], w: &[f32], eps: f32, weight_grad: bool) -> (Vec<f32>, Option<Vec<f32>>) {
    use rayon::prelude::*;
    let dim = w.len();
    let mut dx = vec![0f32; x.len()];
    let rs: Vec<f32> = dx
        .par_chunks_mut(dim)
        .zip(x.par_chunks(dim).zip(grad.par_chunks(dim)))
        .map(|(dx, (x, g))| {
            let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / dim as f32;
            let r = 1.0 / (mean_sq + eps).sqrt();
            let gx = (0..dim).map(|i| g[i] * w[i] * x[i]).sum::<f32>() / dim as f32;
            let r3 = r * r * r;
            for i in 0..dim {
                dx[i] = r * g[i] * w[i] - x[i] * r3 * gx;
            }
            r
        })
        .collect();
    let dw = weight_grad.then(|| {
        let mut dw = vec![0f32; dim];
        for ((x, g), r) in x.chunks(dim).zip(grad.chunks(dim)).zip(&rs) {
            for i in 0..dim {
                dw[i] += g[i] * x[i] * r;
            }
        }
        dw
    });
    (dx, dw)
}

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
/// the sequence), `k` and `v` `[batch, kv_heads, len, head_dim]`, `mask` additive `[batch, 1, len, len]`.
/// The probabilities are recomputed in the backward rather than kept, so the graph holds no `len²`
/// tensor: `dv = pᵀ do`, `ds = p ⊙ (do vᵀ − rowsum(do ⊙ o))`, `dq = ds k · scale`, `dk = dsᵀ q · scale`.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let probs = attention_probs(&q.detach(), &k.detach(), mask, scale)?;
    let out = probs.matmul(&v.detach())?;
    let mask = mask.detach();
    attach(
        "attention",
        &[q, k, v],
        out,
        Box::new(move |inputs, out, grad_out| {
            let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
            let grad_out = grad_out.contiguous()?;
            let probs = attention_probs(q, k, &mask, scale).map_err(candle_core::Error::wrap)?;
            let grad_v = probs.t()?.matmul(&grad_out)?;
            let grad_probs = grad_out.matmul(&v.t()?)?;
            let row_dot = (&grad_out * out)?.sum_keepdim(D::Minus1)?;
            let grad_scores = (grad_probs.broadcast_sub(&row_dot)? * &probs)?;
            let grad_q = (grad_scores.matmul(k)? * scale)?;
            let grad_k = (grad_scores.t()?.matmul(q)? * scale)?;
            Ok(vec![Some(grad_q), Some(grad_k), Some(grad_v)])
        }),
    )
}

/// `softmax(q kᵀ · scale + mask)` in the stacked-group layout `[batch, kv_heads, group · len, len]`, in
/// one pass per row. Masked entries (`mask == f32::MIN`) get probability 0 without calling `exp` on
/// them (glibc's `expf` takes a slow path for every underflow); a row with every entry masked gets the
/// uniform weights of the plain formula.
fn attention_probs(q: &Tensor, k: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    use rayon::prelude::*;
    let (b, kv_heads, rows, _) = q.dims4()?;
    let len = k.dim(2)?;
    let mut scores = q.matmul(&k.t()?)?.flatten_all()?.to_vec1::<f32>()?;
    let mask = mask.flatten_all()?.to_vec1::<f32>()?;
    let scale = scale as f32;
    let per_batch = kv_heads * rows * len;
    scores.par_chunks_mut(len).enumerate().for_each(|(row, x)| {
        let (batch, query) = (row * len / per_batch, row % len);
        let m = &mask[(batch * len + query) * len..][..len];
        let mut max = f32::NEG_INFINITY;
        for (v, &mv) in x.iter_mut().zip(m) {
            *v = *v * scale + mv;
            max = max.max(*v);
        }
        let all_masked = max == f32::MIN;
        let mut sum = 0f32;
        for (v, &mv) in x.iter_mut().zip(m) {
            *v = if mv == f32::MIN && !all_masked {
                0.0
            } else {
                (*v - max).exp()
            };
            sum += *v;
        }
        for v in x.iter_mut() {
            *v /= sum;
        }
    });
    Ok(Tensor::from_vec(scores, (b, kv_heads, rows, len), q.device())?)
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
    let out_dim = ratio.dim(0)?;
    let zeros = || vec![0f32; out_dim];
    let bias = bias.map(|b| b.to_vec1::<f32>()).transpose()?.unwrap_or_else(zeros);
    let (a, s) = (if q_is_base { 1f32 } else { 0f32 }, scale as f32);
    let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    let (qv, lv, rv) = (flat(q)?, flat(lr)?, ratio.to_vec1::<f32>()?);
    let mut out = vec![0f32; qv.len()];
    {
        use rayon::prelude::*;
        out.par_chunks_mut(out_dim)
            .zip(qv.par_chunks(out_dim).zip(lv.par_chunks(out_dim)))
            .for_each(|(o, (q, l))| {
                for c in 0..out_dim {
                    o[c] = a * q[c] + (rv[c] - 1.0) * (q[c] - bias[c]) + s * rv[c] * l[c];
                }
            });
    }
    let out = Tensor::from_vec(out, q.shape(), q.device())?;
    attach(
        "dora",
        &[q, lr, ratio],
        out,
        Box::new(move |inputs, _, grad| {
            use rayon::prelude::*;
            let (qv, lv, rv, gv) = (flat(&inputs[0])?, flat(&inputs[1])?, inputs[2].to_vec1::<f32>()?, flat(grad)?);
            let (mut dq, mut dl) = (vec![0f32; qv.len()], vec![0f32; qv.len()]);
            // Rows in fixed blocks, partial column sums per block added in block order: deterministic.
            const ROWS: usize = 64;
            let block = ROWS * out_dim;
            let partial: Vec<Vec<f32>> = dq
                .par_chunks_mut(block)
                .zip(dl.par_chunks_mut(block))
                .enumerate()
                .map(|(k, (dq, dl))| {
                    let mut d_ratio = vec![0f32; out_dim];
                    for (r, (dq, dl)) in dq.chunks_mut(out_dim).zip(dl.chunks_mut(out_dim)).enumerate() {
                        let i = (k * ROWS + r) * out_dim;
                        let (q, l, g) = (&qv[i..i + out_dim], &lv[i..i + out_dim], &gv[i..i + out_dim]);
                        for c in 0..out_dim {
                            dq[c] = g[c] * (a + rv[c] - 1.0);
                            dl[c] = s * g[c] * rv[c];
                            d_ratio[c] += g[c] * (q[c] - bias[c] + s * l[c]);
                        }
                    }
                    d_ratio
                })
                .collect();
            let mut d_ratio = vec![0f32; out_dim];
            for p in &partial {
                for (d, v) in d_ratio.iter_mut().zip(p) {
                    *d += v;
                }
            }
            let (shape, device) = (inputs[0].shape(), inputs[0].device());
            Ok(vec![
                Some(Tensor::from_vec(dq, shape, device)?),
                Some(Tensor::from_vec(dl, shape, device)?),
                Some(Tensor::from_vec(d_ratio, out_dim, device)?),
            ])
        }),
    )
}

/// SwiGLU's product `silu(gate) ⊙ up`: `d gate = grad ⊙ up ⊙ σ(g)(1 + g(1 − σ(g)))`, `d up = grad ⊙ silu(g)`.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let out = (gate.detach().silu()? * up.detach())?;
    attach(
        "swiglu",
        &[gate, up],
        out,
        Box::new(|inputs, _, grad| {
            use rayon::prelude::*;
            let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
            let (gate, up, grad) = (flat(&inputs[0])?, flat(&inputs[1])?, flat(grad)?);
            let mut d_gate = vec![0f32; gate.len()];
            let mut d_up = vec![0f32; gate.len()];
            const BLOCK: usize = 4096;
            d_gate
                .par_chunks_mut(BLOCK)
                .zip(d_up.par_chunks_mut(BLOCK))
                .enumerate()
                .for_each(|(block, (dg, du))| {
                    let start = block * BLOCK;
                    for i in 0..dg.len() {
                        let (g, u, d) = (gate[start + i], up[start + i], grad[start + i]);
                        let sigmoid = 1.0 / (1.0 + (-g).exp());
                        dg[i] = d * u * sigmoid * (1.0 + g * (1.0 - sigmoid));
                        du[i] = d * g * sigmoid;
                    }
                });
            let shape = inputs[0].shape();
            let device = inputs[0].device();
            Ok(vec![
                Some(Tensor::from_vec(d_gate, shape, device)?),
                Some(Tensor::from_vec(d_up, shape, device)?),
            ])
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// Deterministic values in [-1, 1].
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::adapter::SplitMix::new(seed);
        (0..n)
            .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
            .collect()
    }

    fn var(shape: &[usize], seed: u64) -> Var {
        let n = shape.iter().product();
        Var::from_tensor(&Tensor::from_vec(values(n, seed), shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
        let diff = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
        (diff.to_scalar::<f32>().unwrap()) / scale.to_scalar::<f32>().unwrap().max(1e-12)
    }

    /// The fused op and the composite expression agree on the output and on every input's gradient
    /// (for a random weighting of the output, so no gradient is trivially uniform).
    fn check(vars: &[&Var], fused: &Tensor, composite: &Tensor, seed: u64) {
        assert!(max_rel_diff(fused, composite) < 1e-5, "forward");
        let weights = Tensor::from_vec(values(fused.elem_count(), seed), fused.shape(), &Device::Cpu).unwrap();
        let gf = (fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let gc = (composite * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, v) in vars.iter().enumerate() {
            let (a, b) = (gf.get(v).expect("fused gradient"), gc.get(v).expect("composite gradient"));
            let d = max_rel_diff(a, b);
            assert!(d < 1e-4, "input {i}: gradient differs by {d}");
        }
    }

    #[test]
    fn frozen_linear_matches_matmul_and_skips_the_weight() {
        let x = var(&[2, 5, 8], 1);
        let w = Tensor::from_vec(values(6 * 8, 2), (6, 8), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(values(6, 3), 6, &Device::Cpu).unwrap();
        let fused = frozen_linear(x.as_tensor(), &w, Some(&b)).unwrap();
        let composite = x.as_tensor().broadcast_matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
        check(&[&x], &fused, &composite, 4);
    }

    #[test]
    fn dora_combine_matches_the_composite_form() {
        let (rows, out) = (70, 6); // more rows than one backward block
        let bias = Tensor::from_vec(values(out, 18), out, &Device::Cpu).unwrap();
        for (q_is_base, bias) in [(true, Some(&bias)), (false, None)] {
            let q = var(&[2, rows / 2, out], 19);
            let lr = var(&[2, rows / 2, out], 20);
            let ratio = Var::from_tensor(&var(&[out], 21).as_tensor().affine(0.3, 1.0).unwrap()).unwrap();
            let scale = 8.0;
            let fused = dora_combine(q.as_tensor(), lr.as_tensor(), ratio.as_tensor(), bias, scale, q_is_base).unwrap();
            let minus_bias = match bias {
                Some(b) => q.as_tensor().broadcast_sub(b).unwrap(),
                None => q.as_tensor().clone(),
            };
            let r = ratio.as_tensor();
            let mut composite = (minus_bias.broadcast_mul(&(r - 1.0).unwrap()).unwrap()
                + (lr.as_tensor() * scale).unwrap().broadcast_mul(r).unwrap())
            .unwrap();
            if q_is_base {
                composite = (composite + q.as_tensor()).unwrap();
            }
            check(&[&q, &lr, &ratio], &fused, &composite, 22);
        }
    }

    #[test]
    fn swiglu_matches_the_composite_form() {
        // Gates in [-8, 8], so the sigmoid's tails are exercised too.
        let gate = Var::from_tensor(&var(&[3, 4, 16], 15).as_tensor().affine(8.0, 0.0).unwrap()).unwrap();
        let up = var(&[3, 4, 16], 16);
        let fused = swiglu(gate.as_tensor(), up.as_tensor()).unwrap();
        let composite = (gate.as_tensor().silu().unwrap() * up.as_tensor()).unwrap();
        check(&[&gate, &up], &fused, &composite, 17);
    }

    #[test]
    fn rms_norm_matches_the_composite_form() {
        let x = var(&[3, 4, 16], 5);
        let w = var(&[16], 6);
        let fused = rms_norm(x.as_tensor(), w.as_tensor(), 1e-6).unwrap();
        let x32 = x.as_tensor();
        let ms = x32.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let composite = x32
            .broadcast_div(&(ms + 1e-6).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(w.as_tensor())
            .unwrap();
        check(&[&x, &w], &fused, &composite, 7);
    }

    #[test]
    fn rope_matches_the_composite_form() {
        let x = var(&[2, 3, 5, 8], 8);
        let angles = Tensor::from_vec(values(2 * 5 * 4, 9), (2, 5, 4), &Device::Cpu)
            .unwrap()
            .affine(3.0, 0.0)
            .unwrap();
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        let fused = rope(x.as_tensor(), &cos, &sin).unwrap();
        let mode = crate::layers::Mode::training(0);
        let composite = crate::layers::apply_rotary_composite(x.as_tensor(), &cos, &sin, mode).unwrap();
        check(&[&x], &fused, &composite, 10);
    }

    #[test]
    fn attention_matches_the_composite_form_with_masked_and_grouped_heads() {
        let (b, kv, group, len, hd) = (2, 2, 3, 5, 4);
        let q = var(&[b, kv, group * len, hd], 11);
        let k = var(&[b, kv, len, hd], 12);
        let v = var(&[b, kv, len, hd], 13);
        // Causal, the second row's last two positions are padding, and its query 4 sees nothing (as a
        // left-padding query does).
        let mut mask = vec![0f32; b * len * len];
        for r in 0..b {
            for i in 0..len {
                for j in 0..len {
                    if j > i || (r == 1 && (j >= 3 || i == 4)) {
                        mask[(r * len + i) * len + j] = f32::MIN;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(mask, (b, 1, len, len), &Device::Cpu).unwrap();
        let scale = 1.0 / (hd as f64).sqrt();
        let fused = attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), &mask, scale).unwrap();
        let scores = (q.as_tensor().matmul(&k.as_tensor().t().unwrap()).unwrap() * scale)
            .unwrap()
            .reshape((b, kv * group, len, len))
            .unwrap()
            .broadcast_add(&mask)
            .unwrap();
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)
            .unwrap()
            .reshape((b, kv, group * len, len))
            .unwrap();
        let composite = probs.matmul(v.as_tensor()).unwrap();
        check(&[&q, &k, &v], &fused, &composite, 14);
    }
}
