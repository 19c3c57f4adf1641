//! Padding a list of encoded inputs into one batch: ids, mask, positions, where each row pools.

use std::borrow::Borrow;

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

pub fn pad_batch<I: Borrow<EncodedInput>>(
    inputs: &[I],
    padding: Padding,
    pad_token: u32,
    merge: usize,
    image_token: u32,
    vision_start: u32,
) -> Result<PaddedBatch> {
    if inputs.iter().any(|i| i.borrow().ids.is_empty()) {
        return Err(ModelError::Input("an input has no tokens".into()));
    }
    let batch = inputs.len();
    let len = inputs.iter().map(|i| i.borrow().ids.len()).max().unwrap_or(0);
    let mut ids = vec![pad_token; batch * len];
    let mut real = vec![false; batch * len];
    let mut positions = Vec::with_capacity(batch);
    let mut pooled = Vec::with_capacity(batch);
    for (row, input) in inputs.iter().enumerate() {
        let input = input.borrow();
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

/// Splits a batch to be padded into groups of similar length, so that a 60-token text is not padded to
/// the 300 tokens of an image prompt next to it. Returns each group's indices into `lengths`, ascending;
/// one group (all of them) unless splitting pays. The groups minimise the padded tokens (members times
/// longest member) plus, per group, an eighth of the unsplit batch's padded tokens: a split must save
/// that much to make up for another pass through the model. Each input's embedding does not depend on
/// the others in its batch, so any grouping gives the same embeddings.
pub fn length_groups(lengths: &[usize]) -> Vec<Vec<usize>> {
    let n = lengths.len();
    let longest = lengths.iter().copied().max().unwrap_or(0);
    let per_group = n * longest / 8;
    // Longest first (ties in input order); a group is then a run of this order, led by its longest.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    // best[j]: least cost of grouping order[..j]; cut[j]: where its last group starts.
    let mut best = vec![0usize; n + 1];
    let mut cut = vec![0usize; n + 1];
    for j in 1..=n {
        best[j] = usize::MAX;
        for i in 0..j {
            let cost = best[i] + (j - i) * lengths[order[i]] + per_group;
            if cost < best[j] {
                (best[j], cut[j]) = (cost, i);
            }
        }
    }
    let mut groups = Vec::new();
    let mut end = n;
    while end > 0 {
        let mut group = order[cut[end]..end].to_vec();
        group.sort_unstable();
        groups.push(group);
        end = cut[end];
    }
    groups.sort_unstable_by_key(|g| g[0]);
    groups
}

#[cfg(test)]
mod tests {
    use super::length_groups;

    #[test]
    fn texts_and_image_prompts_are_padded_apart() {
        // The training benchmark's queries: four ~60-token texts, four ~320-token image prompts.
        let lengths = [58, 330, 61, 325, 66, 322, 60, 331];
        assert_eq!(length_groups(&lengths), vec![vec![0, 2, 4, 6], vec![1, 3, 5, 7]]);
    }

    #[test]
    fn similar_lengths_stay_one_batch() {
        assert_eq!(length_groups(&[65, 81, 70, 79, 66]), vec![vec![0, 1, 2, 3, 4]]);
        assert_eq!(length_groups(&[40]), vec![vec![0]]);
        assert!(length_groups(&[]).is_empty());
    }

    #[test]
    fn groups_cover_every_input_once_and_never_cost_more_than_one_batch() {
        let mut rng = saha_common::rng::Rng::new(7);
        for n in 1..40 {
            let lengths: Vec<usize> = (0..n).map(|_| 1 + rng.below(500)).collect();
            let groups = length_groups(&lengths);
            let mut seen: Vec<usize> = groups.iter().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "lengths {lengths:?}");
            let padded = |g: &Vec<usize>| g.len() * g.iter().map(|&i| lengths[i]).max().unwrap();
            let longest = *lengths.iter().max().unwrap();
            let cost: usize = groups.iter().map(|g| padded(g) + n * longest / 8).sum();
            assert!(cost <= n * longest + n * longest / 8, "lengths {lengths:?}: {groups:?}");
            assert!(groups.windows(2).all(|w| w[0][0] < w[1][0]));
        }
    }
}
