#!/usr/bin/env python3
"""bf16 training-step fixtures: the step of tests/oracle/train_fixtures.py with the base model in bfloat16.

Developers run it; CI does not. The setting is the reference's (`--bf16`, model loaded in bf16) under a current
PEFT: base weights and activations in bfloat16, the adapter tensors (loaded from the float32 fixtures'
`<kind>/initial`) kept in float32 by PEFT's `autocast_adapter_dtype`, the pooled embeddings cast to float32
before the L2 norm, so the similarity matrix and the loss are float32. For each kind it stores, in
`bf16/<kind>/expected.safetensors`: `loss`, `q`, `t`, `grad.<key>` (plain backprop) and `gc_grad.<key>`
(GradCache, chunks of 2), and in `bf16/cases.json` how far PEFT's own bf16 step lies from its float32 step
(`<kind>/expected.safetensors` of the float32 fixtures): bf16's own rounding error, which the Rust test's
tolerances are derived from.

Usage (after train_fixtures.py, with the same snapshot):
  python3 tests/oracle/train_bf16_fixtures.py --snapshot /tmp/tiny0 --fixtures tests/fixtures/train
"""

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import qwen2vl_fixtures as qf  # noqa: E402
import train_fixtures as tf  # noqa: E402

IMG_DIR = HERE.parents[1] / "tests" / "fixtures" / "qwen2vl" / "images"


def die(msg):
    sys.exit(f"train_bf16_fixtures: error: {msg}")


def rel(a, b):
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def load_bf16(snapshot, adapter_dir):
    import torch
    from peft import PeftModel

    base, _ = qf.load_model(snapshot, "eager")
    base = base.to(torch.bfloat16)
    base.train()
    model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=True)
    for n, p in model.named_parameters():
        want = torch.float32 if p.requires_grad else torch.bfloat16
        if p.dtype != want:
            die(f"{n} is {p.dtype}, expected {want} (adapters float32, base bfloat16)")
    return model


def generate(snapshot, fixtures):
    import torch
    from safetensors.torch import load_file, save_file
    from tokenizers import Tokenizer

    snapshot, fixtures = Path(snapshot), Path(fixtures)
    cases = json.loads((fixtures / "cases.json").read_text())
    snap_sha = {name: qf.sha256_file(snapshot / name) for name in cases["snapshot"]["sha256"]}
    if snap_sha != cases["snapshot"]["sha256"]:
        die(f"{snapshot} is not the snapshot {fixtures}/cases.json was generated from")
    ip = qf.load_image_processor(snapshot)
    tok = Tokenizer.from_file(str(snapshot / "tokenizer.json"))
    out = fixtures / "bf16"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    floors = {}
    for kind in tf.KINDS:
        model = load_bf16(snapshot, fixtures / kind / "initial")
        cfg_src = model.base_model.model.config
        cfg = {k: getattr(cfg_src, k) for k in ("image_token_id", "vision_start_token_id", "vision_end_token_id")}
        qb = tf.build(model, tok, ip, [p["query"] for p in tf.PAIRS], cfg, IMG_DIR)
        tb = tf.build(model, tok, ip, [p["target"] for p in tf.PAIRS], cfg, IMG_DIR)
        loss, q, t, grads = tf.plain_step(model, qb, tb)
        gmap = tf.peft_keys(model, grads)
        gc_loss, gc_grads = tf.gradcache_step(model, tok, ip, cfg, IMG_DIR)
        gcmap = tf.peft_keys(model, gc_grads)

        f32 = load_file(str(fixtures / kind / "expected.safetensors"))
        if set(f"grad.{k}" for k in gmap) != set(k for k in f32 if k.startswith("grad.")):
            die(f"{kind}: adapter keys differ from the float32 fixture's")
        floors[kind] = {
            "loss_bf16": float(loss),
            "loss_float32": float(f32["loss"][0]),
            "loss_abs": abs(float(loss) - float(f32["loss"][0])),
            "embedding_max_abs": max(float((q - f32["q"]).abs().max()), float((t - f32["t"]).abs().max())),
            "grad_max_rel_per_tensor": max(rel(g, f32[f"grad.{k}"]) for k, g in gmap.items()),
            "gradcache_loss_abs": abs(float(gc_loss) - float(loss)),
            "gradcache_grad_max_rel_per_tensor": max(rel(gcmap[k], g) for k, g in gmap.items()),
        }
        tensors = {"loss": loss.float().reshape(1).contiguous(), "q": q.float().contiguous(),
                   "t": t.float().contiguous()}
        tensors.update({f"grad.{k}": g.float().contiguous() for k, g in sorted(gmap.items())})
        tensors.update({f"gc_grad.{k}": g.float().contiguous() for k, g in sorted(gcmap.items())})
        (out / kind).mkdir()
        save_file(tensors, str(out / kind / "expected.safetensors"), metadata={"format": "pt"})
        os.chmod(out / kind / "expected.safetensors", 0o644)
        print(f"{kind}: bf16 loss {float(loss):.6f} (float32 {float(f32['loss'][0]):.6f}), "
              f"bf16 vs float32 gradients: worst relative {floors[kind]['grad_max_rel_per_tensor']:.3g}",
              file=sys.stderr)
        del model

    meta = {
        "format": 1,
        "generator": "tests/oracle/train_bf16_fixtures.py",
        "versions": tf.versions(),
        "snapshot": {"sha256": snap_sha},
        "dtype": "base weights and activations bfloat16 (eager attention, CPU); adapters float32 "
                 "(PEFT autocast_adapter_dtype); pooled embeddings cast to float32 before the L2 norm; "
                 "similarity matrix and loss float32",
        "adapters": {k: f"{k}/initial" for k in tf.KINDS},
        "inputs": "the float32 fixtures' pairs, padding, chunks and temperature (../cases.json)",
        "bf16_vs_float32": floors,
    }
    with open(out / "cases.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps(floors, indent=1), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snapshot", required=True, help="the tiny snapshot the float32 fixtures came from")
    ap.add_argument("--fixtures", required=True, help="tests/fixtures/train (bf16/ is written inside)")
    args = ap.parse_args()
    generate(args.snapshot, args.fixtures)


if __name__ == "__main__":
    main()
