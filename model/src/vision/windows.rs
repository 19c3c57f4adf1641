//! Qwen2.5-VL's window attention layout (transformers' `get_vision_window_index`): each frame's grid of
//! merged tokens is cut into square windows of `side` merged tokens (the last row and column of windows
//! may be smaller), the tokens are reordered window by window (row-major inside each window), and the
//! windowed blocks attend within each window only.

/// The reordering and the windows of a batch of images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowLayout {
    /// `order[k]`: the merged token (in the processor's order) that goes to place `k`.
    pub order: Vec<usize>,
    /// Rows (patches, `merge_unit` per merged token) of each window, in the new order.
    pub windows: Vec<usize>,
}

/// The layout for images with patch grids `grids` (`[t, h, w]`), merging `merge x merge` patches per
/// token, with windows of `side x side` merged tokens.
pub fn window_layout(grids: &[[usize; 3]], merge: usize, side: usize) -> WindowLayout {
    let mut order = Vec::new();
    let mut windows = Vec::new();
    let mut offset = 0;
    for &[t, h, w] in grids {
        let (rows, cols) = (h / merge, w / merge);
        for frame in 0..t {
            let base = offset + frame * rows * cols;
            for top in (0..rows).step_by(side) {
                for left in (0..cols).step_by(side) {
                    let before = order.len();
                    for r in top..(top + side).min(rows) {
                        order.extend((left..(left + side).min(cols)).map(|c| base + r * cols + c));
                    }
                    windows.push((order.len() - before) * merge * merge);
                }
            }
        }
        offset += t * rows * cols;
    }
    WindowLayout { order, windows }
}

impl WindowLayout {
    /// Where each place's rows come from, one entry per patch row: `order` spread over the
    /// `unit` rows of each merged token.
    pub fn row_order(&self, unit: usize) -> Vec<u32> {
        self.order
            .iter()
            .flat_map(|&m| (m * unit..(m + 1) * unit).map(|r| r as u32))
            .collect()
    }

    /// The inverse of `order`: the place each merged token went to.
    pub fn inverse(&self) -> Vec<u32> {
        let mut inverse = vec![0u32; self.order.len()];
        for (place, &token) in self.order.iter().enumerate() {
            inverse[token] = place as u32;
        }
        inverse
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_transformers_get_window_index() {
        // transformers 5.25 `get_vision_window_index(tensor([[1, 10, 6]]), 2, 56, 14)` (2 x 2 windows):
        // window_index [0,1,3,4,2,5,6,7,9,10,8,11,12,13,14], cu_window_seqlens [0,16,24,40,48,56,60].
        let layout = window_layout(&[[1, 10, 6]], 2, 2);
        assert_eq!(layout.order, vec![0, 1, 3, 4, 2, 5, 6, 7, 9, 10, 8, 11, 12, 13, 14]);
        assert_eq!(layout.windows, vec![16, 8, 16, 8, 8, 4]);
        // A second image continues the numbering; an image smaller than a window is one window.
        let two = window_layout(&[[1, 2, 2], [1, 4, 4]], 2, 4);
        assert_eq!(two.order, vec![0, 1, 2, 3, 4]);
        assert_eq!(two.windows, vec![4, 16]);
        let inverse = layout.inverse();
        for (place, &token) in layout.order.iter().enumerate() {
            assert_eq!(inverse[token] as usize, place);
        }
        assert_eq!(two.row_order(4)[4..8], [4, 5, 6, 7]);
    }
}
