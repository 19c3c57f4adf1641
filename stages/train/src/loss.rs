//! The reference's one-directional InfoNCE (`SimpleContrastiveLoss`): cross-entropy of
//! `q · tᵀ / τ` against the diagonal, optionally with the target-to-query term and with duplicate
//! targets masked out of each query's negatives.

use candle_core::{DType, Result, Tensor, D};

#[derive(Debug, Clone, Copy)]
pub struct LossConfig {
    pub temperature: f64,
    /// Adds the target -> query term and averages the two.
    pub symmetric: bool,
}

/// `q`, `t`: `[n, dim]` unit rows, pair i = (q_i, t_i). `same_target[i][j]` marks j ≠ i whose target is
/// identical to i's (then j is not a negative of query i); `None` leaves duplicates in, as the reference does.
pub fn info_nce(q: &Tensor, t: &Tensor, cfg: LossConfig, same_target: Option<&[Vec<bool>]>) -> Result<Tensor> {
    let n = q.dim(0)?;
    let mut logits = (q.matmul(&t.t()?)? / cfg.temperature)?;
    if let Some(same) = same_target {
        let mask: Vec<f32> = (0..n)
            .flat_map(|i| (0..n).map(move |j| if i != j && same[i][j] { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        logits = logits.broadcast_add(&Tensor::from_vec(mask, (n, n), q.device())?)?;
    }
    let labels = Tensor::arange(0u32, n as u32, q.device())?;
    let forward = candle_nn::loss::cross_entropy(&logits, &labels)?;
    if !cfg.symmetric {
        return Ok(forward);
    }
    let backward = candle_nn::loss::cross_entropy(&logits.t()?.contiguous()?, &labels)?;
    (forward + backward)? / 2.0
}

/// Rows i, j with the same (text, image) target.
pub fn duplicate_targets(keys: &[(String, Option<String>)]) -> Vec<Vec<bool>> {
    keys.iter().map(|a| keys.iter().map(|b| a == b).collect()).collect()
}

/// Mean over the last dimension of the squared norm, to check unit rows in tests.
pub fn row_norms(x: &Tensor) -> Result<Tensor> {
    x.to_dtype(DType::F32)?.sqr()?.sum(D::Minus1)?.sqrt()
}
