//! One optimisation step's loss and gradients, by plain backpropagation or by GradCache.
//!
//! GradCache (Gao et al. 2021, the reference's trainer): pass 1 embeds every chunk without keeping a
//! graph; the loss is computed on those detached embeddings and differentiated once, giving a cached
//! gradient per embedding; pass 2 re-runs each chunk with its graph (and the same dropout masks) and
//! backpropagates `sum(embedding · cached gradient)`. The parameter gradients equal plain backprop while
//! memory holds one chunk's graph at a time.

use candle_core::backprop::GradStore;
use candle_core::{Result as CandleResult, Tensor, Var};
use saha_model::layers::Mode;
use saha_model::{EncodedInput, Padding, Qwen2Vl};

use crate::loss::{info_nce, LossConfig};

pub struct StepInputs<'a> {
    pub queries: &'a [EncodedInput],
    pub targets: &'a [EncodedInput],
    pub padding: Padding,
    pub pad_token: u32,
    pub loss: LossConfig,
    pub same_target: Option<&'a [Vec<bool>]>,
    /// Seeds the step's dropout masks: `seed` for the queries, `seed + 1` for the targets, each input
    /// keyed by its index in the step (so GradCache chunks draw the masks of plain backprop).
    pub seed: u64,
}

pub struct StepResult {
    pub loss: f32,
    /// Gradient of the loss for every trainable tensor (summed over chunks).
    pub grads: Vec<Option<Tensor>>,
}

/// The mode for the inputs of one side (0 queries, 1 targets) from `first_row` on.
fn rows_mode(seed: u64, first_row: usize, side: u64) -> Mode {
    Mode::training(seed.wrapping_add(side), first_row)
}

/// Runs `work` on a thread of rayon's pool, so the parallel loops and matmuls inside it split their work
/// with the pool's other threads directly instead of handing every one of them over from outside.
fn on_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let mut result = None;
    rayon::scope(|_| result = Some(work()));
    result.expect("the scope ran its body")
}

/// Plain backpropagation through the whole batch at once (queries as one padded batch, targets as one).
pub fn plain(model: &Qwen2Vl, trainable: &[Var], s: &StepInputs) -> anyhow::Result<StepResult> {
    on_pool(|| plain_here(model, trainable, s))
}

fn plain_here(model: &Qwen2Vl, trainable: &[Var], s: &StepInputs) -> anyhow::Result<StepResult> {
    let q = model.embed_mode(s.queries, s.padding, s.pad_token, rows_mode(s.seed, 0, 0))?;
    let t = model.embed_mode(s.targets, s.padding, s.pad_token, rows_mode(s.seed, 0, 1))?;
    let loss = info_nce(&q, &t, s.loss, s.same_target)?;
    let grads = loss.backward()?;
    Ok(StepResult {
        loss: loss.to_scalar::<f32>()?,
        grads: collect(&grads, trainable),
    })
}

/// GradCache with chunks of `chunk` inputs per tower.
pub fn grad_cache(model: &Qwen2Vl, trainable: &[Var], s: &StepInputs, chunk: usize) -> anyhow::Result<StepResult> {
    on_pool(|| grad_cache_here(model, trainable, s, chunk))
}

fn grad_cache_here(model: &Qwen2Vl, trainable: &[Var], s: &StepInputs, chunk: usize) -> anyhow::Result<StepResult> {
    let chunk = chunk.max(1);
    let embed = |inputs: &[EncodedInput], k: usize, side: u64| {
        model.embed_mode(inputs, s.padding, s.pad_token, rows_mode(s.seed, k * chunk, side))
    };
    let mut q_parts = Vec::new();
    for (k, part) in s.queries.chunks(chunk).enumerate() {
        q_parts.push(embed(part, k, 0)?.detach());
    }
    let mut t_parts = Vec::new();
    for (k, part) in s.targets.chunks(chunk).enumerate() {
        t_parts.push(embed(part, k, 1)?.detach());
    }
    let q = Var::from_tensor(&Tensor::cat(&q_parts, 0)?)?;
    let t = Var::from_tensor(&Tensor::cat(&t_parts, 0)?)?;
    let loss = info_nce(q.as_tensor(), t.as_tensor(), s.loss, s.same_target)?;
    let rep_grads = loss.backward()?;
    let (gq, gt) = (rep_grads.get(&q).cloned(), rep_grads.get(&t).cloned());

    let mut total: Vec<Option<Tensor>> = vec![None; trainable.len()];
    for (side, inputs, cached) in [(0u64, s.queries, gq), (1u64, s.targets, gt)] {
        let Some(cached) = cached else { continue };
        for (k, part) in inputs.chunks(chunk).enumerate() {
            let reps = embed(part, k, side)?;
            let g = cached.narrow(0, k * chunk, part.len())?;
            let surrogate = (reps * g)?.sum_all()?;
            let grads = surrogate.backward()?;
            accumulate(&mut total, &grads, trainable)?;
        }
    }
    Ok(StepResult {
        loss: loss.to_scalar::<f32>()?,
        grads: total,
    })
}

fn collect(grads: &GradStore, trainable: &[Var]) -> Vec<Option<Tensor>> {
    trainable.iter().map(|v| grads.get(v).cloned()).collect()
}

fn accumulate(total: &mut [Option<Tensor>], grads: &GradStore, trainable: &[Var]) -> CandleResult<()> {
    for (slot, var) in total.iter_mut().zip(trainable) {
        if let Some(g) = grads.get(var) {
            *slot = Some(match slot.take() {
                None => g.clone(),
                Some(sum) => (sum + g)?,
            });
        }
    }
    Ok(())
}
