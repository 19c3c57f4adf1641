#!/usr/bin/env bash
# make bench-train: contrastive training steps/s and peak memory of candle (saha-train's step, saha-bench-train)
# next to PyTorch + PEFT on the same CPU, the same random snapshots, the same batch, the same adapter
# tensors and the same thread count, for the tiny and a small Qwen2-VL config, GradCache and plain backprop.
# Usage: BIN=target/release OUT=runs/bench-train [THREADS=2] [CONFIGS="tiny small"] [MODES="gradcache plain"]
#        [TINY_PAIRS=16] [TINY_STEPS=10] [SMALL_PAIRS=8] [SMALL_STEPS=3] [CHUNK=4] [EAGER=0] [ROUNDS=3]
#        scripts/bench-train.sh
# Each side runs ROUNDS times per configuration, candle and PyTorch alternating, because a shared machine's
# speed drifts from one minute to the next: the ratio is the median of the rounds' ratios.
# The step: DoRA r 8, alpha 64, dropout 0 on q/k/v/o/down_proj (the reference recipe), one-directional
# InfoNCE at temperature 0.02, gradient clipping at 1.0, AdamW lr 5e-5 weight decay 0; GradCache with CHUNK
# inputs per chunk (the reference's setting), or plain backprop (queries as one padded batch, targets as
# another). Half the pairs are text-only (~60-token texts), half have a 448x448 PNG in the query (the tiny
# config's image processor shrinks it to 112x112: 16 image tokens; the small config keeps 448x448: 256).
# One warm-up step, then *_STEPS timed steps, each in its own process (so each peak is its own).
# tiny: hidden 64, 2 layers, vision 2 x 32 (saha-init-model's default). small: hidden 512, 8 layers
# (8 heads, 2 KV heads), intermediate 1536, vision depth 4 x 256 dims (bench-embed's config).
# EAGER=1 also runs PyTorch with eager attention (sdpa is the reference point). candle's CPU threads follow
# RAYON_NUM_THREADS (set to THREADS here); like saha-train, the bench runs candle's element-wise ops on the
# calling thread (CANDLE_NUM_THREADS=1) unless told otherwise. CANDLE_ENV="VAR=value ..." sets variables for
# the candle runs only, to try settings without touching PyTorch's side, e.g. CANDLE_ENV="CANDLE_NUM_THREADS=2"
# (candle's own spinning element-wise pool back on).
set -euo pipefail
BIN=${BIN:-target/release}
OUT=${OUT:-runs/bench-train}
THREADS=${THREADS:-$(nproc)}
CONFIGS=${CONFIGS:-tiny small}
MODES=${MODES:-gradcache plain}
TINY_PAIRS=${TINY_PAIRS:-16}
TINY_STEPS=${TINY_STEPS:-10}
SMALL_PAIRS=${SMALL_PAIRS:-8}
SMALL_STEPS=${SMALL_STEPS:-3}
CHUNK=${CHUNK:-4}
EAGER=${EAGER:-0}
ROUNDS=${ROUNDS:-3}
read -r -a candle_env <<< "${CANDLE_ENV:-}"
mkdir -p "$OUT"
python3 -c 'import torch, transformers, peft, tokenizers, PIL, numpy' 2>/dev/null || {
  echo "bench-train: needs torch, transformers (5.x), peft, tokenizers, pillow, numpy for the comparison:" >&2
  echo "  python3 -m pip install torch transformers peft tokenizers pillow numpy" >&2
  exit 1
}
export SAHA_NO_PROGRESS=1 RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
export TRANSFORMERS_VERBOSITY=error HF_HUB_OFFLINE=1 PYTHONWARNINGS=ignore

tokenizer=$(bash scripts/fetch-tokenizer.sh)
snapshot() { # config: writes $OUT/<config>/model unless it is there with the same arguments
  local config=$1 args=(--tokenizer "$tokenizer" --seed 0)
  if [[ $config == small ]]; then
    args+=(--hidden 512 --intermediate 1536 --layers 8 --heads 8 --kv-heads 2 --mrope-section 8,12,12
      --vision-depth 4 --vision-dim 256 --vision-heads 4 --max-pixels 1003520)
  fi
  mkdir -p "$OUT/$config"
  if [[ ! -f $OUT/$config/model/model.safetensors || "$(cat "$OUT/$config/model.args" 2>/dev/null)" != "${args[*]}" ]]; then
    echo "$config: writing the random snapshot ..." >&2
    "$BIN/saha-init-model" --out "$OUT/$config/model" "${args[@]}" >&2
    echo "${args[*]}" > "$OUT/$config/model.args"
  fi
}

timed() { # name command...: the command's JSON line to $OUT/name.json, "name seconds peak_rss_mib" to $OUT/times
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$OUT/.time" "$@" > "$OUT/$name.json" 2> "$OUT/$name.log" || {
    cat "$OUT/$name.log" "$OUT/$name.json" >&2; exit 1; }
  read -r secs kib < "$OUT/.time"
  echo "$name $secs $((kib / 1024))" >> "$OUT/times"
}

: > "$OUT/times"
echo "${CANDLE_ENV:-}" > "$OUT/candle.env"
cut -d' ' -f1 /proc/loadavg > "$OUT/load.start" 2>/dev/null || echo "?" > "$OUT/load.start"
for config in $CONFIGS; do
  snapshot "$config"
  pairs=$TINY_PAIRS steps=$TINY_STEPS
  if [[ $config == small ]]; then pairs=$SMALL_PAIRS steps=$SMALL_STEPS; fi
  for mode in $MODES; do
    run=$config-$mode
    for round in $(seq "$ROUNDS"); do
      echo "$run, round $round of $ROUNDS: candle, $pairs pairs, 1 + $steps steps ..." >&2
      rm -rf "$OUT/$run-adapter"
      timed "candle-$run@$round" env "${candle_env[@]}" "$BIN/saha-bench-train" --model "$OUT/$config/model" --mode "$mode" --pairs "$pairs" \
        --chunk "$CHUNK" --steps "$steps" --images "$OUT/images" --adapter "$OUT/$run-adapter" \
        --dump "$OUT/inputs-$run.json" --label "$config"
      attns=(sdpa)
      if [[ $EAGER == 1 ]]; then attns+=(eager); fi
      for attn in "${attns[@]}"; do
        echo "$run, round $round of $ROUNDS: PyTorch + PEFT ($attn) ..." >&2
        timed "torch-$attn-$run@$round" python3 tests/oracle/bench_train_torch.py --model "$OUT/$config/model" \
          --inputs "$OUT/inputs-$run.json" --steps "$steps" --threads "$THREADS" --attn "$attn" --label "$config"
      done
    done
  done
done

python3 - "$OUT" "$(nproc)" "$(bash scripts/cpu-line.sh "$(cat "$OUT/load.start")")" <<'EOF'
import json, statistics, sys
from pathlib import Path
sys.path.insert(0, "scripts/lib")
import bench_rounds
out, cores, cpu = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
times, rounds, peak = bench_rounds.load(out)
# One report per name: medians over the rounds, every round's step times, the first round's losses.
r = {}
for base, xs in rounds.items():
    x = dict(xs[0])
    x["steps_per_s_median"] = statistics.median(y["steps_per_s_median"] for y in xs)
    x["median_cpu_s"] = statistics.median(y["median_cpu_s"] for y in xs)
    x["rounds_step_s"] = [y["step_s"] for y in xs]
    x["rss_after_load_mib"] = max(y["rss_after_load_mib"] for y in xs)
    x["peak_rss_train_mib"] = max(y["peak_rss_train_mib"] for y in xs)
    if "max_loss_diff_vs_candle" in x:
        x["max_loss_diff_vs_candle"] = max(y["max_loss_diff_vs_candle"] for y in xs)
    r[base] = x
runs = [n[len("candle-"):] for n in rounds if n.startswith("candle-")]
ratio = {run: statistics.median(c["steps_per_s_median"] / t["steps_per_s_median"]
                                for c, t in zip(rounds[f"candle-{run}"], rounds[f"torch-sdpa-{run}"]))
         for run in runs}
c0 = r["candle-" + runs[0]]
n = len(rounds["candle-" + runs[0]])
print(f"\nTraining-step benchmark: random Qwen2-VL snapshots, f32 on CPU, {c0['threads']} threads both sides; "
      "DoRA r 8 / alpha 64 on q,k,v,o,down_proj, InfoNCE (T 0.02), clip 1.0, AdamW lr 5e-5; "
      f"{n} rounds per configuration, candle and PyTorch alternating.")
print("tiny: hidden 64, 2 layers, vision 2 x 32; small: hidden 512, 8 layers, vision 4 x 256. Half the pairs "
      "text-only (~60-token texts), half with a 448x448 image in the query.\n")
print(cpu + "\n")
print("| config | mode | candle steps/s | PyTorch steps/s | ratio | candle peak MiB | PyTorch peak MiB |")
print("|---|---|---:|---:|---:|---:|---:|")
for run in runs:
    c, t = r[f"candle-{run}"], r[f"torch-sdpa-{run}"]
    mode = f"GradCache (chunk {c['chunk']})" if c["mode"] == "gradcache" else "plain backprop"
    label = f"{c['label']}, {c['pairs']} pairs"
    cs, ts = c["steps_per_s_median"], t["steps_per_s_median"]
    print(f"| {label} | {mode} | {cs:#.3g} | {ts:#.3g} | {ratio[run]:.2f} | {peak['candle-' + run]} "
          f"| {peak['torch-sdpa-' + run]} |")
if (out / "candle.env").read_text().strip():
    print(f"\ncandle runs with {(out / 'candle.env').read_text().strip()}")
print("\nsteps/s = 1 / median wall time of a run's timed steps (forward + backward + clip + AdamW on a pre-tokenised "
      "batch) after one warm-up step, median over the rounds; ratio = median over the rounds of candle / PyTorch "
      "(sdpa), > 1 means candle is faster. Peak = "
      "whole-process max RSS, loading included (PyTorch's includes ~400 MiB of libraries). "
      "Other work on the machine (the load averages above) slows both sides unevenly (spin-waiting thread "
      "pools suffer most), so trust a run only when the load is well below the core count.\n")
print("| run | s/step (each timed step; rounds apart by /) | CPU s/step (median) | warm-up s | RSS after load MiB "
      "| peak RSS in steps MiB | first loss | loss diff vs candle (first / max) |")
print("|---|---|---|---|---|---|---|---|")
for name, x in r.items():
    diff = (f"{x['first_loss_diff_vs_candle']:.1e} / {x['max_loss_diff_vs_candle']:.1e}"
            if "first_loss_diff_vs_candle" in x else "-")
    each = " / ".join(" ".join(f"{v:.3g}" for v in steps) for steps in x["rounds_step_s"])
    print(f"| {name} | {each} | {x['median_cpu_s']:.3g} | {x['warmup_step_s']:.2f} "
          f"| {x['rss_after_load_mib']} | {x['peak_rss_train_mib']} | {x['losses'][0]:.6f} | {diff} |")
EOF
