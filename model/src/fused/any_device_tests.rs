//! The any-device ops (the CUDA and bf16 path), run here on the CPU: in f32 against the composite
//! candle expressions they replace and the CPU kernels, and in bf16 no further from the exact (f32)
//! values than the composite form in bf16 is.

use candle_core::{DType, Device, Tensor, Var};

use super::tests::{attention_mask, check, composite_attention, max_rel_diff, rope_tables, values, var, LARGE};
use super::{any_device, Heads};

fn heads() -> Heads {
    Heads {
        heads: 6,
        kv_heads: 2,
        head_dim: 4,
    }
}

#[test]
fn attention_matches_the_composite_form_in_every_block_size() {
    let h = heads();
    for len in [5, LARGE + 24] {
        let b = 3;
        let q = var(&[b, len, h.heads * h.head_dim], 11);
        let k = var(&[b, len, h.kv_heads * h.head_dim], 12);
        let v = var(&[b, len, h.kv_heads * h.head_dim], 13);
        let (cos, sin) = rope_tables(b, len, h.head_dim, 9);
        let mask = attention_mask(b, len);
        let composite = composite_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), (&cos, &sin), &mask, h);
        // One row at a time, blocks that do not divide the length, and everything at once.
        for block in [1, 3, len] {
            let ours = any_device::self_attention_in_blocks(
                q.as_tensor(),
                k.as_tensor(),
                v.as_tensor(),
                (&cos, &sin),
                &mask,
                h,
                block,
            )
            .unwrap();
            check(&[&q, &k, &v], &ours, &composite, 14 + block as u64);
        }
        let ours = any_device::self_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), (&cos, &sin), &mask, h);
        check(&[&q, &k, &v], &ours.unwrap(), &composite, 14);
    }
}

#[test]
fn elementwise_ops_match_the_composite_form() {
    let x = var(&[3, 7, 16], 5);
    let w = var(&[16], 6);
    let ms = x
        .as_tensor()
        .sqr()
        .unwrap()
        .mean_keepdim(candle_core::D::Minus1)
        .unwrap();
    let composite = x
        .as_tensor()
        .broadcast_div(&(ms + 1e-6).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(w.as_tensor())
        .unwrap();
    check(
        &[&x, &w],
        &any_device::rms_norm(x.as_tensor(), w.as_tensor(), 1e-6).unwrap(),
        &composite,
        7,
    );

    let gate = Var::from_tensor(&var(&[3, 7, 16], 15).as_tensor().affine(8.0, 0.0).unwrap()).unwrap();
    let up = var(&[3, 7, 16], 16);
    let composite = (gate.as_tensor().silu().unwrap() * up.as_tensor()).unwrap();
    check(
        &[&gate, &up],
        &any_device::swiglu(gate.as_tensor(), up.as_tensor()).unwrap(),
        &composite,
        17,
    );

    let x = var(&[2, 3, 5, 8], 8);
    let (cos, sin) = rope_tables(2, 5, 8, 9);
    let mode = crate::layers::Mode::training(0, 0);
    let composite = crate::layers::apply_rotary_composite(x.as_tensor(), &cos, &sin, &mode).unwrap();
    check(
        &[&x],
        &any_device::rope(x.as_tensor(), &cos, &sin).unwrap(),
        &composite,
        10,
    );

    let out = 6;
    let bias = Tensor::from_vec(values(out, 18), out, &Device::Cpu).unwrap();
    for (q_is_base, bias) in [(true, Some(&bias)), (false, None)] {
        let q = var(&[70, out], 19);
        let lr = var(&[70, out], 20);
        let ratio = Var::from_tensor(&var(&[out], 21).as_tensor().affine(0.3, 1.0).unwrap()).unwrap();
        let ours = any_device::dora_combine(q.as_tensor(), lr.as_tensor(), ratio.as_tensor(), bias, 8.0, q_is_base);
        // The CPU kernel is the reference here; it is checked against the composite form elsewhere.
        let kernel = super::dora_combine(q.as_tensor(), lr.as_tensor(), ratio.as_tensor(), bias, 8.0, q_is_base);
        check(&[&q, &lr, &ratio], &ours.unwrap(), &kernel.unwrap(), 22);
    }
}

/// Relative error of `got` against the exact value, per output or gradient.
fn errors(vars: &[&Var], got: &Tensor, exact_vars: &[&Var], exact: &Tensor, seed: u64) -> Vec<f32> {
    let weights = Tensor::from_vec(values(exact.elem_count(), seed), exact.shape(), &Device::Cpu).unwrap();
    let as_f32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let g = (as_f32(got) * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    let ge = (exact * &weights).unwrap().sum_all().unwrap().backward().unwrap();
    let mut errors = vec![max_rel_diff(&as_f32(got), exact)];
    for (v, e) in vars.iter().zip(exact_vars) {
        errors.push(max_rel_diff(
            &as_f32(g.get(v).expect("gradient")),
            ge.get(e).expect("exact gradient"),
        ));
    }
    errors
}

/// bf16 copies of f32 variables.
fn bf16(vars: &[&Var]) -> Vec<Var> {
    vars.iter()
        .map(|v| Var::from_tensor(&v.as_tensor().to_dtype(DType::BF16).unwrap()).unwrap())
        .collect()
}

#[test]
fn bf16_ops_are_as_close_to_the_exact_values_as_the_composite_form_in_bf16() {
    let h = heads();
    let (b, len) = (3, 29);
    let q = var(&[b, len, h.heads * h.head_dim], 51);
    let k = var(&[b, len, h.kv_heads * h.head_dim], 52);
    let v = var(&[b, len, h.kv_heads * h.head_dim], 53);
    let (cos, sin) = rope_tables(b, len, h.head_dim, 54);
    let mask = attention_mask(b, len);
    let exact = composite_attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), (&cos, &sin), &mask, h);
    let low = bf16(&[&q, &k, &v]);
    let t = |i: usize| low[i].as_tensor();
    let ours = any_device::self_attention_in_blocks(t(0), t(1), t(2), (&cos, &sin), &mask, h, 7).unwrap();
    let ours = errors(&[&low[0], &low[1], &low[2]], &ours, &[&q, &k, &v], &exact, 55);
    let low2 = bf16(&[&q, &k, &v]);
    let t = |i: usize| low2[i].as_tensor();
    let composite = composite_attention(t(0), t(1), t(2), (&cos, &sin), &mask, h);
    let composite = errors(&[&low2[0], &low2[1], &low2[2]], &composite, &[&q, &k, &v], &exact, 55);
    for (i, (o, c)) in ours.iter().zip(&composite).enumerate() {
        // bf16 keeps 8 significant bits: both lie within a few units of 2^-8 of the exact values.
        assert!(*o < 0.05, "attention, part {i}: {o} from exact");
        assert!(*o <= 2.0 * c + 4e-3, "attention, part {i}: ours {o}, composite {c}");
    }

    let x = var(&[3, 7, 64], 56);
    let w = Var::from_tensor(&var(&[64], 57).as_tensor().affine(0.5, 1.0).unwrap()).unwrap();
    let rms = |x: &Tensor, w: &Tensor| {
        let x32 = x.to_dtype(DType::F32).unwrap();
        let ms = x32.sqr().unwrap().mean_keepdim(candle_core::D::Minus1).unwrap();
        let normed = x32.broadcast_div(&(ms + 1e-6).unwrap().sqrt().unwrap()).unwrap();
        normed.to_dtype(x.dtype()).unwrap().broadcast_mul(w).unwrap()
    };
    let exact = rms(x.as_tensor(), w.as_tensor());
    let low = bf16(&[&x, &w]);
    let ours = any_device::rms_norm(low[0].as_tensor(), low[1].as_tensor(), 1e-6).unwrap();
    let ours = errors(&[&low[0], &low[1]], &ours, &[&x, &w], &exact, 58);
    let low2 = bf16(&[&x, &w]);
    let composite = rms(low2[0].as_tensor(), low2[1].as_tensor());
    let composite = errors(&[&low2[0], &low2[1]], &composite, &[&x, &w], &exact, 58);
    for (i, (o, c)) in ours.iter().zip(&composite).enumerate() {
        assert!(*o <= 2.0 * c + 4e-3, "rms norm, part {i}: ours {o}, composite {c}");
    }

    let gate = Var::from_tensor(&var(&[3, 7, 64], 59).as_tensor().affine(6.0, 0.0).unwrap()).unwrap();
    let up = var(&[3, 7, 64], 60);
    let exact = (gate.as_tensor().silu().unwrap() * up.as_tensor()).unwrap();
    let low = bf16(&[&gate, &up]);
    let ours = any_device::swiglu(low[0].as_tensor(), low[1].as_tensor()).unwrap();
    let ours = errors(&[&low[0], &low[1]], &ours, &[&gate, &up], &exact, 61);
    let low2 = bf16(&[&gate, &up]);
    let composite = (low2[0].as_tensor().silu().unwrap() * low2[1].as_tensor()).unwrap();
    let composite = errors(&[&low2[0], &low2[1]], &composite, &[&gate, &up], &exact, 61);
    for (i, (o, c)) in ours.iter().zip(&composite).enumerate() {
        assert!(*o <= 2.0 * c + 4e-3, "swiglu, part {i}: ours {o}, composite {c}");
    }
}

/// The tiled CUDA attention rotates q and k in the `[batch, len, heads, d]` layout with candle's
/// `rope_thd`; it must equal the `[batch, heads, len, d]` rotation the other paths use, with the same
/// per-sequence tables.
#[test]
fn rotation_in_the_token_major_layout_equals_the_head_major_one() {
    let (b, len, heads, d) = (2, 7, 3, 8);
    let x = var(&[b, len, heads, d], 71).as_tensor().clone();
    let (cos, sin) = rope_tables(b, len, d, 72);
    let token_major = candle_nn::rotary_emb::rope_thd(&x, &cos, &sin).unwrap();
    let head_major = candle_nn::rotary_emb::rope(&x.transpose(1, 2).unwrap().contiguous().unwrap(), &cos, &sin)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap();
    assert_eq!(max_rel_diff(&token_major, &head_major), 0.0);
}
