//! Each fused op against the composite candle expression it replaces: output and every input's gradient.

use super::*;
use candle_core::D;
use candle_core::{Module, Var};

/// Deterministic values in [-1, 1].
pub(super) fn values(n: usize, seed: u64) -> Vec<f32> {
    saha_common::rng::symmetric_values(n, seed)
}

pub(super) fn var(shape: &[usize], seed: u64) -> Var {
    let n = shape.iter().product();
    Var::from_tensor(&Tensor::from_vec(values(n, seed), shape, &Device::Cpu).unwrap()).unwrap()
}

pub(super) fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let diff = (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    let scale = b.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    (diff.to_scalar::<f32>().unwrap()) / scale.to_scalar::<f32>().unwrap().max(1e-12)
}

/// Shapes are tried small (one thread) and above `PARALLEL_MIN` values (across threads).
pub(super) const LARGE: usize = 40;

/// The fused op and the composite expression agree on the output and on every input's gradient
/// (for a random weighting of the output, so no gradient is trivially uniform).
pub(super) fn check(vars: &[&Var], fused: &Tensor, composite: &Tensor, seed: u64) {
    assert!(max_rel_diff(fused, composite) < 1e-5, "forward");
    let weights = Tensor::from_vec(values(fused.elem_count(), seed), fused.shape(), &Device::Cpu).unwrap();
    let gf = (fused * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    let gc = (composite * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    for (i, v) in vars.iter().enumerate() {
        let (a, b) = (
            gf.get(v).expect("fused gradient"),
            gc.get(v).expect("composite gradient"),
        );
        let d = max_rel_diff(a, b);
        assert!(d < 1e-4, "input {i}: gradient differs by {d}");
    }
}

#[test]
fn frozen_linear_matches_matmul_and_skips_the_weight() {
    let x = var(&[2, 5, 8], 1);
    // The weight and bias are variables here, so the composite expression gives them gradients; the fused
    // op treats them as frozen and backpropagates into `x` only.
    let w = var(&[6, 8], 2);
    let b = var(&[6], 3);
    let fused = frozen_linear(x.as_tensor(), w.as_tensor(), Some(b.as_tensor())).unwrap();
    let composite = x
        .as_tensor()
        .broadcast_matmul(&w.as_tensor().t().unwrap())
        .unwrap()
        .broadcast_add(b.as_tensor())
        .unwrap();
    check(&[&x], &fused, &composite, 4);

    let gf = fused.sum_all().unwrap().backward().unwrap();
    let gc = composite.sum_all().unwrap().backward().unwrap();
    assert!(gf.get(&x).is_some(), "the fused op gives the input a gradient");
    assert!(
        gc.get(&w).is_some() && gc.get(&b).is_some(),
        "the composite form gives the weight and bias gradients (so the next check means something)"
    );
    assert!(
        gf.get(&w).is_none(),
        "frozen_linear computed a gradient for the frozen weight"
    );
    assert!(
        gf.get(&b).is_none(),
        "frozen_linear computed a gradient for the frozen bias"
    );
}

/// `linear` gives candle's `x @ Wᵀ + b` to the bit (the embeddings stay those of the candle path), for
/// leading dimensions, no bias, and products large enough for gemm to split across threads.
#[test]
fn linear_is_candles_matmul_and_bias_to_the_bit() {
    let bits = |t: &Tensor| {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>()
    };
    for (shape, out, bias) in [
        (vec![2, 5, 8], 6, true),
        (vec![3, 7], 4, false),
        (vec![2, 300, 520], 700, true),
        (vec![1, 1, 1536], 4096, true),
    ] {
        let in_dim = *shape.last().unwrap();
        let x = var(&shape, 1);
        let w = var(&[out, in_dim], 2);
        let b = var(&[out], 3);
        let b = bias.then(|| b.as_tensor());
        let ours = linear(x.as_tensor(), w.as_tensor(), b).unwrap();
        let candle = candle_nn::Linear::new(w.as_tensor().clone(), b.cloned())
            .forward(x.as_tensor())
            .unwrap();
        assert_eq!(ours.dims(), candle.dims(), "{shape:?} x {out}");
        assert!(
            bits(&ours) == bits(&candle),
            "{shape:?} x {out}: values differ from candle's"
        );
        // The frozen layer's input gradient is candle's `grad @ W` to the bit as well.
        let g = Tensor::from_vec(values(ours.elem_count(), 4), ours.shape(), &Device::Cpu).unwrap();
        let fused = frozen_linear(x.as_tensor(), w.as_tensor(), b).unwrap();
        let grad = (fused * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let want = g.broadcast_matmul(w.as_tensor()).unwrap();
        assert!(
            bits(grad.get(&x).unwrap()) == bits(&want),
            "{shape:?} x {out}: input gradient differs"
        );
    }
}

#[test]
fn dora_combine_matches_the_composite_form() {
    let out = 6;
    let bias = Tensor::from_vec(values(out, 18), out, &Device::Cpu).unwrap();
    // More rows than one column-sum block; then enough values for the threads.
    for rows in [70, 150 * LARGE] {
        for (q_is_base, bias) in [(true, Some(&bias)), (false, None)] {
            let q = var(&[2, rows / 2, out], 19);
            let lr = var(&[2, rows / 2, out], 20);
            let ratio = Var::from_tensor(&var(&[out], 21).as_tensor().affine(0.3, 1.0).unwrap()).unwrap();
            let scale = 8.0;
            let fused = dora_combine(q.as_tensor(), lr.as_tensor(), ratio.as_tensor(), bias, scale, q_is_base).unwrap();
            let minus_bias = match bias {
                Some(b) => q.as_tensor().broadcast_sub(b).unwrap(),
                None => q.as_tensor().clone(),
            };
            let r = ratio.as_tensor();
            let mut composite = (minus_bias.broadcast_mul(&(r - 1.0).unwrap()).unwrap()
                + (lr.as_tensor() * scale).unwrap().broadcast_mul(r).unwrap())
            .unwrap();
            if q_is_base {
                composite = (composite + q.as_tensor()).unwrap();
            }
            check(&[&q, &lr, &ratio], &fused, &composite, 22);
        }
    }
}

#[test]
fn swiglu_matches_the_composite_form() {
    for shape in [[3, 4, 16], [3, LARGE, 300]] {
        // Gates in [-8, 8], so the sigmoid's tails are exercised too.
        let gate = Var::from_tensor(&var(&shape, 15).as_tensor().affine(8.0, 0.0).unwrap()).unwrap();
        let up = var(&shape, 16);
        let fused = swiglu(gate.as_tensor(), up.as_tensor()).unwrap();
        let composite = (gate.as_tensor().silu().unwrap() * up.as_tensor()).unwrap();
        check(&[&gate, &up], &fused, &composite, 17);
    }
}

#[test]
fn rms_norm_matches_the_composite_form() {
    for shape in [[3, 4, 16], [3, LARGE * 2, 300]] {
        let x = var(&shape, 5);
        let w = var(&shape[2..], 6);
        let fused = rms_norm(x.as_tensor(), w.as_tensor(), 1e-6).unwrap();
        let x32 = x.as_tensor();
        let ms = x32.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let composite = x32
            .broadcast_div(&(ms + 1e-6).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(w.as_tensor())
            .unwrap();
        check(&[&x, &w], &fused, &composite, 7);
    }
}

#[test]
fn rope_matches_the_composite_form() {
    let x = var(&[2, 3, 5, 8], 8);
    let angles = Tensor::from_vec(values(2 * 5 * 4, 9), (2, 5, 4), &Device::Cpu)
        .unwrap()
        .affine(3.0, 0.0)
        .unwrap();
    let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
    let fused = rope(x.as_tensor(), &cos, &sin).unwrap();
    let mode = crate::layers::Mode::training(0, 0);
    let composite = crate::layers::apply_rotary_composite(x.as_tensor(), &cos, &sin, &mode).unwrap();
    check(&[&x], &fused, &composite, 10);
}

/// Random rotary tables `[batch, len, hd / 2]` (angles in [-3, 3]).
pub(super) fn rope_tables(b: usize, len: usize, hd: usize, seed: u64) -> (Tensor, Tensor) {
    let angles = Tensor::from_vec(values(b * len * hd / 2, seed), (b, len, hd / 2), &Device::Cpu)
        .unwrap()
        .affine(3.0, 0.0)
        .unwrap();
    (angles.cos().unwrap(), angles.sin().unwrap())
}

/// Causal; the second row's last two positions are padding and its last query sees nothing (as a
/// left-padding query does); the third row (if any) is left-padded by three.
pub(super) fn attention_mask(b: usize, len: usize) -> Tensor {
    let mut mask = vec![0f32; b * len * len];
    for r in 0..b {
        for i in 0..len {
            for j in 0..len {
                let padded = match r {
                    1 => j >= len - 2 || i == len - 1,
                    2 => j < 3.min(len - 1),
                    _ => false,
                };
                if j > i || padded {
                    mask[(r * len + i) * len + j] = f32::MIN;
                }
            }
        }
    }
    Tensor::from_vec(mask, (b, 1, len, len), &Device::Cpu).unwrap()
}

/// Grouped-query attention written op by op with candle's composite (differentiable) ops, as the model's
/// composite path computes it in any dtype: scores in the input dtype, softmax in f32 with the mask,
/// probabilities cast back for the product with V.
pub(super) fn composite_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    (cos, sin): (&Tensor, &Tensor),
    mask: &Tensor,
    h: Heads,
) -> Tensor {
    let (b, len, _) = q.dims3().unwrap();
    let (heads, kv, hd) = (h.heads, h.kv_heads, h.head_dim);
    let group = heads / kv;
    let mode = crate::layers::Mode::training(0, 0);
    let split = |t: &Tensor, n: usize| {
        t.reshape((b, len, n, hd))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
    };
    let rotate = |t: &Tensor| crate::layers::apply_rotary_composite(t, cos, sin, &mode).unwrap();
    let (qh, kh, vh) = (rotate(&split(q, heads)), rotate(&split(k, kv)), split(v, kv));
    let scores = (qh
        .reshape((b, kv, group * len, hd))
        .unwrap()
        .matmul(&kh.t().unwrap())
        .unwrap()
        / (hd as f64).sqrt())
    .unwrap()
    .reshape((b, heads, len, len))
    .unwrap()
    .to_dtype(candle_core::DType::F32)
    .unwrap()
    .broadcast_add(mask)
    .unwrap();
    let probs = candle_nn::ops::softmax(&scores, D::Minus1)
        .unwrap()
        .to_dtype(q.dtype())
        .unwrap()
        .reshape((b, kv, group * len, len))
        .unwrap();
    probs
        .matmul(&vh)
        .unwrap()
        .reshape((b, heads, len, hd))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((b, len, heads * hd))
        .unwrap()
}

#[test]
fn self_attention_matches_the_composite_form_with_masked_and_grouped_heads() {
    for len in [5, LARGE + 24] {
        let (b, kv, group, hd) = (2, 2, 3, 4);
        let heads = kv * group;
        let q = var(&[b, len, heads * hd], 11);
        let k = var(&[b, len, kv * hd], 12);
        let v = var(&[b, len, kv * hd], 13);
        let (cos, sin) = rope_tables(b, len, hd, 9);
        let mask = attention_mask(b, len);
        let shape = Heads {
            heads,
            kv_heads: kv,
            head_dim: hd,
        };
        let fused = self_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), (&cos, &sin), &mask, shape).unwrap();
        let composite = composite_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), (&cos, &sin), &mask, shape);
        check(&[&q, &k, &v], &fused, &composite, 14);
    }
}

#[test]
fn inference_attention_matches_the_composite_form() {
    // Lengths below, across and well past a block of query rows; causal, right- and left-padded rows.
    for len in [5, 64, 89, 150] {
        let (b, kv, group, hd) = (3, 2, 3, 8);
        let heads = Heads {
            heads: kv * group,
            kv_heads: kv,
            head_dim: hd,
        };
        let t = |width: usize, seed: u64| var(&[b, len, width], seed).as_tensor().clone();
        let (q, k, v) = (t(kv * group * hd, 31), t(kv * hd, 32), t(kv * hd, 33));
        let (cos, sin) = rope_tables(b, len, hd, 34);
        let mask = attention_mask(b, len);
        let ours = decoder_attention(&q, &k, &v, (&cos, &sin), &mask, heads).unwrap();
        let composite = composite_attention(&q, &k, &v, (&cos, &sin), &mask, heads);
        let diff = max_rel_diff(&ours, &composite);
        assert!(diff < 1e-5, "len {len}: {diff}");
    }
}

#[test]
fn segment_attention_matches_the_composite_form_per_segment() {
    let (heads, hd) = (4, 8);
    let e = heads * hd;
    let segments = [3, 70, 1, 65];
    let n: usize = segments.iter().sum();
    let qkv = var(&[n, 3 * e], 41).as_tensor().clone();
    let (cos, sin) = rope_tables(1, n, hd, 42);
    let ours = segment_attention(&qkv, (&cos, &sin), &segments, heads).unwrap();
    let shape = Heads {
        heads,
        kv_heads: heads,
        head_dim: hd,
    };
    let mut start = 0;
    for len in segments {
        let part =
            |t: &Tensor, dim: usize, from: usize, size: usize| t.narrow(dim, from, size).unwrap().contiguous().unwrap();
        let rows = part(&qkv, 0, start, len).unsqueeze(0).unwrap();
        let (q, k, v) = (part(&rows, 2, 0, e), part(&rows, 2, e, e), part(&rows, 2, 2 * e, e));
        let tables = (part(&cos, 1, start, len), part(&sin, 1, start, len));
        let no_mask = Tensor::zeros((1, 1, len, len), candle_core::DType::F32, &Device::Cpu).unwrap();
        let composite = composite_attention(&q, &k, &v, (&tables.0, &tables.1), &no_mask, shape);
        let diff = max_rel_diff(&part(&ours, 0, start, len).unsqueeze(0).unwrap(), &composite);
        assert!(diff < 1e-5, "segment at {start} of {len}: {diff}");
        start += len;
    }
}

#[test]
fn packed_decoder_attention_matches_the_composite_form_per_sequence() {
    // Sequences below, across and past a block of query rows, one of a single token; grouped heads.
    let (kv, group, hd) = (2, 3, 8);
    let heads = Heads {
        heads: kv * group,
        kv_heads: kv,
        head_dim: hd,
    };
    let lengths = [3, 70, 1, 130];
    let n: usize = lengths.iter().sum();
    let t = |width: usize, seed: u64| var(&[1, n, width], seed).as_tensor().clone();
    let (q, k, v) = (t(kv * group * hd, 51), t(kv * hd, 52), t(kv * hd, 53));
    let (cos, sin) = rope_tables(1, n, hd, 54);
    let sequences: Vec<(usize, usize)> = lengths
        .iter()
        .scan(0, |start, &len| {
            *start += len;
            Some((*start - len, len))
        })
        .collect();
    let ours = packed_decoder_attention(&q, &k, &v, (&cos, &sin), &sequences, heads).unwrap();
    for &(start, len) in &sequences {
        let part = |t: &Tensor| t.narrow(1, start, len).unwrap().contiguous().unwrap();
        let causal = attention_mask(1, len);
        let composite = composite_attention(
            &part(&q),
            &part(&k),
            &part(&v),
            (&part(&cos), &part(&sin)),
            &causal,
            heads,
        );
        let diff = max_rel_diff(&part(&ours), &composite);
        assert!(diff < 1e-5, "sequence at {start} of {len}: {diff}");
    }
}

#[test]
fn inference_softmax_matches_candles() {
    for shape in [[3, 5, 37], [2, LARGE, 1024]] {
        let n: usize = shape.iter().product();
        // Scores in [-20, 20], every 7th one masked as the text tower's mask does.
        let scores: Vec<f32> = values(n, 23)
            .iter()
            .enumerate()
            .map(|(i, v)| if i % 7 == 3 { f32::MIN } else { v * 20.0 })
            .collect();
        let x = Tensor::from_vec(scores, &shape, &Device::Cpu).unwrap();
        let ours = softmax_last_dim(&x).unwrap();
        let candle = candle_nn::ops::softmax_last_dim(&x).unwrap();
        let diff = max_rel_diff(&ours, &candle);
        assert!(diff <= 1e-6, "{shape:?}: {diff}");
    }
}

#[test]
fn sigmoid_gates_match_candles_silu_and_quick_gelu() {
    // Across a chunk boundary and on several threads; values in [-12, 12].
    for n in [37, 3 * 4096 + 5] {
        let x = Tensor::from_vec(values(n, 51), n, &Device::Cpu)
            .unwrap()
            .affine(12.0, 0.0)
            .unwrap();
        let up = Tensor::from_vec(values(n, 52), n, &Device::Cpu).unwrap();
        let swiglu = sigmoid_gated(&x, 1.0, Some(&up)).unwrap();
        let d = max_rel_diff(&swiglu, &(x.silu().unwrap() * &up).unwrap());
        assert!(d < 1e-6, "silu(x) * up, {n} values: {d}");
        let quick = sigmoid_gated(&x, 1.702, None).unwrap();
        let d = max_rel_diff(
            &quick,
            &(&x * candle_nn::ops::sigmoid(&(&x * 1.702).unwrap()).unwrap()).unwrap(),
        );
        assert!(d < 1e-6, "quick gelu, {n} values: {d}");
    }
}
