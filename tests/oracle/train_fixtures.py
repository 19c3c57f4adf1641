#!/usr/bin/env python3
"""Training-step parity fixtures (LoRA / DoRA + one-directional InfoNCE + GradCache) for the Rust trainer.

Developers run it; CI does not. It wraps Hugging Face transformers' Qwen2-VL (tiny random-weight snapshot)
with PEFT LoRA and DoRA adapters exactly as the SaHa reference configures them (reference-code.md §6.5, with
dropout 0 so the step is deterministic), puts every adapter tensor at a seeded generic point (lora_B != 0,
DoRA magnitude != ||W + s·B·A||), and stores for one batch of 4 (query, target) pairs:

  * the adapter as PEFT saves it (`<kind>/initial/adapter_config.json`, `adapter_model.safetensors`),
  * the L2-normalised pooled embeddings `q`, `t`, the loss `cross_entropy(q @ t.T / 0.02, arange(4))`
    (reference-code.md §6.3),
  * `grad.<key>`: d loss / d adapter tensor for every key of the saved adapter file,
  * `gc_grad.<key>`: the same gradients computed with the GradCache procedure (reference-code.md §6.4) and
    chunks of 2 (each chunk tokenised and padded on its own),

in `<kind>/expected.safetensors`, plus the model inputs in `inputs.safetensors` and the cases in `cases.json`.

Usage:
  python3 tests/oracle/train_fixtures.py --snapshot DIR --out tests/fixtures/train
  python3 tests/oracle/train_fixtures.py --snapshot DIR25 --out tests/fixtures/train_qwen2_5vl \
      --embedding-fixtures tests/fixtures/qwen2_5vl

DIR is the tiny snapshot (`saha-init-model --seed 0 --out DIR --tokenizer ...`), the same one
tests/fixtures/qwen2vl was generated from (DIR25: the Qwen2.5-VL one of tests/fixtures/qwen2_5vl). Images are
read from the embedding fixtures' images/. On Qwen2.5-VL PEFT's suffix match also adapts the vision blocks'
`mlp.down_proj` (the reference's target list), so those adapters are part of the step too.

Needs: torch, transformers (5.x tested), peft, tokenizers, pillow, numpy, safetensors. CPU, float32, eager
attention.
"""

import argparse
import copy
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import qwen2vl_fixtures as qf  # noqa: E402  (snapshot loading, template, tokenising, batching, pooling)

REPO = HERE.parents[1]

TEMPERATURE = 0.02
CHUNK = 2  # GradCache chunk size for queries and targets (reference default gc_q/p_chunk_size = 2)
PADDING = "right"
KINDS = ("lora", "dora")
LORA_KW = dict(r=8, lora_alpha=64, lora_dropout=0.0,
               target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
               init_lora_weights="gaussian")
SEED = 1234
STD_A = 1.0 / LORA_KW["r"]  # the spread of PEFT's own "gaussian" lora_A init
STD_B = 0.05
MAG_NOISE = 0.05  # DoRA: magnitude = ||W + s B A||_row * (1 + MAG_NOISE * N(0, 1))


def pair(query, target):
    return {"query": query, "target": target}


# One training batch of 4 aligned (query, target) pairs. Queries carry the role-'Q' suffix; targets do not
# (reference-code.md §3.1/§3.2, §6.4 step 3). Both use the same system prompt (README Q_prompt = D_prompt).
# Images: bare, unwrapped <|image_pad|> (1-D positions); one image query, one image target.
PAIRS = [
    pair(qf.item(qf.q("Find me an everyday image that matches the given caption: A man riding a bike.", False)),
         qf.item(qf.IMAGE_PAD + " Represent the given image.", "img_56x84.png")),
    pair(qf.item(qf.q(qf.IMAGE_PAD + " What kind of boat is shown in this picture?", True), "img_100x50.png"),
         qf.item("A red fishing boat in a small harbour.")),
    pair(qf.item(qf.q("Retrieve the answer to the question: what colour is the sky on a clear day?", False)),
         qf.item("Blue.")),
    pair(qf.item(qf.q("Find a news headline about the weather.", False)),
         qf.item("Heavy snow closes mountain roads for the second day running.")),
]


def die(msg):
    sys.exit(f"train_fixtures: error: {msg}")


def versions():
    import peft
    v = qf.versions()
    v["peft"] = peft.__version__
    return v


def build(model, tok, ip, items, cfg, img_dir):
    return qf.build_batch(model, tok, ip, {"items": items, "padding": PADDING}, img_dir, cfg)


def encode(model, batch):
    """Forward (grad enabled or not, per the caller's context), last-real-token pooling, L2 normalisation."""
    import torch

    kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              position_ids=batch["position_ids"], output_hidden_states=True, use_cache=False, return_dict=True)
    if batch["pixel_values"] is not None:
        kw.update(pixel_values=batch["pixel_values"], image_grid_thw=batch["image_grid_thw"])
    last = model(**kw).hidden_states[-1]
    bsz = last.shape[0]
    reps = last[torch.arange(bsz), batch["pool_index"]]
    # right padding: the reference's `attention_mask.sum(1) - 1`
    assert torch.equal(batch["pool_index"], batch["attention_mask"].sum(1) - 1)
    # the norm, similarities and loss in float32 whatever the model's dtype (a no-op for float32)
    return torch.nn.functional.normalize(reps.float(), p=2, dim=-1)


def as_float64(batch):
    """The batch with its pixel values in float64 (for the float64 copy of the model)."""
    batch = dict(batch)
    if batch["pixel_values"] is not None:
        batch["pixel_values"] = batch["pixel_values"].double()
    return batch


def info_nce(q, t):
    import torch
    import torch.nn.functional as F

    logits = q @ t.T
    target = torch.arange(q.shape[0], dtype=torch.long)
    return F.cross_entropy(logits / TEMPERATURE, target)


def wrap(snapshot, kind):
    """Fresh base model + PEFT adapter of this kind, adapter tensors moved to the seeded generic point."""
    import torch
    from peft import LoraConfig, get_peft_model

    base, layouts = qf.load_model(snapshot, "eager")
    base.train()  # as in training; no dropout anywhere (attention_dropout 0, lora_dropout 0), checked below
    config = LoraConfig(use_dora=(kind == "dora"), **LORA_KW)
    model = get_peft_model(base, config)

    # Which modules did PEFT adapt? The language model's q/k/v/o/down projections, and on Qwen2.5-VL the
    # vision blocks' mlp.down_proj (suffix match on the same list), nothing else.
    adapted = sorted(n for n, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A)
    vision_down = base.config.model_type == "qwen2_5_vl"
    for n in adapted:
        in_text = ".visual." not in n and ".language_model.layers." in n
        in_vision = vision_down and ".visual.blocks." in n and n.endswith(".mlp.down_proj")
        if not (in_text or in_vision):
            die(f"PEFT adapted an unexpected module: {n}")
    if vision_down and not any(".visual." in n for n in adapted):
        die("PEFT adapted no vision down_proj on Qwen2.5-VL")
    visual_linear = sorted(n for n, m in model.named_modules()
                           if ".visual." in n and isinstance(m, torch.nn.Linear) and n not in adapted)

    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for n in adapted:
            m = model.get_submodule(n)
            a, b = m.lora_A["default"].weight, m.lora_B["default"].weight
            a.copy_(torch.randn(a.shape, generator=g) * STD_A)
            b.copy_(torch.randn(b.shape, generator=g) * STD_B)
            if kind == "dora":
                dora = m.lora_magnitude_vector["default"]
                scaling = m.scaling["default"]
                # PEFT's own (re-)initialisation for the new A/B: magnitude = ||W + scaling * B @ A||_2 per row.
                dora.update_layer(base_layer=m.get_base_layer(), lora_A=a, lora_B=b, scaling=scaling)
                w = m.get_base_layer().weight
                ref = torch.linalg.norm(w + scaling * (b @ a), dim=1)
                if not torch.allclose(dora.weight, ref, rtol=1e-6, atol=0):
                    die(f"{n}: update_layer magnitude differs from ||W + s B A||_row")
                dora.weight.mul_(1 + MAG_NOISE * torch.randn(dora.weight.shape, generator=g))
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    for n in trainable:
        if "lora_" not in n:
            die(f"non-adapter parameter is trainable: {n}")
    return model, adapted, visual_linear, layouts


def peft_keys(model, tensors_by_param):
    """Map {parameter name: tensor} to the key names PEFT writes into adapter_model.safetensors."""
    from peft import get_peft_model_state_dict

    full = {k: v for k, v in model.state_dict().items()}
    full.update(tensors_by_param)
    sd = get_peft_model_state_dict(model, state_dict=full)
    return sd


def grads_by_param(model):
    out = {}
    for n, p in model.named_parameters():
        if p.requires_grad:
            if p.grad is None:
                die(f"{n} got no gradient")
            out[n] = p.grad.detach().clone()
    return out


def plain_step(model, qb, tb):
    model.zero_grad(set_to_none=True)
    q = encode(model, qb)
    t = encode(model, tb)
    loss = info_nce(q, t)
    loss.backward()
    return loss.detach(), q.detach(), t.detach(), grads_by_param(model)


def gradcache_step(model, tok, ip, cfg, img_dir):
    """reference-code.md §6.4: pass 1 no-grad reps per chunk, loss on detached reps -> rep grads, pass 2 per chunk
    with surrogate dot(reps, cached_grad).backward(). Each chunk is tokenised and padded on its own."""
    import torch

    model.zero_grad(set_to_none=True)
    qchunks = [build(model, tok, ip, [p["query"] for p in PAIRS[i:i + CHUNK]], cfg, img_dir)
               for i in range(0, len(PAIRS), CHUNK)]
    tchunks = [build(model, tok, ip, [p["target"] for p in PAIRS[i:i + CHUNK]], cfg, img_dir)
               for i in range(0, len(PAIRS), CHUNK)]
    with torch.no_grad():
        q = torch.cat([encode(model, c) for c in qchunks])
        t = torch.cat([encode(model, c) for c in tchunks])
    q = q.detach().requires_grad_()
    t = t.detach().requires_grad_()
    loss = info_nce(q, t)
    loss.backward()
    for chunks, cache in ((qchunks, q.grad), (tchunks, t.grad)):
        for c, gcache in zip(chunks, cache.split(CHUNK)):
            reps = encode(model, c)
            surrogate = torch.dot(reps.flatten(), gcache.flatten())
            surrogate.backward()
    return loss.detach(), grads_by_param(model)


def check_dora_formula(model, adapted):
    """Recompute one DoRA layer by hand (the formula the README states) and compare output and gradients."""
    import torch

    n = next(x for x in adapted if x.endswith("self_attn.q_proj"))  # has a bias, but on Qwen3-VL
    m = model.get_submodule(n)
    W, bias = m.get_base_layer().weight, m.get_base_layer().bias
    bias = 0.0 if bias is None else bias
    A, B = m.lora_A["default"].weight, m.lora_B["default"].weight
    mag = m.lora_magnitude_vector["default"].weight
    s = m.scaling["default"]
    x = torch.randn(3, 5, W.shape[1], generator=torch.Generator().manual_seed(7))
    params = [A, B, mag]
    y = m(x)
    gp = torch.autograd.grad(y.square().sum(), params)
    norm = torch.linalg.norm(W + s * (B @ A).detach(), dim=1).detach()
    y2 = (mag / norm) * (x @ W.T + s * (x @ A.T) @ B.T) + bias
    gh = torch.autograd.grad(y2.square().sum(), params)
    d_out = float((y - y2).detach().abs().max())
    d_grad = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(gp, gh))
    if d_out > 1e-5 or d_grad > 1e-5:
        die(f"DoRA hand formula disagrees with PEFT on {n}: out {d_out:.3g}, grad rel {d_grad:.3g}")
    # Not detaching the norm changes the gradients (so the detach matters and the fixtures pin it down).
    norm_live = torch.linalg.norm(W + s * (B @ A), dim=1)
    y3 = (mag / norm_live) * (x @ W.T + s * (x @ A.T) @ B.T) + bias
    g3 = torch.autograd.grad(y3.square().sum(), params)
    d_live = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(gp, g3))
    return {"module": n, "out_max_abs": d_out, "grad_max_rel": d_grad, "undetached_norm_grad_max_rel": d_live}


def generate(snapshot, out, emb_dir):
    import torch
    from peft import PeftModel
    from safetensors import safe_open
    from safetensors.torch import save_file
    from tokenizers import Tokenizer

    snapshot, out, emb_dir = Path(snapshot), Path(out), Path(emb_dir)
    img_dir = emb_dir / "images"
    for f in ("config.json", "tokenizer.json", "preprocessor_config.json"):
        if not (snapshot / f).is_file():
            die(f"{snapshot} lacks {f}")
    if not img_dir.is_dir():
        die(f"{img_dir} missing (generated by tests/oracle/qwen2vl_fixtures.py)")
    emb_meta = json.loads((emb_dir / "cases.json").read_text())
    global PAIRS
    if emb_meta["generator"].endswith("qwen3vl_fixtures.py"):
        # Qwen3-VL's embedding fixtures hold images sized for its 16-pixel patches, under their own names.
        from qwen3vl_fixtures import RENAMED
        PAIRS = [{side: dict(it, image=it["image"] and RENAMED[it["image"]][0]) for side, it in p.items()}
                 for p in PAIRS]
    img_sha = {Path(i["file"]).name: i["sha256"] for i in emb_meta["images"]}
    snap_sha = {p.name: qf.sha256_file(p) for p in sorted(snapshot.iterdir())
                if p.is_file() and (p.suffix == ".safetensors" or p.name in (
                    "config.json", "tokenizer.json", "preprocessor_config.json"))}
    same_snapshot = snap_sha == emb_meta["snapshot"]["sha256"]

    ip = qf.load_image_processor(snapshot)
    tok = Tokenizer.from_file(str(snapshot / "tokenizer.json"))

    tensors_in = {}
    results = {}
    checks = {}
    kinds_meta = {}
    qb = tb = None
    out.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        model, adapted, visual_linear, layouts = wrap(snapshot, kind)
        base_cfg = model.base_model.model.config
        cfg = {k: getattr(base_cfg, k) for k in ("image_token_id", "vision_start_token_id", "vision_end_token_id")}
        if getattr(base_cfg.text_config if hasattr(base_cfg, "text_config") else base_cfg, "attention_dropout", 0.0):
            die("attention_dropout != 0")
        if qb is None:
            qb = build(model, tok, ip, [p["query"] for p in PAIRS], cfg, img_dir)
            tb = build(model, tok, ip, [p["target"] for p in PAIRS], cfg, img_dir)
            for name in qb["images"] + tb["images"]:
                if qf.sha256_file(img_dir / name) != img_sha[name]:
                    die(f"{img_dir / name} differs from {emb_dir}/cases.json")
            for side, b in (("query", qb), ("target", tb)):
                for k in ("input_ids", "attention_mask", "position_ids", "pool_index", "image_grid_thw"):
                    if b[k] is not None:
                        tensors_in[f"{side}.{k}"] = b[k].contiguous()

        # 1. the initial adapter as PEFT saves it
        kdir = out / kind
        if kdir.exists():
            shutil.rmtree(kdir)
        init_dir = kdir / "initial"
        model.save_pretrained(str(init_dir))
        (init_dir / "README.md").unlink(missing_ok=True)  # PEFT's model-card template, not needed
        for f in init_dir.iterdir():
            os.chmod(f, 0o644)
        with safe_open(str(init_dir / "adapter_model.safetensors"), framework="pt") as f:
            saved = {k: f.get_tensor(k) for k in f.keys()}
        params = dict(model.named_parameters())
        mapped = peft_keys(model, {n: p.detach() for n, p in params.items() if p.requires_grad})
        if set(mapped) != set(saved):
            die(f"{kind}: get_peft_model_state_dict keys {sorted(set(mapped) ^ set(saved))[:4]} differ from the file")
        for k in saved:
            if not torch.equal(saved[k], mapped[k]):
                die(f"{kind}: saved {k} differs from the live parameter")

        # 2. plain backprop over the full padded batches
        loss, q, t, grads = plain_step(model, qb, tb)
        gmap = peft_keys(model, grads)
        assert set(gmap) == set(saved)
        zero = [k for k, g in gmap.items() if float(g.abs().max()) == 0.0]
        if zero:
            die(f"{kind}: zero gradients for {zero}")

        # 2b. the same loss in float64 (a copy of the model, inputs cast): the exact value both float32
        # implementations approximate. At temperature 0.02 float32 rounding in the embeddings alone moves
        # the loss by ~1e-5, so the Rust test holds its loss to this value.
        with torch.no_grad():
            m64 = copy.deepcopy(model).double()
            loss64 = float(info_nce(encode(m64, as_float64(qb)), encode(m64, as_float64(tb))))
        del m64
        checks[f"{kind}.float32_loss_minus_float64"] = float(loss) - loss64

        # train() vs eval() must not matter (no dropout anywhere)
        model.eval()
        with torch.no_grad():
            le = info_nce(encode(model, qb), encode(model, tb))
        model.train()
        checks[f"{kind}.train_vs_eval_loss_abs"] = float((le - loss).abs())
        if checks[f"{kind}.train_vs_eval_loss_abs"] > 1e-6:
            die(f"{kind}: train and eval mode disagree")

        # 3. GradCache, chunks of 2
        gc_loss, gc_grads = gradcache_step(model, tok, ip, cfg, img_dir)
        gcmap = peft_keys(model, gc_grads)
        gc_abs = max(float((gcmap[k] - gmap[k]).abs().max()) for k in gmap)
        gc_rel = max(float((gcmap[k] - gmap[k]).abs().max() / gmap[k].abs().max()) for k in gmap)
        checks[f"{kind}.gradcache_loss_abs"] = float((gc_loss - loss).abs())
        checks[f"{kind}.gradcache_grad_max_abs"] = gc_abs
        checks[f"{kind}.gradcache_grad_max_rel_per_tensor"] = gc_rel
        checks[f"{kind}.grad_max_abs"] = max(float(g.abs().max()) for g in gmap.values())
        if gc_rel > 1e-4:
            die(f"{kind}: GradCache gradients differ from plain backprop ({gc_abs:.3g}, rel {gc_rel:.3g})")

        # 4. the saved adapter, loaded onto a fresh base by PEFT, reproduces the loss
        base2, _ = qf.load_model(snapshot, "eager")
        reloaded = PeftModel.from_pretrained(base2, str(init_dir), is_trainable=True)
        with torch.no_grad():
            lr_ = info_nce(encode(reloaded, qb), encode(reloaded, tb))
        checks[f"{kind}.reloaded_adapter_loss_abs"] = float((lr_ - loss).abs())
        if checks[f"{kind}.reloaded_adapter_loss_abs"] > 1e-6:
            die(f"{kind}: reloading the saved adapter changes the loss")
        del base2, reloaded

        if kind == "dora":
            checks["dora.hand_formula"] = check_dora_formula(model, adapted)

        tensors = {"loss": loss.reshape(1).contiguous(), "q": q.contiguous(), "t": t.contiguous()}
        for k in sorted(gmap):
            tensors[f"grad.{k}"] = gmap[k].contiguous()
        for k in sorted(gcmap):
            tensors[f"gc_grad.{k}"] = gcmap[k].contiguous()
        tmp = kdir / "expected.safetensors.tmp"
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        os.chmod(tmp, 0o644)
        os.replace(tmp, kdir / "expected.safetensors")

        results[kind] = float(loss)
        kinds_meta[kind] = {
            "use_dora": kind == "dora",
            "adapter_dir": f"{kind}/initial",
            "expected": f"{kind}/expected.safetensors",
            "loss": float(loss),
            "loss_float64": loss64,
            "gradcache_loss": float(gc_loss),
            "adapted_modules": adapted,
            "vision_linear_modules_not_adapted": visual_linear,
            "adapter_keys": {k: list(saved[k].shape) for k in sorted(saved)},
            "adapter_config": json.loads((init_dir / "adapter_config.json").read_text()),
        }
        print(f"{kind}: loss {float(loss):.6f}, {len(saved)} adapter tensors, GradCache max abs diff {gc_abs:.3g}",
              file=sys.stderr)

    save_file(tensors_in, str(out / "inputs.safetensors.tmp"), metadata={"format": "pt"})
    os.chmod(out / "inputs.safetensors.tmp", 0o644)
    os.replace(out / "inputs.safetensors.tmp", out / "inputs.safetensors")

    meta = {
        "format": 1,
        "generator": "tests/oracle/train_fixtures.py",
        "versions": versions(),
        "snapshot": {"sha256": snap_sha, "same_as_embedding_fixtures": same_snapshot,
                     "embedding_fixtures": str(emb_dir.resolve().relative_to(REPO)),
                     "model_type": json.loads((snapshot / "config.json").read_text())["model_type"]},
        "dtype": "float32 weights, adapters and computation on CPU; eager attention",
        "template": emb_meta["template"],
        "pad_token_id": qf.PAD_TOKEN_ID,
        "padding_side": PADDING,
        "images_dir": str(img_dir.resolve().relative_to(REPO)),
        "images": {n: img_sha[n] for n in qb["images"] + tb["images"]},
        "pairs": [{"query": qi, "target": ti} for qi, ti in zip(qb["items"], tb["items"])],
        "batches": {
            "query": {"length": int(qb["input_ids"].shape[1]), "images": qb["images"]},
            "target": {"length": int(tb["input_ids"].shape[1]), "images": tb["images"]},
            "note": "queries form one right-padded batch of 4, targets another; pixel_values of a batch are the "
                    "concatenation of its images' (image.<stem>.pixel_values in "
                    "the embedding fixtures' expected.safetensors, or their hash), in item order",
        },
        "loss": {
            "form": "cross_entropy((q @ t.T) / temperature, arange(B)), mean over B; one-directional q->t",
            "temperature": TEMPERATURE,
            "q,t": "L2-normalised hidden_states[-1] at the last real token (attention_mask.sum(1) - 1)",
        },
        "gradcache": {
            "chunk_size": CHUNK,
            "procedure": "pass 1 (no grad): query chunks then target chunks, each chunk tokenised and right-padded "
                         "on its own; loss on the detached, concatenated reps; backward gives d loss/d reps; pass 2 "
                         "per chunk (queries, then targets): reps again, surrogate = dot(reps.flatten(), "
                         "cached_grad.flatten()), backward; gradients accumulate",
        },
        "adapter_init": {
            "peft": {k: v for k, v in LORA_KW.items()},
            "seed": SEED,
            "note": f"torch.Generator().manual_seed({SEED}); per adapted module in sorted module-name order: "
                    f"lora_A = N(0,1)*{STD_A}, lora_B = N(0,1)*{STD_B}; DoRA: magnitude = "
                    f"||W + scaling*B@A||_2 per output row (PEFT update_layer), then *= (1 + {MAG_NOISE}*N(0,1)). "
                    "The Rust side should load the saved adapter, not replay this.",
        },
        "kinds": kinds_meta,
        "inputs": {
            "file": "inputs.safetensors",
            "keys": {k: list(v.shape) for k, v in sorted(tensors_in.items())},
            "semantics": "{query,target}.input_ids/attention_mask [4, L] int64 (right padding, pad id "
                         f"{qf.PAD_TOKEN_ID}), position_ids [3, 4, L] int64 (1-D arange on all rows, pads 0), "
                         "pool_index [4], image_grid_thw [n_images, 3]",
        },
        "expected": {
            "loss": "[1] float32",
            "q": "[4, H] float32", "t": "[4, H] float32",
            "grad.<adapter key>": "d loss / d tensor, same shape as the adapter file's tensor (plain backprop)",
            "gc_grad.<adapter key>": f"the same via GradCache with chunks of {CHUNK}",
        },
        "checks": checks,
    }
    with open(out / "cases.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(json.dumps(checks, indent=1), file=sys.stderr)


def main():
    # PEFT writes adapter_config.json's target_modules from a Python set of strings: fix the hash seed so the
    # file (and everything else) is byte-identical between runs.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "PYTHONHASHSEED": "0"})
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snapshot", required=True, help="tiny snapshot folder (saha-init-model --seed 0)")
    ap.add_argument("--out", required=True, help="fixture output folder (tests/fixtures/train)")
    ap.add_argument("--embedding-fixtures", default=str(REPO / "tests" / "fixtures" / "qwen2vl"),
                    help="the embedding fixtures of the same snapshot (their images and image hashes)")
    args = ap.parse_args()
    qf.import_stack()
    try:
        import peft  # noqa: F401
    except ImportError as e:
        die(f"{e}; install with: python3 -m pip install peft")
    import torch

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    generate(args.snapshot, args.out, args.embedding_fixtures)


if __name__ == "__main__":
    main()
