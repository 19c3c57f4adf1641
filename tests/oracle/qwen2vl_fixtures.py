#!/usr/bin/env python3
"""Parity fixture generator for the Rust Qwen2-VL / Qwen2.5-VL embedding model (developers run it; CI does not).

It runs Hugging Face transformers' Qwen2-VL (or Qwen2.5-VL, by the snapshot's `model_type`) on a tiny
random-weight snapshot and stores, per case, the
exact model inputs (token ids, attention mask, pixel values, grids, M-RoPE position ids) and outputs
(final-norm hidden states at every real position, the pooled last-real-token state and the L2-normalised
embedding) that the Rust implementation must reproduce. Prompts follow the SaHa reference template
(reference-code.md §3.2): a system prompt, the user text, `<|im_end|>\\n<|im_start|>assistant\\n`, pooling
at the last real token (the `\\n` after `assistant`).

Usage:
  python3 tests/oracle/qwen2vl_fixtures.py --snapshot DIR --out tests/fixtures/qwen2vl
  python3 tests/oracle/qwen2vl_fixtures.py --snapshot DIR25 --out tests/fixtures/qwen2_5vl --pixel-hashes
  python3 tests/oracle/qwen2vl_fixtures.py --make-snapshot DIR [--seed 0] [--tokenizer FILE]
  (both together: build the snapshot, then generate the fixtures from it)

DIR is a Hugging Face-layout snapshot folder: config.json (flat original Qwen2-VL layout or the nested
text_config layout), model.safetensors (or shards *.safetensors; tensor names in Layout A `visual.*`/`model.*`
or Layout B `model.visual.*`/`model.language_model.*`), tokenizer.json, preprocessor_config.json. The fixture
generation reads only that folder. `--make-snapshot` exists to develop this script before the Rust
`saha-init-model` tool exists; it builds a snapshot with transformers and a seeded torch init.

Needs: torch, transformers (5.x tested), tokenizers, pillow, numpy, safetensors. Everything runs on CPU in
float32 with eager attention (sdpa is checked to agree).
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
# Replaced by tests/oracle/qwen3vl_fixtures.py, which reuses this generator for Qwen3-VL.
GENERATOR = "tests/oracle/qwen2vl_fixtures.py"
DEFAULT_TOKENIZER = REPO / ".tools" / "qwen-tokenizer" / "qwen2-vl-tokenizer.json"

# The README string every SaHa command passes as --Q_prompt and --D_prompt (reference-code.md §3.1).
SYSTEM_PROMPT = (
    "Given an image, summarize the provided image in one word. Given only text, describe the text in one word."
)
QUERY_SUFFIX_TEXT = "\nRepresent the given text in one word."
QUERY_SUFFIX_IMAGE = "\nRepresent the given text/image in one word."

IMAGE_PAD = "<|image_pad|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
PAD_TOKEN_ID = 151643  # <|endoftext|>, Qwen's pad token

# checkpoints.md §2.3: the tiny config, flat original Qwen2-VL layout.
TINY_CONFIG = {
    "architectures": ["Qwen2VLForConditionalGeneration"],
    "model_type": "qwen2_vl",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "vision_token_id": 151654,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "torch_dtype": "float32",
    "vision_config": {
        "depth": 2,
        "embed_dim": 32,
        "num_heads": 4,
        "mlp_ratio": 4,
        "hidden_act": "quick_gelu",
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "in_channels": 3,
        "hidden_size": 64,
    },
}

# checkpoints.md §2.4, with a small max_pixels (at most 16 merged tokens per image).
TINY_PREPROCESSOR = {
    "image_processor_type": "Qwen2VLImageProcessor",
    "min_pixels": 3136,
    "max_pixels": 28 * 28 * 16,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "do_convert_rgb": True,
    "do_resize": True,
    "do_rescale": True,
    "do_normalize": True,
}

# Deterministic test images: (file name, width, height, seed). Sizes below are width x height; grids are
# [t, h, w] in 14-pixel patches (one merged token per 2x2 patches).
IMAGES = [
    ("img_112x84.png", 112, 84, 1),  # kept at 112x84, grid [1,6,8], 12 tokens
    ("img_100x50.png", 100, 50, 2),  # non-square, rounded to 112x56, grid [1,4,8], 8 tokens
    ("img_28x28.png", 28, 28, 3),  # upscaled by min_pixels to 56x56, grid [1,4,4], 4 tokens
    ("img_56x84.png", 56, 84, 4),  # portrait, kept, grid [1,6,4], 6 tokens
    ("img_37x23.png", 37, 23, 5),  # odd size, upscaled by min_pixels to 84x56, grid [1,4,6], 6 tokens
    ("img_300x120.png", 300, 120, 6),  # downscaled by max_pixels to 168x56, grid [1,4,12], 12 tokens
]
# Qwen2.5-VL only: with max_pixels 28*28*36, resized to 168x140, grid [1,10,12]: 5 x 6 merged tokens, so
# four 112-pixel attention windows of 4x4, 4x2, 1x4 and 1x2 merged tokens.
WINDOW_IMAGES = [("img_160x140.png", 160, 140, 7)]

ARCH_CLASSES = {"qwen2_vl": "Qwen2VLForConditionalGeneration",
                "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
                "qwen3_vl": "Qwen3VLForConditionalGeneration"}

LONG_TEXT = (
    "Find me an everyday image that matches the given caption: On a quiet Sunday morning an elderly man "
    "in a faded blue raincoat walks his two small dogs along the harbour wall, past a row of brightly painted "
    "fishing boats, a café with its chairs still stacked on the tables, and a young woman who is photographing "
    "seagulls fighting over the remains of a sandwich left on a wooden bench."
)


def q(text, image):
    """A query's user text: the reference appends the query-only suffix (reference-code.md §3.1)."""
    return text + (QUERY_SUFFIX_IMAGE if image else QUERY_SUFFIX_TEXT)


def item(user, image=None, wrapped=False):
    return {"user": user, "image": image, "wrapped": wrapped}


# Each case: id, what it exercises, items (a batch of one unless padding is set), padding side.
CASES = [
    {"id": "case01", "what": "text only, short query (1-D positions)",
     "items": [item(q("A man riding a bike.", False))]},
    {"id": "case02", "what": "text only, long query (~120 tokens)",
     "items": [item(q(LONG_TEXT, False))]},
    {"id": "case03",
     "what": "image only, bare unwrapped <|image_pad|> (reference style, 1-D positions on all 3 M-RoPE rows); "
             "also stores the vision tower intermediates",
     "items": [item(IMAGE_PAD, "img_112x84.png")], "vision_debug": True},
    {"id": "case04", "what": "image + text, unwrapped, non-square image 100x50 (1-D positions)",
     "items": [item(q(IMAGE_PAD + " What is shown in this picture?", True), "img_100x50.png")]},
    {"id": "case05",
     "what": "image + text WRAPPED in <|vision_start|>..<|vision_end|>: 3-D M-RoPE positions as transformers' "
             "get_rope_index computes them (non-square grid)",
     "items": [item(q(VISION_START + IMAGE_PAD + VISION_END + "What is shown in this picture?", True),
                    "img_100x50.png", wrapped=True)]},
    {"id": "case06a", "what": "image target 28x28, upscaled by min_pixels to 56x56",
     "items": [item(IMAGE_PAD + " Represent the given image.", "img_28x28.png")]},
    {"id": "case06b", "what": "image target 56x84 (portrait, kept; grid h > w)",
     "items": [item(IMAGE_PAD + " Represent the given image.", "img_56x84.png")]},
    {"id": "case06c", "what": "image target 37x23, upscaled by min_pixels to 84x56",
     "items": [item(IMAGE_PAD + " Represent the given image.", "img_37x23.png")]},
    {"id": "case06d", "what": "image target 300x120, downscaled by max_pixels to 168x56",
     "items": [item(IMAGE_PAD + " Represent the given image.", "img_300x120.png")]},
]
BATCH_ITEMS = [
    item(q("A man riding a bike.", False)),
    item("A red fishing boat in a small harbour."),
    item(q(IMAGE_PAD + " Find the matching caption.", True), "img_56x84.png"),
    item(q(VISION_START + IMAGE_PAD + VISION_END + "What is shown in this picture?", True), "img_100x50.png",
         wrapped=True),
]
# Qwen2.5-VL only: window attention over an image of several windows, packed with a second image.
WINDOW_CASES = [
    {"id": "case08",
     "what": "Qwen2.5-VL windows: an image of 4 attention windows (2 partial) and a wrapped 100x50 image in one "
             "right-padded batch; also stores the vision tower intermediates for both images",
     "items": [item(IMAGE_PAD + " Represent the given image.", "img_160x140.png"),
               item(q(VISION_START + IMAGE_PAD + VISION_END + "What is shown in this picture?", True),
                    "img_100x50.png", wrapped=True)],
     "padding": "right", "vision_debug": True},
]
for side in ("left", "right"):
    CASES.append({
        "id": "case07" + side[0],
        "what": f"padded batch of 4 (2 text, 2 image of different sizes, one unwrapped one wrapped), "
                f"{side} padding with pad id {PAD_TOKEN_ID}, pooled at the last real token",
        "items": BATCH_ITEMS, "padding": side,
    })

# checkpoints.md §1.3: transformers' Qwen2-VL integration test ids.
TOKENIZER_CHECK_TEXT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                        "<|vision_start|><|image_pad|><|image_pad|>")
TOKENIZER_CHECK_IDS = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198,
                       151652, 151655, 151655]


def template(user, system=SYSTEM_PROMPT):
    """Qwen2_VL_process_fn (reference-code.md §3.2)."""
    if system is not None:
        return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def die(msg):
    sys.exit(f"{Path(GENERATOR).stem}: error: {msg}")


def import_stack():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import tokenizers  # noqa: F401
        import PIL  # noqa: F401
        import safetensors  # noqa: F401
    except ImportError as e:
        die(f"{e}; install with: python3 -m pip install torch transformers tokenizers pillow safetensors numpy")


# ------------------------------------------------------------------------------------------------------
# --make-snapshot
# ------------------------------------------------------------------------------------------------------

def layout_a_name(name):
    """transformers 5.x module name -> Layout A (HF original Qwen2-VL) checkpoint name."""
    if name.startswith("model.visual."):
        return "visual." + name[len("model.visual."):]
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model."):]
    return name


def make_snapshot(out, seed, tokenizer):
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    if not Path(tokenizer).is_file():
        die(f"tokenizer {tokenizer} not found; run scripts/fetch-tokenizer.sh first")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "config.json", "w") as f:
        json.dump(TINY_CONFIG, f, indent=2)
        f.write("\n")
    with open(out / "preprocessor_config.json", "w") as f:
        json.dump(TINY_PREPROCESSOR, f, indent=2)
        f.write("\n")
    shutil.copyfile(tokenizer, out / "tokenizer.json")

    cfg = Qwen2VLConfig.from_pretrained(out)
    model = Qwen2VLForConditionalGeneration(cfg)
    # Seeded init that makes every tensor matter (norm weights != 1, biases != 0) and keeps activations O(1):
    # weights N(0, 1/fan_in), embeddings N(0, 1), norm weights 1 + 0.1 N, biases 0.1 N.
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, p in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        shape = tuple(p.shape)
        if name.endswith(".bias"):
            v = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1:
            v = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif "embed_tokens" in name:
            v = torch.randn(shape, generator=g)
        else:
            fan_in = int(np.prod(shape[1:]))
            v = torch.randn(shape, generator=g) / fan_in ** 0.5
        tensors[layout_a_name(name)] = v.to(torch.float32).contiguous()
    # A single metadata key: safetensors writes the metadata map in no fixed order, so more keys would make
    # the file bytes (and the snapshot hash) vary between runs.
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    os.chmod(out / "model.safetensors", 0o644)
    print(f"wrote snapshot {out} ({len(tensors)} tensors, seed {seed})", file=sys.stderr)


# ------------------------------------------------------------------------------------------------------
# Snapshot loading
# ------------------------------------------------------------------------------------------------------

def model_name(file_name):
    """Checkpoint name (Layout A or B) -> transformers 5.x module name."""
    if file_name.startswith(("model.visual.", "model.language_model.", "lm_head.")):
        return file_name
    if file_name.startswith("visual."):
        return "model." + file_name
    if file_name.startswith("model."):
        return "model.language_model." + file_name[len("model."):]
    return file_name


def weight_files(snapshot):
    files = sorted(p for p in Path(snapshot).glob("*.safetensors"))
    if not files:
        die(f"{snapshot} has no *.safetensors file")
    return files


def load_model(snapshot, attn):
    import torch
    import transformers
    from safetensors import safe_open

    model_type = json.loads((Path(snapshot) / "config.json").read_text())["model_type"]
    if model_type not in ARCH_CLASSES:
        die(f"model_type {model_type} is not one of {sorted(ARCH_CLASSES)}")
    cls = getattr(transformers, ARCH_CLASSES[model_type])
    model = cls.from_pretrained(snapshot, dtype=torch.float32, attn_implementation=attn)
    model.eval()
    # Refuse a silent mis-load (transformers initialises missing tensors at random): every tensor in the
    # files must land in the model, and every model tensor must come from the files (lm_head only if tied).
    sd = model.state_dict()
    seen = set()
    layouts = set()
    for path in weight_files(snapshot):
        with safe_open(str(path), framework="pt") as f:
            for k in f.keys():
                layouts.add("B" if k.startswith(("model.visual.", "model.language_model.")) else
                            "A" if k.startswith(("visual.", "model.")) else "other")
                name = model_name(k)
                if name not in sd:
                    die(f"{path.name}: tensor {k} ({name}) is not a {cls.__name__} parameter")
                t = f.get_tensor(k).to(torch.float32)
                if tuple(t.shape) != tuple(sd[name].shape) or not torch.equal(t, sd[name]):
                    die(f"{path.name}: tensor {k} did not load into {name} unchanged")
                seen.add(name)
    missing = [k for k in sd if k not in seen and not (k == "lm_head.weight" and model.config.tie_word_embeddings)]
    if missing:
        die(f"snapshot lacks tensors {missing[:5]}{'...' if len(missing) > 5 else ''}")
    if model.config.tie_word_embeddings and "lm_head.weight" not in seen:
        assert torch.equal(sd["lm_head.weight"], sd["model.language_model.embed_tokens.weight"])
    return model, sorted(layouts)


def load_image_processor(snapshot):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    # The PIL backend is what the reference (transformers 4.46) used: Pillow resize on uint8 pixels.
    return Qwen2VLImageProcessorPil.from_pretrained(snapshot)


# ------------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------------

def make_image(width, height, seed):
    """Smooth RGB gradients plus noise, deterministic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    phase = rng.uniform(0, 2 * np.pi, 3)
    r = 255 * u
    g = 255 * (0.5 + 0.5 * np.sin(2 * np.pi * (u + v) + phase[1]))
    b = 255 * (1 - v) * (0.6 + 0.4 * np.cos(3 * np.pi * u * v + phase[2]))
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 18, (height, width, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write_images(out_dir, images):
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, w, h, seed in images:
        Image.fromarray(make_image(w, h, seed), "RGB").save(out_dir / name, format="PNG", optimize=False)


# ------------------------------------------------------------------------------------------------------
# Fixture generation
# ------------------------------------------------------------------------------------------------------

def versions():
    import PIL
    import safetensors
    import tokenizers
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "pillow": PIL.__version__, "numpy": np.__version__, "safetensors": safetensors.__version__}


def rope_positions(model, ids, grids, wrapped, image_token_id):
    """Position ids [3, n] for one unpadded row.

    Unwrapped (no <|vision_start|>): the reference's transformers 4.46 get_rope_index finds no image, so every
    token, image tokens included, gets 1-D arange positions on all three rows. Wrapped: transformers'
    get_rope_index (3-D positions for image tokens, text continuing from max + 1)."""
    import torch

    n = ids.shape[0]
    if not wrapped or not grids:
        return torch.arange(n, dtype=torch.int64).view(1, -1).expand(3, -1).clone()
    mm = (ids == image_token_id).to(torch.int32)[None]
    pos, _ = model.model.get_rope_index(ids[None], mm_token_type_ids=mm,
                                        image_grid_thw=torch.tensor(grids, dtype=torch.int64))
    return pos[:, 0].to(torch.int64)


def forward(model, batch):
    import torch

    kw = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
              position_ids=batch["position_ids"], output_hidden_states=True, use_cache=False, return_dict=True)
    if batch["pixel_values"] is not None:
        kw.update(pixel_values=batch["pixel_values"], image_grid_thw=batch["image_grid_thw"])
    with torch.no_grad():
        out = model(**kw)
    return out.hidden_states[-1]


def build_batch(model, tok, ip, case, img_dir, cfg):
    """Tokenise, pad and lay out the inputs of one case (a batch of one or more items)."""
    import torch
    from PIL import Image

    image_token_id = cfg["image_token_id"]
    merge = ip.merge_size
    rows, items_meta, pixels, grids, image_names = [], [], [], [], []
    for it in case["items"]:
        prompt = template(it["user"])
        n_img = 0
        grid = None
        if it["image"] is not None:
            assert prompt.count(IMAGE_PAD) == 1, "one image placeholder per item"
            feats = ip(images=[Image.open(img_dir / it["image"])], return_tensors="np")
            pv, g = feats["pixel_values"], feats["image_grid_thw"]
            grid = [int(x) for x in g[0]]
            n_img = int(np.prod(grid)) // merge ** 2
            pixels.append(torch.from_numpy(np.ascontiguousarray(pv, dtype=np.float32)))
            grids.append(grid)
            image_names.append(it["image"])
            expanded = prompt.replace(IMAGE_PAD, IMAGE_PAD * n_img, 1)
        else:
            assert IMAGE_PAD not in prompt
            expanded = prompt
        ids = tok.encode(expanded, add_special_tokens=False).ids
        assert sum(1 for i in ids if i == image_token_id) == n_img
        ids = torch.tensor(ids, dtype=torch.int64)
        pos = rope_positions(model, ids, [grid] if grid else [], it["wrapped"], image_token_id)
        rows.append((ids, pos))
        items_meta.append({"prompt": prompt, "image": it["image"], "wrapped": it["wrapped"],
                           "positions": "mrope-3d" if it["wrapped"] else "1d",
                           "grid_thw": grid, "n_image_tokens": n_img, "length": int(ids.shape[0])})
    side = case.get("padding") or "right"
    length = max(r[0].shape[0] for r in rows)
    bsz = len(rows)
    input_ids = torch.full((bsz, length), PAD_TOKEN_ID, dtype=torch.int64)
    mask = torch.zeros((bsz, length), dtype=torch.int64)
    position_ids = torch.zeros((3, bsz, length), dtype=torch.int64)  # pads hold 0
    pool_index = torch.zeros((bsz,), dtype=torch.int64)
    for b, (ids, pos) in enumerate(rows):
        n = ids.shape[0]
        sl = slice(length - n, length) if side == "left" else slice(0, n)
        input_ids[b, sl] = ids
        mask[b, sl] = 1
        position_ids[:, b, sl] = pos
        pool_index[b] = (length - 1) if side == "left" else (n - 1)
    return {
        "input_ids": input_ids, "attention_mask": mask, "position_ids": position_ids, "pool_index": pool_index,
        "pixel_values": torch.cat(pixels) if pixels else None,
        "image_grid_thw": torch.tensor(grids, dtype=torch.int64) if grids else None,
        "items": items_meta, "images": image_names,
    }


def vision_patch_embed(visual, pixel_values, grid_thw):
    """What the vision tower's first block receives: Qwen2-VL's Conv3d patch embedding."""
    return visual.patch_embed(pixel_values)


def pool(last, batch):
    """The reference's 'last' pooling (reference-code.md §3.5), then L2 normalisation."""
    import torch

    mask = batch["attention_mask"]
    bsz = mask.shape[0]
    left_padding = bool(mask[:, -1].sum() == bsz)
    if left_padding:
        reps = last[torch.arange(bsz), -1, :]
    else:
        reps = last[torch.arange(bsz), mask.sum(dim=1) - 1]
    assert torch.equal(reps, last[torch.arange(bsz), batch["pool_index"]])
    return reps, torch.nn.functional.normalize(reps, p=2, dim=-1)


def real_max_diff(a, b, mask):
    m = mask.bool()
    return float((a[m] - b[m]).abs().max())


def generate(snapshot, out, pixel_hashes):
    import torch
    from safetensors.torch import save_file
    from tokenizers import Tokenizer

    torch.set_grad_enabled(False)
    snapshot = Path(snapshot)
    out = Path(out)
    for f in ("config.json", "tokenizer.json", "preprocessor_config.json"):
        if not (snapshot / f).is_file():
            die(f"{snapshot} lacks {f}")
    cfg_json = json.loads((snapshot / "config.json").read_text())
    model, layouts = load_model(snapshot, "eager")
    sdpa, _ = load_model(snapshot, "sdpa")
    assert model.config._attn_implementation == "eager"
    assert model.config.vision_config._attn_implementation == "eager"
    ip = load_image_processor(snapshot)
    tok = Tokenizer.from_file(str(snapshot / "tokenizer.json"))
    cfg = {k: getattr(model.config, k) for k in ("image_token_id", "vision_start_token_id", "vision_end_token_id")}

    tok_ids = tok.encode(TOKENIZER_CHECK_TEXT, add_special_tokens=False).ids
    if tok_ids != TOKENIZER_CHECK_IDS:
        die(f"the snapshot tokenizer encodes the Qwen2-VL test string as {tok_ids}, expected {TOKENIZER_CHECK_IDS}")

    windows = cfg_json["model_type"] == "qwen2_5_vl"
    images = IMAGES + (WINDOW_IMAGES if windows else [])
    cases = CASES + (WINDOW_CASES if windows else [])
    img_dir = out / "images"
    write_images(img_dir, images)

    tensors = {}
    images_meta = {}
    cases_meta = []
    checks = {"sdpa_vs_eager_max_abs": 0.0, "sdpa_vs_eager_max_rel": 0.0, "batch_vs_single_pooled_max_abs": 0.0,
              "wrapped_model_computed_positions_max_abs": 0.0}
    single_pooled = {}  # (prompt, image) -> pooled vector from a batch-of-one run

    def single_run(it):
        key = (template(it["user"]), it["image"])
        if key not in single_pooled:
            b = build_batch(model, tok, ip, {"items": [it]}, img_dir, cfg)
            single_pooled[key] = pool(forward(model, b), b)[0][0]
        return single_pooled[key]

    for case in cases:
        cid = case["id"]
        batch = build_batch(model, tok, ip, case, img_dir, cfg)
        last = forward(model, batch)
        mask = batch["attention_mask"]
        pooled, emb = pool(last, batch)

        # sdpa must agree with eager on every real position.
        # float32 round-off (the vision tower's attention) gives differences of a few 1e-6 on values up to ~4.
        d = real_max_diff(last, forward(sdpa, batch), mask)
        rel = d / float(last[mask.bool()].abs().max())
        checks["sdpa_vs_eager_max_abs"] = max(checks["sdpa_vs_eager_max_abs"], d)
        checks["sdpa_vs_eager_max_rel"] = max(checks["sdpa_vs_eager_max_rel"], rel)
        if rel > 1e-6:
            warnings.warn(f"{cid}: sdpa differs from eager by {d:.3g} ({rel:.3g} of the largest value)")
        if rel > 1e-5:
            die(f"{cid}: sdpa differs from eager by {d:.3g} ({rel:.3g} of the largest value)")

        # Wrapped single items: transformers' own position computation (mm_token_type_ids, no position_ids)
        # must give what we stored.
        if any(it["wrapped"] for it in case["items"]) and len(case["items"]) == 1:
            with torch.no_grad():
                o = model(input_ids=batch["input_ids"], attention_mask=mask, pixel_values=batch["pixel_values"],
                          image_grid_thw=batch["image_grid_thw"],
                          mm_token_type_ids=(batch["input_ids"] == cfg["image_token_id"]).to(torch.int32),
                          output_hidden_states=True, use_cache=False)
            d = real_max_diff(last, o.hidden_states[-1], mask)
            checks["wrapped_model_computed_positions_max_abs"] = max(
                checks["wrapped_model_computed_positions_max_abs"], d)
            if d > 1e-6:
                die(f"{cid}: stored 3-D positions disagree with transformers' own ({d:.3g})")

        # Padded batches: each row's pooled vector equals the same item run alone.
        if len(case["items"]) > 1:
            for b, it in enumerate(case["items"]):
                d = float((pooled[b] - single_run(it)).abs().max())
                checks["batch_vs_single_pooled_max_abs"] = max(checks["batch_vs_single_pooled_max_abs"], d)
                if d > 1e-5:
                    die(f"{cid} row {b}: pooled differs from the single-item run by {d:.3g}")

        last_stored = last * mask[..., None].to(last.dtype)  # pad positions set to 0
        names = {
            "input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
            "position_ids": batch["position_ids"], "pool_index": batch["pool_index"],
            "last_hidden": last_stored, "pooled": pooled, "embedding": emb,
        }
        if batch["image_grid_thw"] is not None:
            names["image_grid_thw"] = batch["image_grid_thw"]
        for k, v in names.items():
            tensors[f"{cid}.{k}"] = v.contiguous()

        # Per-image preprocessing results, stored once per image (a case's pixel_values is the concatenation,
        # in item order, of its images' pixel_values).
        off = 0
        for name, grid in zip(batch["images"], batch["image_grid_thw"].tolist() if batch["images"] else []):
            n = int(np.prod(grid))
            pv = batch["pixel_values"][off:off + n]
            off += n
            stem = Path(name).stem
            # The pixels' float32 little-endian bytes, hashed: bit-identical pixels, at no fixture size.
            pixel_sha = hashlib.sha256(pv.contiguous().numpy().astype("<f4").tobytes()).hexdigest()
            if name in images_meta:
                assert images_meta[name]["pixel_values_sha256"] == pixel_sha
                continue
            if not pixel_hashes:
                tensors[f"image.{stem}.pixel_values"] = pv.contiguous()
            tensors[f"image.{stem}.image_grid_thw"] = torch.tensor([grid], dtype=torch.int64)
            w, h = next((w, h) for (f, w, h, _) in images if f == name)
            images_meta[name] = {"file": f"images/{name}", "width": w, "height": h, "grid_thw": grid,
                                 "resized_hw": [grid[1] * ip.patch_size, grid[2] * ip.patch_size],
                                 "n_patches": n, "n_tokens": n // ip.merge_size ** 2,
                                 "sha256": sha256_file(img_dir / name),
                                 "pixel_values_sha256": pixel_sha,
                                 "image_grid_thw": f"image.{stem}.image_grid_thw"}
            if not pixel_hashes:
                images_meta[name]["pixel_values"] = f"image.{stem}.pixel_values"

        if case.get("vision_debug"):
            visual = model.model.visual
            vis = visual(batch["pixel_values"], grid_thw=batch["image_grid_thw"], return_dict=True)
            tensors[f"{cid}.vision.patch_embed"] = vision_patch_embed(
                visual, batch["pixel_values"], batch["image_grid_thw"]).contiguous()
            for i, feature in enumerate(getattr(vis, "deepstack_features", None) or []):
                tensors[f"{cid}.vision.deepstack.{i}"] = feature.contiguous()
            tensors[f"{cid}.vision.blocks_out"] = vis.last_hidden_state.contiguous()
            tensors[f"{cid}.vision.merged"] = vis.pooler_output.contiguous()
            # The merged embeddings are what is scattered into the image token slots.
            assert vis.pooler_output.shape[0] == int((batch["input_ids"] == cfg["image_token_id"]).sum())

        cases_meta.append({
            "id": cid, "what": case["what"], "batch_size": len(case["items"]),
            "padding_side": case.get("padding"), "length": int(batch["input_ids"].shape[1]),
            "items": batch["items"], "images": batch["images"],
            "tensors": sorted(k for k in tensors if k.startswith(cid + ".")),
        })

    snap_files = {p.name: sha256_file(p) for p in sorted(snapshot.iterdir())
                  if p.is_file() and (p.suffix == ".safetensors" or p.name in (
                      "config.json", "tokenizer.json", "preprocessor_config.json", "model.safetensors.index.json"))}
    meta = {
        "format": 1,
        "generator": GENERATOR,
        "versions": versions(),
        "snapshot": {
            "sha256": snap_files,
            "weight_layout": layouts,
            "config": cfg_json,
            "preprocessor": json.loads((snapshot / "preprocessor_config.json").read_text()),
            "image_processor_used": {"class": type(ip).__name__, "min_pixels": ip.size["shortest_edge"],
                                     "max_pixels": ip.size["longest_edge"], "resample": int(ip.resample),
                                     "patch_size": ip.patch_size, "merge_size": ip.merge_size,
                                     "temporal_patch_size": ip.temporal_patch_size},
        },
        "dtype": ("weights and all computation float32 on CPU, eager attention (text and vision); sdpa checked "
                  "to agree. Stored: ids/masks/positions/grids int64, everything else float32."),
        "template": {
            "system_prompt": SYSTEM_PROMPT,
            "form": "<|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{user}<|im_end|>\\n"
                    "<|im_start|>assistant\\n",
            "image_placeholder": "each prompt holds one <|image_pad|>; expand it into "
                                 "prod(image_grid_thw)/merge_size^2 copies before tokenising",
            "add_special_tokens": False,
        },
        "pad_token_id": PAD_TOKEN_ID,
        "image_token_id": cfg["image_token_id"],
        "tokenizer_check": {"text": TOKENIZER_CHECK_TEXT, "ids": tok_ids},
        "semantics": {
            "input_ids": "[B, L] int64; padded with pad_token_id on padding_side (right for batches of one)",
            "attention_mask": "[B, L] int64",
            "position_ids": "[3, B, L] int64, the M-RoPE (t, h, w) rows passed to the model; 1-D arange on all "
                            "rows for unwrapped prompts (reference), get_rope_index for wrapped ones; computed "
                            "over real tokens only (start at 0 after left padding); pads hold 0",
            "pool_index": "[B] int64, the last real token",
            "last_hidden": "[B, L, H] float32, hidden_states[-1] = final RMSNorm output; pad positions are "
                           "set to 0 (compare only where attention_mask == 1)",
            "pooled": "[B, H] last_hidden at pool_index",
            "embedding": "[B, H] pooled / ||pooled||_2",
            "image_grid_thw": "[n_images, 3] int64, the case's images in item order",
            "image.<stem>.pixel_values": "[n_patches, 3*2*14*14] float32 from the image processor (PIL "
                                         "backend); a case's pixel_values = concat of its images' in item order",
            "case03.vision.*": "patch_embed [n_patches, embed_dim] (Conv3d output), blocks_out [n_patches, "
                               "embed_dim] (after the last vision block, before the merger), merged [n_tokens, "
                               "H] (model.visual(...).pooler_output, scattered into the image token slots)",
        },
        "checks": checks,
        "images": list(images_meta.values()),
        "model_type": cfg_json["model_type"],
        "cases": cases_meta,
    }
    if windows:
        meta["semantics"]["case08.vision.*"] = (
            "as case03.vision.*, for the case's two images packed; blocks_out rows are in Qwen2.5-VL's window "
            "order (transformers' last_hidden_state), merged rows back in the processor's order")
    if pixel_hashes:
        meta["semantics"]["image.<stem>.pixel_values"] = (
            "not stored: images[i].pixel_values_sha256 is the sha256 of the image processor's output "
            "[n_patches, 3*2*14*14] as float32 little-endian bytes")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "expected.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})  # one key only, see make_snapshot
    os.chmod(tmp, 0o644)
    os.replace(tmp, out / "expected.safetensors")
    with open(out / "cases.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(json.dumps(checks), file=sys.stderr)
    print(f"wrote {out}/expected.safetensors ({len(tensors)} tensors), {out}/cases.json, {len(images)} images",
          file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--snapshot", help="snapshot folder to generate fixtures from")
    ap.add_argument("--out", help="fixture output folder (e.g. tests/fixtures/qwen2vl)")
    ap.add_argument("--make-snapshot", metavar="DIR", help="build a tiny random snapshot with transformers")
    ap.add_argument("--seed", type=int, default=0, help="seed for --make-snapshot (default 0)")
    ap.add_argument("--pixel-hashes", action="store_true",
                    help="store each image's pixel values as the sha256 of their float32 bytes only (smaller "
                         "fixtures; the Rust test then needs bit-identical pixels)")
    ap.add_argument("--tokenizer", default=str(DEFAULT_TOKENIZER),
                    help="tokenizer.json for --make-snapshot (default: scripts/fetch-tokenizer.sh's Qwen2-VL variant)")
    args = ap.parse_args()
    if not args.make_snapshot and not (args.snapshot and args.out):
        ap.error("give --snapshot DIR --out DIR, or --make-snapshot DIR")
    import_stack()
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    if args.make_snapshot:
        make_snapshot(args.make_snapshot, args.seed, args.tokenizer)
    snapshot = args.snapshot or (args.make_snapshot if args.out else None)
    if snapshot:
        if not args.out:
            ap.error("--snapshot needs --out")
        generate(snapshot, args.out, args.pixel_hashes)


if __name__ == "__main__":
    main()
