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
    let out = x.detach().broadcast_matmul(&weight.t()?)?;
    let out = match bias {
        Some(b) => out.broadcast_add(b)?,
        None => out,
    };
    let weight = weight.detach();
    attach(
        "frozen-linear",
        &[x],
        out,
        Box::new(move |_, _, grad| Ok(vec![Some(grad.broadcast_matmul(&weight)?)])),
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

/// `softmax(q kᵀ · scale + mask)` in the stacked-group layout `[batch, kv_heads, group · len, len]`.
fn attention_probs(q: &Tensor, k: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, kv_heads, rows, _) = q.dims4()?;
    let len = k.dim(2)?;
    let group = rows / len;
    let scores = (q.matmul(&k.t()?)? * scale)?
        .reshape((b, kv_heads * group, len, len))?
        .broadcast_add(mask)?;
    Ok(candle_nn::ops::softmax_last_dim(&scores)?.reshape((b, kv_heads, rows, len))?)
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
        // Causal, and the second row's last two positions are padding.
        let mut mask = vec![0f32; b * len * len];
        for r in 0..b {
            for i in 0..len {
                for j in 0..len {
                    if j > i || (r == 1 && j >= 3) {
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
