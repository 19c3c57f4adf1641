#!/usr/bin/env python3
"""Pillow oracle for the image formats beyond PNG and JPEG that MMEB-style data holds: GIF, WebP, BMP, TIFF.

Writes small deterministic images in each format under tests/fixtures/image_formats/ and what Pillow makes of
them: the mode `Image.open` gives, `convert("RGB")` (what the reference's transformers 4.46 does to every
image), `resize((24, 20))` with Pillow's default filter in the file's own mode then `convert("RGB")` (the
reference's resolution policies resize before converting, and the filter depends on the mode), and for images
with transparency the transformers 5.x composite over white. manifest.json lists them; the Rust test
(model/src/image/parity_tests.rs, `other_formats_decode_as_pillow`) reads only these files.

    python3 tests/oracle/pil_formats.py

Needs pillow (with WebP support) and numpy.
"""

import json
import os

import numpy as np
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "image_formats"))
RESIZE = (24, 20)


def pattern(h, w, seed):
    """uint8 content with smooth waves, hard edges and some noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    smooth = 128 + 90 * np.sin(x * 0.37 + seed) * np.cos(y * 0.23 - 0.5 * seed)
    checker = ((x // 4 + y // 3 + seed) % 2) * 70 - 35
    noise = ((x * 73856093) ^ (y * 19349663) ^ (seed * 83492791)) % 31 - 15
    return np.clip(np.round(smooth + checker + noise), 0, 255).astype(np.uint8)


def rgb(h, w, seed):
    return np.stack([pattern(h, w, seed + k) for k in range(3)], axis=-1)


def inputs():
    """name -> (file name, writer)."""
    out = {}

    def add(name, filename, save):
        out[name] = (filename, save)

    add("gif_p_41x29", "gif_p_41x29.gif",
        lambda p: Image.fromarray(rgb(29, 41, 1)).quantize(colors=200, dither=Image.Dither.NONE).save(p))

    def gif_trns(p):
        im = Image.fromarray(rgb(27, 33, 5)).quantize(colors=64, dither=Image.Dither.NONE)
        a = np.array(im)
        a[5:12, 7:20] = 63  # a transparent block
        out_im = Image.fromarray(a, "P")
        out_im.putpalette(im.getpalette())
        out_im.save(p, transparency=63)

    add("gif_p_trns_33x27", "gif_p_trns_33x27.gif", gif_trns)
    add("gif_l_30x20", "gif_l_30x20.gif", lambda p: Image.fromarray(pattern(20, 30, 9), "L").save(p, optimize=False))
    add("webp_lossless_37x23", "webp_lossless_37x23.webp",
        lambda p: Image.fromarray(rgb(23, 37, 2)).save(p, lossless=True))

    def webp_rgba(p):
        a = np.dstack([rgb(31, 29, 3), pattern(31, 29, 8)])
        Image.fromarray(a, "RGBA").save(p, lossless=True, exact=True)

    add("webp_lossless_rgba_29x31", "webp_lossless_rgba_29x31.webp", webp_rgba)
    add("webp_lossy_64x48", "webp_lossy_64x48.webp", lambda p: Image.fromarray(rgb(48, 64, 4)).save(p, quality=80))
    add("webp_lossy_rgba_97x61", "webp_lossy_rgba_97x61.webp",
        lambda p: Image.fromarray(np.dstack([rgb(61, 97, 14), pattern(61, 97, 15)]), "RGBA").save(p, quality=60))
    add("bmp_rgb_31x17", "bmp_rgb_31x17.bmp", lambda p: Image.fromarray(rgb(17, 31, 6)).save(p))
    add("bmp_p_23x19", "bmp_p_23x19.bmp",
        lambda p: Image.fromarray(rgb(19, 23, 7)).quantize(colors=100, dither=Image.Dither.NONE).save(p))
    add("bmp_l_26x18", "bmp_l_26x18.bmp", lambda p: Image.fromarray(pattern(18, 26, 13), "L").save(p))
    add("tiff_rgb_35x22", "tiff_rgb_35x22.tif", lambda p: Image.fromarray(rgb(22, 35, 10)).save(p))
    add("tiff_rgb_lzw_27x26", "tiff_rgb_lzw_27x26.tif",
        lambda p: Image.fromarray(rgb(26, 27, 11)).save(p, compression="tiff_lzw"))
    add("tiff_l_deflate_25x21", "tiff_l_deflate_25x21.tif",
        lambda p: Image.fromarray(pattern(21, 25, 12), "L").save(p, compression="tiff_adobe_deflate"))
    return out


def composite_on_white(im):
    """transformers 5.x convert_to_rgb on a PIL image."""
    im = im.convert("RGBA")
    background = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, im).convert("RGB")


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = []
    for name, (filename, save) in inputs().items():
        path = os.path.join(OUT, filename)
        save(path)
        im = Image.open(path)
        im.load()
        case = {"input": filename, "mode": im.mode, "width": im.size[0], "height": im.size[1]}
        case["rgb"] = f"rgb_{name}.png"
        Image.fromarray(np.array(im.convert("RGB"))).save(os.path.join(OUT, case["rgb"]))
        case["resized"] = f"resized_{name}.png"
        Image.fromarray(np.array(im.resize(RESIZE).convert("RGB"))).save(os.path.join(OUT, case["resized"]))
        if "A" in im.getbands() or im.info.get("transparency") is not None:
            case["white"] = f"white_{name}.png"
            Image.fromarray(np.array(composite_on_white(im))).save(os.path.join(OUT, case["white"]))
        cases.append(case)
    manifest = {"pillow": PIL.__version__, "resize": list(RESIZE), "cases": cases}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    for c in cases:
        print(c["input"], c["mode"], c["width"], c["height"], "white" in c)


if __name__ == "__main__":
    main()
