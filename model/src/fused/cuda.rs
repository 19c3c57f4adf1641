//! Launches of the kernels in model/kernels/ (compiled to PTX by build.rs) for the any-device training
//! ops on CUDA: SwiGLU forward and backward, RMSNorm's backward, DoRA's combination, and the tiled
//! attention. Each takes f32 or bf16 tensors (DoRA f32 only) and
//! returns new ones outside any graph (the callers attach the backward).

use candle_core::cuda::cudarc::driver::{CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda::{CudaDType, CudaDevice, WrapErr};
use candle_core::{CudaStorage, DType, Layout, Shape, Storage, Tensor};
use half::bf16;

mod ptx {
    include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
}

/// Threads per block; rms_norm_bwd's reduction needs the RMS_THREADS of fused.cu.
const THREADS: u32 = 256;
/// Blocks of a grid-stride launch: enough to fill an H100 several times over.
const MAX_BLOCKS: u32 = 4096;

/// Whether the kernels here serve `x`.
pub fn serves(x: &Tensor) -> bool {
    x.device().is_cuda() && matches!(x.dtype(), DType::F32 | DType::BF16)
}

fn launch_for(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((n as u32).div_ceil(THREADS).clamp(1, MAX_BLOCKS), 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The values of a contiguous storage, from its layout's offset.
fn view<'a, T: CudaDType + DeviceRepr>(s: &'a CudaStorage, l: &Layout) -> candle_core::Result<CudaView<'a, T>> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("fused CUDA kernels take contiguous tensors".into()))?;
    Ok(s.as_cuda_slice::<T>()?.slice(start..end))
}

/// `dev.get_or_load_custom_func` for a kernel of fused.cu, or of attention.cu (names `attn_*`).
macro_rules! function {
    ($dev:expr, $name:expr) => {{
        let name: &str = $name;
        if name.starts_with("attn_") {
            $dev.get_or_load_custom_func(name, "saha_attention", ptx::ATTENTION)
        } else {
            $dev.get_or_load_custom_func(name, "saha_fused", ptx::FUSED)
        }
    }};
}

fn kernel_name(base: &str, dtype: DType) -> candle_core::Result<String> {
    match dtype {
        DType::F32 => Ok(format!("{base}_f32")),
        DType::BF16 => Ok(format!("{base}_bf16")),
        other => candle_core::bail!("{base}: no CUDA kernel for {other:?}"),
    }
}

/// Runs `body::<T>` for the storage's element type (f32 or bf16).
macro_rules! per_dtype {
    ($dtype:expr, $body:ident ( $($arg:expr),* )) => {
        match $dtype {
            DType::F32 => $body::<f32>($($arg),*),
            DType::BF16 => $body::<bf16>($($arg),*),
            other => candle_core::bail!("fused CUDA kernels: no kernel for {other:?}"),
        }
    };
}

/// `silu(gate) ⊙ up`.
pub fn swiglu_forward(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    let (gate, up) = (gate.contiguous()?, up.contiguous()?);
    let dev = cuda_device(&gate)?;
    fn run<T: CudaDType + DeviceRepr>(dev: &CudaDevice, gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
        let (g, u) = (gate.storage_and_layout(), up.storage_and_layout());
        let (g, u) = (cuda_view::<T, _>(&g)?, cuda_view::<T, _>(&u)?);
        let n = gate.elem_count();
        // SAFETY: the kernel writes every element.
        let out: CudaSlice<T> = unsafe { dev.alloc::<T>(n)? };
        let func = function!(dev, &kernel_name("swiglu_fwd", gate.dtype())?)?;
        let mut b = func.builder();
        b.arg(&g).arg(&u).arg(&out).arg(&n);
        // SAFETY: argument types and counts match the kernel's signature.
        unsafe { b.launch(launch_for(n)) }.w()?;
        Ok(wrap(out, dev, gate.shape()))
    }
    per_dtype!(gate.dtype(), run(&dev, &gate, &up))
}

/// `(d gate, d up)` of SwiGLU for the output gradient `grad`.
pub fn swiglu_backward(gate: &Tensor, up: &Tensor, grad: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let (gate, up, grad) = (gate.contiguous()?, up.contiguous()?, grad.contiguous()?);
    let dev = cuda_device(&gate)?;
    fn run<T: CudaDType + DeviceRepr>(dev: &CudaDevice, t: [&Tensor; 3]) -> candle_core::Result<Tensor> {
        let guards = t.map(|t| t.storage_and_layout());
        let (g, u, d) = (
            cuda_view::<T, _>(&guards[0])?,
            cuda_view::<T, _>(&guards[1])?,
            cuda_view::<T, _>(&guards[2])?,
        );
        let n = t[0].elem_count();
        // SAFETY: the kernel writes every element of both halves.
        let grads: CudaSlice<T> = unsafe { dev.alloc::<T>(2 * n)? };
        let func = function!(dev, &kernel_name("swiglu_bwd", t[0].dtype())?)?;
        let mut b = func.builder();
        b.arg(&g).arg(&u).arg(&d).arg(&grads).arg(&n);
        // SAFETY: as above.
        unsafe { b.launch(launch_for(n)) }.w()?;
        let mut dims = vec![2];
        dims.extend_from_slice(t[0].dims());
        Ok(wrap(grads, dev, dims))
    }
    let both = per_dtype!(gate.dtype(), run(&dev, [&gate, &up, &grad]))?;
    Ok((both.get(0)?, both.get(1)?))
}

/// RMSNorm's backward for `x` `[.., dim]`: `dx`, and when `want_dw` the weight's gradient (f32,
/// `[dim]`), from one launch.
pub fn rms_norm_backward(
    x: &Tensor,
    weight: &Tensor,
    grad: &Tensor,
    eps: f32,
    want_dw: bool,
) -> candle_core::Result<(Tensor, Option<Tensor>)> {
    let (x, weight, grad) = (x.contiguous()?, weight.contiguous()?, grad.contiguous()?);
    let dev = cuda_device(&x)?;
    fn run<T: CudaDType + DeviceRepr>(
        dev: &CudaDevice,
        t: [&Tensor; 3],
        eps: f32,
        want_dw: bool,
    ) -> candle_core::Result<(Tensor, Option<Tensor>)> {
        let guards = t.map(|t| t.storage_and_layout());
        let (x, w, g) = (
            cuda_view::<T, _>(&guards[0])?,
            cuda_view::<T, _>(&guards[1])?,
            cuda_view::<T, _>(&guards[2])?,
        );
        let (n, dim) = (t[0].elem_count(), t[1].elem_count());
        let rows = n / dim;
        // SAFETY: the kernel writes every element of dx, and of dw_rows when asked for it (else dw_rows
        // is one element it never touches).
        let dx: CudaSlice<T> = unsafe { dev.alloc::<T>(n)? };
        let dw_rows: CudaSlice<f32> = unsafe { dev.alloc::<f32>(if want_dw { n } else { 1 })? };
        let func = function!(dev, &kernel_name("rms_norm_bwd", t[0].dtype())?)?;
        let (want, dim32) = (want_dw as i32, dim as i32);
        let mut b = func.builder();
        b.arg(&x).arg(&w).arg(&g).arg(&dx);
        b.arg(&dw_rows).arg(&want).arg(&rows).arg(&dim32).arg(&eps);
        let cfg = LaunchConfig {
            grid_dim: ((rows as u32).clamp(1, MAX_BLOCKS), 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: as above.
        unsafe { b.launch(cfg) }.w()?;
        let dw = want_dw.then(|| wrap(dw_rows, dev, (rows, dim)).sum(0)).transpose()?;
        Ok((wrap(dx, dev, t[0].shape()), dw))
    }
    per_dtype!(x.dtype(), run(&dev, [&x, &weight, &grad], eps, want_dw))
}

/// DoRA's combination (`grad` None) or its gradients, f32: q, lr `[rows, dim]`, `params` `[2, dim]`
/// (ratio, bias). The combination, or `[3, rows, dim]`: dq, dlr and each row's share of d ratio.
fn dora(
    q: &Tensor,
    lr: &Tensor,
    params: &Tensor,
    grad: Option<&Tensor>,
    a: f32,
    s: f32,
) -> candle_core::Result<Tensor> {
    let (q, lr, params) = (q.contiguous()?, lr.contiguous()?, params.contiguous()?);
    let grad = grad.map(Tensor::contiguous).transpose()?;
    for t in [&q, &lr, &params].into_iter().chain(grad.as_ref()) {
        if t.dtype() != DType::F32 {
            candle_core::bail!("dora: the CUDA kernel takes f32 tensors");
        }
    }
    let dev = cuda_device(&q)?;
    let (n, dim) = (q.elem_count(), params.elem_count() / 2);
    let rows = n / dim;
    let guards = [&q, &lr, &params].map(|t| t.storage_and_layout());
    let (qv, lv, all) = (
        cuda_view::<f32, _>(&guards[0])?,
        cuda_view::<f32, _>(&guards[1])?,
        cuda_view::<f32, _>(&guards[2])?,
    );
    let (ratio, bias) = (all.slice(0..dim), all.slice(dim..2 * dim));
    let dim32 = dim as i32;
    let out = match &grad {
        None => {
            // SAFETY: the kernel writes every element.
            let out: CudaSlice<f32> = unsafe { dev.alloc::<f32>(n)? };
            let func = function!(dev, "dora_fwd_f32")?;
            let mut b = func.builder();
            b.arg(&qv).arg(&lv).arg(&ratio).arg(&bias).arg(&a).arg(&s);
            b.arg(&out).arg(&rows).arg(&dim32);
            // SAFETY: argument types and counts match the kernel's signature.
            unsafe { b.launch(launch_for(n)) }.w()?;
            wrap(out, &dev, q.shape())
        }
        Some(grad) => {
            let g = grad.storage_and_layout();
            let gv = cuda_view::<f32, _>(&g)?;
            // SAFETY: the kernel writes every element of the three parts.
            let out: CudaSlice<f32> = unsafe { dev.alloc::<f32>(3 * n)? };
            let func = function!(dev, "dora_bwd_f32")?;
            let mut b = func.builder();
            b.arg(&qv).arg(&lv).arg(&ratio).arg(&bias).arg(&gv).arg(&a).arg(&s);
            b.arg(&out).arg(&rows).arg(&dim32);
            // SAFETY: as above.
            unsafe { b.launch(launch_for(n)) }.w()?;
            wrap(out, &dev, (3, rows, dim))
        }
    };
    Ok(out)
}

/// DoRA's `a q + (ratio − 1)(q − bias) + s ratio lr` for `q`, `lr` `[rows, dim]`.
pub fn dora_forward(q: &Tensor, lr: &Tensor, params: &Tensor, a: f32, s: f32) -> candle_core::Result<Tensor> {
    dora(q, lr, params, None, a, s)
}

/// DoRA's `(dq, dlr, d ratio)` for the output gradient `grad`.
pub fn dora_backward(
    q: &Tensor,
    lr: &Tensor,
    params: &Tensor,
    grad: &Tensor,
    a: f32,
    s: f32,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let parts = dora(q, lr, params, Some(grad), a, s)?;
    Ok((parts.get(0)?, parts.get(1)?, parts.get(2)?.sum(0)?))
}

/// The largest head size the tiled attention kernels take (ATT_DMAX in attention.cu).
pub const ATTENTION_MAX_HEAD_DIM: usize = 128;
/// Threads per block and rows per tile of the attention kernels (ATT_THREADS, ATT_BQ = ATT_BK).
const ATTENTION_THREADS: u32 = 128;
const ATTENTION_TILE: usize = 16;

/// A read guard's CUDA storage with its layout, which must be contiguous.
fn cuda_view<'a, T: CudaDType + DeviceRepr, G: std::ops::Deref<Target = Storage>>(
    guard: &'a (G, &'a Layout),
) -> candle_core::Result<CudaView<'a, T>> {
    match &*guard.0 {
        Storage::Cuda(s) => view::<T>(s, guard.1),
        _ => candle_core::bail!("attention kernels: a tensor is not on the GPU"),
    }
}

fn cuda_device(t: &Tensor) -> candle_core::Result<CudaDevice> {
    match t.device() {
        candle_core::Device::Cuda(d) => Ok(d.clone()),
        _ => candle_core::bail!("attention kernels: a tensor is not on the GPU"),
    }
}

/// A tensor over a fresh device buffer, outside any graph.
fn wrap<T: CudaDType>(slice: CudaSlice<T>, dev: &CudaDevice, shape: impl Into<Shape>) -> Tensor {
    Tensor::from_storage(
        Storage::Cuda(CudaStorage::wrap_cuda_slice(slice, dev.clone())),
        shape,
        candle_core::op::BackpropOp::none(),
        false,
    )
}

/// One past each query row's last unmasked key, `[batch · len]` u32, for the additive mask
/// `[batch, 1, len, len]` (f32).
pub fn attention_visible(mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.contiguous()?;
    let (b, _, len, _) = mask.dims4()?;
    let dev = cuda_device(&mask)?;
    let rows = b * len;
    let guard = mask.storage_and_layout();
    let m = cuda_view::<f32, _>(&guard)?;
    // SAFETY: the kernel writes every row.
    let visible: CudaSlice<u32> = unsafe { dev.alloc::<u32>(rows)? };
    let func = function!(dev, "attn_visible_u32")?;
    let len32 = len as i32;
    let mut builder = func.builder();
    builder.arg(&m).arg(&visible).arg(&rows).arg(&len32);
    // SAFETY: argument types and counts match the kernel's signature.
    unsafe { builder.launch(launch_for(rows)) }.w()?;
    drop(guard);
    Ok(wrap(visible, &dev, rows))
}

/// Sizes of one attention call, read from q `[batch, len, heads, d]` and k `[batch, len, kv_heads, d]`.
struct AttentionDims {
    batch: usize,
    len: i32,
    heads: i32,
    kv_heads: i32,
    d: i32,
    scale: f32,
}

impl AttentionDims {
    fn of(q: &Tensor, k: &Tensor) -> candle_core::Result<Self> {
        let (batch, len, heads, d) = q.dims4()?;
        let kv_heads = k.dim(2)?;
        if d > ATTENTION_MAX_HEAD_DIM || heads % kv_heads != 0 {
            candle_core::bail!("attention kernels: head size {d} (at most {ATTENTION_MAX_HEAD_DIM}), {heads} heads over {kv_heads} KV heads");
        }
        Ok(AttentionDims {
            batch,
            len: len as i32,
            heads: heads as i32,
            kv_heads: kv_heads as i32,
            d: d as i32,
            scale: 1.0 / (d as f32).sqrt(),
        })
    }

    fn grid(&self, tiles_of: i32) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (
                (self.len as usize).div_ceil(ATTENTION_TILE) as u32,
                tiles_of as u32,
                self.batch as u32,
            ),
            block_dim: (ATTENTION_THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

/// `(out, lse)` of `softmax(q kᵀ / √d + mask) v` for rotated q `[batch, len, heads, d]`, k and v
/// `[batch, len, kv_heads, d]`: out like q, lse `[batch, len, heads]` f32.
pub fn attention_forward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    visible: &Tensor,
) -> candle_core::Result<(Tensor, Tensor)> {
    let (q, k, v, mask) = (q.contiguous()?, k.contiguous()?, v.contiguous()?, mask.contiguous()?);
    let dims = AttentionDims::of(&q, &k)?;
    let dev = cuda_device(&q)?;
    fn run<T: CudaDType + DeviceRepr>(
        dims: &AttentionDims,
        dev: &CudaDevice,
        t: [&Tensor; 5],
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let guards = t.map(|t| t.storage_and_layout());
        let (q, k, v) = (
            cuda_view::<T, _>(&guards[0])?,
            cuda_view::<T, _>(&guards[1])?,
            cuda_view::<T, _>(&guards[2])?,
        );
        let (mask, visible) = (cuda_view::<f32, _>(&guards[3])?, cuda_view::<u32, _>(&guards[4])?);
        let n = t[0].elem_count();
        let rows = n / dims.d as usize;
        // SAFETY: the kernel writes every element of both.
        let out: CudaSlice<T> = unsafe { dev.alloc::<T>(n)? };
        let lse: CudaSlice<f32> = unsafe { dev.alloc::<f32>(rows)? };
        let func = function!(dev, &kernel_name("attn_fwd", t[0].dtype())?)?;
        let mut b = func.builder();
        b.arg(&q).arg(&k).arg(&v).arg(&mask).arg(&visible).arg(&out).arg(&lse);
        b.arg(&dims.len)
            .arg(&dims.heads)
            .arg(&dims.kv_heads)
            .arg(&dims.d)
            .arg(&dims.scale);
        // SAFETY: argument types and counts match the kernel's signature.
        unsafe { b.launch(dims.grid(dims.heads)) }.w()?;
        let shape = t[0].shape().clone();
        let lse_shape = (dims.batch, dims.len as usize, dims.heads as usize);
        Ok((wrap(out, dev, shape), wrap(lse, dev, lse_shape)))
    }
    per_dtype!(q.dtype(), run(&dims, &dev, [&q, &k, &v, &mask, visible]))
}

/// `(dq, dk, dv)` of [`attention_forward`] for the output gradient `grad` (like q), from its `lse` and
/// `row_dot` = rowsum(grad ⊙ out) `[batch, len, heads]` f32; the gradients are those of the rotated q
/// and k.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    visible: &Tensor,
    grad: &Tensor,
    lse: &Tensor,
    row_dot: &Tensor,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let (q, k, v, mask, grad) = (
        q.contiguous()?,
        k.contiguous()?,
        v.contiguous()?,
        mask.contiguous()?,
        grad.contiguous()?,
    );
    let (lse, row_dot) = (lse.contiguous()?, row_dot.contiguous()?);
    let dims = AttentionDims::of(&q, &k)?;
    let dev = cuda_device(&q)?;
    fn run<T: CudaDType + DeviceRepr>(
        dims: &AttentionDims,
        dev: &CudaDevice,
        t: [&Tensor; 8],
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let guards = t.map(|t| t.storage_and_layout());
        let (q, k, v) = (
            cuda_view::<T, _>(&guards[0])?,
            cuda_view::<T, _>(&guards[1])?,
            cuda_view::<T, _>(&guards[2])?,
        );
        let (mask, visible) = (cuda_view::<f32, _>(&guards[3])?, cuda_view::<u32, _>(&guards[4])?);
        let grad = cuda_view::<T, _>(&guards[5])?;
        let (lse, row_dot) = (cuda_view::<f32, _>(&guards[6])?, cuda_view::<f32, _>(&guards[7])?);
        let (nq, nk) = (t[0].elem_count(), t[1].elem_count());
        // SAFETY: the kernels write every element.
        let dq: CudaSlice<T> = unsafe { dev.alloc::<T>(nq)? };
        let dk: CudaSlice<T> = unsafe { dev.alloc::<T>(nk)? };
        let dv: CudaSlice<T> = unsafe { dev.alloc::<T>(nk)? };
        let dtype = t[0].dtype();
        let func = function!(dev, &kernel_name("attn_bwd_dq", dtype)?)?;
        let mut b = func.builder();
        b.arg(&q)
            .arg(&k)
            .arg(&v)
            .arg(&mask)
            .arg(&visible)
            .arg(&grad)
            .arg(&lse)
            .arg(&row_dot)
            .arg(&dq);
        b.arg(&dims.len)
            .arg(&dims.heads)
            .arg(&dims.kv_heads)
            .arg(&dims.d)
            .arg(&dims.scale);
        // SAFETY: argument types and counts match the kernel's signature.
        unsafe { b.launch(dims.grid(dims.heads)) }.w()?;
        let func = function!(dev, &kernel_name("attn_bwd_dkv", dtype)?)?;
        let mut b = func.builder();
        b.arg(&q)
            .arg(&k)
            .arg(&v)
            .arg(&mask)
            .arg(&visible)
            .arg(&grad)
            .arg(&lse)
            .arg(&row_dot)
            .arg(&dk)
            .arg(&dv);
        b.arg(&dims.len)
            .arg(&dims.heads)
            .arg(&dims.kv_heads)
            .arg(&dims.d)
            .arg(&dims.scale);
        // SAFETY: as above.
        unsafe { b.launch(dims.grid(dims.kv_heads)) }.w()?;
        let (qs, ks) = (t[0].shape().clone(), t[1].shape().clone());
        Ok((wrap(dq, dev, qs), wrap(dk, dev, ks.clone()), wrap(dv, dev, ks)))
    }
    per_dtype!(
        q.dtype(),
        run(&dims, &dev, [&q, &k, &v, &mask, visible, &grad, &lse, &row_dot])
    )
}

/// The tiled attention kernels of attention.cu for [`super::any_device::self_attention_tiled_with`].
pub struct TiledAttention;

impl super::any_device::TiledAttentionKernels for TiledAttention {
    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        attention_forward(q, k, v, mask, &attention_visible(mask)?)
    }

    fn backward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
        grad: &Tensor,
        lse: &Tensor,
        row_dot: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        attention_backward(q, k, v, mask, &attention_visible(mask)?, grad, lse, row_dot)
    }
}

#[cfg(test)]
mod tests {
    use super::ptx;

    /// Every kernel this file launches is in the PTX build.rs made (`make cuda` runs this).
    #[test]
    fn every_launched_kernel_is_in_the_ptx() {
        let entries = |ptx: &str| -> Vec<String> {
            ptx.lines()
                .filter_map(|l| l.split(".entry ").nth(1))
                .map(|name| name.trim_end_matches('(').trim().to_string())
                .collect()
        };
        let (fused, attention) = (entries(ptx::FUSED), entries(ptx::ATTENTION));
        let typed = [
            "swiglu_fwd",
            "swiglu_bwd",
            "rms_norm_bwd",
            "attn_fwd",
            "attn_bwd_dq",
            "attn_bwd_dkv",
        ];
        let mut names: Vec<String> = typed
            .iter()
            .flat_map(|base| [format!("{base}_f32"), format!("{base}_bf16")])
            .collect();
        names.extend(["dora_fwd_f32", "dora_bwd_f32", "attn_visible_u32"].map(String::from));
        for name in names {
            let module = if name.starts_with("attn_") { &attention } else { &fused };
            assert!(module.contains(&name), "{name} is not in its PTX module: {module:?}");
        }
    }
}
