#!/usr/bin/env python3
"""Pillow / transformers oracle for the image module of saha-model (model/src/image).

Writes small deterministic test images and the outputs Pillow and transformers' Qwen2VLImageProcessor
produce for them under tests/fixtures/image/, described by manifest.json. The Rust parity tests
(model/src/image/parity_tests.rs) read only these files, so CI needs no Python.

    python3 tests/oracle/pil_images.py                    # Pillow sections + the installed transformers
    python3 tests/oracle/pil_images.py --fresh-inputs     # also rewrite the input images

Input images are written only when missing (or with --fresh-inputs), so running the script under a second
stack (e.g. Pillow 13 + transformers 5 after Pillow 10.4 + transformers 4.46.3) adds that stack's sections
without changing the inputs (JPEG bytes differ between libjpeg versions). Sections are keyed by the Pillow
major version (pillow."10", pillow."13") and the transformers major version (processor_v4, processor_v5);
other versions' sections are kept. See tests/fixtures/image/README.md for the committed runs.

Needs pillow and numpy; the processor sections need transformers (torch is not needed: the PIL/numpy
processor is used).
"""

import argparse
import hashlib
import json
import os
import struct
import sys
import zlib

import numpy as np
import PIL
from PIL import Image

PIL_MAJOR = PIL.__version__.split(".")[0]

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "image"))

FILTERS = {
    None: None,
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

POLICIES = ["high", "mid_high", "mid", "mid_low", "clip", "low", "random", "native"]

# name -> (min_pixels, max_pixels)
PROCESSOR_CONFIGS = {
    "small": (56 * 56, 28 * 28 * 16),
    "tiny": (56 * 56, 28 * 28 * 8),
    "class_default": (56 * 56, 28 * 28 * 1280),
    "qwen2vl_2b": (56 * 56, 12845056),
    "reference_train": (256 * 28 * 28, 1280 * 28 * 28),
}

# Processor outputs with at most this many rows are stored in full, larger ones as hash + stats.
FULL_ROWS_LIMIT = 64


# ----------------------------------------------------------------------------------------------------
# deterministic inputs


def pattern(h, w, seed, noise_amp=20, freq=1.0):
    """uint8 test content: smooth waves, a checkerboard with hard edges, saturated blocks, hash noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    smooth = 128 + 90 * np.sin(x * 0.37 * freq + seed) * np.cos(y * 0.23 * freq - 0.5 * seed)
    checker = ((x // 4 + y // 3 + seed) % 2) * 70 - 35
    noise = ((x * 73856093) ^ (y * 19349663) ^ (seed * 83492791)) % (2 * noise_amp + 1) - noise_amp
    v = smooth + checker + noise
    v[(x % 17 < 3) & (y % 11 < 4)] = 0
    v[(x % 13 > 9) & (y % 7 > 4)] = 255
    return np.clip(np.round(v), 0, 255).astype(np.uint8)


def rgb_array(h, w, seed, noise_amp=20, freq=1.0):
    return np.stack([pattern(h, w, seed + k, noise_amp, freq) for k in range(3)], axis=-1)


def png_bytes(width, height, bit_depth, color_type, rows):
    """A minimal PNG writer (for bit depths Pillow does not write, e.g. 4-bit gray)."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + r for r in rows)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def make_inputs(out, fresh):
    """Creates the input images (only missing ones unless fresh). Returns {name: filename}."""
    specs = {}

    def save(name, filename, writer):
        specs[name] = filename
        path = os.path.join(out, filename)
        if fresh or not os.path.exists(path):
            writer(path)

    save("rgb_37x23", "in_rgb_37x23.png", lambda p: Image.fromarray(rgb_array(23, 37, 1), "RGB").save(p))
    save("rgb_300x120", "in_rgb_300x120.png", lambda p: Image.fromarray(rgb_array(120, 300, 7, 2, 0.15), "RGB").save(p))
    save("l_100x40", "in_l_100x40.png", lambda p: Image.fromarray(pattern(40, 100, 3), "L").save(p))

    def rgba(p):
        a = rgb_array(33, 45, 11)
        alpha = pattern(33, 45, 5)
        alpha[:5, :] = 0
        alpha[-5:, :] = 255
        Image.fromarray(np.dstack([a, alpha]), "RGBA").save(p)

    save("rgba_45x33", "in_rgba_45x33.png", rgba)

    def la(p):
        g = pattern(13, 13, 2)
        alpha = pattern(13, 13, 9)
        alpha[0, :] = 0
        Image.fromarray(np.dstack([g, alpha]), "LA").save(p)

    save("la_13x13", "in_la_13x13.png", la)

    def palette(p, transparent):
        idx = (pattern(31, 57, 4).astype(np.int64) * 16 // 256).astype(np.uint8)
        im = Image.fromarray(idx, "P")
        pal = []
        for i in range(16):
            pal += [(i * 53) % 256, (i * 97 + 40) % 256, (255 - i * 16) % 256]
        im.putpalette(pal)
        if transparent:
            im.save(p, transparency=bytes([(i * 37) % 256 if i % 3 else 0 for i in range(16)]))
        else:
            im.save(p)

    save("p_57x31", "in_p_57x31.png", lambda p: palette(p, False))
    save("p_trns_57x31", "in_p_trns_57x31.png", lambda p: palette(p, True))

    def gray16(p):
        base = pattern(29, 37, 8).astype(np.uint32)
        hi = pattern(29, 37, 12).astype(np.uint32)
        v = np.where((np.arange(37)[None, :] + np.arange(29)[:, None]) % 3 == 0, base, base * 256 + hi)
        Image.fromarray(v.astype(np.uint16)).save(p)

    save("gray16_37x29", "in_gray16_37x29.png", gray16)
    save("bilevel_30x28", "in_bilevel_30x28.png", lambda p: Image.fromarray(pattern(28, 30, 6) > 127).save(p))

    def gray4(p):
        v = pattern(30, 29, 10) // 17
        rows = []
        for r in v:
            r = list(r) + [0] * (len(r) % 2)
            rows.append(bytes((r[i] << 4) | r[i + 1] for i in range(0, len(r), 2)))
        with open(p, "wb") as f:
            f.write(png_bytes(29, 30, 4, 0, rows))

    save("gray4_29x30", "in_gray4_29x30.png", gray4)
    save(
        "jpeg_64x48",
        "in_jpeg_64x48.jpg",
        lambda p: Image.fromarray(rgb_array(48, 64, 13), "RGB").save(p, quality=90),
    )
    save("jpeg_l_40x30", "in_jpeg_l_40x30.jpg", lambda p: Image.fromarray(pattern(30, 40, 14), "L").save(p, quality=85))
    return specs


# ----------------------------------------------------------------------------------------------------
# helpers


def samples(im):
    """The samples the Rust side compares: P expanded to RGB, '1' as 0/255 bytes, I;16 as uint16."""
    if im.mode == "P":
        im = im.convert("RGB")
    if im.mode == "1":
        im = im.convert("L")
    return np.ascontiguousarray(np.array(im))


class Store:
    """Expected sample arrays stored as PNG (uint8 with 1-4 channels, or uint16 gray), deduplicated by
    content: saving an array equal to one already on disk (from this run, an earlier run under another
    stack, or an input image read the same way by the `image` crate) returns that file's name."""

    def __init__(self, out):
        self.out = out
        self.index = {}
        for f in sorted(os.listdir(out)):
            if not f.endswith(".png"):
                continue
            im = Image.open(os.path.join(out, f))
            if f.startswith("in_") and im.mode not in ("L", "LA", "RGB", "RGBA", "I;16"):
                continue  # P and 1 inputs decode to something else than np.array gives
            self.index.setdefault(self.key(np.array(im)), f)

    @staticmethod
    def key(arr):
        return (arr.dtype.str, arr.shape, hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest())

    def save(self, filename, arr):
        k = self.key(arr)
        if k in self.index:
            return self.index[k]
        path = os.path.join(self.out, filename)
        if os.path.exists(path):  # same name, other content: written by another stack
            stem, ext = os.path.splitext(filename)
            filename = f"{stem}_pil{PIL_MAJOR}{ext}"
            path = os.path.join(self.out, filename)
        if arr.dtype == np.uint16:
            Image.fromarray(arr).save(path)
        elif arr.ndim == 2:
            Image.fromarray(arr, "L").save(path)
        else:
            Image.fromarray(arr, {2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]).save(path)
        self.index[k] = filename
        return filename


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def fnv1a64_np(arr) -> str:
    # The pure-Python loop is fine for the sizes here (a few MB at most).
    return fnv1a64(np.ascontiguousarray(arr).tobytes())


def reference_process_image(image, resolution):
    """The reference's src/dataset.py::process_image, verbatim logic (max_dim argument unused)."""
    if resolution == "high":
        image = image.resize((1344, 1344))
    elif resolution == "mid_high":
        image = image.resize((768, 768))
    elif resolution == "mid":
        image = image.resize((672, 672))
    elif resolution == "mid_low":
        image = image.resize((448, 448))
    elif resolution == "clip":
        image = image.resize((336, 336))
    elif resolution == "low":
        image = image.resize((128, 128))
    elif resolution == "native":
        pass  # the policy switched off (not a branch of the reference)
    else:
        w, h = image.size
        if max(w, h) > 2 * min(w, h):
            if w > h:
                h = w / 2
            else:
                w = h / 2
        min_dim = min(w, h)
        max_dim = max(w, h)
        scale = 1.0
        if max_dim > 992:
            scale = 992 / max_dim
        if min_dim < 336:
            scale = 336 / min_dim
        w = int(w * scale)
        h = int(h * scale)
        image = image.resize((w, h), Image.LANCZOS)
    return image


def composite_on_white(im):
    """transformers 5.x convert_to_rgb on a PIL image."""
    has_alpha = "A" in im.getbands() or im.info.get("transparency") is not None
    if not has_alpha:
        return im.convert("RGB")
    im = im.convert("RGBA")
    background = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, im).convert("RGB")


# ----------------------------------------------------------------------------------------------------
# Pillow sections


def pillow_sections(out, store, inputs):
    opened = {name: Image.open(os.path.join(out, f)) for name, f in inputs.items()}
    for im in opened.values():
        im.load()

    decode = []
    convert = []
    composite = []
    for name, im in opened.items():
        arr = samples(im)
        fn = store.save(f"dec_{name}.png", arr)
        decode.append({"input": name, "mode": im.mode, "width": im.size[0], "height": im.size[1], "expected": fn})
        fn = store.save(f"rgb_{name}.png", np.array(im.convert("RGB")))
        convert.append({"input": name, "expected": fn})
        if "A" in im.getbands() or im.info.get("transparency") is not None:
            fn = store.save(f"white_{name}.png", np.array(composite_on_white(im)))
            composite.append({"input": name, "expected": fn})

    resize_cases = [
        ("rgb_37x23", 80, 50, "bicubic"),
        ("rgb_37x23", 80, 50, "lanczos"),
        ("rgb_37x23", 13, 7, "bicubic"),
        ("rgb_37x23", 13, 7, "lanczos"),
        ("rgb_37x23", 37, 60, "bicubic"),
        ("rgb_37x23", 90, 23, "lanczos"),
        ("rgb_37x23", 50, 30, "bilinear"),
        ("rgb_37x23", 20, 20, "box"),
        ("rgb_37x23", 20, 20, "hamming"),
        ("rgb_37x23", 100, 7, "nearest"),
        ("rgb_37x23", 29, 31, None),
        ("rgb_300x120", 61, 29, "bicubic"),
        ("rgb_300x120", 61, 29, "lanczos"),
        ("rgb_300x120", 56, 168, "bicubic"),
        ("rgb_300x120", 301, 11, "lanczos"),
        ("l_100x40", 33, 77, "bicubic"),
        ("l_100x40", 250, 17, "lanczos"),
        ("l_100x40", 7, 3, "lanczos"),
        ("rgba_45x33", 80, 50, "bicubic"),
        ("rgba_45x33", 13, 7, "lanczos"),
        ("rgba_45x33", 45, 70, "lanczos"),
        ("rgba_45x33", 20, 30, "nearest"),
        ("la_13x13", 40, 40, "bicubic"),
        ("la_13x13", 5, 9, "lanczos"),
        ("p_57x31", 80, 50, "bicubic"),
        ("p_57x31", 13, 7, None),
        ("p_trns_57x31", 30, 40, "lanczos"),
        ("gray16_37x29", 80, 50, "lanczos"),
        ("gray16_37x29", 13, 7, "bicubic"),
        ("gray16_37x29", 50, 50, None),
        ("bilevel_30x28", 40, 20, "lanczos"),
        ("gray4_29x30", 64, 17, "bicubic"),
        ("jpeg_64x48", 28, 56, "bicubic"),
    ]
    resize = []
    for i, (name, w, h, filt) in enumerate(resize_cases):
        im = opened[name]
        case = {"input": name, "width": w, "height": h, "filter": filt}
        try:
            res = im.resize((w, h), FILTERS[filt]) if filt is not None else im.resize((w, h))
        except ValueError as e:
            case["error"] = str(e)
            resize.append(case)
            continue
        fn = store.save(f"rs_{i:02d}_{name}_{w}x{h}_{filt or 'default'}.png", samples(res))
        resize.append({**case, "mode": res.mode, "expected": fn})

    policy = []
    for name, im in opened.items():
        for pol in POLICIES:
            try:
                res = reference_process_image(im, pol)
            except ValueError as e:
                policy.append({"input": name, "policy": pol, "error": str(e)})
                continue
            arr = samples(res)
            policy.append(
                {
                    "input": name,
                    "policy": pol,
                    "mode": res.mode,
                    "width": res.size[0],
                    "height": res.size[1],
                    "fnv1a64": fnv1a64_np(arr),
                    "sum": int(arr.astype(np.uint64).sum()),
                }
            )
    return {"decode": decode, "convert": convert, "composite": composite, "resize": resize, "policy": policy}


# ----------------------------------------------------------------------------------------------------
# processor section


def make_processor(min_pixels, max_pixels):
    import transformers

    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil as Cls
    else:
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor as Cls
    return Cls(min_pixels=min_pixels, max_pixels=max_pixels)


def run_processor(proc, image):
    res = proc(images=image, return_tensors="np")
    pv = np.asarray(res["pixel_values"])
    grid = [int(v) for v in np.asarray(res["image_grid_thw"]).reshape(-1)]
    assert pv.dtype == np.float32, pv.dtype
    return pv, grid


def value_lut(proc):
    """float32 value of each (channel, uint8) pair, read off the processor's output for a ramp image that
    smart_resize leaves at its size (56x140 with the small config)."""
    h, w = 56, 140
    ramp = (np.arange(h * w).reshape(h, w) % 256).astype(np.uint8)
    img = np.dstack([ramp, np.roll(ramp, 85), np.roll(ramp, 170)])
    pv, grid = run_processor(proc, Image.fromarray(img, "RGB"))
    assert grid == [1, h // 14, w // 14], grid
    # Apply the processor's reshape to the uint8 input to know which value each output holds.
    t, p, m = 2, 14, 2
    x = np.tile(img.transpose(2, 0, 1)[None], (t, 1, 1, 1))
    x = x.reshape(1, t, 3, h // p // m, m, p, w // p // m, m, p).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    src = x.reshape(pv.shape)
    lut = np.zeros((3, 256), dtype=np.float32)
    per = t * p * p
    for c in range(3):
        s = src[:, c * per : (c + 1) * per].reshape(-1)
        v = pv[:, c * per : (c + 1) * per].reshape(-1)
        for u in range(256):
            vals = np.unique(v[s == u])
            assert len(vals) == 1, (c, u, vals)
            lut[c, u] = vals[0]
    return lut


def encode_with_lut(pv, lut):
    """uint8 indices with lut[channel][idx] == pv bit for bit (asserted)."""
    per = pv.shape[1] // 3
    idx = np.zeros(pv.shape, dtype=np.uint8)
    for c in range(3):
        block = pv[:, c * per : (c + 1) * per]
        i = np.searchsorted(lut[c], block)
        i = np.clip(i, 0, 255)
        assert np.array_equal(lut[c][i].view(np.uint32), block.view(np.uint32)), "value outside the LUT"
        idx[:, c * per : (c + 1) * per] = i
    return idx


def processor_section(out, store, inputs):
    import transformers

    major = int(transformers.__version__.split(".")[0])
    tag = f"v{major}"
    procs = {k: make_processor(*v) for k, v in PROCESSOR_CONFIGS.items()}
    lut = value_lut(procs["small"])
    lut_file = f"lut_{tag}.bin"
    lut.astype("<f4").tofile(os.path.join(out, lut_file))

    opened = {name: Image.open(os.path.join(out, f)) for name, f in inputs.items()}
    # (input, policy, config); policy "native" = processor on the opened image itself
    cases = [(name, "native", "small") for name in inputs]
    cases += [
        ("rgb_300x120", "native", "class_default"),
        ("rgba_45x33", "low", "tiny"),
        ("l_100x40", "random", "tiny"),
        ("p_57x31", "clip", "tiny"),
        ("gray16_37x29", "random", "tiny"),
        ("gray16_37x29", "mid", "tiny"),
        ("bilevel_30x28", "random", "tiny"),
        ("la_13x13", "mid_low", "reference_train"),
        ("rgb_37x23", "high", "qwen2vl_2b"),
        ("rgb_300x120", "random", "qwen2vl_2b"),
        ("jpeg_64x48", "mid_high", "class_default"),
    ]
    results = []
    for i, (name, pol, cfg) in enumerate(cases):
        entry = {"input": name, "policy": pol, "config": cfg}
        try:
            image = reference_process_image(opened[name], pol)
            pv, grid = run_processor(procs[cfg], image)
        except ValueError as e:
            entry["error"] = str(e)
            results.append(entry)
            continue
        entry["grid_thw"] = grid
        entry["rows"] = int(pv.shape[0])
        entry["row_len"] = int(pv.shape[1])
        entry["fnv1a64_f32"] = fnv1a64_np(pv.astype("<f4"))
        entry["sum"] = float(pv.astype(np.float64).sum())
        entry["sum_abs"] = float(np.abs(pv.astype(np.float64)).sum())
        if pv.shape[0] <= FULL_ROWS_LIMIT:
            entry["indices"] = store.save(f"px_{tag}_{i:02d}_{name}_{pol}_{cfg}.png", encode_with_lut(pv, lut))
        results.append(entry)

    return tag, {
        "transformers": transformers.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "alpha": "composite_on_white" if major >= 5 else "drop",
        "small_images": "upscale" if major >= 5 else "reject",
        "configs": {k: {"min_pixels": v[0], "max_pixels": v[1]} for k, v in PROCESSOR_CONFIGS.items()},
        "lut": lut_file,
        "cases": results,
    }


# ----------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--fresh-inputs", action="store_true", help="rewrite the input images")
    ap.add_argument("--no-processor", action="store_true", help="skip the transformers section")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    manifest_path = os.path.join(args.out, "manifest.json")
    manifest = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)

    inputs = make_inputs(args.out, args.fresh_inputs)
    manifest["inputs"] = inputs
    section = {"pillow": PIL.__version__, "numpy": np.__version__, "python": sys.version.split()[0]}
    store = Store(args.out)
    section.update(pillow_sections(args.out, store, inputs))
    manifest.setdefault("pillow", {})[PIL_MAJOR] = section
    if not args.no_processor:
        tag, section = processor_section(args.out, store, inputs)
        manifest[f"processor_{tag}"] = section

    with open(manifest_path, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    # Remove data files no section refers to any more.
    referenced = set()

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            referenced.add(v)

    walk(manifest)
    for f in os.listdir(args.out):
        if f.endswith((".png", ".bin", ".jpg")) and f not in referenced:
            os.remove(os.path.join(args.out, f))
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"wrote {manifest_path}; {len(os.listdir(args.out))} files, {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
