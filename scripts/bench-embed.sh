#!/usr/bin/env bash
# make bench-embed: embedding throughput of the candle Qwen2-VL (saha-model) next to transformers on
# the same CPU, the same random snapshot, the same prompts and PNG files, the same thread count, in one run.
# Usage: BIN=target/release OUT=runs/bench-embed [THREADS=2] [ITERS=5] [ROUNDS=3] [TEXT_BATCH=16] [IMAGE_BATCH=8]
#        [EAGER=1] [BACKBONE=qwen2-vl|qwen2.5-vl] scripts/bench-embed.sh
# Each side runs ROUNDS times, candle and transformers alternating, because a shared machine's speed
# drifts from one minute to the next: the ratio is the median of the rounds' ratios.
# The model: hidden 512, 8 layers (8 heads, 2 KV heads), intermediate 1536, vision depth 4 x 256 dims;
# texts of about 60 tokens (about 96 with the system prompt and chat markers); images 448x448 (1024
# patches, 256 image tokens). EAGER=1 also runs transformers with eager attention.
set -euo pipefail
BIN=${BIN:-target/release}
OUT=${OUT:-runs/bench-embed}
THREADS=${THREADS:-$(nproc)}
ITERS=${ITERS:-5}
ROUNDS=${ROUNDS:-3}
TEXT_BATCH=${TEXT_BATCH:-16}
IMAGE_BATCH=${IMAGE_BATCH:-8}
EAGER=${EAGER:-1}
BACKBONE=${BACKBONE:-qwen2-vl}
mkdir -p "$OUT"
python3 -c 'import torch, transformers, tokenizers, PIL, numpy' 2>/dev/null || {
  echo "bench-embed: needs torch, transformers (5.x), tokenizers, pillow, numpy for the comparison:" >&2
  echo "  python3 -m pip install torch transformers tokenizers pillow numpy" >&2
  exit 1
}
export SAHA_NO_PROGRESS=1 RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
export TRANSFORMERS_VERBOSITY=error HF_HUB_OFFLINE=1

tokenizer=$(bash scripts/fetch-tokenizer.sh)
model_args=(--tokenizer "$tokenizer" --arch "$BACKBONE" --seed 0 --hidden 512 --intermediate 1536 --layers 8 --heads 8 --kv-heads 2
  --mrope-section 8,12,12 --vision-depth 4 --vision-dim 256 --vision-heads 4 --max-pixels 1003520)
# Qwen3-VL states its head width; 64 keeps the benchmark's attention shape (and its 3 DeepStack blocks).
[[ $BACKBONE == qwen3-vl ]] && model_args+=(--head-dim 64 --deepstack 0,1,2)
if [[ ! -f $OUT/model/model.safetensors || "$(cat "$OUT/model.args" 2>/dev/null)" != "${model_args[*]}" ]]; then
  echo "writing the random snapshot ..." >&2
  "$BIN/saha-init-model" --out "$OUT/model" "${model_args[@]}" >&2
  echo "${model_args[*]}" > "$OUT/model.args"
fi

timed() { # name command...: its JSON line to $OUT/name.json, "name wall_s peak_rss_mib cpu_s" to $OUT/times
  local name=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$OUT/.time" "$@" > "$OUT/$name.json" 2> "$OUT/$name.log" || {
    cat "$OUT/$name.log" "$OUT/$name.json" >&2; exit 1; }
  read -r secs kib user sys < "$OUT/.time"
  echo "$name $secs $((kib / 1024)) $(awk -v u="$user" -v s="$sys" 'BEGIN{print u + s}')" >> "$OUT/times"
}
busy_s() { # CPU seconds all processes have used since boot (user, nice, system, irq, softirq, steal)
  awk -v hz="$(getconf CLK_TCK)" '/^cpu /{print ($2 + $3 + $4 + $7 + $8 + $9) / hz; exit}' /proc/stat
}

: > "$OUT/times"
load_start=$(cut -d' ' -f1 /proc/loadavg)
busy_start=$(busy_s)
for kind in text image; do
  batch=$TEXT_BATCH; [[ $kind == image ]] && batch=$IMAGE_BATCH
  for round in $(seq "$ROUNDS"); do
    # The first round also times the components and writes the inputs transformers reads.
    extra=(); [[ $round == 1 ]] && extra=(--dump "$OUT/inputs-$kind.json" --components)
    echo "$kind, round $round of $ROUNDS: candle, batch $batch x $ITERS ..." >&2
    timed "candle-$kind@$round" "$BIN/saha-bench-embed" --model "$OUT/model" --kind "$kind" --batch "$batch" \
      --iters "$ITERS" --images "$OUT/images" "${extra[@]}"
    attns=(sdpa)
    if [[ $EAGER == 1 ]]; then attns+=(eager); fi
    for attn in "${attns[@]}"; do
      echo "$kind, round $round of $ROUNDS: transformers ($attn) ..." >&2
      timed "torch-$attn-$kind@$round" python3 tests/oracle/bench_embed_torch.py --model "$OUT/model" \
        --inputs "$OUT/inputs-$kind.json" --iters "$ITERS" --threads "$THREADS" --attn "$attn"
    done
  done
done

busy_end=$(busy_s)
python3 - "$OUT" "$EAGER" "$(awk -v a="$busy_start" -v b="$busy_end" 'BEGIN{print b - a}')" "$(bash scripts/cpu-line.sh "$load_start")" <<'EOF'
import json, statistics, sys
from pathlib import Path
sys.path.insert(0, "scripts/lib")
import bench_rounds
out, eager, cpu = Path(sys.argv[1]), sys.argv[2] == "1", sys.argv[4]
times, rounds, peak = bench_rounds.load(out)
# One report per name: medians over the rounds of what varies, the first round's components.
r = {}
for base, runs in rounds.items():
    x = dict(runs[0])
    for key in ("items_per_s", "forward_items_per_s", "encode_s_per_batch", "forward_s_per_batch"):
        x[key] = statistics.median(run[key] for run in runs)
    for key in ("peak_rss_inference_mib", "rss_after_load_mib", "peak_rss_load_mib"):
        x[key] = max(run[key] for run in runs)
    if "min_cosine_vs_candle" in x:
        x["min_cosine_vs_candle"] = min(run["min_cosine_vs_candle"] for run in runs)
    r[base] = x
ratio = {kind: statistics.median(c["items_per_s"] / t["items_per_s"]
                                 for c, t in zip(rounds[f"candle-{kind}"], rounds[f"torch-sdpa-{kind}"]))
         for kind in ("text", "image")}
c0, t0 = r["candle-text"], r["torch-sdpa-text"]
arch = json.loads((out / "model" / "config.json").read_text())["model_type"]
n = len(rounds["candle-text"])
print(f"\nEmbedding benchmark: {arch} random snapshot (hidden 512, 8 layers, vision 4 x 256), f32 on CPU, "
      f"{c0['threads']} threads both sides; each run times {c0['iters']} batches after one warm-up (median); "
      f"{n} rounds, candle and transformers alternating; items/s are medians over the rounds.")
print(f"text items: {c0['mean_text_tokens']:.0f}-token texts, {c0['mean_tokens']:.0f} tokens with the template; "
      f"image items: 448x448 PNG + text, {r['candle-image']['mean_tokens']:.0f} tokens (256 image tokens).\n")
print(cpu + "\n")
eager_col = " transformers (eager) |" if eager else ""
print("| batch | candle items/s | transformers (sdpa) items/s | ratio |" + eager_col + " candle peak MiB | transformers peak MiB |")
print("|---|---:|---:|---:|" + ("---:|" if eager else "") + "---:|---:|")
for kind in ("text", "image"):
    c, t = r[f"candle-{kind}"], r[f"torch-sdpa-{kind}"]
    label = f"{c['batch']} text-only" if kind == "text" else f"{c['batch']} image + text"
    eager_cell = f" {r[f'torch-eager-{kind}']['items_per_s']:#.3g} |" if eager else ""
    print(f"| {label} | {c['items_per_s']:#.3g} | {t['items_per_s']:#.3g} | {ratio[kind]:.2f} |"
          f"{eager_cell} {peak[f'candle-{kind}']} | {peak[f'torch-sdpa-{kind}']} |")
print("\nratio = median over the rounds of candle / transformers (sdpa) items/s, preprocessing + forward; > 1 means candle is faster. "
      "Peak = whole-process max RSS, loading included.\n")
print("| run | encode s/batch | forward s/batch | forward items/s | peak RSS loading MiB | RSS after load MiB "
      "| peak RSS in inference MiB "
      "| min cosine vs candle |")
print("|---|---|---|---|---|---|---|---|")
for name, x in r.items():
    parts = []
    if "padded_every_row_s_per_batch" in x:
        parts.append(f"padded, last layer on every row {x['padded_every_row_s_per_batch']:.3f} s; "
                     f"packed, last rows only {x['embedding_over_padded_every_row']:.2f}x that")
    if "vision_s_per_batch" in x:
        parts.append(f"vision tower {x['vision_s_per_batch']:.3f} s")
    extra = f" ({'; '.join(parts)})" if parts else ""
    cos = f"{x['min_cosine_vs_candle']:.7f}" if "min_cosine_vs_candle" in x else "-"
    print(f"| {name} | {x['encode_s_per_batch']:.4f} | {x['forward_s_per_batch']:.3f}{extra} "
          f"| {x['forward_items_per_s']:.2f} | {x['peak_rss_load_mib']} | {x['rss_after_load_mib']} | {x['peak_rss_inference_mib']} | {cos} |")
# CPU time other processes took while the benchmark ran (busy CPU time of the whole machine less ours).
wall = sum(t[0] for t in times.values())
others = float(sys.argv[3]) - sum(float(l.split()[3]) for l in (out / "times").read_text().splitlines())
print(f"\nOther processes used {max(others, 0):.0f} CPU-s during the {wall:.0f} s run"
      f"{'' if others < 0.05 * wall else ': they competed for the CPUs, so these timings are unreliable (the OpenMP threads of transformers suffer most); rerun on an idle machine'}.")
EOF
