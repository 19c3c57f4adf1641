//! Seeded corruptions of a file's bytes, for the fuzz tests of the Parquet readers and the image
//! decoders: the same seed gives the same broken file, so a seed that made a reader panic is a
//! regression case.

use crate::rng::Rng;

/// A corrupted copy of `bytes`; `seed % 5` picks the kind: cut short, bits flipped, a run of
/// bytes overwritten, a byte of the last 256 replaced (Parquet footers, end markers), or a byte of
/// the first 64 replaced (headers: sizes, colour types, chunk lengths).
pub fn mutate(bytes: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = bytes.to_vec();
    if out.is_empty() {
        return out;
    }
    let n = out.len();
    match seed % 5 {
        0 => out.truncate(rng.below(n)),
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(n);
                out[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            let start = rng.below(n);
            let end = (start + 1 + rng.below(64)).min(n);
            out[start..end].iter_mut().for_each(|b| *b = rng.next_u64() as u8);
        }
        3 => out[n - 1 - rng.below(n.min(256))] = rng.next_u64() as u8,
        _ => out[rng.below(n.min(64))] = rng.next_u64() as u8,
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_changes_the_bytes_and_a_seed_repeats() {
        let bytes: Vec<u8> = (0..=255).collect();
        for seed in 0..50 {
            let a = mutate(&bytes, seed);
            assert_eq!(a, mutate(&bytes, seed));
            assert_ne!(a, bytes, "seed {seed}");
        }
    }
}
