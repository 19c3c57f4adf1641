use anyhow::Result;
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use saha_common::rng::Rng;
use saha_model::tensors::{checkpoint_tensors, TensorKind, TensorSpec};
use saha_model::ModelConfig;

/// Every checkpoint tensor, filled from one seeded stream per tensor (so adding a layer does not change
/// the others): matrices N(0, std²), biases N(0, std²), norm scales 1 + N(0, 0.1²), norm shifts N(0, 0.1²).
/// Only the tensors `keep` accepts are drawn; the others' streams are skipped, so a kept tensor gets the
/// values it would get in a fully random model.
pub fn random_tensors(
    config: &ModelConfig,
    seed: u64,
    std: f32,
    keep: impl Fn(&TensorSpec) -> bool + Sync,
) -> Result<Vec<(String, Tensor)>> {
    // Tensors in parallel (each has its own stream, so the values do not depend on the thread count).
    checkpoint_tensors(config)
        .into_par_iter()
        .enumerate()
        .filter(|(_, spec)| keep(spec))
        .map(|(index, spec)| {
            let mut rng = Rng::fork(seed, 0x5eed_0f_3e1, index as u64);
            let n: usize = spec.shape.iter().product();
            let (mean, scale) = match spec.kind {
                TensorKind::Weight | TensorKind::Bias | TensorKind::Embedding => (0.0, std),
                TensorKind::NormScale => (1.0, 0.1),
                TensorKind::NormShift => (0.0, 0.1),
            };
            let values: Vec<f32> = (0..n).map(|_| mean + scale * standard_normal(&mut rng)).collect();
            Ok((spec.name, Tensor::from_vec(values, spec.shape, &Device::Cpu)?))
        })
        .collect()
}

/// Box-Muller over two uniforms in (0, 1].
fn standard_normal(rng: &mut Rng) -> f32 {
    let uniform = |rng: &mut Rng| ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let (u1, u2) = (uniform(rng), uniform(rng));
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}
