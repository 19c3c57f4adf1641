#!/usr/bin/env python3
"""GPU parity of saha-embed: the f32 embeddings on the GPU within --max-abs of the CPU f32 embeddings of the
same items and snapshot (computed when the bundle was built), and the bf16 ones at cosine >= --min-cosine
with the GPU f32 ones, item by item. Prints one JSON line; exits non-zero when a bar is missed."""

import argparse
import json
import sys

import numpy as np
import pyarrow.parquet as pq


def load(path):
    t = pq.read_table(path)
    ids = t.column("item_id").to_numpy()
    emb = np.stack(t.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float64)
    order = np.argsort(ids)
    return ids[order], emb[order]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", required=True)
    ap.add_argument("--f32", required=True)
    ap.add_argument("--bf16", required=True)
    ap.add_argument("--max-abs", type=float, default=1e-4)
    ap.add_argument("--min-cosine", type=float, default=0.999)
    args = ap.parse_args()
    (ids_cpu, cpu), (ids_f32, f32), (ids_bf16, bf16) = load(args.cpu), load(args.f32), load(args.bf16)
    if not (np.array_equal(ids_cpu, ids_f32) and np.array_equal(ids_cpu, ids_bf16)):
        sys.exit("compare: the three files hold different items")
    max_abs = float(np.abs(f32 - cpu).max())
    cos = (bf16 * f32).sum(1) / (np.linalg.norm(bf16, axis=1) * np.linalg.norm(f32, axis=1))
    report = {"items": int(len(ids_cpu)), "gpu_f32_vs_cpu_f32_max_abs": max_abs,
              "gpu_bf16_vs_gpu_f32_min_cosine": float(cos.min()),
              "gpu_bf16_vs_gpu_f32_mean_cosine": float(cos.mean()),
              "bars": {"max_abs": args.max_abs, "min_cosine": args.min_cosine}}
    print(json.dumps(report))
    if max_abs > args.max_abs or cos.min() < args.min_cosine:
        sys.exit(f"compare: parity missed: {report}")


if __name__ == "__main__":
    main()
