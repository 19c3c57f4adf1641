#!/usr/bin/env bash
# The GPU check (issue 12), run on the lent GPU machine from the bundle `make gpu-bundle` built:
#   bash check.sh            (about 6-8 minutes on an H100; writes results/ next to this script)
# That machine has an NVIDIA driver, CUDA 13, python3 with torch, transformers, peft, safetensors, numpy,
# pillow, pyarrow; no Rust and no network. Everything it runs comes from the bundle.
#
# 0. kernels: saha-check-kernels runs each training op on the GPU (the CUDA kernels of model/kernels/fused.cu,
#    candle's CUDA ops and cuBLAS) in f32 and bf16 against its CPU reference, output and gradients (bars in
#    tests/bench/check_kernels.rs; CI runs the same program on the CPU).
# 1. parity: the tiny random Qwen2-VL (saha-init-model --seed 0, the CI fixtures' snapshot) embeds the parity
#    items with saha-embed on the GPU in f32 (against the CPU f32 embeddings computed when bundling, which CI
#    holds within 1e-4 of transformers: max abs <= 1e-4) and in bf16 (cosine >= 0.999 per item with f32);
#    and saha-bench-embed against transformers on the same GPU in f32 (TF32 off): max abs diff <= 1e-4.
# 2. embedding throughput: the Qwen2-VL-2B configuration with random bf16 weights, text-only and
#    image + text (448x448) batches, saha-bench-embed against transformers (sdpa, bf16) in the same run.
# 3. training: DoRA steps with GradCache (chunk 4) on that model, 16 pairs and the reference's step size
#    (16 clusters x 16 pairs = 256 pairs, half with a 448x448 image), saha-bench-train against PyTorch + PEFT
#    (sdpa, bf16) in the same run; and saha-bench-train again with the tiled attention kernels
#    (SAHA_ATTENTION=tiled), to measure which attention the CUDA default should be.
# Peak GPU memory: the device's used memory sampled by nvidia-smi every 100 ms while each program runs, less
# the memory used before it started (the same measure for both sides), plus PyTorch's own allocator peak.
#
# Environment: DEVICE (default cuda:0), OUT (default <bundle>/results), QUICK=1 (tiny models only: a dry run,
# also on a CPU with DEVICE=cpu), SKIP_TRAIN=1, TILED=0 (no training steps on the tiled attention kernels),
# BIN (default <bundle>/bin).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEVICE=${DEVICE:-cuda:0}
OUT=${OUT:-$here/results}
BIN=${BIN:-$here/bin}
QUICK=${QUICK:-0}
TILED=${TILED:-1}
mkdir -p "$OUT"
W="$OUT/work"
mkdir -p "$W"
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/check.log" >&2; }
gpu=0; [[ $DEVICE == cuda* ]] && gpu=1
export SAHA_NO_PROGRESS=1 TRANSFORMERS_VERBOSITY=error HF_HUB_OFFLINE=1 PYTHONPATH="$here/oracle"

# The CUDA libraries candle links (cuBLAS, cuRAND, the runtime) come from PyTorch's nvidia wheels.
if [[ $gpu == 1 ]]; then
  nvlib=$(python3 -c 'import nvidia, os; p=[os.path.join(d, "cu13", "lib") for d in nvidia.__path__]; print(":".join(x for x in p if os.path.isdir(x)))')
  export LD_LIBRARY_PATH="$nvlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
for xz in "$here"/*.xz "$BIN"/*.xz; do
  [[ -e $xz ]] || continue
  # python3's lzma, as the GPU machine may lack the xz tool.
  [[ -e ${xz%.xz} ]] || python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    "$xz" "${xz%.xz}"
  [[ $xz == */bin/* ]] && chmod +x "${xz%.xz}"
done

{
  echo "date: $(date -u +%FT%TZ)"
  echo "device: $DEVICE"
  [[ $gpu == 1 ]] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c 'import torch, transformers, peft; print("torch", torch.__version__, "cuda", torch.version.cuda, "| transformers", transformers.__version__, "| peft", peft.__version__)'
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt" >&2

# Runs "$@" with stdout to $OUT/$name.json and stderr to $OUT/$name.log, sampling GPU memory meanwhile.
failures=0
timed() {
  local name=$1; shift
  local sampler=""
  if [[ $gpu == 1 ]]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "${DEVICE#cuda:}" > "$OUT/$name.mem0"
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "${DEVICE#cuda:}" -lms 100 > "$OUT/$name.mem" &
    sampler=$!
  fi
  local t0=$SECONDS
  if "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"; then
    log "$name: ok ($((SECONDS - t0)) s)"
  else
    log "$name: FAILED ($((SECONDS - t0)) s): $(tail -3 "$OUT/$name.log" | tr '\n' ' ')"
    failures=$((failures + 1))
  fi
  if [[ -n $sampler ]]; then kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null; fi
  return 0
}

tiny="$W/tiny"
log "tiny snapshot (seed 0) ..."
"$BIN/saha-init-model" --out "$tiny" --tokenizer "$here/tokenizer.json" --seed 0 >> "$OUT/check.log" 2>&1
(cd "$tiny" && sha256sum -c "$here/parity/tiny.sha256" >> "$OUT/check.log" 2>&1) \
  || { log "the tiny snapshot differs from the one the parity embeddings were computed with"; failures=$((failures + 1)); }

# 0. kernels
timed kernels "$BIN/saha-check-kernels" --device "$DEVICE"

# 1. parity
for dtype in f32 bf16; do
  rm -rf "$W/parity-$dtype.parquet"
  timed "parity-embed-$dtype" "$BIN/saha-embed" --items "$here/parity/items.parquet" --image-root "$here/parity/images" \
    --model "$tiny" --device "$DEVICE" --dtype "$dtype" --out "$W/parity-$dtype.parquet"
done
timed parity-compare python3 "$here/compare.py" --cpu "$here/parity/cpu-f32.parquet" \
  --f32 "$W/parity-f32.parquet" --bf16 "$W/parity-bf16.parquet"
timed parity-candle-image "$BIN/saha-bench-embed" --model "$tiny" --kind image --batch 8 --iters 2 \
  --images "$W/images-tiny" --dump "$W/parity-inputs.json" --device "$DEVICE" --dtype f32
timed parity-torch-image python3 "$here/oracle/bench_embed_torch.py" --model "$tiny" --inputs "$W/parity-inputs.json" \
  --iters 1 --attn eager --device "$DEVICE" --dtype f32 --min-cosine 0.99999 --max-abs 1e-4

# 2. and 3. on the Qwen2-VL-2B configuration (QUICK=1: a small one)
if [[ $QUICK == 1 ]]; then
  big_args=(--hidden 256 --intermediate 512 --layers 2 --heads 4 --kv-heads 2 --vision-depth 2 --vision-dim 128
    --vision-heads 4 --max-pixels 1003520)
  text_batch=8 image_batch=4 iters=2 ref_pairs=8
else
  big_args=(--hidden 1536 --intermediate 8960 --layers 28 --heads 12 --kv-heads 2 --vocab 151936 --vision-depth 32
    --vision-dim 1280 --vision-heads 16 --max-pixels 1003520)
  text_batch=64 image_batch=32 iters=5 ref_pairs=256
fi
big="$W/qwen2-vl-2b-random"
log "random bf16 snapshot: ${big_args[*]} ..."
"$BIN/saha-init-model" --out "$big" --tokenizer "$here/tokenizer.json" --seed 1 --dtype bf16 "${big_args[@]}" \
  >> "$OUT/check.log" 2>&1 || { log "saha-init-model failed"; failures=$((failures + 1)); }
for kind in text image; do
  batch=$text_batch; [[ $kind == image ]] && batch=$image_batch
  timed "embed-candle-$kind" "$BIN/saha-bench-embed" --model "$big" --kind "$kind" --batch "$batch" --iters "$iters" \
    --images "$W/images-448" --dump "$W/embed-inputs-$kind.json" --device "$DEVICE" --dtype bf16
  timed "embed-torch-$kind" python3 "$here/oracle/bench_embed_torch.py" --model "$big" \
    --inputs "$W/embed-inputs-$kind.json" --iters "$iters" --attn sdpa --device "$DEVICE" --dtype bf16 --min-cosine 0.99
done

if [[ ${SKIP_TRAIN:-0} != 1 ]]; then
  for pairs in 16 "$ref_pairs"; do
    timed "train-candle-$pairs" "$BIN/saha-bench-train" --model "$big" --mode gradcache --chunk 4 --pairs "$pairs" \
      --steps 2 --images "$W/images-448" --adapter "$W/adapter-$pairs" --dump "$W/train-inputs-$pairs.json" \
      --device "$DEVICE" --dtype bf16
    timed "train-torch-$pairs" python3 "$here/oracle/bench_train_torch.py" --model "$big" \
      --inputs "$W/train-inputs-$pairs.json" --steps 2 --attn sdpa --device "$DEVICE" --dtype bf16 --max-loss-diff 0.5
    # The same step with the decoder's attention on the tiled kernels (model/kernels/attention.cu).
    [[ $gpu == 1 && $TILED == 1 ]] && timed "train-tiled-$pairs" env SAHA_ATTENTION=tiled "$BIN/saha-bench-train" --model "$big" \
      --mode gradcache --chunk 4 --pairs "$pairs" --steps 2 --images "$W/images-448" --adapter "$W/adapter-tiled-$pairs" \
      --device "$DEVICE" --dtype bf16
  done
fi

python3 "$here/summary.py" "$OUT" | tee "$OUT/summary.md"
log "done: $failures failure(s); results in $OUT"
[[ $failures == 0 ]]
