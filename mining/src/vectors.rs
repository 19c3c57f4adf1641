//! Embeddings as one matrix, addressable by item id, checked and L2-normalised.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use saha_schemas::embeddings::Embeddings;
use saha_schemas::provenance::skipped_item_ids;
use saha_schemas::read::ParquetTable;

pub struct Vectors {
    pub dim: usize,
    values: Vec<f32>,
    /// item id -> row, `u32::MAX` when the item has no embedding.
    row_of: Vec<u32>,
    pub files: Vec<PathBuf>,
    /// Rows that were not unit length and were normalised.
    pub renormalised: usize,
    /// Items the files' footers list as skipped by saha-embed (`--on-bad-image skip`) that have no
    /// embedding here: the only items the stages may leave out rather than refuse.
    pub skipped: BTreeSet<u32>,
}

const ABSENT: u32 = u32::MAX;

impl Vectors {
    /// Loads one or more embeddings files (e.g. queries and targets embedded apart). Vectors are
    /// L2-normalised unless `normalize` is false, so inner products are cosines as in the reference.
    pub fn load(paths: &[PathBuf], normalize: bool) -> Result<Self> {
        let mut dim = None;
        let mut values = Vec::new();
        let mut row_of: Vec<u32> = Vec::new();
        let mut first_file: Option<&Path> = None;
        let mut skipped = BTreeSet::new();
        for path in paths {
            let e = Embeddings::read(path)?;
            skipped.extend(skipped_item_ids(ParquetTable::open(path)?.provenance().as_ref()));
            match (dim, first_file) {
                (Some(d), Some(f)) if d != e.dim => bail!(
                    "embedding dimension mismatch: {} has {d}, {} has {}",
                    f.display(),
                    path.display(),
                    e.dim
                ),
                _ => {
                    dim = Some(e.dim);
                    first_file.get_or_insert(path);
                }
            }
            let base = values.len() / e.dim.max(1);
            for (r, &id) in e.item_ids.iter().enumerate() {
                let id = id as usize;
                if row_of.len() <= id {
                    row_of.resize(id + 1, ABSENT);
                }
                if row_of[id] != ABSENT {
                    bail!("{}: item {id} has a second embedding (row {r})", path.display());
                }
                row_of[id] = (base + r) as u32;
            }
            if values.is_empty() {
                values = e.values; // the first file's matrix is moved, not copied
            } else {
                values.extend_from_slice(&e.values);
            }
        }
        let Some(dim) = dim else {
            bail!("no embeddings file given")
        };
        let mut v = Vectors {
            dim,
            values,
            row_of,
            files: paths.to_vec(),
            renormalised: 0,
            skipped: BTreeSet::new(),
        };
        v.skipped = skipped.into_iter().filter(|&id| v.get(id).is_none()).collect();
        if normalize {
            v.normalise_rows()?;
        }
        Ok(v)
    }

    fn normalise_rows(&mut self) -> Result<()> {
        let dim = self.dim;
        let mut renormalised = 0;
        for (r, row) in self.values.chunks_mut(dim).enumerate() {
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm == 0.0 {
                let item = self.row_of.iter().position(|&x| x == r as u32).unwrap_or(usize::MAX);
                bail!("item {item}: zero embedding vector cannot be normalised");
            }
            if (norm - 1.0).abs() > 1e-3 {
                renormalised += 1;
            }
            row.iter_mut().for_each(|x| *x /= norm);
        }
        self.renormalised = renormalised;
        Ok(())
    }

    pub fn get(&self, item: u32) -> Option<&[f32]> {
        let r = *self.row_of.get(item as usize)?;
        (r != ABSENT).then(|| &self.values[r as usize * self.dim..(r as usize + 1) * self.dim])
    }

    /// Checks that every item in `items` has an embedding; the error names up to five.
    pub fn require(&self, items: impl Iterator<Item = u32>, what: &str) -> Result<()> {
        let missing: Vec<u32> = items.filter(|&i| self.get(i).is_none()).collect();
        if !missing.is_empty() {
            let shown: Vec<String> = missing.iter().take(5).map(|i| i.to_string()).collect();
            bail!(
                "{} {what} items have no embedding in {}: item_id {}{}",
                missing.len(),
                self.files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                shown.join(", "),
                if missing.len() > 5 { ", …" } else { "" }
            );
        }
        Ok(())
    }

    /// The rows of `items` as one contiguous row-major matrix: borrowed when they already lie
    /// contiguously in order (the prompt stage numbers items that way), copied otherwise.
    pub fn matrix(&self, items: &[u32]) -> std::borrow::Cow<'_, [f32]> {
        let rows: Vec<u32> = items.iter().map(|&i| self.row_of[i as usize]).collect();
        let contiguous = rows.windows(2).all(|w| w[1] == w[0] + 1);
        if contiguous && !rows.is_empty() {
            let start = rows[0] as usize * self.dim;
            return std::borrow::Cow::Borrowed(&self.values[start..start + rows.len() * self.dim]);
        }
        let mut out = Vec::with_capacity(items.len() * self.dim);
        for &i in items {
            out.extend_from_slice(self.get(i).expect("checked by require"));
        }
        std::borrow::Cow::Owned(out)
    }
}

/// Inner product with eight independent partial sums, so the compiler can vectorise it (a plain
/// `sum()` must add in order and runs one lane at a time).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dots(a, [b])[0]
}

/// `dot(a, b)` for `R` rows `b` at once, bit for bit: the rows' loads do not wait for each other, so
/// rows scattered through a large matrix come from memory side by side rather than one at a time.
pub fn dots<const R: usize>(a: &[f32], rows: [&[f32]; R]) -> [f32; R] {
    let mut acc = [[0f32; 8]; R];
    let mut row_chunks = rows.map(|b| b.chunks_exact(8));
    let a_chunks = a.chunks_exact(8);
    let a_tail = a_chunks.remainder();
    for x in a_chunks {
        for (acc, y) in acc.iter_mut().zip(&mut row_chunks) {
            let Some(y) = y.next() else { break };
            for i in 0..8 {
                acc[i] += x[i] * y[i];
            }
        }
    }
    std::array::from_fn(|r| {
        let tail: f32 = a_tail.iter().zip(row_chunks[r].remainder()).map(|(x, y)| x * y).sum();
        acc[r].iter().sum::<f32>() + tail
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_of_several_rows_are_each_rows_dot_bit_for_bit() {
        let mut rng = saha_common::rng::Rng::new(5);
        for len in [0, 1, 7, 8, 9, 1536, 1541] {
            let mut rand = || -> Vec<f32> { (0..len).map(|_| rng.below(20001) as f32 / 7919.0 - 1.3).collect() };
            let (a, rows) = (rand(), [rand(), rand(), rand(), rand()]);
            let one_by_one = rows.each_ref().map(|b| {
                let (mut acc, mut tail) = ([0f32; 8], 0f32);
                for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
                    for i in 0..8 {
                        acc[i] += x[i] * y[i];
                    }
                }
                for i in len / 8 * 8..len {
                    tail += a[i] * b[i];
                }
                acc.iter().sum::<f32>() + tail
            });
            let together = dots(&a, rows.each_ref().map(|b| b.as_slice()));
            assert_eq!(together.map(f32::to_bits), one_by_one.map(f32::to_bits), "length {len}");
            assert_eq!(dot(&a, &rows[2]).to_bits(), one_by_one[2].to_bits(), "length {len}");
        }
    }
}
