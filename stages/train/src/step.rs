//! One optimisation step's loss and gradients, by plain backpropagation or by GradCache.
//!
//! GradCache (Gao et al. 2021, the reference's trainer): pass 1 embeds every chunk without keeping a
//! graph; the loss is computed on those detached embeddings and differentiated once, giving a cached
//! gradient per embedding; pass 2 re-runs each chunk with its graph (and the same dropout masks) and
//! backpropagates `sum(embedding · cached gradient)`. The parameter gradients equal plain backprop while
//! memory holds one chunk's graph at a time (two on the CPU, which runs two chunks side by side). A frozen
//! vision tower gives the same image tokens in both passes: pass 2 reuses pass 1's.

use candle_core::backprop::GradStore;
use candle_core::{Result as CandleResult, Tensor, Var};
use rayon::prelude::*;
use saha_model::image_memo::ImageMemo;
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
/// The loss's gradient is taken with respect to the embeddings first, then carried through each side's
/// graph (`sum(embedding · gradient)`): the chain rule split in two, so that on the CPU the two sides
/// embed and backpropagate side by side (see [`side_by_side`]); the gradients are the sums of the two.
pub fn plain(model: &Qwen2Vl, trainable: &[Var], s: &StepInputs) -> anyhow::Result<StepResult> {
    on_pool(|| plain_here(model, trainable, s))
}

fn plain_here(model: &Qwen2Vl, trainable: &[Var], s: &StepInputs) -> anyhow::Result<StepResult> {
    let at_once = side_by_side(model);
    let sides = [(s.queries, 0u64), (s.targets, 1u64)];
    let reps = in_turns(&sides, at_once, |&(inputs, side)| {
        Ok(model.embed_mode(inputs, s.padding, s.pad_token, &rows_mode(s.seed, 0, side))?)
    })?;
    let q = Var::from_tensor(&reps[0].detach())?;
    let t = Var::from_tensor(&reps[1].detach())?;
    let loss = info_nce(q.as_tensor(), t.as_tensor(), s.loss, s.same_target)?;
    let rep_grads = loss.backward()?;
    let paths = [(&reps[0], rep_grads.get(&q)), (&reps[1], rep_grads.get(&t))];
    let mut total: Vec<Option<Tensor>> = vec![None; trainable.len()];
    each_in_turns(
        &paths,
        at_once,
        |&(reps, grad)| match grad {
            Some(grad) => Ok(Some((reps * grad)?.sum_all()?.backward()?)),
            None => Ok(None),
        },
        |grads| match grads {
            Some(grads) => Ok(accumulate(&mut total, &grads, trainable)?),
            None => Ok(()),
        },
    )?;
    Ok(StepResult {
        loss: loss.to_scalar::<f32>()?,
        grads: total,
    })
}

/// GradCache with chunks of `chunk` inputs per tower; on the CPU two chunks at a time (see
/// [`side_by_side`]), so memory holds two chunks' graphs.
pub fn grad_cache(model: &Qwen2Vl, trainable: &[Var], s: &StepInputs, chunk: usize) -> anyhow::Result<StepResult> {
    on_pool(|| grad_cache_here(model, trainable, s, chunk))
}

fn grad_cache_here(model: &Qwen2Vl, trainable: &[Var], s: &StepInputs, chunk: usize) -> anyhow::Result<StepResult> {
    let chunk = chunk.max(1);
    let at_once = side_by_side(model);
    // A frozen vision tower's outputs from pass 1, for pass 2.
    let memo = ImageMemo::new();
    let embed = |inputs, k: usize, side: u64| {
        let mode = rows_mode(s.seed, k * chunk, side);
        model.embed_with_memo(inputs, s.padding, s.pad_token, &mode, Some(&memo))
    };
    let chunks = |inputs| numbered_chunks(inputs, chunk);
    let q_parts = in_turns(
        &chunks(s.queries),
        at_once,
        |&(k, part)| Ok(embed(part, k, 0)?.detach()),
    )?;
    let t_parts = in_turns(
        &chunks(s.targets),
        at_once,
        |&(k, part)| Ok(embed(part, k, 1)?.detach()),
    )?;
    let q = Var::from_tensor(&Tensor::cat(&q_parts, 0)?)?;
    let t = Var::from_tensor(&Tensor::cat(&t_parts, 0)?)?;
    let loss = info_nce(q.as_tensor(), t.as_tensor(), s.loss, s.same_target)?;
    let rep_grads = loss.backward()?;
    let (gq, gt) = (rep_grads.get(&q).cloned(), rep_grads.get(&t).cloned());

    let mut total: Vec<Option<Tensor>> = vec![None; trainable.len()];
    for (side, inputs, cached) in [(0u64, s.queries, gq), (1u64, s.targets, gt)] {
        let Some(cached) = cached else { continue };
        // Two chunks' graphs at a time, their gradients added in chunk order before the next two (with
        // `--full` a chunk's gradients are as large as the model).
        each_in_turns(
            &chunks(inputs),
            at_once,
            |&(k, part)| {
                let reps = embed(part, k, side)?;
                let g = cached.narrow(0, k * chunk, part.len())?;
                Ok((reps * g)?.sum_all()?.backward()?)
            },
            |grads| Ok(accumulate(&mut total, &grads, trainable)?),
        )?;
    }
    Ok(StepResult {
        loss: loss.to_scalar::<f32>()?,
        grads: total,
    })
}

fn numbered_chunks(inputs: &[EncodedInput], chunk: usize) -> Vec<(usize, &[EncodedInput])> {
    inputs.chunks(chunk).enumerate().collect()
}

/// How many independent pieces of a step (the two sides, GradCache's chunks) run at a time. On the CPU
/// two: a piece alone leaves a core idle through its serial stretches (candle's element-wise ops run on
/// the calling thread, the backward walks its graph on one), which the other piece then fills; the
/// matmuls and fused ops of both still split across the whole pool. On a GPU, one.
fn side_by_side(model: &Qwen2Vl) -> usize {
    if model.device().is_cpu() {
        2
    } else {
        1
    }
}

/// `work` on every item, `at_once` items at a time on rayon's pool; `take` gets the results in item
/// order, a turn's before the next turn starts. The first error in item order stops it.
fn each_in_turns<T: Sync, R: Send>(
    items: &[T],
    at_once: usize,
    work: impl Fn(&T) -> anyhow::Result<R> + Sync,
    mut take: impl FnMut(R) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for turn in items.chunks(at_once.max(1)) {
        let results: Vec<anyhow::Result<R>> = turn.par_iter().map(&work).collect();
        for result in results {
            take(result?)?;
        }
    }
    Ok(())
}

/// [`each_in_turns`], the results collected in item order.
fn in_turns<T: Sync, R: Send>(
    items: &[T],
    at_once: usize,
    work: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let mut out = Vec::with_capacity(items.len());
    each_in_turns(items, at_once, work, |r| {
        out.push(r);
        Ok(())
    })?;
    Ok(out)
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
