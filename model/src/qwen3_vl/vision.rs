//! Qwen3-VL's vision tower: a biased patch embedding plus a learned position table resampled (bilinearly,
//! corners aligned) to each image's grid, the ViT blocks Qwen2-VL has (GELU-tanh MLP), the 2x2 merger, and
//! the DeepStack mergers that turn chosen blocks' outputs into features for the first text layers.

use candle_core::{DType, Device, Tensor};

use crate::config::{Arch, VisionConfig};
use crate::error::Result;
use crate::layers::{LayerNorm, Linear, Mode};
use crate::qwen3_vl::config::grid_side;
use crate::vision::block::{self, VisionBlock};
use crate::vision::{
    check_patches, frames, patch_embed, patch_positions, rotary_tables, traced, VisionTrace, NORM_EPS,
};
use crate::weights::Weights;

/// LayerNorm then `fc2(gelu(fc1(x)))` over groups of `merge_unit` patches. The main merger normalises each
/// patch before grouping; the DeepStack mergers normalise the group ("postshuffle").
struct Merger {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    postshuffle: bool,
}

impl Merger {
    fn load(w: &Weights, cfg: &VisionConfig, prefix: &str, postshuffle: bool) -> Result<Self> {
        let grouped = cfg.embed_dim * cfg.merge_unit();
        let norm_dim = if postshuffle { grouped } else { cfg.embed_dim };
        Ok(Merger {
            norm: LayerNorm::load(w, &format!("{prefix}.norm"), norm_dim, NORM_EPS)?,
            fc1: Linear::load(w, &format!("{prefix}.linear_fc1"), grouped, grouped, true)?,
            fc2: Linear::load(w, &format!("{prefix}.linear_fc2"), grouped, cfg.hidden_size, true)?,
            postshuffle,
        })
    }

    fn forward(&self, x: &Tensor, merge_unit: usize, mode: &Mode) -> Result<Tensor> {
        let (n, e) = x.dims2()?;
        let grouped = if self.postshuffle {
            self.norm
                .forward_mode(&x.reshape((n / merge_unit, e * merge_unit))?, mode)?
        } else {
            self.norm
                .forward_mode(x, mode)?
                .reshape((n / merge_unit, e * merge_unit))?
        };
        self.fc2.forward(&self.fc1.forward(&grouped)?.gelu_erf()?)
    }
}

pub struct VisionTower {
    cfg: VisionConfig,
    patch_embed: Linear,
    /// `[side * side, embed_dim]`, row-major over a square grid.
    pos_embed: Tensor,
    blocks: Vec<VisionBlock>,
    merger: Merger,
    deepstack: Vec<Merger>,
}

impl VisionTower {
    pub fn load(w: &Weights, cfg: &VisionConfig) -> Result<Self> {
        Ok(VisionTower {
            cfg: cfg.clone(),
            patch_embed: patch_embed(w, cfg, true)?,
            pos_embed: w.get("visual.pos_embed.weight", &[cfg.num_position_embeddings, cfg.embed_dim])?,
            blocks: (0..cfg.depth)
                .map(|i| VisionBlock::load(w, Arch::Qwen3Vl, cfg, i))
                .collect::<Result<_>>()?,
            merger: Merger::load(w, cfg, "visual.merger", false)?,
            deepstack: (0..cfg.deepstack_visual_indexes.len())
                .map(|i| Merger::load(w, cfg, &format!("visual.deepstack_merger_list.{i}"), true))
                .collect::<Result<_>>()?,
        })
    }

    /// Whether the tower trains (see [`block::tower_trains`]): if not, its output needs no graph.
    pub fn trains(&self) -> bool {
        block::tower_trains(&self.patch_embed, &self.blocks)
    }

    /// The merged image tokens `[n / merge_unit, hidden_size]` and the DeepStack features (same shape), one
    /// per text layer they are added to.
    pub fn forward_mode(&self, patches: &Tensor, grids: &[[usize; 3]], mode: &Mode) -> Result<(Tensor, Vec<Tensor>)> {
        self.run(patches, grids, mode, |_, _| {})
    }

    /// As [`VisionTower::forward_mode`] at inference, also returning the patch embedding (position
    /// embeddings added) and every block's output.
    pub fn forward_traced(&self, patches: &Tensor, grids: &[[usize; 3]]) -> Result<VisionTrace> {
        traced(|stage| self.run(patches, grids, &Mode::INFERENCE, stage))
    }

    fn run(
        &self,
        patches: &Tensor,
        grids: &[[usize; 3]],
        mode: &Mode,
        mut stage: impl FnMut(Option<usize>, &Tensor),
    ) -> Result<(Tensor, Vec<Tensor>)> {
        check_patches(patches, grids, &self.cfg)?;
        let mode = &block::tower_mode(&self.patch_embed, &self.blocks, mode);
        let dtype = self.patch_embed.weight().dtype();
        let rope = rotary_tables(&self.cfg, grids, patches.device())?;
        let blocks = frames(grids);
        let x = self.patch_embed.forward(&patches.to_dtype(dtype)?)?;
        let mut x = (x + self.position_embeddings(grids, patches.device())?.to_dtype(dtype)?)?;
        stage(None, &x);
        let unit = self.cfg.merge_unit();
        let mut deepstack = Vec::with_capacity(self.deepstack.len());
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, &rope, &blocks, self.cfg.num_heads, mode)?;
            stage(Some(i), &x);
            if let Some(k) = self.cfg.deepstack_visual_indexes.iter().position(|&b| b == i) {
                deepstack.push(self.deepstack[k].forward(&x, unit, mode)?);
            }
        }
        Ok((self.merger.forward(&x, unit, mode)?, deepstack))
    }

    /// Every linear layer of the blocks with its original-layout name (`visual.blocks.3.mlp.linear_fc1`).
    pub fn for_each_linear_mut(&mut self, f: &mut dyn FnMut(&str, &mut Linear) -> Result<()>) -> Result<()> {
        block::for_each_linear_mut(&mut self.blocks, f)
    }

    pub fn for_each_linear(&self, f: &mut dyn FnMut(&str, &Linear)) {
        block::for_each_linear(&self.blocks, f)
    }

    /// `[n, embed_dim]` f32: the position table resampled to each image's grid, bilinearly with corners
    /// aligned, in patch order. The sample points and weights are computed in f32 as transformers'
    /// `get_vision_interpolation_indices_and_weights` computes them.
    fn position_embeddings(&self, grids: &[[usize; 3]], device: &Device) -> Result<Tensor> {
        let side = grid_side(self.cfg.num_position_embeddings);
        // Two taps per axis: (index into the side, weight).
        let taps = |i: usize, size: usize| -> [(usize, f32); 2] {
            let src = (i as f32 * (side - 1) as f32) / (size.saturating_sub(1).max(1)) as f32;
            let floor = src.floor();
            let frac = src - floor;
            let tap = |offset: usize| {
                let weight = (1.0 - (frac - offset as f32).abs()).max(0.0);
                ((floor as usize + offset).min(side - 1), weight)
            };
            [tap(0), tap(1)]
        };
        let mut index = Vec::new();
        let mut weight = Vec::new();
        for (row, col, [_, h, w]) in patch_positions(grids, self.cfg.spatial_merge_size) {
            for (r, wr) in taps(row, h) {
                for (c, wc) in taps(col, w) {
                    index.push((r * side + c) as u32);
                    weight.push(wr * wc);
                }
            }
        }
        let n = index.len() / 4;
        let rows = self
            .pos_embed
            .to_dtype(DType::F32)?
            .index_select(&Tensor::from_vec(index, 4 * n, device)?, 0)?
            .reshape((n, 4, self.cfg.embed_dim))?;
        let weight = Tensor::from_vec(weight, (n, 4, 1), device)?;
        Ok(rows.broadcast_mul(&weight)?.sum(1)?)
    }
}
