//! Qwen2-VL, Qwen2.5-VL or Qwen3-VL as an embedder: vision tower + language model, pooled at each input's
//! last real token.

use candle_core::{DType, Device, Tensor, D};

use crate::batch::{length_groups, pack_batch, pad_batch, EncodedInput, PaddedBatch, Padding};
use crate::config::{Arch, ModelConfig};
use crate::error::{ModelError, Result};
use crate::image::PixelPatches;
use crate::image_memo::{ImageMemo, VisionOutput};
use crate::layers::{Linear, Mode};
use crate::text::{AttentionLayout, TextInputs, TextModel};
use crate::vision::{VisionTower, VisionTrace};
use crate::weights::Weights;

/// The vision tower of the snapshot's architecture.
pub enum Vision {
    /// Qwen2-VL's and Qwen2.5-VL's.
    Qwen2(VisionTower),
    Qwen3(crate::qwen3_vl::VisionTower),
}

impl Vision {
    fn load(weights: &Weights, config: &ModelConfig) -> Result<Self> {
        Ok(match config.arch {
            Arch::Qwen2Vl | Arch::Qwen2_5Vl => Vision::Qwen2(VisionTower::load(weights, config.arch, &config.vision)?),
            Arch::Qwen3Vl => Vision::Qwen3(crate::qwen3_vl::VisionTower::load(weights, &config.vision)?),
        })
    }

    /// The merged image tokens `[n / merge_unit, hidden]` for `patches` `[n, patch_values]`.
    pub fn forward(&self, patches: &Tensor, grids: &[[usize; 3]]) -> Result<Tensor> {
        Ok(self.forward_mode(patches, grids, &Mode::INFERENCE)?.0)
    }

    /// Whether the tower trains; if not, its output needs no graph.
    pub fn trains(&self) -> bool {
        match self {
            Vision::Qwen2(tower) => tower.trains(),
            Vision::Qwen3(tower) => tower.trains(),
        }
    }

    /// The merged image tokens and the DeepStack features (none but for Qwen3-VL).
    pub fn forward_mode(&self, patches: &Tensor, grids: &[[usize; 3]], mode: &Mode) -> Result<(Tensor, Vec<Tensor>)> {
        match self {
            Vision::Qwen2(tower) => Ok((tower.forward_mode(patches, grids, mode)?, Vec::new())),
            Vision::Qwen3(tower) => tower.forward_mode(patches, grids, mode),
        }
    }

    pub fn forward_traced(&self, patches: &Tensor, grids: &[[usize; 3]]) -> Result<VisionTrace> {
        match self {
            Vision::Qwen2(tower) => tower.forward_traced(patches, grids),
            Vision::Qwen3(tower) => tower.forward_traced(patches, grids),
        }
    }

    pub fn for_each_linear_mut(&mut self, f: &mut dyn FnMut(&str, &mut Linear) -> Result<()>) -> Result<()> {
        match self {
            Vision::Qwen2(tower) => tower.for_each_linear_mut(f),
            Vision::Qwen3(tower) => tower.for_each_linear_mut(f),
        }
    }

    pub fn for_each_linear(&self, f: &mut dyn FnMut(&str, &Linear)) {
        match self {
            Vision::Qwen2(tower) => tower.for_each_linear(f),
            Vision::Qwen3(tower) => tower.for_each_linear(f),
        }
    }
}

pub struct Qwen2Vl {
    config: ModelConfig,
    vision: Vision,
    text: TextModel,
    device: Device,
    dtype: DType,
}

/// Final hidden states of a batch and where each row pools.
pub struct BatchHidden {
    /// `[batch, len, hidden]`.
    pub hidden: Tensor,
    /// Column of each row's last real token.
    pub pooled_columns: Vec<usize>,
}

impl Qwen2Vl {
    pub fn load(weights: &Weights, config: &ModelConfig) -> Result<Self> {
        Ok(Qwen2Vl {
            config: config.clone(),
            vision: Vision::load(weights, config)?,
            text: TextModel::load(weights, &config.text)?,
            device: weights.device().clone(),
            dtype: weights.dtype(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn text(&self) -> &TextModel {
        &self.text
    }

    pub fn text_mut(&mut self) -> &mut TextModel {
        &mut self.text
    }

    pub fn vision(&self) -> &Vision {
        &self.vision
    }

    /// Every linear layer of both towers with its original-layout name: the vision blocks'
    /// (`visual.blocks.0.attn.qkv`), then the decoder's (`model.layers.0.self_attn.q_proj`).
    pub fn for_each_linear_mut(&mut self, f: &mut dyn FnMut(&str, &mut Linear) -> Result<()>) -> Result<()> {
        self.vision.for_each_linear_mut(f)?;
        self.text.for_each_linear_mut(f)
    }

    pub fn for_each_linear(&self, f: &mut dyn FnMut(&str, &Linear)) {
        self.vision.for_each_linear(f);
        self.text.for_each_linear(f);
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype the weights were loaded in (activations follow it; adapters stay f32).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Final-norm hidden states for a padded batch of inputs.
    pub fn forward(&self, inputs: &[EncodedInput], padding: Padding, pad_token: u32) -> Result<BatchHidden> {
        self.forward_mode(inputs, padding, pad_token, &Mode::INFERENCE)
    }

    pub fn forward_mode(
        &self,
        inputs: &[EncodedInput],
        padding: Padding,
        pad_token: u32,
        mode: &Mode,
    ) -> Result<BatchHidden> {
        let batch = self.pad(inputs, padding, pad_token)?;
        let all: Vec<&EncodedInput> = inputs.iter().collect();
        let (text_inputs, pooled) = self.text_inputs(&all, batch, mode, None)?;
        let hidden = self.text.forward(&text_inputs)?;
        let len = hidden.dim(1)?;
        let pooled_columns = pooled.iter().map(|&flat| flat % len).collect();
        Ok(BatchHidden { hidden, pooled_columns })
    }

    fn pad<I: std::borrow::Borrow<EncodedInput>>(
        &self,
        inputs: &[I],
        padding: Padding,
        pad_token: u32,
    ) -> Result<PaddedBatch> {
        let (tokens, merge) = (&self.config.tokens, self.config.vision.spatial_merge_size);
        pad_batch(inputs, padding, pad_token, merge, tokens.image, tokens.vision_start)
    }

    /// The vision tower on `images`, one after the other.
    fn run_vision(&self, images: &[&PixelPatches], mode: &Mode) -> Result<VisionOutput> {
        let grids: Vec<[usize; 3]> = images.iter().map(|p| p.grid_thw).collect();
        let patch_values = self.config.vision.patch_values();
        let rows: usize = grids.iter().map(|g| g[0] * g[1] * g[2]).sum();
        let mut values = Vec::with_capacity(rows * patch_values);
        for image in images {
            values.extend_from_slice(&image.values);
        }
        let patches = Tensor::from_vec(values, (rows, patch_values), &self.device)?;
        self.vision.forward_mode(&patches, &grids, mode)
    }

    /// `batch` (of `inputs`) as the decoder takes it (vision tower run, image rows in place), and the
    /// flattened `[batch * len]` position of each input's last token. A frozen tower's output is taken
    /// from `memo` where it holds one for these images, and kept there otherwise.
    fn text_inputs<'a>(
        &self,
        inputs: &[&'a EncodedInput],
        mut batch: PaddedBatch,
        mode: &Mode,
        memo: Option<&ImageMemo<'a>>,
    ) -> Result<(TextInputs, Vec<usize>)> {
        let tokens = &self.config.tokens;
        let (b, l) = (batch.batch, batch.len);
        let ids = Tensor::from_slice(&batch.ids, b * l, &self.device)?;
        let mut embeds = self.text.embed(&ids)?;
        let mut deepstack = Vec::new();

        let images: Vec<&'a PixelPatches> = inputs.iter().flat_map(|i| &i.images).collect();
        if !images.is_empty() {
            let memo = memo.filter(|_| !self.vision.trains());
            let (image_embeds, features) = match memo.and_then(|m| m.get(&images)) {
                Some(kept) => kept,
                None => {
                    let output = self.run_vision(&images, mode)?;
                    if let Some(memo) = memo {
                        memo.keep(images, output.clone());
                    }
                    output
                }
            };
            embeds = scatter_image_rows(
                &embeds,
                &image_embeds.to_dtype(embeds.dtype())?,
                &batch.ids,
                tokens.image,
            )?;
            // DeepStack: each feature, zero outside the image tokens, is added after one text layer.
            let zeros = embeds.zeros_like()?;
            for feature in features {
                let feature = scatter_image_rows(&zeros, &feature.to_dtype(zeros.dtype())?, &batch.ids, tokens.image)?;
                deepstack.push(
                    feature
                        .reshape((b, l, self.config.text.hidden_size))?
                        .to_dtype(self.dtype)?,
                );
            }
        }

        let (cos, sin) = self.text.rope_tables(&batch.positions, &self.device)?;
        let attention = match batch.packed.take() {
            Some(sequences) => AttentionLayout::Packed(sequences),
            None => AttentionLayout::Masked(Tensor::from_vec(
                batch.mask(crate::text::MASKED),
                (b, 1, l, l),
                &self.device,
            )?),
        };
        let inputs = TextInputs {
            embeds: embeds
                .reshape((b, l, self.config.text.hidden_size))?
                .to_dtype(self.dtype)?,
            rope: (cos, sin),
            attention,
            deepstack,
            mode: mode.clone(),
        };
        Ok((inputs, batch.pooled))
    }

    /// L2-normalised last-token embeddings `[batch, hidden]` in f32.
    pub fn embed(&self, inputs: &[EncodedInput], padding: Padding, pad_token: u32) -> Result<Tensor> {
        self.embed_mode(inputs, padding, pad_token, &Mode::INFERENCE)
    }

    /// At inference on the CPU in f32 the inputs are packed rather than padded (`padding` plays no part):
    /// the same values, without computing the padding. Otherwise (training, another dtype or device) they
    /// are padded in groups of similar length ([`length_groups`]), each group keeping its rows' dropout
    /// masks.
    pub fn embed_mode(&self, inputs: &[EncodedInput], padding: Padding, pad_token: u32, mode: &Mode) -> Result<Tensor> {
        self.embed_with_memo(inputs, padding, pad_token, mode, None)
    }

    /// [`Self::embed_mode`], with a frozen vision tower's outputs taken from (or kept in) `memo`: GradCache
    /// embeds each chunk twice, and its images need the tower once.
    pub fn embed_with_memo<'a>(
        &self,
        inputs: &'a [EncodedInput],
        padding: Padding,
        pad_token: u32,
        mode: &Mode,
        memo: Option<&ImageMemo<'a>>,
    ) -> Result<Tensor> {
        let all: Vec<&EncodedInput> = inputs.iter().collect();
        if !mode.differentiable && self.dtype == DType::F32 && self.device.is_cpu() {
            let (tokens, merge) = (&self.config.tokens, self.config.vision.spatial_merge_size);
            let batch = pack_batch(inputs, merge, tokens.image, tokens.vision_start)?;
            return self.embed_batch(&all, batch, mode, memo);
        }
        let lengths: Vec<usize> = inputs.iter().map(|i| i.ids.len()).collect();
        let groups = length_groups(&lengths);
        if groups.len() <= 1 {
            return self.embed_batch(&all, self.pad(&all, padding, pad_token)?, mode, memo);
        }
        let mut parts = Vec::with_capacity(groups.len());
        let mut place = vec![0u32; inputs.len()];
        let mut next = 0u32;
        for group in &groups {
            let members: Vec<&EncodedInput> = group.iter().map(|&i| &inputs[i]).collect();
            let batch = self.pad(&members, padding, pad_token)?;
            parts.push(self.embed_batch(&members, batch, &mode.for_rows(group), memo)?);
            for &i in group {
                place[i] = next;
                next += 1;
            }
        }
        let place = Tensor::from_vec(place, inputs.len(), &self.device)?;
        Ok(Tensor::cat(&parts, 0)?.index_select(&place, 0)?)
    }

    fn embed_batch<'a>(
        &self,
        inputs: &[&'a EncodedInput],
        batch: PaddedBatch,
        mode: &Mode,
        memo: Option<&ImageMemo<'a>>,
    ) -> Result<Tensor> {
        let (text_inputs, pooled) = self.text_inputs(inputs, batch, mode, memo)?;
        let pooled = self.text.forward_rows(&text_inputs, &pooled)?.to_dtype(DType::F32)?;
        l2_normalize(&pooled)
    }
}

impl BatchHidden {
    /// `[batch, hidden]` hidden states at each row's last real token.
    pub fn pooled(&self) -> Result<Tensor> {
        let (b, l, _) = self.hidden.dims3()?;
        let flat: Vec<u32> = self
            .pooled_columns
            .iter()
            .enumerate()
            .map(|(row, &col)| (row * l + col) as u32)
            .collect();
        let index = Tensor::from_vec(flat, b, self.hidden.device())?;
        Ok(self.hidden.flatten_to(1)?.index_select(&index, 0)?)
    }
}

/// `x / max(‖x‖, 1e-12)` per row, as `torch.nn.functional.normalize`.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
    Ok(x.broadcast_div(&norm)?)
}

/// Replaces the rows of `embeds` at image tokens, in order, with the rows of `image_embeds`.
fn scatter_image_rows(embeds: &Tensor, image_embeds: &Tensor, ids: &[u32], image_token: u32) -> Result<Tensor> {
    let n = ids.len();
    let image_rows = image_embeds.dim(0)?;
    let mut source = Vec::with_capacity(n);
    let mut next_image = 0u32;
    for (i, &id) in ids.iter().enumerate() {
        if id == image_token {
            source.push(n as u32 + next_image);
            next_image += 1;
        } else {
            source.push(i as u32);
        }
    }
    if next_image as usize != image_rows {
        return Err(ModelError::Input(format!(
            "the batch has {next_image} image tokens but its images give {image_rows} merged patches"
        )));
    }
    let index = Tensor::from_vec(source, n, embeds.device())?;
    Ok(Tensor::cat(&[embeds, image_embeds], 0)?.index_select(&index, 0)?)
}
