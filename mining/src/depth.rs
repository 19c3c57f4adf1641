//! How many negatives SaHa mines per anchor and how deep retrieval must go for it: the reference
//! collects `top_k * pool_mult` owner candidates per anchor from a retrieved list twice as deep.

use serde::Serialize;

/// The flags that fix SaHa's budget, shared by saha-retrieve (which derives its depth from them) and
/// saha-filter (which spends it).
#[derive(Debug, Clone, Copy, clap::Args, Serialize)]
pub struct MiningDepth {
    /// Negatives per anchor (K; the reference: 15).
    #[arg(long, default_value_t = 15, value_parser = saha_common::numbers::count)]
    pub top_k: usize,
    /// Owner candidates collected per anchor = top_k * pool_mult (the reference: 3); retrieval goes
    /// 2 * top_k * pool_mult deep.
    #[arg(long, default_value_t = 3, value_parser = saha_common::numbers::count)]
    pub pool_mult: usize,
}

impl MiningDepth {
    /// `2 * top_k * pool_mult`: the retrieval depth SaHa needs.
    pub fn retrieval_depth(self) -> anyhow::Result<usize> {
        if self.top_k == 0 || self.pool_mult == 0 {
            anyhow::bail!("--top-k and --pool-mult must be at least 1");
        }
        self.top_k
            .checked_mul(self.pool_mult)
            .and_then(|n| n.checked_mul(2))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--top-k {} --pool-mult {}: the retrieval depth 2 * top_k * pool_mult overflows",
                    self.top_k,
                    self.pool_mult
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_depth_is_90_and_overflow_is_refused() {
        let reference = MiningDepth {
            top_k: 15,
            pool_mult: 3,
        };
        assert_eq!(reference.retrieval_depth().unwrap(), 90);
        let huge = MiningDepth {
            top_k: 2,
            pool_mult: usize::MAX / 3,
        };
        assert!(huge.retrieval_depth().unwrap_err().to_string().contains("overflows"));
        assert!(MiningDepth { top_k: 0, pool_mult: 3 }.retrieval_depth().is_err());
    }
}
