//! Qwen2-VL's vision tower: patch embedding, blocks with 2-D rotary attention inside each image,
//! and the 2x2 patch merger into the text hidden size.

use candle_core::{DType, Device, Tensor};

use crate::config::VisionConfig;
use crate::error::{ModelError, Result};
use crate::layers::{apply_rotary, quick_gelu, softmax_f32, LayerNorm, Linear, Mode};
use crate::weights::Weights;

const LAYER_NORM_EPS: f64 = 1e-6;
const VISION_ROPE_THETA: f32 = 10_000.0;

struct VisionBlock {
    norm1: LayerNorm,
    norm2: LayerNorm,
    qkv: Linear,
    proj: Linear,
    fc1: Linear,
    fc2: Linear,
}

impl VisionBlock {
    fn load(w: &Weights, cfg: &VisionConfig, i: usize) -> Result<Self> {
        let p = format!("visual.blocks.{i}");
        let e = cfg.embed_dim;
        Ok(VisionBlock {
            norm1: LayerNorm::load(w, &format!("{p}.norm1"), e, LAYER_NORM_EPS)?,
            norm2: LayerNorm::load(w, &format!("{p}.norm2"), e, LAYER_NORM_EPS)?,
            qkv: Linear::load(w, &format!("{p}.attn.qkv"), e, 3 * e, true)?,
            proj: Linear::load(w, &format!("{p}.attn.proj"), e, e, true)?,
            fc1: Linear::load(w, &format!("{p}.mlp.fc1"), e, cfg.mlp_dim(), true)?,
            fc2: Linear::load(w, &format!("{p}.mlp.fc2"), cfg.mlp_dim(), e, true)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        blocks: &[usize],
        heads: usize,
        mode: Mode,
    ) -> Result<Tensor> {
        let x = (x + self.attention(&self.norm1.forward_mode(x, mode)?, rope, blocks, heads, mode)?)?;
        let hidden = quick_gelu(&self.fc1.forward(&self.norm2.forward_mode(&x, mode)?)?)?;
        let mlp = self.fc2.forward(&hidden)?;
        Ok((x + mlp)?)
    }

    /// Full attention within each block of `blocks` patches (one block per image frame), none across.
    fn attention(
        &self,
        x: &Tensor,
        (cos, sin): &(Tensor, Tensor),
        blocks: &[usize],
        heads: usize,
        mode: Mode,
    ) -> Result<Tensor> {
        let (n, e) = x.dims2()?;
        let head_dim = e / heads;
        // [3, heads, n, head_dim]: one contiguous matrix per head, as attention and the rope kernel want.
        let qkv = self
            .qkv
            .forward(x)?
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
        let mut outputs = Vec::with_capacity(blocks.len());
        let mut start = 0;
        for &len in blocks {
            let part = |t: &Tensor| -> Result<Tensor> { Ok(t.narrow(1, start, len)?.contiguous()?) };
            let (q, k, v) = (part(&q)?, part(&k)?, part(&v)?);
            let scores = (q.matmul(&k.t()?)? * scale)?;
            let out = softmax_f32(&scores, mode)?.matmul(&v)?;
            outputs.push(out.transpose(0, 1)?.reshape((len, e))?);
            start += len;
        }
        self.proj.forward(&Tensor::cat(&outputs, 0)?)
    }
}

/// The vision tower's intermediate outputs for one call ([`VisionTower::forward_traced`]).
pub struct VisionTrace {
    /// The patch embedding `[n, embed_dim]`, before the first block.
    pub patch_embed: Tensor,
    /// Each block's output `[n, embed_dim]`, in order; the last one feeds the merger.
    pub blocks: Vec<Tensor>,
    /// The merger's output `[n / merge_unit, hidden_size]`, what [`VisionTower::forward`] returns.
    pub merged: Tensor,
}

pub struct VisionTower {
    cfg: VisionConfig,
    patch_embed: Linear,
    blocks: Vec<VisionBlock>,
    merger_norm: LayerNorm,
    merger_fc1: Linear,
    merger_fc2: Linear,
}

impl VisionTower {
    pub fn load(w: &Weights, cfg: &VisionConfig) -> Result<Self> {
        let e = cfg.embed_dim;
        // The Conv3d's kernel equals its stride, so over pre-flattened patches it is a plain linear map.
        let conv_shape = [
            e,
            cfg.in_channels,
            cfg.temporal_patch_size,
            cfg.patch_size,
            cfg.patch_size,
        ];
        let conv = w.get("visual.patch_embed.proj.weight", &conv_shape)?;
        let patch_embed = Linear::from_tensors(conv.reshape((e, cfg.patch_values()))?, None);
        let blocks = (0..cfg.depth)
            .map(|i| VisionBlock::load(w, cfg, i))
            .collect::<Result<Vec<_>>>()?;
        let merged = e * cfg.merge_unit();
        Ok(VisionTower {
            cfg: cfg.clone(),
            patch_embed,
            blocks,
            merger_norm: LayerNorm::load(w, "visual.merger.ln_q", e, LAYER_NORM_EPS)?,
            merger_fc1: Linear::load(w, "visual.merger.mlp.0", merged, merged, true)?,
            merger_fc2: Linear::load(w, "visual.merger.mlp.2", merged, cfg.hidden_size, true)?,
        })
    }

    /// `patches`: `[sum(t*h*w), patch_values]` for every image in order; returns one row per merged token.
    pub fn forward(&self, patches: &Tensor, grids: &[[usize; 3]]) -> Result<Tensor> {
        self.forward_mode(patches, grids, Mode::INFERENCE)
    }

    pub fn forward_mode(&self, patches: &Tensor, grids: &[[usize; 3]], mode: Mode) -> Result<Tensor> {
        self.run(patches, grids, mode, |_, _| {})
    }

    /// As [`VisionTower::forward`], also returning the patch embedding and every block's output (to compare
    /// the tower with a reference stage by stage).
    pub fn forward_traced(&self, patches: &Tensor, grids: &[[usize; 3]]) -> Result<VisionTrace> {
        let mut patch_embed = None;
        let mut blocks = Vec::with_capacity(self.blocks.len());
        let merged = self.run(patches, grids, Mode::INFERENCE, |block, x| match block {
            None => patch_embed = Some(x.clone()),
            Some(_) => blocks.push(x.clone()),
        })?;
        Ok(VisionTrace {
            patch_embed: patch_embed.expect("run reports the patch embedding"),
            blocks,
            merged,
        })
    }

    /// The forward pass; `stage(None, x)` sees the patch embedding, `stage(Some(i), x)` block `i`'s output.
    fn run(
        &self,
        patches: &Tensor,
        grids: &[[usize; 3]],
        mode: Mode,
        mut stage: impl FnMut(Option<usize>, &Tensor),
    ) -> Result<Tensor> {
        let expected: usize = grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
        let (n, values) = patches.dims2()?;
        if n != expected || values != self.cfg.patch_values() {
            return Err(ModelError::Input(format!(
                "pixel patches have shape [{n}, {values}], the image grids need [{expected}, {}]",
                self.cfg.patch_values()
            )));
        }
        // Weights are trained all together or not at all (adapters sit on the language model only): a
        // frozen tower needs no graph, so it runs as at inference, on the fused kernels.
        let mode = if self.patch_embed.weight().is_variable() {
            mode
        } else {
            Mode::INFERENCE
        };
        let rope = self.rotary_tables(grids, patches.device())?;
        let blocks: Vec<usize> = grids
            .iter()
            .flat_map(|&[t, h, w]| std::iter::repeat_n(h * w, t))
            .collect();
        let mut x = self
            .patch_embed
            .forward(&patches.to_dtype(self.patch_embed.weight().dtype())?)?;
        stage(None, &x);
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, &rope, &blocks, self.cfg.num_heads, mode)?;
            stage(Some(i), &x);
        }
        let merged = self
            .merger_norm
            .forward_mode(&x, mode)?
            .reshape((n / self.cfg.merge_unit(), ()))?;
        let merged = self.merger_fc1.forward(&merged)?.gelu_erf()?;
        self.merger_fc2.forward(&merged)
    }

    /// cos and sin `[1, n, head_dim / 2]` of each patch's (row, column) position, in 2x2 merge-window order.
    fn rotary_tables(&self, grids: &[[usize; 3]], device: &Device) -> Result<(Tensor, Tensor)> {
        let head_dim = self.cfg.head_dim();
        let rotary_dim = head_dim / 2;
        let inv_freq: Vec<f32> = (0..rotary_dim / 2)
            .map(|k| 1.0 / VISION_ROPE_THETA.powf((2 * k) as f32 / rotary_dim as f32))
            .collect();
        let m = self.cfg.spatial_merge_size;
        let total: usize = grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
        let mut angles = Vec::with_capacity(total * rotary_dim);
        let mut row = vec![0f32; rotary_dim];
        for &[t, h, w] in grids {
            for _ in 0..t {
                for block_row in 0..h / m {
                    for block_col in 0..w / m {
                        for i in 0..m {
                            for j in 0..m {
                                let (y, x) = ((block_row * m + i) as f32, (block_col * m + j) as f32);
                                let quarter = rotary_dim / 2;
                                for (k, f) in inv_freq.iter().enumerate() {
                                    row[k] = y * f;
                                    row[quarter + k] = x * f;
                                }
                                angles.extend_from_slice(&row);
                            }
                        }
                    }
                }
            }
        }
        let angles = Tensor::from_vec(angles, (1, total, rotary_dim), device)?;
        Ok((angles.cos()?.to_dtype(DType::F32)?, angles.sin()?.to_dtype(DType::F32)?))
    }
}
