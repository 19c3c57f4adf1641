//! Qwen2-VL's vision tower: patch embedding, blocks with 2-D rotary attention inside each image,
//! and the 2x2 patch merger into the text hidden size.

use candle_core::{DType, Device, Tensor};

use crate::config::{VisionAct, VisionConfig};
use crate::error::{ModelError, Result};
use crate::layers::{apply_rotary, quick_gelu, softmax_f32, LayerNorm, Linear, Mode};
use crate::weights::Weights;

pub(crate) const LAYER_NORM_EPS: f64 = 1e-6;
const VISION_ROPE_THETA: f32 = 10_000.0;

/// A pre-LayerNorm ViT block with 2-D rotary attention inside each image (Qwen2-VL's and Qwen3-VL's).
pub(crate) struct VisionBlock {
    norm1: LayerNorm,
    norm2: LayerNorm,
    qkv: Linear,
    proj: Linear,
    fc1: Linear,
    fc2: Linear,
    act: VisionAct,
}

impl VisionBlock {
    /// Block `i`; `mlp` names the MLP's two linears (`fc1`/`fc2` in Qwen2-VL, `linear_fc1`/`linear_fc2` in
    /// Qwen3-VL).
    pub(crate) fn load(w: &Weights, cfg: &VisionConfig, i: usize, mlp: [&str; 2]) -> Result<Self> {
        let p = format!("visual.blocks.{i}");
        let e = cfg.embed_dim;
        Ok(VisionBlock {
            norm1: LayerNorm::load(w, &format!("{p}.norm1"), e, LAYER_NORM_EPS)?,
            norm2: LayerNorm::load(w, &format!("{p}.norm2"), e, LAYER_NORM_EPS)?,
            qkv: Linear::load(w, &format!("{p}.attn.qkv"), e, 3 * e, true)?,
            proj: Linear::load(w, &format!("{p}.attn.proj"), e, e, true)?,
            fc1: Linear::load(w, &format!("{p}.mlp.{}", mlp[0]), e, cfg.mlp_dim(), true)?,
            fc2: Linear::load(w, &format!("{p}.mlp.{}", mlp[1]), cfg.mlp_dim(), e, true)?,
            act: cfg.hidden_act,
        })
    }

    pub(crate) fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        blocks: &[usize],
        heads: usize,
        mode: Mode,
    ) -> Result<Tensor> {
        let x = (x + self.attention(&self.norm1.forward_mode(x, mode)?, rope, blocks, heads, mode)?)?;
        let hidden = self.fc1.forward(&self.norm2.forward_mode(&x, mode)?)?;
        let hidden = match self.act {
            VisionAct::QuickGelu => quick_gelu(&hidden)?,
            VisionAct::GeluTanh => hidden.gelu()?,
            VisionAct::Gelu => hidden.gelu_erf()?,
        };
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
    /// Qwen3-VL: the DeepStack mergers' outputs, one per text layer they feed, in that order.
    pub deepstack: Vec<Tensor>,
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
            .map(|i| VisionBlock::load(w, cfg, i, ["fc1", "fc2"]))
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
            deepstack: Vec::new(),
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
        let n = check_patches(patches, grids, &self.cfg)?;
        // Weights are trained all together or not at all (adapters sit on the language model only): a
        // frozen tower needs no graph, so it runs as at inference, on the fused kernels.
        let mode = if self.patch_embed.weight().is_variable() {
            mode
        } else {
            Mode::INFERENCE
        };
        let rope = rotary_tables(&self.cfg, grids, patches.device())?;
        let blocks = frames(grids);
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

/// Patches per attention block: one block per image frame.
pub(crate) fn frames(grids: &[[usize; 3]]) -> Vec<usize> {
    grids.iter().flat_map(|&[t, h, w]| std::iter::repeat_n(h * w, t)).collect()
}

/// Each patch's (row, column) in the order the processor emits patches: frame by frame, 2x2 merge window
/// by merge window.
pub(crate) fn patch_positions(grids: &[[usize; 3]], merge: usize) -> impl Iterator<Item = (usize, usize, [usize; 3])> + '_ {
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

/// cos and sin `[1, n, head_dim / 2]` of each patch's (row, column) position, in 2x2 merge-window order.
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
