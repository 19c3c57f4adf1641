#!/usr/bin/env python3
"""Parity fixtures on real weights (developers run it; CI does not).

The snapshot is what `saha-init-model --text-from-gguf` writes from the Qwen2.5-Coder-0.5B-Instruct GGUF that
scripts/fetch-gguf.sh fetches: the dequantised decoder as the text half of a Qwen2-VL, a seeded random vision
tower. This script runs transformers' Qwen2VLForConditionalGeneration on it (float32, eager attention) and
stores, for a few text prompts (short and long, a padded batch with left and with right padding), the token
ids, the final-norm hidden states at three positions of every row (the first token, where Qwen2's massive
activations sit, the middle one and the pooled last one), every real position's largest |value| and its
channel, and the embeddings. It also

* dequantises the GGUF with gguf-py (an implementation independent of candle's) and checks that every text
  tensor of the snapshot equals it, so the name mapping and orientation are verified, not assumed;
* checks that the model is a language model: 'The capital of France is' continues with ' Paris' (greedy),
  and stores the top logits of that position.

Usage:
  saha-init-model --text-from-gguf .tools/qwen2.5-coder-0.5b/qwen2.5-coder-0.5b-instruct.gguf \\
      --tokenizer .tools/qwen-tokenizer/qwen2-vl-tokenizer.json --out /tmp/real-decoder
  python3 tests/oracle/real_decoder_fixtures.py --snapshot /tmp/real-decoder \\
      --gguf .tools/qwen2.5-coder-0.5b/qwen2.5-coder-0.5b-instruct.gguf --out tests/fixtures/real_decoder

Needs: torch, transformers (5.x tested), tokenizers, safetensors, numpy, gguf.
"""

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import qwen2vl_fixtures as base  # noqa: E402  (template, model loading, versions, hashes)

# The flags besides --out/--tokenizer/--text-from-gguf the snapshot was written with (the test uses them).
INIT_MODEL_FLAGS = []

CAPITAL = "The capital of France is"
CASES = [
    {"id": "raw", "what": "plain text, no chat template (the language-model check's prompt)",
     "prompts": [CAPITAL]},
    {"id": "short", "what": "short text query in the reference template",
     "prompts": [base.template(base.q("A man riding a bike.", False))]},
    {"id": "long", "what": "long text query in the reference template (~130 tokens)",
     "prompts": [base.template(base.q(base.LONG_TEXT, False))]},
]
BATCH = [
    base.template(base.q("Where is the Eiffel Tower?", False)),
    base.template("A red fishing boat in a small harbour, its nets drying in the sun next to a stack of crates."),
    base.template("fn main() { println!(\"hello\"); }"),
]
for side in ("left", "right"):
    CASES.append({"id": f"batch_{side}", "what": f"padded batch of 3 text items, {side} padding",
                  "prompts": BATCH, "padding": side})


def die(msg):
    sys.exit(f"real_decoder_fixtures: error: {msg}")


def dequantised_gguf(path):
    """name -> float32 array in PyTorch dimension order, by gguf-py's own dequantisation."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(path)
    for t in reader.tensors:
        yield t.name, dequantize(t.data, t.tensor_type).reshape(tuple(int(d) for d in reversed(t.shape)))


def gguf_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gguf")
    except PackageNotFoundError:
        return None


def check_against_gguf(model, gguf_path):
    import torch

    sd = model.state_dict()
    worst, count = 0.0, 0
    for name, values in dequantised_gguf(gguf_path):
        hf = gguf_to_hf(name)
        if hf is None:
            die(f"{gguf_path}: unexpected tensor {name}")
        ours = sd[hf]
        if tuple(ours.shape) != values.shape:
            die(f"{name} -> {hf}: shape {tuple(ours.shape)} in the snapshot, {values.shape} in the GGUF")
        d = float((ours - torch.from_numpy(np.array(values, dtype=np.float32))).abs().max())
        worst = max(worst, d)
        count += 1
        if d > 1e-6:
            die(f"{name} -> {hf}: the snapshot differs from gguf-py's dequantisation by {d:.3g}")
    return {"tensors_compared": count, "max_abs_diff": worst}


def gguf_to_hf(name):
    """GGUF tensor name -> transformers 5.x module name (stated again here, independently of the Rust map)."""
    fixed = {"token_embd.weight": "model.language_model.embed_tokens.weight",
             "output_norm.weight": "model.language_model.norm.weight", "output.weight": "lm_head.weight"}
    if name in fixed:
        return fixed[name]
    parts = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "attn_norm": "input_layernorm", "ffn_gate": "mlp.gate_proj",
             "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj", "ffn_norm": "post_attention_layernorm"}
    bits = name.split(".")
    if len(bits) != 4 or bits[0] != "blk" or bits[2] not in parts:
        return None
    return f"model.language_model.layers.{bits[1]}.{parts[bits[2]]}.{bits[3]}"


def language_model_check(model, tok):
    import torch

    ids = torch.tensor([tok.encode(CAPITAL, add_special_tokens=False).ids])
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4,
                             do_sample=False)
        logits = model(input_ids=ids, use_cache=False).logits[0, -1]
    continuation = tok.decode(out[0, ids.shape[1]:].tolist())
    if not continuation.startswith(" Paris"):
        die(f"'{CAPITAL}' continues with {continuation!r}, not ' Paris': the converted decoder is not working")
    top = torch.topk(logits, 5)
    return {"prompt": CAPITAL, "greedy_continuation": continuation,
            "top_ids": top.indices.tolist(), "top_logits": [float(v) for v in top.values]}


def build(tok, case):
    import torch

    rows = [torch.tensor(tok.encode(p, add_special_tokens=False).ids, dtype=torch.int64) for p in case["prompts"]]
    side = case.get("padding") or "right"
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), base.PAD_TOKEN_ID, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    positions = torch.zeros((3, len(rows), length), dtype=torch.int64)
    for b, r in enumerate(rows):
        sl = slice(length - len(r), length) if side == "left" else slice(0, len(r))
        ids[b, sl] = r
        mask[b, sl] = 1
        positions[:, b, sl] = torch.arange(len(r))
    return ids, mask, positions, [len(r) for r in rows], side


def exact_row(exact, tok, prompt):
    """Final hidden states [n, H] of one unpadded prompt through the float64 model."""
    import torch

    ids = torch.tensor([tok.encode(prompt, add_special_tokens=False).ids])
    return exact(input_ids=ids, output_hidden_states=True, use_cache=False).hidden_states[-1][0]


def generate(snapshot, gguf_path, out):
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer

    torch.set_grad_enabled(False)
    snapshot, out = Path(snapshot), Path(out)
    model, layouts = base.load_model(snapshot, "eager")
    sdpa, _ = base.load_model(snapshot, "sdpa")
    # The exact answer to measure float32 rounding against: the same model in float64.
    exact = copy.deepcopy(model).double()
    if model.config.tie_word_embeddings:
        die("the snapshot ties lm_head to the embeddings; the Qwen2.5-Coder GGUF has its own output.weight")
    tok = Tokenizer.from_file(str(snapshot / "tokenizer.json"))
    checks = {"gguf": check_against_gguf(model, gguf_path) if gguf_path else None,
              "language_model": language_model_check(model, tok), "sdpa_vs_eager_max_abs": 0.0,
              "batch_vs_single_max_abs": 0.0, "float32_vs_float64_hidden_max_abs": 0.0,
              "float32_vs_float64_hidden_max_rel": 0.0, "float32_vs_float64_embedding_max_abs": 0.0}
    tensors, cases_meta, stats = {}, [], {}
    single = {}
    for case in CASES:
        cid = case["id"]
        ids, mask, positions, lengths, side = build(tok, case)
        kw = dict(input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=True,
                  use_cache=False, return_dict=True)
        last = model(**kw).hidden_states[-1]
        d = base.real_max_diff(last, sdpa(**kw).hidden_states[-1], mask)
        checks["sdpa_vs_eager_max_abs"] = max(checks["sdpa_vs_eager_max_abs"], d)
        length = ids.shape[1]
        starts = [length - n if side == "left" else 0 for n in lengths]
        # Sampled positions per row (as offsets into the padded row): first, middle and last real token.
        sample = torch.tensor([[s, s + n // 2, s + n - 1] for s, n in zip(starts, lengths)], dtype=torch.int64)
        hidden = torch.stack([last[b, sample[b]] for b in range(len(lengths))])
        pooled = hidden[:, 2]
        emb = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        # float64 per row, unpadded (transformers' float64 eager attention gives NaN rows under left padding).
        hidden_exact = torch.stack([exact_row(exact, tok, p)[sample[b] - starts[b]]
                                    for b, p in enumerate(case["prompts"])])
        err = (hidden.double() - hidden_exact).abs().amax(dim=-1)
        checks["float32_vs_float64_hidden_max_abs"] = max(checks["float32_vs_float64_hidden_max_abs"],
                                                          float(err.max()))
        checks["float32_vs_float64_hidden_max_rel"] = max(
            checks["float32_vs_float64_hidden_max_rel"], float((err / hidden_exact.abs().amax(dim=-1)).max()))
        emb_exact = torch.nn.functional.normalize(hidden_exact[:, 2], p=2, dim=-1)
        checks["float32_vs_float64_embedding_max_abs"] = max(checks["float32_vs_float64_embedding_max_abs"],
                                                             float((emb.double() - emb_exact).abs().max()))
        real = last.abs() * mask[..., None]
        peak, channel = real.max(dim=-1)
        for b, prompt in enumerate(case["prompts"]):
            if len(case["prompts"]) > 1:
                if prompt not in single:
                    one = {"prompts": [prompt]}
                    i1, m1, p1, _, _ = build(tok, one)
                    single[prompt] = model(input_ids=i1, attention_mask=m1, position_ids=p1,
                                           output_hidden_states=True, use_cache=False).hidden_states[-1][0, -1]
                checks["batch_vs_single_max_abs"] = max(checks["batch_vs_single_max_abs"],
                                                        float((single[prompt] - pooled[b]).abs().max()))
        for k, v in {"input_ids": ids, "attention_mask": mask, "sample_positions": sample, "hidden": hidden,
                     "hidden_exact": hidden_exact.float(), "embedding": emb, "peak_abs": peak * mask, "peak_channel": channel * mask}.items():
            tensors[f"{cid}.{k}"] = v.contiguous()
        stats[cid] = {"largest_abs": float(peak.max()), "channel_of_largest": int(channel.flatten()[peak.argmax()]),
                      "median_abs": float(last[mask.bool()].abs().median())}
        cases_meta.append({"id": cid, "what": case["what"], "padding_side": side, "prompts": case["prompts"],
                           "lengths": lengths})
    hashes = {p.name: base.sha256_file(p) for p in sorted(snapshot.iterdir())
              if p.is_file() and (p.suffix in (".safetensors", ".json"))}
    meta = {
        "format": 1,
        "generator": "tests/oracle/real_decoder_fixtures.py",
        "versions": {**base.versions(), "gguf": gguf_version()},
        "snapshot": {"sha256": hashes, "weight_layout": layouts, "init_model_flags": INIT_MODEL_FLAGS,
                     "gguf_sha256": base.sha256_file(gguf_path) if gguf_path else None,
                     "config": json.loads((snapshot / "config.json").read_text())},
        "dtype": "float32 weights and computation on CPU, eager attention (sdpa checked to agree); hidden_exact "
                 "from a float64 copy",
        "pad_token_id": base.PAD_TOKEN_ID,
        "semantics": {
            "input_ids, attention_mask": "[B, L] int64, padded on padding_side with pad_token_id; 1-D positions "
                                         "counting real tokens only",
            "sample_positions": "[B, 3] int64: first, middle (start + n/2) and last real token of each row",
            "hidden": "[B, 3, H] float32: final-norm hidden states (hidden_states[-1]) at sample_positions",
            "hidden_exact": "[B, 3, H]: the same states from the model cast to float64 (each row run alone, "
                            "unpadded), rounded to float32: the exact answer float32 rounding is measured against",
            "embedding": "[B, H] float32: hidden at the last real token, L2-normalised",
            "peak_abs, peak_channel": "[B, L]: per position the largest |final hidden value| and its channel "
                                      "(0 at pads)",
        },
        "activation_stats": stats,
        "checks": checks,
        "cases": cases_meta,
    }
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "expected.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.chmod(tmp, 0o644)
    os.replace(tmp, out / "expected.safetensors")
    with open(out / "cases.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(json.dumps(checks), file=sys.stderr)
    print(json.dumps(stats), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snapshot", required=True, help="the folder saha-init-model --text-from-gguf wrote")
    ap.add_argument("--gguf", help="the GGUF file it was written from (checks the dequantisation)")
    ap.add_argument("--out", required=True, help="fixture folder (tests/fixtures/real_decoder)")
    args = ap.parse_args()
    base.import_stack()
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    generate(args.snapshot, args.gguf, args.out)


if __name__ == "__main__":
    main()
