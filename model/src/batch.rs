//! Padding a list of encoded inputs into one batch: ids, mask, positions, where each row pools.

use crate::error::{ModelError, Result};
use crate::image::PixelPatches;
use crate::positions::rope_positions;

/// One model input: token ids with every image placeholder already expanded, and its images in order.
#[derive(Debug, Clone)]
pub struct EncodedInput {
    pub ids: Vec<u32>,
    pub images: Vec<PixelPatches>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// Pads after the tokens; row lengths do not move real positions.
    #[default]
    Right,
    /// Pads before the tokens, as Qwen2-VL's tokenizer does by default.
    Left,
}

/// A padded batch, flattened row-major; or, packed, one row holding every input after the other.
pub struct PaddedBatch {
    pub batch: usize,
    pub len: usize,
    pub ids: Vec<u32>,
    pub real: Vec<bool>,
    /// `[batch][3][len]`; padding positions are 1, as in transformers.
    pub positions: Vec<[Vec<i64>; 3]>,
    /// Flat index (row * len + column) of each input's last real token.
    pub pooled: Vec<usize>,
    /// Packed: each input's (start, len) in the single row.
    pub packed: Option<Vec<(usize, usize)>>,
}

pub fn pad_batch(
    inputs: &[EncodedInput],
    padding: Padding,
    pad_token: u32,
    merge: usize,
    image_token: u32,
    vision_start: u32,
) -> Result<PaddedBatch> {
    if inputs.iter().any(|i| i.ids.is_empty()) {
        return Err(ModelError::Input("an input has no tokens".into()));
    }
    let batch = inputs.len();
    let len = inputs.iter().map(|i| i.ids.len()).max().unwrap_or(0);
    let mut ids = vec![pad_token; batch * len];
    let mut real = vec![false; batch * len];
    let mut positions = Vec::with_capacity(batch);
    let mut pooled = Vec::with_capacity(batch);
    for (row, input) in inputs.iter().enumerate() {
        let n = input.ids.len();
        let offset = match padding {
            Padding::Right => 0,
            Padding::Left => len - n,
        };
        let start = row * len + offset;
        ids[start..start + n].copy_from_slice(&input.ids);
        real[start..start + n].iter_mut().for_each(|r| *r = true);
        pooled.push(start + n - 1);
        let grids: Vec<[usize; 3]> = input.images.iter().map(|i| i.grid_thw).collect();
        let real_positions = rope_positions(&input.ids, &grids, merge, image_token, vision_start)?;
        positions.push(real_positions.map(|row_positions| {
            let mut padded = vec![1i64; len];
            padded[offset..offset + n].copy_from_slice(&row_positions);
            padded
        }));
    }
    Ok(PaddedBatch {
        batch,
        len,
        ids,
        real,
        positions,
        pooled,
        packed: None,
    })
}

/// Every input after the other in one row, without padding: each input's positions as its own, and
/// (start, len) for attention within each input.
pub fn pack_batch(inputs: &[EncodedInput], merge: usize, image_token: u32, vision_start: u32) -> Result<PaddedBatch> {
    if inputs.iter().any(|i| i.ids.is_empty()) {
        return Err(ModelError::Input("an input has no tokens".into()));
    }
    let len: usize = inputs.iter().map(|i| i.ids.len()).sum();
    let mut ids = Vec::with_capacity(len);
    let mut positions: [Vec<i64>; 3] = std::array::from_fn(|_| Vec::with_capacity(len));
    let mut sequences = Vec::with_capacity(inputs.len());
    for input in inputs {
        sequences.push((ids.len(), input.ids.len()));
        ids.extend_from_slice(&input.ids);
        let grids: Vec<[usize; 3]> = input.images.iter().map(|i| i.grid_thw).collect();
        let own = rope_positions(&input.ids, &grids, merge, image_token, vision_start)?;
        for (all, own) in positions.iter_mut().zip(own) {
            all.extend(own);
        }
    }
    Ok(PaddedBatch {
        batch: 1,
        len,
        ids,
        real: vec![true; len],
        positions: vec![positions],
        pooled: sequences.iter().map(|&(start, n)| start + n - 1).collect(),
        packed: Some(sequences),
    })
}

impl PaddedBatch {
    /// Additive attention mask `[batch, 1, len, len]`: causal, and no attention to padding keys.
    pub fn mask(&self, masked: f32) -> Vec<f32> {
        let (b, l) = (self.batch, self.len);
        let mut mask = vec![masked; b * l * l];
        for row in 0..b {
            for q in 0..l {
                let base = (row * l + q) * l;
                for k in 0..=q {
                    if self.real[row * l + k] {
                        mask[base + k] = 0.0;
                    }
                }
            }
        }
        mask
    }
}
