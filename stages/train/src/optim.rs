//! AdamW as `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments), with its state
//! exposed so checkpoints can save and restore it, and global gradient-norm clipping as
//! `torch.nn.utils.clip_grad_norm_`. candle's AdamW defaults to weight decay 0.01 and hides its
//! moments; the reference trains with 0.0.

use candle_core::{Result, Tensor, Var};

#[derive(Debug, Clone, Copy)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

pub struct AdamW {
    pub cfg: AdamWConfig,
    pub vars: Vec<Var>,
    pub first: Vec<Tensor>,
    pub second: Vec<Tensor>,
    /// Steps taken so far.
    pub step: usize,
}

impl AdamW {
    pub fn new(vars: Vec<Var>, cfg: AdamWConfig) -> Result<Self> {
        let first = vars.iter().map(|v| v.zeros_like()).collect::<Result<Vec<_>>>()?;
        let second = first.clone();
        Ok(AdamW {
            cfg,
            vars,
            first,
            second,
            step: 0,
        })
    }

    /// One update with learning rate `lr`; `grads[i]` belongs to `vars[i]` (`None`: left alone). f32
    /// CPU tensors are updated in one pass each (three new buffers instead of a dozen candle ops, which
    /// matters for `--full` training's embedding matrix); others op by op.
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let correction1 = 1.0 - b1.powi(t);
        let correction2 = 1.0 - b2.powi(t);
        let k = Constants {
            b1: b1 as f32,
            one_minus_b1: (1.0 - b1) as f32,
            b2: b2 as f32,
            one_minus_b2: (1.0 - b2) as f32,
            inverse_correction1: (1.0 / correction1) as f32,
            inverse_correction2: (1.0 / correction2) as f32,
            eps: self.cfg.eps as f32,
            decay: (1.0 - lr * self.cfg.weight_decay) as f32,
            lr: lr as f32,
        };
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let (m, v, p) = if saha_model::fused::supported(g) {
                fused_update(var.as_tensor(), g, &self.first[i], &self.second[i], &k)?
            } else {
                let m = ((&self.first[i] * b1)? + (g * (1.0 - b1))?)?;
                let v = ((&self.second[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
                let denom = ((&v / correction2)?.sqrt()? + self.cfg.eps)?;
                let update = ((&m / correction1)? / denom)?;
                let decayed = (var.as_tensor() * (1.0 - lr * self.cfg.weight_decay))?;
                let p = (decayed - (update * lr)?)?;
                (m, v, p)
            };
            var.set(&p)?;
            self.first[i] = m;
            self.second[i] = v;
        }
        Ok(())
    }
}

/// One step's scalars, in f32.
struct Constants {
    b1: f32,
    one_minus_b1: f32,
    b2: f32,
    one_minus_b2: f32,
    inverse_correction1: f32,
    inverse_correction2: f32,
    eps: f32,
    decay: f32,
    lr: f32,
}

/// `m ← b1 m + (1 − b1) g`, `v ← b2 v + (1 − b2) g²`, `p ← p (1 − lr wd) − lr (m / c1) / (√(v / c2) + eps)`.
fn fused_update(p: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, k: &Constants) -> Result<(Tensor, Tensor, Tensor)> {
    use rayon::prelude::*;
    const BLOCK: usize = 1 << 14;
    let n = p.elem_count();
    let (mut m_new, mut v_new, mut p_new) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    saha_model::fused::with_values(&[p, g, m, v], |t| {
        let (p, g, m, v) = (t[0], t[1], t[2], t[3]);
        m_new
            .par_chunks_mut(BLOCK)
            .zip(v_new.par_chunks_mut(BLOCK))
            .zip(p_new.par_chunks_mut(BLOCK))
            .enumerate()
            .for_each(|(block, ((mo, vo), po))| {
                let at = block * BLOCK;
                for j in 0..mo.len() {
                    let (gj, i) = (g[at + j], at + j);
                    mo[j] = m[i] * k.b1 + gj * k.one_minus_b1;
                    vo[j] = v[i] * k.b2 + gj * gj * k.one_minus_b2;
                    let denom = (vo[j] * k.inverse_correction2).sqrt() + k.eps;
                    po[j] = p[i] * k.decay - (mo[j] * k.inverse_correction1 / denom) * k.lr;
                }
            });
    })?;
    let shape = p.shape();
    Ok((
        Tensor::from_vec(m_new, shape, p.device())?,
        Tensor::from_vec(v_new, shape, p.device())?,
        Tensor::from_vec(p_new, shape, p.device())?,
    ))
}

/// Scales every gradient so their global L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let mut total = 0f64;
    for g in grads.iter().flatten() {
        total += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    let norm = total.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let factor = max_norm / (norm + 1e-6);
        for g in grads.iter_mut().flatten() {
            *g = (&*g * factor)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The one-pass update equals torch's formula written op by op, over several steps, with weight
    /// decay, on more values than one block.
    #[test]
    fn fused_update_follows_the_formula() {
        let n = 40_000;
        let values = |seed: u64| -> Vec<f32> {
            let mut rng = saha_common::rng::Rng::new(seed);
            (0..n)
                .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
                .collect()
        };
        let start = Tensor::from_vec(values(1), n, &Device::Cpu).unwrap();
        let cfg = AdamWConfig {
            weight_decay: 0.01,
            ..AdamWConfig::default()
        };
        let mut opt = AdamW::new(vec![Var::from_tensor(&start).unwrap()], cfg).unwrap();
        let (mut p, mut m, mut v) = (start.clone(), start.zeros_like().unwrap(), start.zeros_like().unwrap());
        let lr = 1e-2;
        for step in 1..=3 {
            let g = Tensor::from_vec(values(10 + step), n, &Device::Cpu).unwrap();
            opt.step(&[Some(g.clone())], lr).unwrap();
            let (c1, c2) = (1.0 - 0.9f64.powi(step as i32), 1.0 - 0.999f64.powi(step as i32));
            m = ((&m * 0.9).unwrap() + (&g * 0.1).unwrap()).unwrap();
            v = ((&v * 0.999).unwrap() + (g.sqr().unwrap() * 0.001).unwrap()).unwrap();
            let denom = ((&v / c2).unwrap().sqrt().unwrap() + 1e-8).unwrap();
            let update = ((&m / c1).unwrap() / denom).unwrap();
            p = ((&p * (1.0 - lr * 0.01)).unwrap() - (update * lr).unwrap()).unwrap();
            let diff = (opt.vars[0].as_tensor() - &p)
                .unwrap()
                .abs()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff <= 1e-6, "step {step}: parameters differ by {diff}");
        }
    }
}
