//! The tiled attention kernels of model/kernels/attention.cu, run on emulated CUDA threads, against the
//! CPU training op `saha_model::fused::self_attention` (checked against candle's composite attention)
//! with the rotation switched off (cos 1, sin 0): output and the gradients of q, k and v, in f32 and
//! bf16, over causal, padded and fully masked rows, grouped KV heads and lengths across tiles.

use candle_core::{DType, Device, Tensor, Var};
use half::bf16;
use saha_common::rng::symmetric_values;
use saha_kernel_tests::{Attention, Element};
use saha_model::fused::any_device::{self, TiledAttentionKernels};
use saha_model::fused::{self, Heads};

/// Causal; sequence 1's last two keys are padding and its last query sees nothing; sequence 2 is
/// left-padded by three (its first queries see nothing either).
fn mask(batch: usize, len: usize) -> Vec<f32> {
    let mut mask = vec![0f32; batch * len * len];
    for b in 0..batch {
        for i in 0..len {
            for j in 0..len {
                let hidden = j > i
                    || match b {
                        1 => j >= len - 2 || i == len - 1,
                        2 => j < 3,
                        _ => false,
                    };
                if hidden {
                    mask[(b * len + i) * len + j] = f32::MIN;
                }
            }
        }
    }
    mask
}

fn rel_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The reference's output and gradients for inputs `q`, `k`, `v` and output gradient `grad`.
fn reference(a: Attention, q: &[f32], k: &[f32], v: &[f32], mask: &[f32], grad: &[f32]) -> [Vec<f32>; 4] {
    let (b, len) = (a.batch, a.len);
    let var = |x: &[f32], width: usize| {
        Var::from_tensor(&Tensor::from_vec(x.to_vec(), (b, len, width), &Device::Cpu).unwrap()).unwrap()
    };
    let (qv, kv, vv) = (
        var(q, a.heads * a.d),
        var(k, a.kv_heads * a.d),
        var(v, a.kv_heads * a.d),
    );
    let cos = Tensor::ones((b, len, a.d / 2), candle_core::DType::F32, &Device::Cpu).unwrap();
    let sin = cos.zeros_like().unwrap();
    let mask = Tensor::from_vec(mask.to_vec(), (b, 1, len, len), &Device::Cpu).unwrap();
    let heads = Heads {
        heads: a.heads,
        kv_heads: a.kv_heads,
        head_dim: a.d,
    };
    let out = fused::self_attention(
        qv.as_tensor(),
        kv.as_tensor(),
        vv.as_tensor(),
        (&cos, &sin),
        &mask,
        heads,
    )
    .unwrap();
    let weights = Tensor::from_vec(grad.to_vec(), out.shape(), &Device::Cpu).unwrap();
    let grads = (&out * weights).unwrap().sum_all().unwrap().backward().unwrap();
    let g = |v: &Var| flat(grads.get(v).unwrap());
    [flat(&out), g(&qv), g(&kv), g(&vv)]
}

/// Kernel output and gradients, as f32.
fn kernels<T: Element>(
    a: Attention,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[f32],
    grad: &[f32],
    to: fn(f32) -> T,
    from: fn(T) -> f32,
) -> [Vec<f32>; 4] {
    let t = |x: &[f32]| x.iter().map(|&v| to(v)).collect::<Vec<T>>();
    let f = |x: &[T]| x.iter().map(|&v| from(v)).collect::<Vec<f32>>();
    let (q, k, v, grad) = (t(q), t(k), t(v), t(grad));
    let (out, lse) = a.forward(&q, &k, &v, mask);
    // rowsum(grad ⊙ out) per (sequence, row, head), from the kernel's own (rounded) output.
    let (outf, gradf) = (f(&out), f(&grad));
    let row_dot: Vec<f32> = outf
        .chunks(a.d)
        .zip(gradf.chunks(a.d))
        .map(|(o, g)| o.iter().zip(g).map(|(x, y)| x * y).sum())
        .collect();
    let (dq, dk, dv) = a.backward(&q, &k, &v, mask, &grad, &lse, &row_dot);
    [outf, f(&dq), f(&dk), f(&dv)]
}

const NAMES: [&str; 4] = ["output", "dq", "dk", "dv"];

fn cases() -> [Attention; 3] {
    [
        // Grouped heads; a length that ends mid-tile.
        Attention {
            batch: 3,
            len: 37,
            heads: 6,
            kv_heads: 2,
            d: 16,
        },
        // One head per KV head, a head size that is not a multiple of the threads' stride.
        Attention {
            batch: 3,
            len: 20,
            heads: 2,
            kv_heads: 2,
            d: 40,
        },
        // The largest head size the kernels take; one tile.
        Attention {
            batch: 3,
            len: 9,
            heads: 2,
            kv_heads: 1,
            d: 128,
        },
    ]
}

fn inputs(a: Attention) -> [Vec<f32>; 5] {
    let rows = a.batch * a.len;
    [
        symmetric_values(rows * a.heads * a.d, 1),
        symmetric_values(rows * a.kv_heads * a.d, 2),
        symmetric_values(rows * a.kv_heads * a.d, 3),
        mask(a.batch, a.len),
        symmetric_values(rows * a.heads * a.d, 4),
    ]
}

#[test]
fn f32_kernels_match_the_cpu_op() {
    for a in cases() {
        let [q, k, v, mask, grad] = inputs(a);
        let want = reference(a, &q, &k, &v, &mask, &grad);
        let got = kernels::<f32>(a, &q, &k, &v, &mask, &grad, |x| x, |x| x);
        for i in 0..4 {
            let d = rel_diff(&got[i], &want[i]);
            assert!(d < 1e-5, "{a:?}: {} differs by {d}", NAMES[i]);
        }
    }
}

#[test]
fn bf16_kernels_match_the_cpu_op_on_the_rounded_inputs() {
    for a in cases() {
        let [q, k, v, mask, grad] = inputs(a);
        let round = |x: &[f32]| x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect::<Vec<_>>();
        let (q, k, v, grad) = (round(&q), round(&k), round(&v), round(&grad));
        let want = reference(a, &q, &k, &v, &mask, &grad);
        let got = kernels::<bf16>(a, &q, &k, &v, &mask, &grad, bf16::from_f32, |x| x.to_f32());
        for i in 0..4 {
            // f32 arithmetic on the same inputs, rounded to bf16 once per output (and the output once more
            // before rowsum(grad ⊙ out) in the gradients): a few units of 2^-8.
            let d = rel_diff(&got[i], &want[i]);
            assert!(d < 2e-2, "{a:?}: bf16 {} differs by {d}", NAMES[i]);
        }
    }
}

#[test]
fn visible_lengths_follow_the_mask() {
    let a = Attention {
        batch: 3,
        len: 6,
        heads: 1,
        kv_heads: 1,
        d: 2,
    };
    let visible = a.visible(&mask(3, 6));
    assert_eq!(visible, [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 4, 0, 0, 0, 0, 4, 5, 6]);
}

/// The kernels above behind the model's tiled attention op (`self_attention_tiled_with`, the CUDA
/// path's rotations, layouts and backward), on CPU tensors.
struct Emulated;

fn data<T: candle_core::WithDType>(t: &Tensor) -> candle_core::Result<Vec<T>> {
    t.flatten_all()?.to_vec1::<T>()
}

fn wrap<T: candle_core::WithDType>(x: Vec<T>, like: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::from_vec(x, like.shape(), &Device::Cpu)
}

fn shape_of(q: &Tensor, k: &Tensor) -> candle_core::Result<Attention> {
    let (batch, len, heads, d) = q.dims4()?;
    Ok(Attention {
        batch,
        len,
        heads,
        kv_heads: k.dim(2)?,
        d,
    })
}

fn forward_as<T: Element + candle_core::WithDType>(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
) -> candle_core::Result<(Tensor, Tensor)> {
    let a = shape_of(q, k)?;
    let (out, lse) = a.forward(&data::<T>(q)?, &data(k)?, &data(v)?, &data(mask)?);
    Ok((
        wrap(out, q)?,
        Tensor::from_vec(lse, (a.batch, a.len, a.heads), &Device::Cpu)?,
    ))
}

fn backward_as<T: Element + candle_core::WithDType>(t: [&Tensor; 7]) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let [q, k, v, mask, grad, lse, row_dot] = t;
    let a = shape_of(q, k)?;
    let (dq, dk, dv) = a.backward(
        &data::<T>(q)?,
        &data(k)?,
        &data(v)?,
        &data(mask)?,
        &data(grad)?,
        &data(lse)?,
        &data(row_dot)?,
    );
    Ok((wrap(dq, q)?, wrap(dk, k)?, wrap(dv, v)?))
}

impl TiledAttentionKernels for Emulated {
    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        match q.dtype() {
            DType::F32 => forward_as::<f32>(q, k, v, mask),
            _ => forward_as::<bf16>(q, k, v, mask),
        }
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
        let all = [q, k, v, mask, grad, lse, row_dot];
        match q.dtype() {
            DType::F32 => backward_as::<f32>(all),
            _ => backward_as::<bf16>(all),
        }
    }
}

#[test]
fn the_tiled_attention_op_matches_the_cpu_op_with_rotations_in_f32_and_bf16() {
    let a = Attention {
        batch: 3,
        len: 37,
        heads: 6,
        kv_heads: 2,
        d: 16,
    };
    let (b, len) = (a.batch, a.len);
    let [q, k, v, mask, grad] = inputs(a);
    let angles: Vec<f32> = symmetric_values(b * len * a.d / 2, 9).iter().map(|x| x * 3.0).collect();
    let angles = Tensor::from_vec(angles, (b, len, a.d / 2), &Device::Cpu).unwrap();
    let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
    let mask = Tensor::from_vec(mask, (b, 1, len, len), &Device::Cpu).unwrap();
    let heads = Heads {
        heads: a.heads,
        kv_heads: a.kv_heads,
        head_dim: a.d,
    };
    for (dtype, bar) in [(DType::F32, 1e-5), (DType::BF16, 5e-2)] {
        let make = |x: &[f32], width: usize, dtype: DType| {
            let t = Tensor::from_vec(x.to_vec(), (b, len, width), &Device::Cpu).unwrap();
            Var::from_tensor(&t.to_dtype(DType::BF16).unwrap().to_dtype(dtype).unwrap()).unwrap()
        };
        let inputs = |dtype| {
            [
                make(&q, a.heads * a.d, dtype),
                make(&k, a.kv_heads * a.d, dtype),
                make(&v, a.kv_heads * a.d, dtype),
            ]
        };
        let (reference, ours) = (inputs(DType::F32), inputs(dtype));
        let t = |vars: &[Var; 3], i: usize| vars[i].as_tensor().clone();
        let want = fused::self_attention(
            &t(&reference, 0),
            &t(&reference, 1),
            &t(&reference, 2),
            (&cos, &sin),
            &mask,
            heads,
        )
        .unwrap();
        let got = any_device::self_attention_tiled_with(
            Emulated,
            &t(&ours, 0),
            &t(&ours, 1),
            &t(&ours, 2),
            (&cos, &sin),
            &mask,
            heads,
        )
        .unwrap();
        let weights = Tensor::from_vec(grad.clone(), want.shape(), &Device::Cpu).unwrap();
        let want_grads = (&want * &weights).unwrap().sum_all().unwrap().backward().unwrap();
        let got_grads = (got.to_dtype(DType::F32).unwrap() * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let f32s = |t: &Tensor| flat(&t.to_dtype(DType::F32).unwrap());
        let mut diffs = vec![rel_diff(&f32s(&got), &flat(&want))];
        for i in 0..3 {
            diffs.push(rel_diff(
                &f32s(got_grads.get(&ours[i]).unwrap()),
                &flat(want_grads.get(&reference[i]).unwrap()),
            ));
        }
        for (i, d) in diffs.iter().enumerate() {
            assert!(*d < bar, "{dtype:?}: {} differs by {d}", NAMES[i]);
        }
    }
}
