#!/usr/bin/env python3
"""The GPU check's results as Markdown (check.sh writes it to results/summary.md): parity, embedding and
training throughput of candle (saha-bench-*) next to transformers / PyTorch + PEFT, with peak GPU memory."""

import json
import sys
from pathlib import Path

out = Path(sys.argv[1])


def report(name):
    p = out / f"{name}.json"
    lines = p.read_text().strip().splitlines() if p.is_file() else []
    return json.loads(lines[-1]) if lines else None


def sampled_peak(name):
    """Device memory in use while `name` ran, less what was in use before it started (MiB)."""
    base, trace = out / f"{name}.mem0", out / f"{name}.mem"
    if not (base.is_file() and trace.is_file()):
        return None
    values = [int(v) for v in trace.read_text().split() if v.strip().isdigit()]
    return max(values) - int(base.read_text().split()[0]) if values else None


def fmt(x, spec=".1f"):
    return "n/a" if x is None else format(x, spec)


def ratio(a, b):
    return None if not a or not b else a / b


print((out / "env.txt").read_text() if (out / "env.txt").is_file() else "")
print("## Training ops against their CPU references (saha-check-kernels)\n")
k = out / "kernels.json"
print(k.read_text() if k.is_file() and k.read_text().strip() else "saha-check-kernels: no output")
print("## Parity\n")
p = report("parity-compare")
print(f"- saha-embed, tiny model, {p['items']} items: GPU f32 vs CPU f32 max abs {p['gpu_f32_vs_cpu_f32_max_abs']:.2e}; "
      f"GPU bf16 vs GPU f32 min cosine {p['gpu_bf16_vs_gpu_f32_min_cosine']:.6f}" if p else "- saha-embed parity: failed")
t = report("parity-torch-image")
print(f"- saha-bench-embed vs transformers on the same device, f32, 8 image items: max abs {t['max_abs_diff_vs_candle']:.2e}, "
      f"min cosine {t['min_cosine_vs_candle']:.7f}" if t else "- transformers parity: failed")

def table(title, header, keys, candle, torch, cells):
    """One row per key: `cells(candle_report, torch_report, key)`, or "failed" where candle has no report."""
    print(f"\n## {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for key in keys:
        c, t = report(candle.format(key)), report(torch.format(key))
        print(f"| {key} | " + (" | ".join(cells(c, t, key)) if c else "failed") + " |")


def embed_cells(c, t, kind):
    ti = t["items_per_s"] if t else None
    return [str(c["batch"]), f"{c['items_per_s']:.1f}", f"{c['items_per_s'] * c['mean_tokens']:.0f}", fmt(ti),
            fmt(ratio(c["items_per_s"], ti), ".2f"), fmt(sampled_peak(f"embed-candle-{kind}"), "d"),
            f"{fmt(sampled_peak(f'embed-torch-{kind}'), 'd')} / {fmt(t and t.get('peak_gpu_mib'), 'd')}"]


def train_cells_of(candle):
    """Training cells for candle's runs named `candle-{pairs}` (the same PyTorch runs for every variant)."""
    def cells(c, t, pairs):
        ts = t["steps_per_s"] if t else None
        return [f"{c['steps_per_s']:.3f}", fmt(ts, ".3f"), fmt(ratio(c["steps_per_s"], ts), ".2f"),
                fmt(t and t["first_loss_diff_vs_candle"], ".2e"), fmt(sampled_peak(f"{candle}-{pairs}"), "d"),
                f"{fmt(sampled_peak(f'train-torch-{pairs}'), 'd')} / {fmt(t and t.get('peak_gpu_mib'), 'd')}"]
    return cells


table("Embedding (Qwen2-VL-2B configuration, random bf16 weights)",
      ["items", "batch", "candle items/s", "candle tokens/s", "transformers (sdpa) items/s", "ratio", "candle peak MiB",
       "transformers peak MiB (sampled / allocator)"],
      ["text", "image"], "embed-candle-{}", "embed-torch-{}", embed_cells)
for candle, attention in [("train-candle", "attention in blocks of cuBLAS products"),
                          ("train-tiled", "attention on the tiled kernels, SAHA_ATTENTION=tiled")]:
    table(f"Training step (DoRA r 8, GradCache chunk 4, bf16 base, f32 adapters; {attention})",
          ["pairs", "candle steps/s", "PyTorch + PEFT steps/s", "ratio", "first-step loss diff", "candle peak MiB",
           "PyTorch peak MiB (sampled / allocator)"],
          sorted({p.stem.split("-")[-1] for p in out.glob(f"{candle}-*.json")}, key=int),
          candle + "-{}", "train-torch-{}", train_cells_of(candle))
