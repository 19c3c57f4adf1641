//! One vision block: pre-norm attention with 2-D rotary positions inside each segment of rows, then
//! pre-norm MLP. Qwen2-VL's blocks use LayerNorm and a QuickGELU MLP (`fc1`, `fc2`); Qwen2.5-VL's use
//! RMSNorm and a SwiGLU MLP with biases (`gate_proj`, `up_proj`, `down_proj`); Qwen3-VL's LayerNorm and a
//! GELU-tanh MLP (`linear_fc1`, `linear_fc2`).

use candle_core::Tensor;

use crate::config::{Arch, VisionConfig};
use crate::error::Result;
use crate::fused;
use crate::layers::{apply_rotary, quick_gelu, softmax_f32, LayerNorm, Linear, Mode, RmsNorm};
use crate::text::Mlp;
use crate::weights::Weights;

/// Every vision norm has this epsilon, in both architectures.
pub const NORM_EPS: f64 = 1e-6;

pub enum Norm {
    Layer(LayerNorm),
    Rms(RmsNorm),
}

impl Norm {
    /// Qwen2-VL's LayerNorm (weight and bias) or Qwen2.5-VL's RMSNorm (weight only) named `name`.
    pub fn load(w: &Weights, arch: Arch, name: &str, dim: usize) -> Result<Self> {
        Ok(match arch {
            Arch::Qwen2Vl | Arch::Qwen3Vl => Norm::Layer(LayerNorm::load(w, name, dim, NORM_EPS)?),
            Arch::Qwen2_5Vl => Norm::Rms(RmsNorm::load(w, name, dim, NORM_EPS)?),
        })
    }

    pub fn forward_mode(&self, x: &Tensor, mode: &Mode) -> Result<Tensor> {
        match self {
            Norm::Layer(norm) => norm.forward_mode(x, mode),
            Norm::Rms(norm) => norm.forward_mode(x, mode),
        }
    }
}

enum BlockMlp {
    QuickGelu { fc1: Linear, fc2: Linear },
    SwiGlu(Mlp),
    GeluTanh { fc1: Linear, fc2: Linear },
}

pub struct VisionBlock {
    norm1: Norm,
    norm2: Norm,
    qkv: Linear,
    proj: Linear,
    mlp: BlockMlp,
}

impl VisionBlock {
    pub fn load(w: &Weights, arch: Arch, cfg: &VisionConfig, i: usize) -> Result<Self> {
        let p = format!("visual.blocks.{i}");
        let (e, m) = (cfg.embed_dim, cfg.intermediate_size);
        let mlp = match arch {
            Arch::Qwen2Vl => BlockMlp::QuickGelu {
                fc1: Linear::load(w, &format!("{p}.mlp.fc1"), e, m, true)?,
                fc2: Linear::load(w, &format!("{p}.mlp.fc2"), m, e, true)?,
            },
            Arch::Qwen2_5Vl => BlockMlp::SwiGlu(Mlp::load(w, &format!("{p}.mlp"), e, m, true)?),
            Arch::Qwen3Vl => BlockMlp::GeluTanh {
                fc1: Linear::load(w, &format!("{p}.mlp.linear_fc1"), e, m, true)?,
                fc2: Linear::load(w, &format!("{p}.mlp.linear_fc2"), m, e, true)?,
            },
        };
        Ok(VisionBlock {
            norm1: Norm::load(w, arch, &format!("{p}.norm1"), e)?,
            norm2: Norm::load(w, arch, &format!("{p}.norm2"), e)?,
            qkv: Linear::load(w, &format!("{p}.attn.qkv"), e, 3 * e, true)?,
            proj: Linear::load(w, &format!("{p}.attn.proj"), e, e, true)?,
            mlp,
        })
    }

    /// `segments`: lengths of the consecutive runs of rows that attend to each other (and to no other).
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        segments: &[usize],
        heads: usize,
        mode: &Mode,
    ) -> Result<Tensor> {
        let x = (x + self.attention(&self.norm1.forward_mode(x, mode)?, rope, segments, heads, mode)?)?;
        let normed = self.norm2.forward_mode(&x, mode)?;
        let mlp = match &self.mlp {
            BlockMlp::QuickGelu { fc1, fc2 } => {
                fc2.forward_mode(&quick_gelu(&fc1.forward_mode(&normed, mode)?, mode)?, mode)?
            }
            BlockMlp::SwiGlu(mlp) => mlp.forward(&normed, mode)?,
            BlockMlp::GeluTanh { fc1, fc2 } => fc2.forward_mode(&fc1.forward_mode(&normed, mode)?.gelu()?, mode)?,
        };
        Ok((x + mlp)?)
    }

    fn attention(
        &self,
        x: &Tensor,
        (cos, sin): &(Tensor, Tensor),
        segments: &[usize],
        heads: usize,
        mode: &Mode,
    ) -> Result<Tensor> {
        let (n, e) = x.dims2()?;
        let head_dim = e / heads;
        if !mode.differentiable && fused::supported(x) {
            let qkv = self.qkv.forward_mode(x, mode)?;
            return self
                .proj
                .forward_mode(&fused::segment_attention(&qkv, (cos, sin), segments, heads)?, mode);
        }
        // [3, heads, n, head_dim]: one contiguous matrix per head, as attention and the rope kernel want.
        let qkv = self
            .qkv
            .forward_mode(x, mode)?
            .reshape((n, 3, heads, head_dim))?
            .permute((1, 2, 0, 3))?
            .contiguous()?;
        let rotate = |t: Tensor| -> Result<Tensor> {
            apply_rotary(&t.unsqueeze(0)?, cos, sin, mode)?
                .squeeze(0)
                .map_err(Into::into)
        };
        let q = rotate(qkv.get(0)?)?;
        let k = rotate(qkv.get(1)?)?;
        let v = qkv.get(2)?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let mut outputs = Vec::with_capacity(segments.len());
        let mut start = 0;
        for &len in segments {
            let part = |t: &Tensor| -> Result<Tensor> { Ok(t.narrow(1, start, len)?.contiguous()?) };
            let (q, k, v) = (part(&q)?, part(&k)?, part(&v)?);
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let out = softmax_f32(&scores, mode)?.matmul(&v)?;
            outputs.push(out.transpose(0, 1)?.reshape((len, e))?);
            start += len;
        }
        self.proj.forward_mode(&Tensor::cat(&outputs, 0)?, mode)
    }

    /// The block's linear layers with their names under `visual.blocks.{i}.` (`attn.qkv`, `mlp.down_proj`).
    pub fn linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut all = vec![
            ("attn.qkv".to_string(), &mut self.qkv),
            ("attn.proj".to_string(), &mut self.proj),
        ];
        match &mut self.mlp {
            BlockMlp::QuickGelu { fc1, fc2 } => {
                all.extend([("mlp.fc1".to_string(), fc1), ("mlp.fc2".to_string(), fc2)])
            }
            BlockMlp::SwiGlu(mlp) => all.extend(mlp.linears_mut().map(|(name, l)| (format!("mlp.{name}"), l))),
            BlockMlp::GeluTanh { fc1, fc2 } => {
                all.extend([("mlp.linear_fc1".to_string(), fc1), ("mlp.linear_fc2".to_string(), fc2)])
            }
        }
        all
    }

    pub fn linears(&self) -> Vec<(String, &Linear)> {
        let mut all = vec![
            ("attn.qkv".to_string(), &self.qkv),
            ("attn.proj".to_string(), &self.proj),
        ];
        match &self.mlp {
            BlockMlp::QuickGelu { fc1, fc2 } => {
                all.extend([("mlp.fc1".to_string(), fc1), ("mlp.fc2".to_string(), fc2)])
            }
            BlockMlp::SwiGlu(mlp) => all.extend(mlp.linears().map(|(name, l)| (format!("mlp.{name}"), l))),
            BlockMlp::GeluTanh { fc1, fc2 } => {
                all.extend([("mlp.linear_fc1".to_string(), fc1), ("mlp.linear_fc2".to_string(), fc2)])
            }
        }
        all
    }
}

/// Every linear layer of `blocks` with its original-layout name (`visual.blocks.3.mlp.down_proj`).
pub fn for_each_linear_mut(
    blocks: &mut [VisionBlock],
    f: &mut dyn FnMut(&str, &mut Linear) -> Result<()>,
) -> Result<()> {
    for (i, block) in blocks.iter_mut().enumerate() {
        for (name, linear) in block.linears_mut() {
            f(&format!("visual.blocks.{i}.{name}"), linear)?;
        }
    }
    Ok(())
}

pub fn for_each_linear(blocks: &[VisionBlock], f: &mut dyn FnMut(&str, &Linear)) {
    for (i, block) in blocks.iter().enumerate() {
        for (name, linear) in block.linears() {
            f(&format!("visual.blocks.{i}.{name}"), linear);
        }
    }
}

/// Whether a tower trains: when all its weights do (full fine-tuning) or when adapters sit on some of its
/// layers. A frozen tower needs no graph.
pub fn tower_trains(patch_embed: &Linear, blocks: &[VisionBlock]) -> bool {
    patch_embed.weight().is_variable()
        || blocks
            .iter()
            .any(|b| b.linears().iter().any(|(_, l)| l.adapter().is_some()))
}

/// The mode a tower runs in: a frozen tower runs as at inference, on the fused kernels. A training tower's
/// rows are patches, not the batch's inputs, so a regrouped batch's row map does not apply.
pub fn tower_mode(patch_embed: &Linear, blocks: &[VisionBlock], mode: &Mode) -> Mode {
    if tower_trains(patch_embed, blocks) {
        mode.without_row_map()
    } else {
        Mode::INFERENCE
    }
}
