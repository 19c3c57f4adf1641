#!/usr/bin/env python3
"""The PyTorch + PEFT side of `make bench-train`: the training steps of saha-bench-train, same batch, same CPU.

Reads the file `saha-bench-train --dump FILE` wrote (prompts, PNG paths, mode, GradCache chunk, and the
candle losses of every step) and the adapter it saved in PEFT's format, loads the snapshot with
transformers' Qwen2VLForConditionalGeneration (float32, train mode, --attn attention), attaches the adapter
with PEFT (`PeftModel.from_pretrained(..., is_trainable=True)`: DoRA r 8, alpha 64, dropout 0 on
q/k/v/o/down_proj), builds the batch as tests/oracle/bench_embed_torch.py does (image pads expanded,
pixel_values from the PIL image processor, right padding, 1-D positions on all three M-RoPE rows), and
runs the same optimisation steps:

  forward: the inner Qwen2VLModel (`last_hidden_state` = hidden_states[-1]; no logits over the vocabulary,
           which the embedder never needs), last-real-token pooling, L2 normalisation;
  loss:    cross_entropy(q @ t.T / 0.02, arange(B)) (one-directional InfoNCE);
  grads:   plain backprop (queries as one padded batch, targets as another) or GradCache as
           tests/oracle/train_fixtures.py does it (pass 1 under no_grad per chunk, each chunk padded on
           its own; loss on the detached reps; pass 2 per chunk with dot(reps, cached grad).backward());
  update:  torch.nn.utils.clip_grad_norm_(1.0), torch.optim.AdamW(lr 5e-5, weight_decay 0).

One warm-up step, then --steps timed steps. It fails unless the first step's loss equals candle's within
--max-loss-diff (the two then train the same model on the same batch) and reports the largest loss
difference over all steps. Prints one JSON line with the fields saha-bench-train prints.

Usage: python3 tests/oracle/bench_train_torch.py --model DIR --inputs FILE [--steps 3] [--threads 2]
       [--attn sdpa|eager] [--max-loss-diff 1e-4] [--device cpu|cuda:N] [--dtype f32|bf16]
With --dtype bf16 the base model is bfloat16 and PEFT keeps the adapter in float32 (the reference's --bf16
setting under current PEFT); pooled embeddings are cast to float32 before the norm. On a GPU the steps wait
for the device and the report adds peak_gpu_mib (torch.cuda.max_memory_reserved over the timed steps).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_embed_torch import DTYPES, build_batch, sync, to_device, torch_tf32_off, vm_kib  # noqa: E402


def load(snapshot, adapter, attn, dtype, device):
    import torch
    from peft import PeftModel
    from tokenizers import Tokenizer
    from transformers import Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    base = Qwen2VLForConditionalGeneration.from_pretrained(snapshot, dtype=getattr(torch, DTYPES[dtype]),
                                                           attn_implementation=attn)
    model = PeftModel.from_pretrained(base.to(device), adapter, is_trainable=True)
    model.train()
    ip = Qwen2VLImageProcessorPil.from_pretrained(snapshot)
    tok = Tokenizer.from_file(str(Path(snapshot) / "tokenizer.json"))
    return model, ip, tok


def encode(inner, batch):
    import torch

    kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              position_ids=batch["position_ids"], use_cache=False, return_dict=True)
    if batch["pixel_values"] is not None:
        kw.update(pixel_values=batch["pixel_values"], image_grid_thw=batch["image_grid_thw"])
    last = inner(**kw).last_hidden_state
    idx = torch.tensor([n - 1 for n in batch["lengths"]], device=last.device)
    pooled = last[torch.arange(last.shape[0], device=last.device), idx].float()
    return torch.nn.functional.normalize(pooled, p=2, dim=-1)


def info_nce(q, t, temperature):
    import torch
    import torch.nn.functional as F

    return F.cross_entropy((q @ t.T) / temperature, torch.arange(q.shape[0], dtype=torch.long, device=q.device))


def plain_step(inner, qb, tb, temperature):
    loss = info_nce(encode(inner, qb), encode(inner, tb), temperature)
    loss.backward()
    return loss.detach()


def gradcache_step(inner, qchunks, tchunks, temperature):
    import torch

    with torch.no_grad():
        q = torch.cat([encode(inner, c) for c in qchunks])
        t = torch.cat([encode(inner, c) for c in tchunks])
    q = q.detach().requires_grad_()
    t = t.detach().requires_grad_()
    loss = info_nce(q, t, temperature)
    loss.backward()
    for chunks, cache in ((qchunks, q.grad), (tchunks, t.grad)):
        offset = 0
        for c in chunks:
            n = len(c["lengths"])
            reps = encode(inner, c)
            torch.dot(reps.flatten(), cache[offset:offset + n].flatten()).backward()
            offset += n
    return loss.detach()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="snapshot folder (saha-init-model output)")
    ap.add_argument("--inputs", required=True, help="saha-bench-train --dump output")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--label", default="")
    ap.add_argument("--max-loss-diff", type=float, default=1e-4,
                    help="fail when the first step's loss differs from candle's by more than this")
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N")
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    args = ap.parse_args()
    torch_tf32_off()
    gpu = args.device.startswith("cuda")

    import torch

    torch.set_num_threads(args.threads)
    doc = json.loads(Path(args.inputs).read_text())
    mode, chunk, temperature = doc["mode"], doc["chunk"], doc["temperature"]

    t = time.perf_counter()
    model, ip, tok = load(args.model, doc["adapter"], args.attn, args.dtype, args.device)
    load_s = time.perf_counter() - t
    rss_after_load = vm_kib("VmRSS")
    peak_load = vm_kib("VmHWM")  # resetting the high-water mark also resets what `time` reports
    try:  # peak RSS of the steps alone, as saha-bench-train reports it
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass

    inner = model.base_model.model.model  # the PEFT-wrapped Qwen2VLModel
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    bad = [n for n in names if "lora_" not in n or ".visual." in n]
    if bad:
        sys.exit(f"bench_train_torch: unexpected trainable parameters {bad[:4]}")
    opt = torch.optim.AdamW(params, lr=doc["lr"], weight_decay=0.0)
    image_token_id = model.base_model.model.config.image_token_id

    t = time.perf_counter()
    queries, targets = doc["queries"], doc["targets"]
    if mode == "plain":
        qb = to_device(build_batch(queries, tok, ip, image_token_id), args.device)
        tb = to_device(build_batch(targets, tok, ip, image_token_id), args.device)
        lengths = qb["lengths"] + tb["lengths"]
    else:
        def chunks(items):
            return [to_device(build_batch(items[i:i + chunk], tok, ip, image_token_id), args.device)
                    for i in range(0, len(items), chunk)]
        qchunks, tchunks = chunks(queries), chunks(targets)
        lengths = [n for c in qchunks + tchunks for n in c["lengths"]]
    encode_s = time.perf_counter() - t
    if lengths != [it["tokens"] for it in queries + targets]:
        sys.exit("bench_train_torch: token counts differ from candle's")

    losses, grad_norms, step_s, cpu_s = [], [], [], []
    for _ in range(args.steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        if mode == "plain":
            loss = plain_step(inner, qb, tb, temperature)
        else:
            loss = gradcache_step(inner, qchunks, tchunks, temperature)
        norm = torch.nn.utils.clip_grad_norm_(params, doc["max_grad_norm"])
        opt.step()
        sync(args.device)
        step_s.append(time.perf_counter() - t0)
        if gpu and len(step_s) == 1:
            torch.cuda.reset_peak_memory_stats()
        cpu_s.append(time.process_time() - c0)
        losses.append(float(loss))
        grad_norms.append(float(norm))
    peak_train = vm_kib("VmHWM")
    warmup_s = step_s.pop(0)
    cpu_s.pop(0)
    total = sum(step_s)

    theirs = doc["losses"]
    diffs = [abs(a - b) for a, b in zip(losses, theirs)]
    n = doc["pairs"]
    report = {
        "impl": f"pytorch-peft-{args.attn}", "label": args.label, "mode": mode,
        "chunk": chunk if mode != "plain" else None, "pairs": n, "threads": torch.get_num_threads(),
        "trainable_params": sum(p.numel() for p in params),
        "steps": args.steps, "steps_per_s": args.steps / total,
        "steps_per_s_median": 1 / statistics.median(step_s), "pairs_per_s": args.steps * n / total,
        "mean_step_s": total / args.steps, "median_step_s": statistics.median(step_s), "step_s": step_s,
        "median_cpu_s": statistics.median(cpu_s), "cpu_s": cpu_s,
        "warmup_step_s": warmup_s, "losses": losses, "grad_norms": grad_norms,
        "first_loss_diff_vs_candle": diffs[0], "max_loss_diff_vs_candle": max(diffs),
        "first_grad_norm_rel_diff_vs_candle": abs(grad_norms[0] - doc["grad_norms"][0]) / doc["grad_norms"][0],
        "encode_s": encode_s, "load_s": load_s,
        "peak_rss_load_mib": peak_load // 1024 if peak_load else None,
        "rss_after_load_mib": rss_after_load // 1024 if rss_after_load else None,
        "peak_rss_train_mib": (peak_train or 0) // 1024 or None,
        "device": args.device, "dtype": args.dtype,
        "peak_gpu_mib": torch.cuda.max_memory_reserved() // 2**20 if gpu else None,
    }
    print(json.dumps(report, sort_keys=True))
    if diffs[0] > args.max_loss_diff:
        sys.exit(f"bench_train_torch: the first-step loss {losses[0]:.7f} differs from candle's {theirs[0]:.7f} "
                 f"by {diffs[0]:.3g} > {args.max_loss_diff}")


if __name__ == "__main__":
    main()
