//! Ops with hand-written backward passes for the training path, and the vectorised softmax that
//! inference shares.
//!
//! candle differentiates op by op: a composite softmax keeps every intermediate of every layer alive
//! until `backward` ends, every op's gradient costs a zeroed buffer and an add, and a matmul's backward
//! also computes the gradient of a frozen weight. These ops run their forward outside the graph (on the
//! fused inference kernels or one loop), keep only their inputs in the graph, and compute just the
//! gradients that are needed. The training ops (frozen linear, RMSNorm, SwiGLU, DoRA, rotary embedding,
//! self-attention) serve every device and dtype: f32 on the CPU runs kernels of its own, everything else
//! (CUDA, bf16) the same structure built from candle's ops ([`any_device`]). The inference kernels serve
//! f32 on the CPU; `supported` says when a caller may use them.

pub mod any_device;
#[cfg(test)]
mod any_device_tests;
mod attend;
mod attention;
#[cfg(feature = "cuda")]
pub mod cuda;
mod elementwise;
mod kernels;
mod linear;
#[cfg(test)]
mod tests;

use std::sync::Mutex;

use candle_core::backend::{BackendDevice, BackendStorage};
use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Shape, Storage, Tensor,
};
use rayon::prelude::*;

use crate::error::Result;

pub use attend::{decoder_attention, packed_decoder_attention, segment_attention};
pub use attention::{rope, self_attention, Heads};
pub use elementwise::{rms_norm, sigmoid_gated, swiglu};
pub use linear::{dora_combine, frozen_linear, linear};

/// Whether the ops here serve `x`.
pub fn supported(x: &Tensor) -> bool {
    x.dtype() == DType::F32 && matches!(x.device(), Device::Cpu)
}

/// Softmax over the last dimension without a graph, on the vectorised kernel: candle's CPU softmax calls
/// libm's `expf` per value, which takes a slow path for every masked (underflowing) score.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let len = x.dim(candle_core::D::Minus1)?;
    let mut values = x.flatten_all()?.to_vec1::<f32>()?;
    kernels::softmax_rows(&mut values, len);
    Ok(Tensor::from_vec(values, x.shape(), x.device())?)
}

/// `(inputs, output, grad of output)` to the inputs' gradients (`None`: not needed).
type Backward = Box<dyn Fn(&[Tensor], &Tensor, &Tensor) -> candle_core::Result<Vec<Option<Tensor>>> + Send + Sync>;

/// An output computed outside the graph, attached to its inputs with the backward that differentiates
/// it. The output is handed over (not kept) when candle asks for the op's forward.
struct Attached {
    name: &'static str,
    output: Mutex<Option<Tensor>>,
    backward: Backward,
}

impl Attached {
    /// The output's values in a storage of their own, on the backend `S` the op runs on.
    fn forward<S>(&self, storage: impl Fn(&Storage) -> Option<&S>) -> candle_core::Result<(S, Shape)>
    where
        S: BackendStorage,
        S::Device: BackendDevice<Storage = S>,
    {
        let output = self
            .output
            .lock()
            .expect("not poisoned")
            .take()
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: forward ran twice", self.name)))?;
        let (guard, layout) = output.storage_and_layout();
        let source = storage(&guard)
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: output on another device", self.name)))?;
        // A copy laid out contiguously from offset 0, whatever view `output` is.
        // SAFETY: every element is written by the copy below before anyone reads it.
        let mut copy = unsafe { source.device().alloc_uninit(layout.shape(), source.dtype())? };
        source.copy_strided_src(&mut copy, 0, layout)?;
        Ok((copy, layout.shape().clone()))
    }

    fn forward_cpu(&self) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward(|s| match s {
            Storage::Cpu(s) => Some(s),
            _ => None,
        })
    }

    fn forward_cuda(&self) -> candle_core::Result<(CudaStorage, Shape)> {
        self.forward(|s| match s {
            Storage::Cuda(s) => Some(s),
            _ => None,
        })
    }

    fn grads(&self, inputs: &[&Tensor], out: &Tensor, grad: &Tensor) -> candle_core::Result<Vec<Option<Tensor>>> {
        let inputs: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
        let mut grads = (self.backward)(&inputs, &out.detach(), grad)?;
        grads.resize(inputs.len(), None);
        Ok(grads)
    }
}

impl CustomOp1 for Attached {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward_cpu()
    }
    fn cuda_fwd(&self, _: &CudaStorage, _: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        self.forward_cuda()
    }
    fn bwd(&self, a: &Tensor, out: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(self.grads(&[a], out, grad)?.remove(0))
    }
}

impl CustomOp2 for Attached {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward_cpu()
    }
    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        self.forward_cuda()
    }
    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let mut g = self.grads(&[a, b], out, grad)?.into_iter();
        Ok((g.next().flatten(), g.next().flatten()))
    }
}

impl CustomOp3 for Attached {
    fn name(&self) -> &'static str {
        self.name
    }
    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward_cpu()
    }
    fn cuda_fwd(
        &self,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
        _: &CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        self.forward_cuda()
    }
    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let mut g = self.grads(&[a, b, c], out, grad)?.into_iter();
        Ok((g.next().flatten(), g.next().flatten(), g.next().flatten()))
    }
}

/// Attaches `output` (computed from detached copies of `inputs`) to `inputs`, so that backpropagation
/// calls `backward(inputs, output, grad_of_output)` for the inputs' gradients. With no tracked input,
/// `output` is returned as is.
fn attach(name: &'static str, inputs: &[&Tensor], output: Tensor, backward: Backward) -> Result<Tensor> {
    if !inputs.iter().any(|t| t.track_op()) {
        return Ok(output);
    }
    let op = Attached {
        name,
        output: Mutex::new(Some(output)),
        backward,
    };
    Ok(match inputs {
        [a] => a.apply_op1(op)?,
        [a, b] => a.apply_op2(b, op)?,
        [a, b, c] => a.apply_op3(b, c, op)?,
        _ => unreachable!("ops here take one to three inputs"),
    })
}

/// Runs `f` on the values of f32 CPU tensors, read in place (a non-contiguous one is copied first).
pub fn with_values<R>(tensors: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> R) -> candle_core::Result<R> {
    let contiguous: Vec<Tensor> = tensors
        .iter()
        .map(|t| t.contiguous())
        .collect::<candle_core::Result<_>>()?;
    let guards: Vec<_> = contiguous.iter().map(|t| t.storage_and_layout()).collect();
    let slices = guards
        .iter()
        .map(|(storage, layout)| -> candle_core::Result<&[f32]> {
            let Storage::Cpu(cpu) = &**storage else {
                return Err(candle_core::Error::Msg("fused ops run on the CPU only".into()));
            };
            let (start, end) = layout
                .contiguous_offsets()
                .ok_or_else(|| candle_core::Error::Msg("expected a contiguous tensor".into()))?;
            Ok(&cpu.as_slice::<f32>()?[start..end])
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(f(&slices))
}

/// Below this many values a loop stays on the calling thread: waking the pool costs more than it saves.
const PARALLEL_MIN: usize = 1 << 15;

/// Calls `f(row, values)` for each `dim`-long row of `out`, across threads when there is enough work.
fn for_rows(out: &mut [f32], dim: usize, f: impl Fn(usize, &mut [f32]) + Send + Sync) {
    if out.len() >= PARALLEL_MIN {
        out.par_chunks_mut(dim).enumerate().for_each(|(i, r)| f(i, r));
    } else {
        out.chunks_mut(dim).enumerate().for_each(|(i, r)| f(i, r));
    }
}

/// [`for_rows`] over two outputs of the same length at once.
fn for_rows2(a: &mut [f32], b: &mut [f32], dim: usize, f: impl Fn(usize, &mut [f32], &mut [f32]) + Send + Sync) {
    if a.len() >= PARALLEL_MIN {
        a.par_chunks_mut(dim)
            .zip(b.par_chunks_mut(dim))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    } else {
        a.chunks_mut(dim)
            .zip(b.chunks_mut(dim))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    }
}

/// `Σ_rows f(row)` for `rows` rows of `dim` columns, where `f(row, acc)` adds one row's contribution to
/// `acc`. Rows are summed in fixed blocks and the blocks in order, so the result does not depend on how
/// threads share the work.
fn column_sums(rows: usize, dim: usize, f: impl Fn(usize, &mut [f32]) + Send + Sync) -> Vec<f32> {
    const BLOCK: usize = 64;
    let block = |k: usize| {
        let mut acc = vec![0f32; dim];
        for row in k * BLOCK..rows.min((k + 1) * BLOCK) {
            f(row, &mut acc);
        }
        acc
    };
    let blocks = rows.div_ceil(BLOCK);
    let partial: Vec<Vec<f32>> = if rows * dim >= PARALLEL_MIN {
        (0..blocks).into_par_iter().map(block).collect()
    } else {
        (0..blocks).map(block).collect()
    };
    let mut sums = vec![0f32; dim];
    for p in &partial {
        for (s, v) in sums.iter_mut().zip(p) {
            *s += v;
        }
    }
    sums
}
