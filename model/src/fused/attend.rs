//! Attention at inference, from the projections to the input of the output projection, without a
//! graph and without a `len x len` tensor per head: queries and keys are rotated once, then each task
//! (one sequence, one query head, a block of query rows) computes its scores into a small buffer, takes
//! the masked softmax in place and multiplies by the values, writing its rows of the merged output. The
//! tasks share one pool (rayon's) and each product runs on its own thread, so no product wakes a pool.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::kernels::{masked_softmax_row, visible_len};
use super::{with_values, Heads};
use crate::error::Result;

/// Query rows one task scores at a time: their scores take `QUERY_BLOCK · len` floats.
const QUERY_BLOCK: usize = 64;

/// Where the rows of one matrix are: `values[offset + row · stride ..][..width]`.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub values: &'a [f32],
    pub offset: usize,
    pub stride: usize,
}

impl Rows<'_> {
    fn row(&self, i: usize, width: usize) -> &[f32] {
        &self.values[self.offset + i * self.stride..][..width]
    }
}

/// One attention problem over packed rows: sequences (`start`, `len`) of rows that attend within
/// themselves; `q` `[rows, heads · d]`, `k` and `v` `[rows, kv_heads · d]` (any row stride); rotary
/// tables `cos`, `sin` `[rows, d / 2]` (NeoX halves); which keys each query sees. Returns
/// `[rows, heads · d]`.
pub struct Problem<'a> {
    pub q: Rows<'a>,
    pub k: Rows<'a>,
    pub v: Rows<'a>,
    pub cos: &'a [f32],
    pub sin: &'a [f32],
    pub sequences: &'a [(usize, usize)],
    pub visibility: Visibility<'a>,
    pub heads: Heads,
}

/// Which keys of its sequence a query sees.
#[derive(Clone, Copy)]
pub enum Visibility<'a> {
    /// Every key.
    All,
    /// The keys up to its own position.
    Causal,
    /// An additive mask `[sequences, len, len]` for sequences of one length (`f32::MIN` where a query may
    /// not look).
    Mask(&'a [f32]),
}

/// `softmax(rope(q) rope(k)ᵀ / √d + mask) v` per sequence and head, heads merged: the same values as
/// rotating with candle's kernel and attending op by op, up to the rounding of the scale.
pub fn attend(p: &Problem) -> Vec<f32> {
    let Heads {
        heads,
        kv_heads,
        head_dim: d,
    } = p.heads;
    let rows = p.cos.len() / (d / 2);
    let q = rotated(p.q, p.cos, p.sin, rows, heads, d);
    let k_columns = rotated_columns(p.k, p.cos, p.sin, rows, kv_heads, d);
    let group = heads / kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let width = heads * d;
    let mut out = vec![0f32; rows * width];
    let tasks: Vec<(usize, usize, usize)> = p
        .sequences
        .iter()
        .enumerate()
        .flat_map(|(s, &(_, len))| {
            (0..heads).flat_map(move |h| (0..len).step_by(QUERY_BLOCK).map(move |first| (s, h, first)))
        })
        .collect();
    let out_at = SharedOut(out.as_mut_ptr());
    tasks.into_par_iter().for_each(|(s, h, first)| {
        let (start, len) = p.sequences[s];
        let block = QUERY_BLOCK.min(len - first);
        let mask = match p.visibility {
            Visibility::Mask(m) => Some(&m[s * len * len..][..len * len]),
            Visibility::All | Visibility::Causal => None,
        };
        let mask_row = |i: usize| mask.map(|m| &m[(first + i) * len..][..len]);
        let visible: Vec<usize> = (0..block)
            .map(|i| match (mask_row(i), p.visibility) {
                (Some(row), _) => visible_len(row),
                (None, Visibility::Causal) => first + i + 1,
                (None, _) => len,
            })
            .collect();
        // Keys past the last one any row of the block sees get probability 0 and are left out, unless a
        // row sees none (it comes out uniform over every key, as the plain formula gives).
        let keys = if visible.contains(&0) {
            len
        } else {
            visible.iter().copied().max().unwrap_or(len)
        };
        let mut scores = vec![0f32; block * keys];
        let kv = h / group;
        // SAFETY: every pointer below stays inside its buffer (rows < `rows`, columns < the widths), and
        // this task alone writes the output's rows `start + first ..` at head `h`'s columns.
        unsafe {
            product(
                (block, keys, d),
                (scores.as_mut_ptr(), keys),
                (q.as_ptr().add((start + first) * width + h * d), width, 1),
                (k_columns.as_ptr().add(kv * d * rows + start), rows, 1),
            );
        }
        let no_mask = if mask.is_none() { vec![0f32; keys] } else { Vec::new() };
        for (i, row) in scores.chunks_mut(keys).enumerate() {
            let mask = mask_row(i).map_or(&no_mask[..], |m| &m[..keys]);
            masked_softmax_row(row, mask, visible[i], scale);
        }
        unsafe {
            product(
                (block, d, keys),
                (out_at.at((start + first) * width + h * d), width),
                (scores.as_ptr(), keys, 1),
                (
                    p.v.values.as_ptr().add(p.v.offset + start * p.v.stride + kv * d),
                    p.v.stride,
                    1,
                ),
            );
        }
    });
    out
}

/// `dst ← lhs · rhs` for `(m, n, k)` on the calling thread: `dst` `[m, n]` by its pointer and row stride,
/// `lhs` `[m, k]` and `rhs` `[k, n]` by their pointers and (row, column) strides.
///
/// SAFETY: every element the shapes and strides reach is inside its buffer, and nothing else touches
/// `dst`'s elements meanwhile.
unsafe fn product(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (*mut f32, usize),
    (lhs, lhs_rs, lhs_cs): (*const f32, usize, usize),
    (rhs, rhs_rs, rhs_cs): (*const f32, usize, usize),
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

/// The output, written by tasks at disjoint places.
struct SharedOut(*mut f32);

impl SharedOut {
    /// SAFETY: `i` is inside the buffer.
    unsafe fn at(&self, i: usize) -> *mut f32 {
        self.0.add(i)
    }
}
// SAFETY: see `attend`: no two tasks write the same element, and none reads what another writes.
unsafe impl Sync for SharedOut {}
unsafe impl Send for SharedOut {}

/// `x` rotated as candle's NeoX kernel does it (same operations, same order, so the same bits):
/// `[rows, heads · d]`, contiguous.
fn rotated(x: Rows, cos: &[f32], sin: &[f32], rows: usize, heads: usize, d: usize) -> Vec<f32> {
    let (half, width) = (d / 2, heads * d);
    let mut out = vec![0f32; rows * width];
    out.par_chunks_mut(width).enumerate().for_each(|(r, dst)| {
        let src = x.row(r, width);
        let (cos, sin) = (&cos[r * half..][..half], &sin[r * half..][..half]);
        for h in 0..heads {
            let (s, o) = (&src[h * d..][..d], &mut dst[h * d..][..d]);
            for i in 0..half {
                o[i] = s[i] * cos[i] - s[i + half] * sin[i];
                o[i + half] = s[i] * sin[i] + s[i + half] * cos[i];
            }
        }
    });
    out
}

/// `x` rotated as [`rotated`] does it, laid out by columns: `[heads, d, rows]`. The scores' product reads
/// the keys as its right operand, and the GEMM packs that operand again for every task: from columns
/// the packing copies runs of keys, from rows it gathers one value per key (5% of an image batch).
fn rotated_columns(x: Rows, cos: &[f32], sin: &[f32], rows: usize, heads: usize, d: usize) -> Vec<f32> {
    let half = d / 2;
    let mut out = vec![0f32; heads * d * rows];
    out.par_chunks_mut(d * rows).enumerate().for_each(|(h, dst)| {
        let (lo, hi) = dst.split_at_mut(half * rows);
        for r in 0..rows {
            let s = &x.row(r, heads * d)[h * d..][..d];
            let (cos, sin) = (&cos[r * half..][..half], &sin[r * half..][..half]);
            for i in 0..half {
                lo[i * rows + r] = s[i] * cos[i] - s[i + half] * sin[i];
                hi[i * rows + r] = s[i] * sin[i] + s[i + half] * cos[i];
            }
        }
    });
    out
}

/// The decoder's attention: `q` `[batch, len, heads · d]`, `k`, `v` `[batch, len, kv_heads · d]`, tables
/// `[batch, len, d / 2]`, additive `mask` `[batch, 1, len, len]`; returns `[batch, len, heads · d]`.
pub fn decoder_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    tables: (&Tensor, &Tensor),
    mask: &Tensor,
    heads: Heads,
) -> Result<Tensor> {
    let (batch, len, _) = q.dims3()?;
    let sequences: Vec<(usize, usize)> = (0..batch).map(|b| (b * len, len)).collect();
    decoder_rows(q, k, v, tables, &sequences, Some(mask), heads)
}

/// The decoder's attention over packed sequences: `q` `[1, rows, heads · d]`, `k`, `v`
/// `[1, rows, kv_heads · d]`, tables `[1, rows, d / 2]`, each sequence (`start`, `len`) causal within
/// itself; returns `[1, rows, heads · d]`.
pub fn packed_decoder_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    tables: (&Tensor, &Tensor),
    sequences: &[(usize, usize)],
    heads: Heads,
) -> Result<Tensor> {
    decoder_rows(q, k, v, tables, sequences, None, heads)
}

/// Both decoder forms: `sequences` over the rows of `q`, `k`, `v` `[batch, len, ·]`, under `mask` if given
/// (sequences of one length) or causal within each.
fn decoder_rows(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (cos, sin): (&Tensor, &Tensor),
    sequences: &[(usize, usize)],
    mask: Option<&Tensor>,
    heads: Heads,
) -> Result<Tensor> {
    let (batch, len, width) = q.dims3()?;
    let kv_width = heads.kv_heads * heads.head_dim;
    let mut tensors = vec![q, k, v, cos, sin];
    tensors.extend(mask);
    let out = with_values(&tensors, |t| {
        let rows = |values, stride| Rows {
            values,
            offset: 0,
            stride,
        };
        attend(&Problem {
            q: rows(t[0], width),
            k: rows(t[1], kv_width),
            v: rows(t[2], kv_width),
            cos: t[3],
            sin: t[4],
            sequences,
            visibility: t.get(5).map_or(Visibility::Causal, |m| Visibility::Mask(m)),
            heads,
        })
    })?;
    Ok(Tensor::from_vec(out, (batch, len, width), &Device::Cpu)?)
}

/// The vision blocks' attention: `qkv` `[n, 3 · heads · d]` (queries, keys, values side by side), tables
/// `[n, d / 2]` (any leading 1s), rows attending within each run of `segments`; returns `[n, heads · d]`.
pub fn segment_attention(
    qkv: &Tensor,
    (cos, sin): (&Tensor, &Tensor),
    segments: &[usize],
    heads: usize,
) -> Result<Tensor> {
    let (n, three_e) = qkv.dims2()?;
    let e = three_e / 3;
    let h = Heads {
        heads,
        kv_heads: heads,
        head_dim: e / heads,
    };
    let sequences: Vec<(usize, usize)> = segments
        .iter()
        .scan(0, |start, &len| {
            *start += len;
            Some((*start - len, len))
        })
        .collect();
    let out = with_values(&[qkv, cos, sin], |t| {
        let part = |i: usize| Rows {
            values: t[0],
            offset: i * e,
            stride: three_e,
        };
        attend(&Problem {
            q: part(0),
            k: part(1),
            v: part(2),
            cos: t[1],
            sin: t[2],
            sequences: &sequences,
            visibility: Visibility::All,
            heads: h,
        })
    })?;
    Ok(Tensor::from_vec(out, (n, e), &Device::Cpu)?)
}
