//! The vision towers of Qwen2-VL and Qwen2.5-VL: patch embedding, blocks with 2-D rotary attention, and
//! the 2x2 patch merger into the text hidden size (Qwen3-VL's, built from the same blocks and tables, is in
//! [`crate::qwen3_vl::vision`]). Qwen2-VL's blocks attend within each image; Qwen2.5-VL
//! reorders the patches window by window, attends within each window except in its full-attention blocks
//! (within each image there), and restores the order after the merger.

pub(crate) mod block;
pub mod windows;

use candle_core::{DType, Device, Tensor};

use crate::config::{Arch, VisionConfig};
use crate::error::{ModelError, Result};
use crate::layers::{Linear, Mode};
use crate::weights::Weights;
pub(crate) use block::NORM_EPS;
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
    /// Qwen3-VL: the DeepStack mergers' outputs, one per text layer they feed, in that order.
    pub deepstack: Vec<Tensor>,
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
        let patch_embed = patch_embed(w, cfg, false)?;
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
        self.forward_mode(patches, grids, &Mode::INFERENCE)
    }

    /// Whether the tower trains (see [`block::tower_trains`]): if not, its output needs no graph.
    pub fn trains(&self) -> bool {
        block::tower_trains(&self.patch_embed, &self.blocks)
    }

    pub fn forward_mode(&self, patches: &Tensor, grids: &[[usize; 3]], mode: &Mode) -> Result<Tensor> {
        self.run(patches, grids, mode, |_, _| {})
    }

    /// As [`VisionTower::forward`], also returning the patch embedding and every block's output (to compare
    /// the tower with a reference stage by stage).
    pub fn forward_traced(&self, patches: &Tensor, grids: &[[usize; 3]]) -> Result<VisionTrace> {
        traced(|stage| Ok((self.run(patches, grids, &Mode::INFERENCE, stage)?, Vec::new())))
    }

    /// The forward pass; `stage(None, x)` sees the patch embedding, `stage(Some(i), x)` block `i`'s output.
    fn run(
        &self,
        patches: &Tensor,
        grids: &[[usize; 3]],
        mode: &Mode,
        mut stage: impl FnMut(Option<usize>, &Tensor),
    ) -> Result<Tensor> {
        let n = check_patches(patches, grids, &self.cfg)?;
        let mode = &block::tower_mode(&self.patch_embed, &self.blocks, mode);
        let frames = frames(grids);
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
        let (mut cos, mut sin) = rotary_tables(&self.cfg, grids, device)?;
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
        block::for_each_linear_mut(&mut self.blocks, f)
    }

    pub fn for_each_linear(&self, f: &mut dyn FnMut(&str, &Linear)) {
        block::for_each_linear(&self.blocks, f)
    }
}

/// A tower's trace: `run` calls its stage hook with the patch embedding (`None`) and each block's output
/// (`Some(i)`) and returns the merged tokens and the DeepStack features.
pub(crate) fn traced(
    run: impl FnOnce(&mut dyn FnMut(Option<usize>, &Tensor)) -> Result<(Tensor, Vec<Tensor>)>,
) -> Result<VisionTrace> {
    let mut patch_embed = None;
    let mut blocks = Vec::new();
    let (merged, deepstack) = run(&mut |block, x| match block {
        None => patch_embed = Some(x.clone()),
        Some(_) => blocks.push(x.clone()),
    })?;
    Ok(VisionTrace {
        patch_embed: patch_embed.expect("run reports the patch embedding"),
        blocks,
        merged,
        deepstack,
    })
}

/// The patch embedding: a Conv3d whose kernel equals its stride, so over pre-flattened patches a plain
/// linear map (with a bias in Qwen3-VL).
pub(crate) fn patch_embed(w: &Weights, cfg: &VisionConfig, bias: bool) -> Result<Linear> {
    let e = cfg.embed_dim;
    let conv_shape = [
        e,
        cfg.in_channels,
        cfg.temporal_patch_size,
        cfg.patch_size,
        cfg.patch_size,
    ];
    let conv = w.get("visual.patch_embed.proj.weight", &conv_shape)?;
    let bias = if bias {
        Some(w.get("visual.patch_embed.proj.bias", &[e])?)
    } else {
        None
    };
    Ok(Linear::from_tensors(conv.reshape((e, cfg.patch_values()))?, bias))
}

/// The number of patches, after checking that `patches` is `[sum(t*h*w), patch_values]` for `grids`.
pub(crate) fn check_patches(patches: &Tensor, grids: &[[usize; 3]], cfg: &VisionConfig) -> Result<usize> {
    let expected: usize = grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
    let (n, values) = patches.dims2()?;
    if n != expected || values != cfg.patch_values() {
        return Err(ModelError::Input(format!(
            "pixel patches have shape [{n}, {values}], the image grids need [{expected}, {}]",
            cfg.patch_values()
        )));
    }
    Ok(n)
}

/// Patches per attention segment when every block attends within each image frame.
pub(crate) fn frames(grids: &[[usize; 3]]) -> Vec<usize> {
    grids
        .iter()
        .flat_map(|&[t, h, w]| std::iter::repeat_n(h * w, t))
        .collect()
}

/// Each patch's (row, column) and its image's grid, in the order the processor emits patches: frame by
/// frame, merge window by merge window.
pub(crate) fn patch_positions(
    grids: &[[usize; 3]],
    merge: usize,
) -> impl Iterator<Item = (usize, usize, [usize; 3])> + '_ {
    grids.iter().flat_map(move |&grid @ [t, h, w]| {
        (0..t).flat_map(move |_| {
            (0..h / merge).flat_map(move |block_row| {
                (0..w / merge).flat_map(move |block_col| {
                    (0..merge * merge)
                        .map(move |k| (block_row * merge + k / merge, block_col * merge + k % merge, grid))
                })
            })
        })
    })
}

/// cos and sin `[1, n, head_dim / 2]` of each patch's (row, column) position, in merge-window order.
pub(crate) fn rotary_tables(cfg: &VisionConfig, grids: &[[usize; 3]], device: &Device) -> Result<(Tensor, Tensor)> {
    let rotary_dim = cfg.head_dim() / 2;
    let inv_freq: Vec<f32> = (0..rotary_dim / 2)
        .map(|k| 1.0 / VISION_ROPE_THETA.powf((2 * k) as f32 / rotary_dim as f32))
        .collect();
    let mut angles = Vec::new();
    for (y, x, _) in patch_positions(grids, cfg.spatial_merge_size) {
        angles.extend(inv_freq.iter().map(|f| y as f32 * f));
        angles.extend(inv_freq.iter().map(|f| x as f32 * f));
    }
    let total = angles.len() / rotary_dim;
    let angles = Tensor::from_vec(angles, (1, total, rotary_dim), device)?;
    Ok((angles.cos()?.to_dtype(DType::F32)?, angles.sin()?.to_dtype(DType::F32)?))
}
