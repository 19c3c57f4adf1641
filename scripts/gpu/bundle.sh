#!/usr/bin/env bash
# make gpu-bundle: everything the GPU check needs, in one folder under 60 MiB (the GPU machine takes at most
# 64 MiB and has no Rust and no network). Binaries and the tokenizer are xz-compressed; check.sh unpacks them.
# Usage: BIN=<cpu release dir> CUDA_BIN=<cuda release dir> OUT=gpu-bundle bash scripts/gpu/bundle.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN=${BIN:?BIN: the CPU release folder}
CUDA_BIN=${CUDA_BIN:?CUDA_BIN: the CUDA release folder (make cuda)}
OUT=${OUT:-gpu-bundle}
LIMIT_MIB=60
die() { echo "gpu-bundle: error: $*" >&2; exit 1; }
for b in saha-embed saha-train saha-bench-embed saha-bench-train saha-check-kernels; do
  [[ -x $CUDA_BIN/$b ]] || die "$CUDA_BIN/$b missing: run make cuda"
done
# CPU_DRY_RUN=1 bundles CPU binaries, to try check.sh on a CPU (DEVICE=cpu QUICK=1).
if [[ ${CPU_DRY_RUN:-0} != 1 ]]; then
  readelf -d "$CUDA_BIN/saha-embed" | grep -q 'libcuda.so.1' || die "$CUDA_BIN/saha-embed is not a CUDA build"
fi

stage="$OUT.tmp"
rm -rf "$stage"
mkdir -p "$stage/bin" "$stage/oracle" "$stage/parity"
for b in saha-embed saha-train saha-bench-embed saha-bench-train saha-check-kernels; do
  strip -o "$stage/bin/$b" "$CUDA_BIN/$b"
done
strip -o "$stage/bin/saha-init-model" "$BIN/saha-init-model"
xz -T0 -6 "$stage"/bin/*
cp "$(bash "$root/scripts/fetch-tokenizer.sh")" "$stage/tokenizer.json"
xz -T0 -6 "$stage/tokenizer.json"
cp "$root"/scripts/gpu/{check.sh,compare.py,summary.py,README.md} "$stage/"
cp "$root"/tests/oracle/{bench_embed_torch.py,bench_train_torch.py} "$stage/oracle/"

# Parity items: the demo's synthetic data, few per subset, embedded here on the CPU in f32 with the tiny
# seed-0 snapshot (the CI fixtures' snapshot, within 1e-4 of transformers there).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
make -C "$root" --no-print-directory RUNS_DIR="$work" RUN=p TRAIN_PER_SUBSET=6 EVAL_PER_SUBSET=2 \
  BIN="$BIN" embed >&2
cp "$work/p/items.parquet" "$stage/parity/items.parquet"
cp "$work/p/embeddings.parquet" "$stage/parity/cpu-f32.parquet"
cp -r "$work/p/data/images" "$stage/parity/images"
(cd "$work/p/model" && sha256sum config.json model.safetensors tokenizer.json preprocessor_config.json) \
  > "$stage/parity/tiny.sha256"

size=$(du -sm "$stage" | cut -f1)
(( size < LIMIT_MIB )) || die "the bundle is $size MiB, over $LIMIT_MIB MiB"
rm -rf "$OUT"
mv "$stage" "$OUT"
echo "gpu-bundle: $OUT ($size MiB): copy it to the GPU machine and run: bash check.sh" >&2
