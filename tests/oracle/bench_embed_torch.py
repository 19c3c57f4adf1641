#!/usr/bin/env python3
"""The transformers side of `make bench-embed`: the same inputs as saha-bench-embed, in PyTorch on CPU.

Reads the file `saha-bench-embed --dump FILE` wrote (prompt strings, PNG paths and the candle embeddings
of the batch), builds the batch as tests/oracle/qwen2vl_fixtures.py does (the image pad expanded into
prod(grid)/4 tokens before tokenising, pixel_values from the PIL image processor, right padding with
<|endoftext|>, position_ids passed explicitly: arange over the real tokens on all three M-RoPE rows, as
for the reference's unwrapped prompts), runs the snapshot with Qwen2VLForConditionalGeneration
(float32, eval, torch.inference_mode()), pools the last real token of the final-norm hidden states and
L2-normalises. The forward calls the model's inner Qwen2VLModel (`model.model`), whose last_hidden_state
is hidden_states[-1]: the embedder needs no logits, and the tied lm_head over the 151,936-token vocabulary
would otherwise dominate the time.

It warms up once, checks the warm-up embeddings against candle's (cosine per row), then times --iters
batches (median batch time reported): preprocessing (PNG decode, image processor, tokenisation, padding) apart from the forward.
Prints one JSON line with the fields saha-bench-embed prints.

Usage: python3 tests/oracle/bench_embed_torch.py --model DIR --inputs FILE [--iters K] [--threads 2]
       [--attn sdpa|eager] [--min-cosine 0.9999] [--device cpu|cuda:N] [--dtype f32|bf16]
On a GPU the timings wait for the device (torch.cuda.synchronize) and the report adds peak_gpu_mib
(torch.cuda.max_memory_reserved after the warm-up reset).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

IMAGE_PAD = "<|image_pad|>"
PAD_TOKEN_ID = 151643  # <|endoftext|>


DTYPES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def load(snapshot, attn, dtype="f32", device="cpu"):
    import torch
    import transformers
    from tokenizers import Tokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    # Qwen2-VL, Qwen2.5-VL or Qwen3-VL, by the snapshot's model_type (the processor is the same).
    classes = {"qwen2_vl": "Qwen2VLForConditionalGeneration", "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
               "qwen3_vl": "Qwen3VLForConditionalGeneration"}
    model_type = json.loads((Path(snapshot) / "config.json").read_text())["model_type"]
    model = getattr(transformers, classes[model_type]).from_pretrained(snapshot, dtype=getattr(torch, DTYPES[dtype]),
                                                                        attn_implementation=attn)
    model.to(device).eval()
    # The PIL backend is what the reference used and what saha-model reproduces bit for bit.
    ip = Qwen2VLImageProcessorPil.from_pretrained(snapshot)
    tok = Tokenizer.from_file(str(Path(snapshot) / "tokenizer.json"))
    return model, ip, tok


def build_batch(items, tok, ip, image_token_id):
    import torch
    from PIL import Image

    merge = ip.merge_size
    rows, pixels, grids = [], [], []
    for it in items:
        prompt = it["prompt"]
        if it["image"] is not None:
            feats = ip(images=[Image.open(it["image"])], return_tensors="np")
            grid = [int(x) for x in feats["image_grid_thw"][0]]
            pixels.append(torch.from_numpy(np.ascontiguousarray(feats["pixel_values"], dtype=np.float32)))
            grids.append(grid)
            prompt = prompt.replace(IMAGE_PAD, IMAGE_PAD * (int(np.prod(grid)) // merge ** 2), 1)
        rows.append(tok.encode(prompt, add_special_tokens=False).ids)
    bsz, length = len(rows), max(len(r) for r in rows)
    input_ids = torch.full((bsz, length), PAD_TOKEN_ID, dtype=torch.int64)
    mask = torch.zeros((bsz, length), dtype=torch.int64)
    position_ids = torch.zeros((3, bsz, length), dtype=torch.int64)
    for b, ids in enumerate(rows):
        n = len(ids)
        input_ids[b, :n] = torch.tensor(ids, dtype=torch.int64)
        mask[b, :n] = 1
        position_ids[:, b, :n] = torch.arange(n, dtype=torch.int64)
    n_image = int((input_ids == image_token_id).sum())
    assert n_image == sum(int(np.prod(g)) // merge ** 2 for g in grids)
    return {
        "input_ids": input_ids, "attention_mask": mask, "position_ids": position_ids,
        "pixel_values": torch.cat(pixels) if pixels else None,
        "image_grid_thw": torch.tensor(grids, dtype=torch.int64) if grids else None,
        "lengths": [len(r) for r in rows],
    }


def to_device(batch, device):
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def embed(model, batch):
    import torch

    kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              position_ids=batch["position_ids"], use_cache=False, return_dict=True)
    if batch["pixel_values"] is not None:
        kw.update(pixel_values=batch["pixel_values"], image_grid_thw=batch["image_grid_thw"])
    last = model.model(**kw).last_hidden_state
    idx = torch.tensor([n - 1 for n in batch["lengths"]], device=last.device)
    pooled = last[torch.arange(last.shape[0], device=last.device), idx].float()
    return torch.nn.functional.normalize(pooled, p=2, dim=-1)


def torch_tf32_off():
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def vm_kib(field):
    """A /proc/self/status field in KiB, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="snapshot folder (saha-init-model output)")
    ap.add_argument("--inputs", required=True, help="saha-bench-embed --dump output")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    ap.add_argument("--min-cosine", type=float, default=0.9999,
                    help="fail when a row's cosine to the candle embedding is below this")
    ap.add_argument("--max-abs", type=float, default=None,
                    help="also fail when an embedding value differs from candle's by more than this")
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N")
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    args = ap.parse_args()
    # TF32 would make float32 on a GPU another precision than candle's float32.
    torch_tf32_off()

    import torch

    torch.set_num_threads(args.threads)
    doc = json.loads(Path(args.inputs).read_text())
    items = doc["items"]

    t = time.perf_counter()
    model, ip, tok = load(args.model, args.attn, args.dtype, args.device)
    load_s = time.perf_counter() - t
    rss_after_load = vm_kib("VmRSS")
    peak_load = vm_kib("VmHWM")  # resetting the high-water mark also resets what `time` reports
    try:  # peak RSS from here on, as saha-bench-embed reports it
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    image_token_id = model.config.image_token_id

    with torch.inference_mode():
        t = time.perf_counter()
        batch = build_batch(items, tok, ip, image_token_id)
        first = embed(model, to_device(batch, args.device)).cpu()
        warmup_s = time.perf_counter() - t
        gpu = args.device.startswith("cuda")
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        if [it["tokens"] for it in items] != batch["lengths"]:
            sys.exit(f"bench_embed_torch: token counts differ from candle's: {batch['lengths']} vs "
                     f"{[it['tokens'] for it in items]}")
        theirs = torch.tensor(doc["embeddings"], dtype=torch.float32)
        cos = torch.nn.functional.cosine_similarity(first, theirs, dim=-1)
        min_cos = float(cos.min())
        max_abs = float((first - theirs).abs().max())

        encode_s, forward_s, total_s = [], [], []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            batch = to_device(build_batch(items, tok, ip, image_token_id), args.device)
            t1 = time.perf_counter()
            embed(model, batch)
            sync(args.device)
            t2 = time.perf_counter()
            encode_s.append(t1 - t0)
            forward_s.append(t2 - t1)
            total_s.append(t2 - t0)

    encode_s, forward_s, total_s = (float(np.median(v)) for v in (encode_s, forward_s, total_s))
    b = len(items)
    report = {
        "impl": f"transformers-{args.attn}", "kind": doc["kind"], "batch": b, "iters": args.iters,
        "threads": torch.get_num_threads(),
        "items_per_s": b / total_s, "forward_items_per_s": b / forward_s,
        "encode_s_per_batch": encode_s, "forward_s_per_batch": forward_s, "total_s_per_batch": total_s,
        "mean_tokens": float(np.mean(batch["lengths"])), "padded_len": max(batch["lengths"]),
        "load_s": load_s, "warmup_s": warmup_s,
        "peak_rss_load_mib": peak_load // 1024 if peak_load else None,
        "rss_after_load_mib": rss_after_load // 1024 if rss_after_load else None,
        "peak_rss_inference_mib": (vm_kib("VmHWM") or 0) // 1024 or None,
        "min_cosine_vs_candle": min_cos, "max_abs_diff_vs_candle": max_abs,
        "device": args.device, "dtype": args.dtype,
        "peak_gpu_mib": torch.cuda.max_memory_reserved() // 2**20 if gpu else None,
    }
    print(json.dumps(report, sort_keys=True))
    if args.max_abs is not None and max_abs > args.max_abs:
        sys.exit(f"bench_embed_torch: candle and transformers disagree: max abs diff {max_abs:.3g} > {args.max_abs}")
    if min_cos < args.min_cosine:
        sys.exit(f"bench_embed_torch: candle and transformers disagree: min cosine {min_cos:.6f} "
                 f"< {args.min_cosine} (max abs diff {max_abs:.3g})")


if __name__ == "__main__":
    main()
