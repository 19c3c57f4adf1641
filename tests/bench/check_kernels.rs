//! saha-check-kernels: the training ops on a device (`saha_model::fused::any_device`: on CUDA the kernels
//! of model/kernels/fused.cu and candle's CUDA ops; on the CPU candle's ops) against their CPU
//! references (`saha_model::fused` in f32, the CPU kernels, which CI checks against candle's composite
//! forms): the output and every input's gradient, in f32 and bf16. The GPU check runs it on CUDA; CI
//! runs it on the CPU. Prints one line per op and dtype and exits 1 when any is off.
//!
//! Usage: saha-check-kernels [--device cpu|cuda:N]

use candle_core::{DType, Device, Tensor, Var};
use saha_common::rng::symmetric_values;
use saha_model::fused::{self, any_device, Heads};

/// Bars on the largest difference relative to the reference's largest magnitude. f32: the same
/// arithmetic in another order (the CPU ops are within 1e-5 of candle's composite forms). bf16: the op
/// computed from bf16 inputs in bf16 against the f32 op on the same (rounded) inputs, so the difference
/// is bf16's own rounding (8 significant bits, 2⁻⁸ ≈ 4e-3 per rounding) accumulated through the op;
/// attention rounds its scores, probabilities and output.
const F32_BAR: f32 = 1e-4;
const BF16_BAR: f32 = 2e-2;
const BF16_ATTENTION_BAR: f32 = 5e-2;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut device = "cpu".to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--device" => device = args.next().unwrap_or_default(),
            "-h" | "--help" => {
                println!("usage: saha-check-kernels [--device cpu|cuda:N]");
                return;
            }
            other => {
                eprintln!("saha-check-kernels: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let device = match device.as_str() {
        "cpu" => Device::Cpu,
        d => match d.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Device::new_cuda(n).unwrap_or_else(|e| {
                let reason = e.to_string();
                let reason = reason.lines().next().unwrap_or_default();
                eprintln!("saha-check-kernels: --device {d} needs a CUDA build (make cuda) and a GPU: {reason}");
                std::process::exit(2);
            }),
            None => {
                eprintln!("saha-check-kernels: --device takes cpu or cuda:N, not {d}");
                std::process::exit(2);
            }
        },
    };
    let mut failed = 0;
    println!("| op | dtype | output | worst gradient | bar | result |");
    println!("|---|---|---:|---:|---:|---|");
    for dtype in [DType::F32, DType::BF16] {
        for case in cases() {
            if (case.f32_only && dtype != DType::F32) || (case.cuda_only && !device.is_cuda()) {
                continue;
            }
            let result = run(&case, &device, dtype).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let bar = match dtype {
                DType::F32 => F32_BAR,
                _ if case.name.starts_with("self-attention") => BF16_ATTENTION_BAR,
                _ => BF16_BAR,
            };
            let ok = result.output <= bar && result.gradient <= bar;
            failed += !ok as usize;
            println!(
                "| {} | {dtype:?} | {:.2e} | {:.2e} | {bar:.0e} | {} |",
                case.name,
                result.output,
                result.gradient,
                if ok { "ok" } else { "FAILED" }
            );
        }
    }
    if failed > 0 {
        eprintln!("saha-check-kernels: {failed} op(s) off their bars");
        std::process::exit(1);
    }
}

/// One op: its input shapes and how to apply it (on the device under test, or the CPU reference).
struct Case {
    name: &'static str,
    shapes: Vec<Vec<usize>>,
    f32_only: bool,
    /// Only on CUDA (the tiled attention kernels).
    cuda_only: bool,
    apply: fn(&[Tensor], Which) -> candle_core::Result<Tensor>,
}

#[derive(Clone, Copy, PartialEq)]
enum Which {
    Device,
    Reference,
}

const B: usize = 2;
const LEN: usize = 45;
const HEADS: Heads = Heads {
    heads: 6,
    kv_heads: 2,
    head_dim: 16,
};

fn err(e: saha_model::ModelError) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

fn cases() -> Vec<Case> {
    let (q_width, kv_width) = (HEADS.heads * HEADS.head_dim, HEADS.kv_heads * HEADS.head_dim);
    let attention_shapes = vec![
        vec![B, LEN, q_width],
        vec![B, LEN, kv_width],
        vec![B, LEN, kv_width],
        vec![B, LEN, HEADS.head_dim / 2],
    ];
    #[allow(unused_mut)]
    let mut cases = vec![
        Case {
            name: "frozen-linear",
            shapes: vec![vec![B, LEN, 48], vec![40, 48], vec![40]],
            f32_only: false,
            cuda_only: false,
            apply: |t, _| fused::frozen_linear(&t[0], &t[1], Some(&t[2])).map_err(err),
        },
        Case {
            name: "rms-norm",
            shapes: vec![vec![B, LEN, 300], vec![300]],
            f32_only: false,
            cuda_only: false,
            apply: |t, w| {
                match w {
                    Which::Device => any_device::rms_norm(&t[0], &t[1], 1e-6),
                    Which::Reference => fused::rms_norm(&t[0], &t[1], 1e-6),
                }
                .map_err(err)
            },
        },
        Case {
            name: "swiglu",
            shapes: vec![vec![B, LEN, 200], vec![B, LEN, 200]],
            f32_only: false,
            cuda_only: false,
            apply: |t, w| {
                let gate = (&t[0] * 6.0)?;
                match w {
                    Which::Device => any_device::swiglu(&gate, &t[1]),
                    Which::Reference => fused::swiglu(&gate, &t[1]),
                }
                .map_err(err)
            },
        },
        Case {
            name: "dora",
            shapes: vec![vec![B * LEN, 40], vec![B * LEN, 40], vec![40], vec![40]],
            f32_only: true,
            cuda_only: false,
            apply: |t, w| {
                let ratio = (t[2].affine(0.3, 1.0))?;
                match w {
                    Which::Device => any_device::dora_combine(&t[0], &t[1], &ratio, Some(&t[3].detach()), 8.0, true),
                    Which::Reference => fused::dora_combine(&t[0], &t[1], &ratio, Some(&t[3].detach()), 8.0, true),
                }
                .map_err(err)
            },
        },
        Case {
            name: "rope",
            shapes: vec![
                vec![B, HEADS.heads, LEN, HEADS.head_dim],
                vec![B, LEN, HEADS.head_dim / 2],
            ],
            f32_only: false,
            cuda_only: false,
            apply: |t, w| {
                let angles = (t[1].to_dtype(DType::F32)?.detach() * 3.0)?;
                let (cos, sin) = (angles.cos()?, angles.sin()?);
                match w {
                    Which::Device => any_device::rope(&t[0], &cos, &sin),
                    Which::Reference => fused::rope(&t[0], &cos, &sin),
                }
                .map_err(err)
            },
        },
        Case {
            name: "self-attention",
            shapes: attention_shapes.clone(),
            f32_only: false,
            cuda_only: false,
            apply: |t, w| attention(t, w, Attend::Default),
        },
        Case {
            name: "self-attention (blocks of 16 rows)",
            shapes: attention_shapes.clone(),
            f32_only: false,
            cuda_only: false,
            apply: |t, w| attention(t, w, Attend::Blocks(16)),
        },
    ];
    #[cfg(feature = "cuda")]
    cases.push(Case {
        name: "self-attention (tiled CUDA kernels)",
        shapes: attention_shapes,
        f32_only: false,
        cuda_only: true,
        apply: |t, w| attention(t, w, Attend::Tiled),
    });
    cases
}

/// How the device side attends.
enum Attend {
    /// As `any_device::self_attention` chooses.
    Default,
    /// Blocks of this many query rows.
    Blocks(usize),
    /// The tiled CUDA kernels.
    #[cfg(feature = "cuda")]
    Tiled,
}

/// Causal attention; the second sequence is left-padded by 5, so its first queries see nothing.
fn attention(t: &[Tensor], w: Which, how: Attend) -> candle_core::Result<Tensor> {
    let device = t[0].device();
    let angles = (t[3].to_dtype(DType::F32)?.detach() * 3.0)?;
    let (cos, sin) = (angles.cos()?, angles.sin()?);
    let mut mask = vec![0f32; B * LEN * LEN];
    for b in 0..B {
        for i in 0..LEN {
            for j in 0..LEN {
                if j > i || (b == 1 && j < 5) {
                    mask[(b * LEN + i) * LEN + j] = f32::MIN;
                }
            }
        }
    }
    let mask = Tensor::from_vec(mask, (B, 1, LEN, LEN), device)?;
    let qkv = (&t[0], &t[1], &t[2]);
    match (w, how) {
        (Which::Reference, _) => fused::self_attention(qkv.0, qkv.1, qkv.2, (&cos, &sin), &mask, HEADS),
        (Which::Device, Attend::Default) => any_device::self_attention(qkv.0, qkv.1, qkv.2, (&cos, &sin), &mask, HEADS),
        (Which::Device, Attend::Blocks(rows)) => {
            any_device::self_attention_in_blocks(qkv.0, qkv.1, qkv.2, (&cos, &sin), &mask, HEADS, rows)
        }
        #[cfg(feature = "cuda")]
        (Which::Device, Attend::Tiled) => {
            any_device::self_attention_tiled(qkv.0, qkv.1, qkv.2, (&cos, &sin), &mask, HEADS)
        }
    }
    .map_err(err)
}

struct Differences {
    output: f32,
    gradient: f32,
}

fn rel_diff(got: &Tensor, want: &Tensor) -> candle_core::Result<f32> {
    let got = got.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let scale = want.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1e-12);
    Ok((got - want)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? / scale)
}

/// The op's output and gradients on `device` in `dtype`, against the f32 CPU reference on the same
/// values (rounded to `dtype` first), for a random weighting of the output.
fn run(case: &Case, device: &Device, dtype: DType) -> candle_core::Result<Differences> {
    let inputs: Vec<Tensor> = case
        .shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n = s.iter().product();
            Tensor::from_vec(symmetric_values(n, 100 + i as u64), s.as_slice(), &Device::Cpu)?
                .to_dtype(dtype)?
                .to_dtype(DType::F32)
        })
        .collect::<candle_core::Result<_>>()?;
    let reference: Vec<Var> = inputs
        .iter()
        .map(Var::from_tensor)
        .collect::<candle_core::Result<_>>()?;
    let on_device: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(&t.to_device(device)?.to_dtype(dtype)?))
        .collect::<candle_core::Result<_>>()?;
    let as_tensors = |vars: &[Var]| vars.iter().map(|v| v.as_tensor().clone()).collect::<Vec<_>>();
    let want = (case.apply)(&as_tensors(&reference), Which::Reference)?;
    let got = (case.apply)(&as_tensors(&on_device), Which::Device)?;
    let weights = Tensor::from_vec(symmetric_values(want.elem_count(), 7), want.shape(), &Device::Cpu)?;
    let want_grads = (&want * &weights)?.sum_all()?.backward()?;
    let device_weights = weights.to_device(device)?.to_dtype(dtype)?;
    let got_grads = (got.to_dtype(dtype)? * device_weights)?.sum_all()?.backward()?;
    let output = rel_diff(&got, &want)?;
    let mut gradient = 0f32;
    for (r, d) in reference.iter().zip(&on_device) {
        match (want_grads.get(r), got_grads.get(d)) {
            (Some(w), Some(g)) => gradient = gradient.max(rel_diff(g, w)?),
            (None, None) => {}
            (w, g) => candle_core::bail!(
                "gradient present for the reference: {}, on the device: {}",
                w.is_some(),
                g.is_some()
            ),
        }
    }
    Ok(Differences { output, gradient })
}
