//! Each kernel of model/kernels/fused.cu, run on emulated CUDA threads, against the CPU op it stands in
//! for on the GPU (`saha_model::fused`, itself checked against candle's composite forms): output and
//! gradients in f32, and in bf16 within bf16's rounding of the f32 values. Launches have fewer threads
//! than values and fewer blocks than rows, so the grid-stride and row loops are exercised.

use candle_core::{Device, Tensor, Var};
use half::bf16;
use saha_kernel_tests::{dora_bwd, dora_fwd, rms_norm_bwd, swiglu_bwd, swiglu_fwd, Launch};
use saha_model::fused;

const SMALL: Launch = Launch { blocks: 3, threads: 64 };

/// Deterministic values in [-scale, scale).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    saha_common::rng::symmetric_values(n, seed)
        .into_iter()
        .map(|v| v * scale)
        .collect()
}

fn var(v: &[f32], shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Largest difference relative to the reference's largest magnitude.
fn rel_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

fn to_bf16(v: &[f32]) -> Vec<bf16> {
    v.iter().map(|&x| bf16::from_f32(x)).collect()
}

fn from_bf16(v: &[bf16]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

/// `out · weights` summed, backpropagated: the inputs' gradients for an output gradient of `weights`.
fn backward(out: &Tensor, weights: &[f32]) -> candle_core::backprop::GradStore {
    let w = Tensor::from_vec(weights.to_vec(), out.shape(), &Device::Cpu).unwrap();
    (out * w).unwrap().sum_all().unwrap().backward().unwrap()
}

#[test]
fn swiglu_kernels_match_the_cpu_op() {
    let shape = [5, 61];
    let n = 5 * 61;
    let (gate, up, grad) = (values(n, 1, 8.0), values(n, 2, 1.0), values(n, 3, 1.0));
    let (g, u) = (var(&gate, &shape), var(&up, &shape));
    let out = fused::swiglu(g.as_tensor(), u.as_tensor()).unwrap();
    let grads = backward(&out, &grad);
    let (want_out, want_dg, want_du) = (flat(&out), flat(grads.get(&g).unwrap()), flat(grads.get(&u).unwrap()));

    let got = swiglu_fwd(SMALL, &gate, &up);
    let (dg, du) = swiglu_bwd(SMALL, &gate, &up, &grad);
    assert!(
        rel_diff(&got, &want_out) < 1e-6,
        "forward {}",
        rel_diff(&got, &want_out)
    );
    assert!(rel_diff(&dg, &want_dg) < 1e-6, "d gate {}", rel_diff(&dg, &want_dg));
    assert!(rel_diff(&du, &want_du) < 1e-6, "d up {}", rel_diff(&du, &want_du));

    // bf16 inputs: the f32 op on the same (rounded) inputs, rounded once.
    let (gate, up, grad) = (to_bf16(&gate), to_bf16(&up), to_bf16(&grad));
    let (g, u) = (var(&from_bf16(&gate), &shape), var(&from_bf16(&up), &shape));
    let out = fused::swiglu(g.as_tensor(), u.as_tensor()).unwrap();
    let grads = backward(&out, &from_bf16(&grad));
    let got = from_bf16(&swiglu_fwd(SMALL, &gate, &up));
    let (dg, du) = swiglu_bwd(SMALL, &gate, &up, &grad);
    for (name, got, want) in [
        ("forward", got, flat(&out)),
        ("d gate", from_bf16(&dg), flat(grads.get(&g).unwrap())),
        ("d up", from_bf16(&du), flat(grads.get(&u).unwrap())),
    ] {
        // One rounding to bf16: half a unit in the 8th bit, relative to the largest value at worst.
        assert!(rel_diff(&got, &want) < 4e-3, "bf16 {name}: {}", rel_diff(&got, &want));
    }
}

#[test]
fn rms_norm_backward_kernel_matches_the_cpu_op() {
    // Rows wider and narrower than a block's threads.
    for (rows, dim) in [(7, 300), (9, 16)] {
        let (x, w, grad) = (
            values(rows * dim, 4, 2.0),
            values(dim, 5, 1.0),
            values(rows * dim, 6, 1.0),
        );
        let (xv, wv) = (var(&x, &[rows, dim]), var(&w, &[dim]));
        let out = fused::rms_norm(xv.as_tensor(), wv.as_tensor(), 1e-6).unwrap();
        let grads = backward(&out, &grad);
        let (want_dx, want_dw) = (flat(grads.get(&xv).unwrap()), flat(grads.get(&wv).unwrap()));
        let column_sums =
            |rows_of: &[f32]| -> Vec<f32> { (0..dim).map(|c| rows_of.iter().skip(c).step_by(dim).sum()).collect() };

        let (dx, dw_rows) = rms_norm_bwd(SMALL, &x, &w, &grad, 1e-6, true);
        let dw = column_sums(&dw_rows.unwrap());
        assert!(rel_diff(&dx, &want_dx) < 1e-5, "dx {}", rel_diff(&dx, &want_dx));
        assert!(rel_diff(&dw, &want_dw) < 1e-5, "dw {}", rel_diff(&dw, &want_dw));
        let (dx_alone, none) = rms_norm_bwd(SMALL, &x, &w, &grad, 1e-6, false);
        assert!(none.is_none() && dx_alone == dx, "dx depends on want_dw");
        // Other block sizes sum in another order.
        let (dx_other, _) = rms_norm_bwd(Launch { blocks: 2, threads: 32 }, &x, &w, &grad, 1e-6, false);
        assert!(
            rel_diff(&dx_other, &dx) < 1e-6,
            "dx with 32 threads: {}",
            rel_diff(&dx_other, &dx)
        );

        let (xb, wb, gb) = (to_bf16(&x), to_bf16(&w), to_bf16(&grad));
        let (xv, wv) = (var(&from_bf16(&xb), &[rows, dim]), var(&from_bf16(&wb), &[dim]));
        let out = fused::rms_norm(xv.as_tensor(), wv.as_tensor(), 1e-6).unwrap();
        let grads = backward(&out, &from_bf16(&gb));
        let (dx, dw_rows) = rms_norm_bwd(SMALL, &xb, &wb, &gb, 1e-6, true);
        let (dx, dw) = (from_bf16(&dx), column_sums(&dw_rows.unwrap()));
        let want_dx = flat(grads.get(&xv).unwrap());
        let want_dw = flat(grads.get(&wv).unwrap());
        assert!(rel_diff(&dx, &want_dx) < 4e-3, "bf16 dx {}", rel_diff(&dx, &want_dx));
        // Each row's normalised value is rounded to bf16 before the sum, as the composite form does.
        assert!(rel_diff(&dw, &want_dw) < 8e-3, "bf16 dw {}", rel_diff(&dw, &want_dw));
    }
}

#[test]
fn dora_kernels_match_the_cpu_op() {
    let (rows, dim) = (37, 24);
    let n = rows * dim;
    let (q, lr, grad) = (values(n, 7, 1.0), values(n, 8, 1.0), values(n, 9, 1.0));
    let ratio: Vec<f32> = values(dim, 10, 0.3).iter().map(|r| r + 1.0).collect();
    let bias = values(dim, 11, 1.0);
    let no_bias = vec![0f32; dim];
    for (q_is_base, bias) in [(true, Some(&bias)), (false, None)] {
        let (qv, lv, rv) = (var(&q, &[rows, dim]), var(&lr, &[rows, dim]), var(&ratio, &[dim]));
        let bias_tensor = bias.map(|b| Tensor::from_vec(b.clone(), dim, &Device::Cpu).unwrap());
        let out = fused::dora_combine(
            qv.as_tensor(),
            lv.as_tensor(),
            rv.as_tensor(),
            bias_tensor.as_ref(),
            8.0,
            q_is_base,
        )
        .unwrap();
        let grads = backward(&out, &grad);
        let a = if q_is_base { 1.0 } else { 0.0 };
        let bias = bias.unwrap_or(&no_bias);

        let got = dora_fwd(SMALL, &q, &lr, &ratio, bias, a, 8.0);
        assert!(rel_diff(&got, &flat(&out)) < 1e-6, "forward");
        let (dq, dl, d_ratio_rows) = dora_bwd(SMALL, &q, &lr, &ratio, bias, &grad, a, 8.0);
        let d_ratio: Vec<f32> = (0..dim)
            .map(|c| d_ratio_rows.iter().skip(c).step_by(dim).sum())
            .collect();
        for (name, got, var) in [("dq", dq, &qv), ("dlr", dl, &lv), ("d ratio", d_ratio, &rv)] {
            let want = flat(grads.get(var).unwrap());
            assert!(rel_diff(&got, &want) < 1e-5, "{name}: {}", rel_diff(&got, &want));
        }
    }
}
