//! Rotary position ids as transformers' `get_rope_index` assigns them.
//!
//! Text tokens advance one position on all three rows (temporal, height, width). An image whose
//! `<|image_pad|>` run directly follows `<|vision_start|>` gets a 3-D grid of positions starting after the
//! preceding text, and the text after it continues from the grid's largest position + 1. An image without
//! `<|vision_start|>` (the SaHa reference prompt) is counted like text: 1-D positions. Padding tokens take
//! position 1, and positions count real tokens only, so left and right padding give the same positions.
//!
//! Deliberate difference: transformers pairs wrapped images with grids by counting, so a prompt with an
//! unwrapped image *before* a wrapped one gets the wrapped grid's positions on the wrong tokens; here each
//! image run keeps its own grid and only wrapped runs get 3-D positions.

use crate::error::{ModelError, Result};

/// Positions `[3][len]` for one sequence of real tokens. `grids` are the (t, h, w) patch grids of the
/// images in order of their `<|image_pad|>` runs, already divided by nothing: merge happens here.
pub fn rope_positions(
    ids: &[u32],
    grids: &[[usize; 3]],
    merge: usize,
    image_token: u32,
    vision_start: u32,
) -> Result<[Vec<i64>; 3]> {
    let mut rows: [Vec<i64>; 3] = [
        Vec::with_capacity(ids.len()),
        Vec::with_capacity(ids.len()),
        Vec::with_capacity(ids.len()),
    ];
    let mut next: i64 = 0;
    let mut i = 0;
    let mut image = 0;
    while i < ids.len() {
        if ids[i] != image_token {
            for row in rows.iter_mut() {
                row.push(next);
            }
            next += 1;
            i += 1;
            continue;
        }
        let grid = grids.get(image).ok_or_else(|| {
            ModelError::Input(format!(
                "image token run number {} has no image grid ({} given)",
                image + 1,
                grids.len()
            ))
        })?;
        let [t, h, w] = [grid[0], grid[1] / merge, grid[2] / merge];
        let run = t * h * w;
        if i + run > ids.len() || ids[i..i + run].iter().any(|&id| id != image_token) {
            return Err(ModelError::Input(format!(
                "image {} needs {run} consecutive image tokens at token {i}, the prompt has fewer",
                image + 1
            )));
        }
        let wrapped = i > 0 && ids[i - 1] == vision_start;
        if wrapped {
            for ti in 0..t {
                for hi in 0..h {
                    for wi in 0..w {
                        rows[0].push(next + ti as i64);
                        rows[1].push(next + hi as i64);
                        rows[2].push(next + wi as i64);
                    }
                }
            }
            next += t.max(h).max(w) as i64;
        } else {
            for offset in 0..run as i64 {
                for row in rows.iter_mut() {
                    row.push(next + offset);
                }
            }
            next += run as i64;
        }
        i += run;
        image += 1;
    }
    if image != grids.len() {
        return Err(ModelError::Input(format!(
            "{} image grids given for {image} image token runs",
            grids.len()
        )));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMG: u32 = 9;
    const START: u32 = 7;

    #[test]
    fn text_only_counts_up_on_all_rows() {
        let rows = rope_positions(&[1, 2, 3], &[], 2, IMG, START).unwrap();
        assert_eq!(rows, [vec![0, 1, 2], vec![0, 1, 2], vec![0, 1, 2]]);
    }

    #[test]
    fn wrapped_image_gets_a_grid_and_text_resumes_after_its_largest_position() {
        // grid (1, 4, 6) merged 2x2 -> 1 x 2 x 3 = 6 tokens
        let mut ids = vec![1, START];
        ids.extend([IMG; 6]);
        ids.extend([8, 2]);
        let rows = rope_positions(&ids, &[[1, 4, 6]], 2, IMG, START).unwrap();
        assert_eq!(rows[0], vec![0, 1, 2, 2, 2, 2, 2, 2, 5, 6]);
        assert_eq!(rows[1], vec![0, 1, 2, 2, 2, 3, 3, 3, 5, 6]);
        assert_eq!(rows[2], vec![0, 1, 2, 3, 4, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn unwrapped_image_is_counted_like_text() {
        let mut ids = vec![1];
        ids.extend([IMG; 4]);
        ids.push(2);
        let rows = rope_positions(&ids, &[[1, 4, 4]], 2, IMG, START).unwrap();
        assert_eq!(rows[0], (0..6).collect::<Vec<i64>>());
        assert_eq!(rows[1], rows[0]);
    }

    #[test]
    fn token_and_grid_counts_must_agree() {
        let ids = [1, IMG, IMG, IMG];
        assert!(rope_positions(&ids, &[[1, 4, 4]], 2, IMG, START).is_err());
        assert!(rope_positions(&[1, 2], &[[1, 2, 2]], 2, IMG, START).is_err());
    }
}
