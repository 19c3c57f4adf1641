//! LoRA and DoRA adapters on the language model's linear layers, as PEFT defines them.
//!
//! LoRA: `y = W x + b + s · B A drop(x)`, `s = alpha / r`.
//! DoRA (PEFT): `y = W x + b + (m / n − 1) · W drop(x) + (m / n) · s · B A drop(x)`, where
//! `n = ‖W + s·B·A‖` per output row is detached from the graph (PEFT's choice, from the DoRA paper §4.3)
//! and `m` is a trained magnitude per output row, initialised to `n`. With no dropout this is
//! `(m / n) (W + s B A) x + b`, which is also how an adapter is merged for inference.

use std::sync::{Arc, Mutex};

use candle_core::{DType, Tensor, TensorId, Var, D};

use saha_common::rng::Rng;

use crate::error::{ModelError, Result};
use crate::fused;

/// `base + delta` summed in f32 and rounded once to the base's dtype, as PyTorch's type promotion does
/// for PEFT's `result + adapter_output` (a 16-bit base output plus an f32 adapter output).
fn add_in_f32(base: &Tensor, delta: &Tensor) -> Result<Tensor> {
    Ok((base.to_dtype(DType::F32)? + delta)?.to_dtype(base.dtype())?)
}

/// The layers the reference adapts, by last name component (`gate_proj` and `up_proj` are not): the
/// language model's attention projections and `down_proj`, which on Qwen2.5-VL also names the vision
/// blocks' MLP output.
pub const REFERENCE_TARGETS: [&str; 5] = ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    Lora,
    Dora,
}

/// One adapted layer's trainable tensors.
#[derive(Debug, Clone)]
pub struct Adapter {
    pub kind: AdapterKind,
    /// `[r, in]`.
    pub a: Var,
    /// `[out, r]`.
    pub b: Var,
    /// `[out]`, DoRA only.
    pub magnitude: Option<Var>,
    pub scale: f64,
    pub dropout: f32,
    /// Position among the model's adapters, which seeds this layer's dropout masks.
    pub index: usize,
    /// DoRA's last weight norm, shared by the adapter's clones.
    pub(crate) norm_memo: NormMemo,
}

/// The last `‖W + s·B·A‖` an adapter computed on the CPU, with the weight and the exact A and B values
/// it came from. The norm is detached, so within a training step (GradCache runs every chunk twice)
/// and across inference calls it is the same until the optimiser changes A or B, and recomputing it
/// means a full `[out, in]` product, sum and square per call. Comparing A and B reads `r x (in + out)`
/// values, a small fraction of that. The weight is compared by tensor id: it is frozen while an adapter
/// trains (`--full` trains no adapter).
#[derive(Debug, Clone, Default)]
pub(crate) struct NormMemo(Arc<Mutex<Option<MemoisedNorm>>>);

#[derive(Debug)]
struct MemoisedNorm {
    weight: TensorId,
    a: Vec<f32>,
    b: Vec<f32>,
    norm: Tensor,
}

/// Where one forward pass takes its dropout masks from: none (inference, or dropout 0), or a seed and
/// the index of the batch's first row among the step's inputs. A token's mask depends only on the seed,
/// its row index, its position and the layer, never on which rows share its batch: GradCache's chunks
/// (and their replay) draw exactly the masks of plain backprop over the whole batch.
#[derive(Debug, Clone, Default)]
pub struct DropoutSeed(pub Option<DropoutRows>);

#[derive(Debug, Clone)]
pub struct DropoutRows {
    pub seed: u64,
    pub first_row: u64,
    /// The step's index of each batch row, where the batch is not the step's inputs from `first_row` on
    /// in order (a batch regrouped by length); `None`: row `i` is input `first_row + i`.
    pub rows: Option<Arc<[u64]>>,
}

impl DropoutRows {
    /// The step's index of batch row `row`.
    pub fn row(&self, row: usize) -> u64 {
        match self.rows.as_deref().and_then(|rows| rows.get(row)) {
            Some(&mapped) => mapped,
            None => self.first_row + row as u64,
        }
    }
}

impl Adapter {
    /// The adapted output, given the base output `base = W x + b` (`weight` is W, `[out, in]`). The
    /// adapter path runs in f32 whatever the base dtype, as PEFT keeps adapters in f32.
    pub fn forward(
        &self,
        x: &Tensor,
        base: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        seed: &DropoutSeed,
    ) -> Result<Tensor> {
        let dropout_active = seed.0.is_some() && self.dropout > 0.0;
        let dropped = self.drop(&x.to_dtype(DType::F32)?, seed)?;
        // Products over [rows, in] rather than per leading index.
        let (in_dim, out_dim) = (dropped.dim(D::Minus1)?, weight.dim(0)?);
        let rows = dropped.reshape(((), in_dim))?;
        let low_rank = rows
            .matmul(&self.a.as_tensor().t()?)?
            .matmul(&self.b.as_tensor().t()?)?;
        let Some(magnitude) = &self.magnitude else {
            let delta = (low_rank * self.scale)?.reshape(base.shape())?;
            return add_in_f32(base, &delta);
        };
        let ratio = magnitude
            .as_tensor()
            .broadcast_div(&self.detached_weight_norm(weight)?)?;
        // W·drop(x): without dropout that is the base output less its bias, which PEFT reuses rather
        // than recomputing (and so do we).
        let weight_part = if dropout_active {
            Some(rows.matmul(&weight.to_dtype(DType::F32)?.t()?)?)
        } else {
            None
        };
        if base.dtype() == DType::F32 {
            let bias32 = bias.map(|b| b.to_dtype(DType::F32)).transpose()?;
            return Ok(match weight_part {
                None => {
                    let base_rows = base.reshape(((), out_dim))?;
                    fused::dora_combine(&base_rows, &low_rank, &ratio, bias32.as_ref(), self.scale, true)?
                        .reshape(base.shape())?
                }
                Some(part) => {
                    let delta = fused::dora_combine(&part, &low_rank, &ratio, None, self.scale, false)?;
                    (base + delta.reshape(base.shape())?)?
                }
            });
        }
        // PEFT subtracts the bias in the base output's dtype, then scales in f32.
        let base_rows = base.reshape(((), out_dim))?;
        let weight_part = match (weight_part, bias) {
            (Some(part), _) => part,
            (None, Some(b)) => base_rows.broadcast_sub(b)?.to_dtype(DType::F32)?,
            (None, None) => base_rows.to_dtype(DType::F32)?,
        };
        let delta = (weight_part.broadcast_mul(&(&ratio - 1.0)?)? + (low_rank * self.scale)?.broadcast_mul(&ratio)?)?;
        add_in_f32(base, &delta.reshape(base.shape())?)
    }

    /// `‖W + s·B·A‖` per output row, `[out]`.
    pub fn weight_norm(&self, weight: &Tensor) -> Result<Tensor> {
        let delta = (self.b.as_tensor().matmul(self.a.as_tensor())? * self.scale)?;
        let full = (weight.to_dtype(DType::F32)? + delta)?;
        Ok(full.sqr()?.sum(D::Minus1)?.sqrt()?)
    }

    /// [`Self::weight_norm`], detached, and on the CPU memoised: the same bits as computing it afresh.
    fn detached_weight_norm(&self, weight: &Tensor) -> Result<Tensor> {
        if !weight.device().is_cpu() {
            return Ok(self.weight_norm(weight)?.detach());
        }
        let values = |v: &Var| v.as_tensor().flatten_all()?.to_vec1::<f32>();
        let (a, b) = (values(&self.a)?, values(&self.b)?);
        let same =
            |x: &[f32], y: &[f32]| x.len() == y.len() && x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits());
        let mut memo = self.norm_memo.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(m) = memo
            .as_ref()
            .filter(|m| m.weight == weight.id() && same(&m.a, &a) && same(&m.b, &b))
        {
            return Ok(m.norm.clone());
        }
        let norm = self.weight_norm(weight)?.detach();
        *memo = Some(MemoisedNorm {
            weight: weight.id(),
            a,
            b,
            norm: norm.clone(),
        });
        Ok(norm)
    }

    /// The merged weight `W'` such that `W' x + b` equals the adapted layer without dropout.
    pub fn merged_weight(&self, weight: &Tensor) -> Result<Tensor> {
        let delta = (self.b.as_tensor().matmul(self.a.as_tensor())? * self.scale)?;
        let full = (weight.to_dtype(DType::F32)? + delta)?;
        let merged = match &self.magnitude {
            None => full,
            Some(m) => {
                let ratio = m.as_tensor().broadcast_div(&self.weight_norm(weight)?)?;
                full.broadcast_mul(&ratio.unsqueeze(1)?)?
            }
        };
        Ok(merged.to_dtype(weight.dtype())?.detach())
    }

    fn drop(&self, x: &Tensor, seed: &DropoutSeed) -> Result<Tensor> {
        let Some(rows) = &seed.0 else { return Ok(x.clone()) };
        if self.dropout <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - self.dropout;
        // Batch rows along the first dimension, tokens of `width` features within a row.
        let (batch, width) = (x.dim(0)?, x.dim(D::Minus1)?);
        let tokens = x.elem_count() / (batch * width);
        let mut mask = Vec::with_capacity(x.elem_count());
        for row in 0..batch {
            for position in 0..tokens as u64 {
                let token = TokenKey {
                    seed: rows.seed,
                    row: rows.row(row),
                    position,
                    layer: self.index as u64,
                };
                extend_bernoulli(&mut mask, width, keep, token);
            }
        }
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        Ok(((x * mask)? / keep as f64)?)
    }

    pub fn trainable(&self) -> Vec<&Var> {
        let mut vars = vec![&self.a, &self.b];
        vars.extend(self.magnitude.as_ref());
        vars
    }
}

/// What one token's dropout mask is drawn from.
struct TokenKey {
    seed: u64,
    row: u64,
    position: u64,
    layer: u64,
}

/// Appends `n` values, 1.0 with probability `keep` and 0.0 otherwise, from the stream of `token`.
fn extend_bernoulli(mask: &mut Vec<f32>, n: usize, keep: f32, token: TokenKey) {
    let mut key = Rng::new(token.seed ^ 0xd1b5_4a32_d192_ed03);
    for part in [token.row, token.position, token.layer] {
        key = Rng::new(key.next_u64() ^ part);
    }
    let mut rng = Rng::new(key.next_u64());
    let threshold = (keep as f64 * (1u64 << 53) as f64) as u64;
    mask.extend((0..n).map(|_| if (rng.next_u64() >> 11) < threshold { 1.0 } else { 0.0 }));
}

/// Seeded initialisation of a new adapter: A ~ N(0, 1/r²) (PEFT's "gaussian"), B = 0, m = ‖W‖.
/// Randomness here and in dropout masks comes from `saha_common::rng` streams: candle's CPU RNG cannot
/// be seeded.
pub fn init_adapter(
    kind: AdapterKind,
    weight: &Tensor,
    rank: usize,
    alpha: f64,
    dropout: f32,
    index: usize,
    normal: &mut dyn FnMut() -> f32,
) -> Result<Adapter> {
    let (out, inp) = weight.dims2()?;
    if rank == 0 {
        return Err(ModelError::Input("adapter rank must be at least 1".into()));
    }
    let device = weight.device();
    let std = 1.0 / rank as f32;
    let a: Vec<f32> = (0..rank * inp).map(|_| normal() * std).collect();
    let a = Var::from_tensor(&Tensor::from_vec(a, (rank, inp), device)?)?;
    let b = Var::from_tensor(&Tensor::zeros((out, rank), DType::F32, device)?)?;
    let mut adapter = Adapter {
        kind,
        a,
        b,
        magnitude: None,
        scale: alpha / rank as f64,
        dropout,
        index,
        norm_memo: NormMemo::default(),
    };
    if kind == AdapterKind::Dora {
        adapter.magnitude = Some(Var::from_tensor(&adapter.weight_norm(weight)?)?);
    }
    Ok(adapter)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn bits(t: &Tensor) -> Vec<u32> {
        t.to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
    }

    /// The memoised norm has the bits of a fresh one, and follows every change of A or B (as an
    /// optimiser step makes them, in place) and of the weight, rather than returning a stale norm.
    #[test]
    fn memoised_weight_norm_is_the_fresh_one_after_every_change() {
        let dev = Device::Cpu;
        let mut rng = Rng::new(3);
        let mut normal = || rng.normal();
        let (out, inp, rank) = (24, 40, 4);
        let w: Vec<f32> = (0..out * inp).map(|_| normal()).collect();
        let weight = Tensor::from_vec(w, (out, inp), &dev).unwrap();
        let adapter = init_adapter(AdapterKind::Dora, &weight, rank, 16.0, 0.0, 0, &mut normal).unwrap();
        let check = |weight: &Tensor, what: &str| {
            let fresh = bits(&adapter.weight_norm(weight).unwrap());
            assert_eq!(bits(&adapter.detached_weight_norm(weight).unwrap()), fresh, "{what}");
            assert_eq!(
                bits(&adapter.detached_weight_norm(weight).unwrap()),
                fresh,
                "{what}, memoised"
            );
        };
        check(&weight, "initial");
        let b: Vec<f32> = (0..out * rank).map(|_| normal() * 0.1).collect();
        adapter.b.set(&Tensor::from_vec(b, (out, rank), &dev).unwrap()).unwrap();
        check(&weight, "B changed");
        let mut a = adapter.a.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        a[inp + 7] += 0.25; // one value of A
        adapter.a.set(&Tensor::from_vec(a, (rank, inp), &dev).unwrap()).unwrap();
        check(&weight, "one value of A changed");
        let other = (&weight * 1.5).unwrap();
        check(&other, "another weight");
        check(&weight, "the first weight again");
    }
}
