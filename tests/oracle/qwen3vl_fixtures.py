#!/usr/bin/env python3
"""Parity fixture generator for the Rust Qwen3-VL embedding model (developers run it; CI does not).

The Qwen2-VL generator (qwen2vl_fixtures.py) with Qwen3-VL's model class, images sized for its 16-pixel
patches (smart_resize factor 32), pixel values checked by sha256 (`--pixel-hashes`), and, for case03, the
vision tower's DeepStack features. Same cases, same
tensors, same semantics: see tests/fixtures/qwen3vl/README.md.

Usage:
  saha-init-model --arch qwen3-vl --seed 0 --tokenizer .tools/qwen-tokenizer/qwen2-vl-tokenizer.json --out DIR
  python3 tests/oracle/qwen3vl_fixtures.py --snapshot DIR --out tests/fixtures/qwen3vl
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import qwen2vl_fixtures as base  # noqa: E402

# Sizes are width x height; grids [t, h, w] in 16-pixel patches. The tiny snapshot's processor keeps areas
# within [64*64, 32*32*16] and its 8x8 position table is resampled down (grids of 4 and 6), kept (8) and up (12).
RENAMED = {
    "img_112x84.png": ("img_128x96.png", 128, 96, 1),  # kept, grid [1,6,8], 12 tokens
    "img_100x50.png": ("img_100x50.png", 100, 50, 2),  # rounded to 96x64, grid [1,4,6], 6 tokens
    "img_28x28.png": ("img_32x32.png", 32, 32, 3),  # upscaled by min_pixels to 64x64, grid [1,4,4], 4 tokens
    "img_56x84.png": ("img_64x96.png", 64, 96, 4),  # portrait, kept, grid [1,6,4], 6 tokens
    "img_37x23.png": ("img_37x23.png", 37, 23, 5),  # upscaled by min_pixels to 96x64, grid [1,4,6], 6 tokens
    "img_300x120.png": ("img_300x120.png", 300, 120, 6),  # downscaled by max_pixels to 192x64, grid [1,4,12]
}


def renamed(case):
    case = dict(case)
    case["items"] = [dict(it, image=RENAMED[it["image"]][0] if it["image"] else None) for it in case["items"]]
    case["what"] = case["what"].replace("112x84", "128x96").replace("28x28", "32x32").replace("56x84", "64x96")
    return case


def vision_patch_embed(visual, pixel_values, grid_thw):
    """What Qwen3-VL's first vision block receives: the biased patch embedding plus the position table
    resampled to the grid, as Qwen3VLVisionModel.forward computes it."""
    from transformers.vision_utils import get_vision_interpolation_indices_and_weights

    index, weight = get_vision_interpolation_indices_and_weights(
        grid_thw, num_grid_per_side=visual.num_grid_per_side, mode=visual.interpolation_mode,
        align_corners=visual.interpolation_align_corners, spatial_merge_size=visual.spatial_merge_size)
    hidden = visual.patch_embed(pixel_values)
    return hidden + (visual.pos_embed(index) * weight[:, :, None]).sum(1).to(hidden.dtype)


def configure():
    """Turns the Qwen2-VL generator into this one."""
    base.GENERATOR = "tests/oracle/qwen3vl_fixtures.py"
    base.IMAGES = list(RENAMED.values())
    base.CASES = [renamed(c) for c in base.CASES]
    base.vision_patch_embed = vision_patch_embed


if __name__ == "__main__":
    configure()
    if "--make-snapshot" in sys.argv:
        base.die("the Qwen3-VL snapshot comes from `saha-init-model --arch qwen3-vl`; give --snapshot DIR --out DIR")
    # Pixel values by their sha256 only: 1536 values per patch would make the fixture 1.6 MB.
    if "--pixel-hashes" not in sys.argv:
        sys.argv.append("--pixel-hashes")
    base.main()
