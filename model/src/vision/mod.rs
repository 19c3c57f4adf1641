//! The vision towers of Qwen2-VL and Qwen2.5-VL: patch embedding, blocks with 2-D rotary attention, and
//! the 2x2 patch merger into the text hidden size. Qwen2-VL's blocks attend within each image; Qwen2.5-VL
//! reorders the patches window by window, attends within each window except in its full-attention blocks
//! (within each image there), and restores the order after the merger.

mod block;
pub mod windows;

use candle_core::{DType, Device, Tensor};

use crate::config::{Arch, VisionConfig};
use crate::error::{ModelError, Result};
use crate::layers::{Linear, Mode};
use crate::weights::Weights;
use block::{Norm, VisionBlock};
use windows::{window_layout, WindowLayout};

const VISION_ROPE_THETA: f32 = 10_000.0;

/// The vision tower's intermediate outputs for one call ([`VisionTower::forward_traced`]).
pub struct VisionTrace {
    /// The patch embedding `[n, embed_dim]`, before the first block.
    pub patch_embed: Tensor,
    /// Each block's output `[n, embed_dim]`, in order; the last one feeds the merger. Rows are in the
    /// tower's order: window by window for Qwen2.5-VL (transformers' `last_hidden_state` order).
    pub blocks: Vec<Tensor>,
    /// The merger's output `[n / merge_unit, hidden_size]`, what [`VisionTower::forward`] returns.
    pub merged: Tensor,
}

pub struct VisionTower {
    cfg: VisionConfig,
    patch_embed: Linear,
    blocks: Vec<VisionBlock>,
    merger_norm: Norm,
    merger_fc1: Linear,
    merger_fc2: Linear,
}

impl VisionTower {
    pub fn load(w: &Weights, arch: Arch, cfg: &VisionConfig) -> Result<Self> {
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
            .map(|i| VisionBlock::load(w, arch, cfg, i))
            .collect::<Result<Vec<_>>>()?;
        let merged = e * cfg.merge_unit();
        Ok(VisionTower {
            cfg: cfg.clone(),
            patch_embed,
            blocks,
            merger_norm: Norm::load(w, arch, "visual.merger.ln_q", e)?,
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
        // A frozen tower needs no graph, so it runs as at inference, on the fused kernels. It trains when
        // all its weights do (full fine-tuning) or when adapters sit on some of its layers.
        let trainable = self.patch_embed.weight().is_variable()
            || self
                .blocks
                .iter()
                .any(|b| b.linears().iter().any(|(_, l)| l.adapter().is_some()));
        let mode = if trainable { mode } else { Mode::INFERENCE };
        let frames: Vec<usize> = grids
            .iter()
            .flat_map(|&[t, h, w]| std::iter::repeat_n(h * w, t))
            .collect();
        let unit = self.cfg.merge_unit();
        let layout = self
            .cfg
            .window_tokens()
            .map(|side| window_layout(grids, self.cfg.spatial_merge_size, side));
        let device = patches.device();
        let reorder = |x: &Tensor, layout: &WindowLayout| -> Result<Tensor> {
            let rows = layout.row_order(unit);
            Ok(x.index_select(&Tensor::from_vec(rows, n, device)?, x.rank() - 2)?)
        };
        let (mut cos, mut sin) = self.rotary_tables(grids, device)?;
        let mut x = self
            .patch_embed
            .forward(&patches.to_dtype(self.patch_embed.weight().dtype())?)?;
        stage(None, &x);
        if let Some(layout) = &layout {
            x = reorder(&x, layout)?;
            (cos, sin) = (reorder(&cos, layout)?, reorder(&sin, layout)?);
        }
        let rope = (cos, sin);
        for (i, block) in self.blocks.iter().enumerate() {
            let segments = match (&layout, &self.cfg.windows) {
                (Some(layout), Some(w)) if !w.full_attention_blocks.contains(&i) => &layout.windows,
                _ => &frames,
            };
            x = block.forward(&x, &rope, segments, self.cfg.num_heads, mode)?;
            stage(Some(i), &x);
        }
        let merged = self.merger_norm.forward_mode(&x, mode)?.reshape((n / unit, ()))?;
        let merged = self.merger_fc1.forward_mode(&merged, mode)?.gelu_erf()?;
        let merged = self.merger_fc2.forward_mode(&merged, mode)?;
        match &layout {
            None => Ok(merged),
            Some(layout) => {
                let back = Tensor::from_vec(layout.inverse(), n / unit, device)?;
                Ok(merged.index_select(&back, 0)?)
            }
        }
    }

    /// Every linear layer of the blocks with its original-layout name (`visual.blocks.3.mlp.down_proj`).
    pub fn for_each_linear_mut(&mut self, f: &mut dyn FnMut(&str, &mut Linear) -> Result<()>) -> Result<()> {
        for (i, block) in self.blocks.iter_mut().enumerate() {
            for (name, linear) in block.linears_mut() {
                f(&format!("visual.blocks.{i}.{name}"), linear)?;
            }
        }
        Ok(())
    }

    pub fn for_each_linear(&self, f: &mut dyn FnMut(&str, &Linear)) {
        for (i, block) in self.blocks.iter().enumerate() {
            for (name, linear) in block.linears() {
                f(&format!("visual.blocks.{i}.{name}"), linear);
            }
        }
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
