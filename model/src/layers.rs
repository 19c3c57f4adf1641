//! The small building blocks both towers share.

use std::sync::Arc;

use candle_core::{DType, Module, Tensor, D};

use crate::adapter::{Adapter, DropoutRows, DropoutSeed};
use crate::error::Result;
use crate::fused;
use crate::weights::Weights;

/// How a forward pass runs: inference (fused kernels, no dropout) or training (every op records its
/// backward; candle's fused softmax does not, so it would silently cut the graph).
#[derive(Debug, Clone, Default)]
pub struct Mode {
    pub differentiable: bool,
    pub dropout: DropoutSeed,
}

impl Mode {
    pub const INFERENCE: Mode = Mode {
        differentiable: false,
        dropout: DropoutSeed(None),
    };
    /// Training on a batch whose rows are the step's inputs from `first_row` on (see [`DropoutSeed`]).
    pub fn training(dropout_seed: u64, first_row: usize) -> Mode {
        Mode {
            differentiable: true,
            dropout: DropoutSeed(Some(DropoutRows {
                seed: dropout_seed,
                first_row: first_row as u64,
                rows: None,
            })),
        }
    }

    /// This mode for a batch made of the rows `rows` (indices into the batch this mode was made for), so
    /// each row keeps its dropout masks.
    pub fn for_rows(&self, rows: &[usize]) -> Mode {
        self.with_row_map(|d| Some(rows.iter().map(|&r| d.row(r)).collect()))
    }

    /// This mode for a tensor whose rows are not the batch's inputs (a vision tower's patches): rows
    /// numbered from the batch's first row, as without [`Mode::for_rows`].
    pub fn without_row_map(&self) -> Mode {
        self.with_row_map(|_| None)
    }

    fn with_row_map(&self, map: impl FnOnce(&DropoutRows) -> Option<Arc<[u64]>>) -> Mode {
        let dropout = self.dropout.0.as_ref().map(|d| DropoutRows {
            rows: map(d),
            ..d.clone()
        });
        Mode {
            differentiable: self.differentiable,
            dropout: DropoutSeed(dropout),
        }
    }
}

/// `x @ Wᵀ + b`, weights as stored (`[out, in]`), optionally with a LoRA/DoRA adapter.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    adapter: Option<Adapter>,
}

impl Linear {
    pub fn load(w: &Weights, name: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = w.get(&format!("{name}.weight"), &[out_dim, in_dim])?;
        let bias = if bias {
            Some(w.get(&format!("{name}.bias"), &[out_dim])?)
        } else {
            None
        };
        Ok(Linear {
            weight,
            bias,
            adapter: None,
        })
    }

    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear {
            weight,
            bias,
            adapter: None,
        }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Whether a gradient can flow through this layer for `x`: from a trained weight or bias, or back to
    /// whatever `x` came from. Even at `Mode::INFERENCE` the output must then stay in candle's graph (a
    /// trained patch embedding is called that way under `--full`).
    fn needs_graph(&self, x: &Tensor) -> bool {
        x.track_op() || self.weight.track_op() || self.bias.as_ref().is_some_and(|b| b.track_op())
    }

    pub fn adapter(&self) -> Option<&Adapter> {
        self.adapter.as_ref()
    }

    pub fn set_adapter(&mut self, adapter: Option<Adapter>) {
        self.adapter = adapter;
    }

    /// Folds the adapter into the weight (for fast inference) and drops it.
    pub fn merge_adapter(&mut self) -> Result<()> {
        if let Some(adapter) = self.adapter.take() {
            self.weight = adapter.merged_weight(&self.weight)?;
        }
        Ok(())
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_mode(x, &Mode::INFERENCE)
    }

    pub fn forward_mode(&self, x: &Tensor, mode: &Mode) -> Result<Tensor> {
        let base = if mode.differentiable && !self.weight.is_variable() {
            fused::frozen_linear(x, &self.weight, self.bias.as_ref())?
        } else if !mode.differentiable && !self.needs_graph(x) {
            fused::linear(x, &self.weight, self.bias.as_ref())?
        } else {
            candle_nn::Linear::new(self.weight.clone(), self.bias.clone()).forward(x)?
        };
        match &self.adapter {
            None => Ok(base),
            Some(adapter) => adapter.forward(x, &base, &self.weight, self.bias.as_ref(), &mode.dropout),
        }
    }
}

/// LayerNorm with weight and bias, statistics in f32.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn load(w: &Weights, name: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: w.get(&format!("{name}.weight"), &[dim])?,
            bias: w.get(&format!("{name}.bias"), &[dim])?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_mode(x, &Mode::INFERENCE)
    }

    pub fn forward_mode(&self, x: &Tensor, mode: &Mode) -> Result<Tensor> {
        if !mode.differentiable && x.dtype() == DType::F32 {
            return Ok(candle_nn::ops::layer_norm(
                &x.contiguous()?,
                &self.weight,
                &self.bias,
                self.eps as f32,
            )?);
        }
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?.to_dtype(dtype)?;
        Ok(normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)?)
    }
}

/// Qwen2's RMSNorm: `weight * (x / sqrt(mean(x²) + eps))`, computed in f32 and cast back before the weight.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn load(w: &Weights, name: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(RmsNorm {
            weight: w.get(&format!("{name}.weight"), &[dim])?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_mode(x, &Mode::INFERENCE)
    }

    pub fn forward_mode(&self, x: &Tensor, mode: &Mode) -> Result<Tensor> {
        if !mode.differentiable && x.dtype() == DType::F32 {
            return Ok(candle_nn::ops::rms_norm(
                &x.contiguous()?,
                &self.weight,
                self.eps as f32,
            )?);
        }
        if mode.differentiable {
            return fused::rms_norm(x, &self.weight, self.eps);
        }
        let dtype = x.dtype();
        let x32 = x.to_dtype(DType::F32)?;
        let mean_square = x32.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = x32.broadcast_div(&(mean_square + self.eps)?.sqrt()?)?.to_dtype(dtype)?;
        Ok(normed.broadcast_mul(&self.weight)?)
    }
}

/// CLIP's QuickGELU, `x * sigmoid(1.702 x)`, which candle's activations do not include: one fused pass
/// at inference, candle's ops (with their backward) when training.
pub fn quick_gelu(x: &Tensor, mode: &Mode) -> Result<Tensor> {
    if !mode.differentiable && fused::supported(x) {
        return fused::sigmoid_gated(x, 1.702, None);
    }
    Ok((x * candle_nn::ops::sigmoid(&(x * 1.702)?)?)?)
}

/// `[-x2, x1]` for the two halves of the last dimension.
pub fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let first = x.narrow(D::Minus1, 0, half)?;
    let second = x.narrow(D::Minus1, half, half)?;
    Ok(Tensor::cat(&[&second.neg()?, &first], D::Minus1)?)
}

/// NeoX-style rotary embedding on `x` `[batch, heads, len, head_dim]` with angle tables `cos`, `sin`
/// `[batch, len, head_dim / 2]`: `x * cos + rotate_half(x) * sin`, in f32. Inference uses candle's fused
/// kernel; training our fused op with its backward where it serves, else the composite form (candle's
/// fused kernel records no backward).
pub fn apply_rotary(x: &Tensor, cos: &Tensor, sin: &Tensor, mode: &Mode) -> Result<Tensor> {
    if mode.differentiable {
        return fused::rope(x, cos, sin);
    }
    apply_rotary_composite(x, cos, sin, mode)
}

/// [`apply_rotary`] without the training op: candle's kernel at inference, the composite form in training.
pub fn apply_rotary_composite(x: &Tensor, cos: &Tensor, sin: &Tensor, mode: &Mode) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let rotated = if mode.differentiable {
        let full = |t: &Tensor| -> Result<Tensor> { Ok(Tensor::cat(&[t, t], D::Minus1)?.unsqueeze(1)?) };
        (x.broadcast_mul(&full(cos)?)? + rotate_half(&x)?.broadcast_mul(&full(sin)?)?)?
    } else {
        candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?
    };
    Ok(rotated.to_dtype(dtype)?)
}

/// Softmax over the last dimension, in f32; the composite (differentiable) form when training, our
/// vectorised kernel at inference on the CPU.
pub fn softmax_f32(x: &Tensor, mode: &Mode) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let probs = if mode.differentiable {
        candle_nn::ops::softmax(&x, D::Minus1)?
    } else if fused::supported(&x) {
        fused::softmax_last_dim(&x)?
    } else {
        candle_nn::ops::softmax_last_dim(&x)?
    };
    Ok(probs.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Called as at inference, a layer whose weight trains (or whose input carries a gradient) still
    /// passes gradients: only a layer where nothing trains leaves candle's graph.
    #[test]
    fn inference_calls_keep_the_graph_where_something_trains() {
        let values = |n: usize, seed: u64| saha_common::rng::symmetric_values(n, seed);
        let tensor = |shape: &[usize], seed: u64| {
            Tensor::from_vec(values(shape.iter().product(), seed), shape, &Device::Cpu).unwrap()
        };
        let weight = Var::from_tensor(&tensor(&[4, 3], 1)).unwrap();
        let layer = Linear::from_tensors(weight.as_tensor().clone(), Some(tensor(&[4], 2)));
        let grads = layer
            .forward(&tensor(&[5, 3], 3))
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&weight).is_some(), "a trained weight lost its gradient");

        let x = Var::from_tensor(&tensor(&[5, 3], 4)).unwrap();
        let frozen = Linear::from_tensors(tensor(&[4, 3], 5), None);
        let grads = frozen
            .forward(x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(grads.get(&x).is_some(), "the input lost its gradient");

        let out = frozen.forward(&tensor(&[5, 3], 6)).unwrap();
        assert!(!out.track_op(), "nothing trains here, yet the output is in the graph");
    }
}
