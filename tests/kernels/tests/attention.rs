//! The tiled attention kernels of model/kernels/attention.cu, run on emulated CUDA threads, against the
//! CPU training op `saha_model::fused::self_attention` (checked against candle's composite attention)
//! with the rotation switched off (cos 1, sin 0): output and the gradients of q, k and v, in f32 and
//! bf16, over causal, padded and fully masked rows, grouped KV heads and lengths across tiles.

use candle_core::{Device, Tensor, Var};
use half::bf16;
use saha_common::rng::symmetric_values;
use saha_kernel_tests::{Attention, Element};
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
