//! Row-wise and element-wise ops: RMSNorm and SwiGLU.

use candle_core::{Tensor, D};

use super::kernels::sigmoid_gate;
use super::{any_device, attach, column_sums, for_rows, for_rows2, supported, with_values};
use crate::error::Result;

/// Qwen2's RMSNorm, `w ⊙ x / sqrt(mean(x²) + eps)` over the last dimension (candle's kernel forward),
/// differentiable in `x` and, when it is trained, in `w`. Per row, with `r = 1 / sqrt(mean(x²) + eps)`
/// and `g = w ⊙ grad`: `dx = r g − x r³ mean(g ⊙ x)`; `dw = Σ_rows grad ⊙ x r`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if !supported(x) {
        return any_device::rms_norm(x, weight, eps);
    }
    let out = candle_nn::ops::rms_norm(&x.detach().contiguous()?, &weight.detach(), eps as f32)?;
    let weight_trained = weight.track_op();
    let eps = eps as f32;
    attach(
        "rms-norm",
        &[x, weight],
        out,
        Box::new(move |inputs, _, grad| {
            let (x, device) = (&inputs[0], inputs[0].device());
            let dim = x.dim(D::Minus1)?;
            let inverse_rms = |x: &[f32]| 1.0 / (x.iter().map(|v| v * v).sum::<f32>() / dim as f32 + eps).sqrt();
            let (dx, dw) = with_values(&[x, &inputs[1], grad], |v| {
                let (x, w, g) = (v[0], v[1], v[2]);
                let mut dx = vec![0f32; x.len()];
                for_rows(&mut dx, dim, |row, d| {
                    let (x, g) = (&x[row * dim..][..dim], &g[row * dim..][..dim]);
                    let r = inverse_rms(x);
                    let gx = (0..dim).map(|i| g[i] * w[i] * x[i]).sum::<f32>() / dim as f32;
                    let r3 = r * r * r;
                    for i in 0..dim {
                        d[i] = r * g[i] * w[i] - x[i] * r3 * gx;
                    }
                });
                let dw = weight_trained.then(|| {
                    column_sums(x.len() / dim, dim, |row, acc| {
                        let (x, g) = (&x[row * dim..][..dim], &g[row * dim..][..dim]);
                        let r = inverse_rms(x);
                        for i in 0..dim {
                            acc[i] += g[i] * x[i] * r;
                        }
                    })
                });
                (dx, dw)
            })?;
            Ok(vec![
                Some(Tensor::from_vec(dx, x.shape(), device)?),
                dw.map(|dw| Tensor::from_vec(dw, dim, device)).transpose()?,
            ])
        }),
    )
}

/// `x ⊙ σ(a · x)`, times `up` when given, without a graph, in one vectorised pass: SwiGLU's
/// `silu(gate) ⊙ up` (a = 1) and QuickGELU (a = 1.702) at inference.
pub fn sigmoid_gated(x: &Tensor, a: f32, up: Option<&Tensor>) -> Result<Tensor> {
    // Values one task computes.
    const CHUNK: usize = 4096;
    let inputs: Vec<&Tensor> = std::iter::once(x).chain(up).collect();
    let out = with_values(&inputs, |v| {
        let mut out = vec![0f32; v[0].len()];
        for_rows(&mut out, CHUNK, |i, o| {
            let at = i * CHUNK;
            sigmoid_gate(&v[0][at..][..o.len()], a, v.get(1).map(|u| &u[at..][..o.len()]), o);
        });
        out
    })?;
    Ok(Tensor::from_vec(out, x.shape(), x.device())?)
}

/// SwiGLU's product `silu(gate) ⊙ up`: `d gate = grad ⊙ up ⊙ σ(g)(1 + g(1 − σ(g)))`, `d up = grad ⊙ silu(g)`.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if !supported(gate) {
        return any_device::swiglu(gate, up);
    }
    let out = sigmoid_gated(&gate.detach(), 1.0, Some(&up.detach()))?;
    attach(
        "swiglu",
        &[gate, up],
        out,
        Box::new(|inputs, _, grad| {
            // Rows of this many values are the units of work.
            const ROW: usize = 1024;
            let (shape, device) = (inputs[0].shape(), inputs[0].device());
            let (d_gate, d_up) = with_values(&[&inputs[0], &inputs[1], grad], |v| {
                let (gate, up, grad) = (v[0], v[1], v[2]);
                let (mut d_gate, mut d_up) = (vec![0f32; gate.len()], vec![0f32; gate.len()]);
                for_rows2(&mut d_gate, &mut d_up, ROW, |row, dg, du| {
                    let i = row * ROW;
                    for k in 0..dg.len() {
                        let (g, u, d) = (gate[i + k], up[i + k], grad[i + k]);
                        let sigmoid = 1.0 / (1.0 + (-g).exp());
                        dg[k] = d * u * sigmoid * (1.0 + g * (1.0 - sigmoid));
                        du[k] = d * g * sigmoid;
                    }
                });
                (d_gate, d_up)
            })?;
            Ok(vec![
                Some(Tensor::from_vec(d_gate, shape, device)?),
                Some(Tensor::from_vec(d_up, shape, device)?),
            ])
        }),
    )
}
