#!/usr/bin/env bash
# make bench-mining: the three mining stages on N queries x N targets x DIM generated
# embeddings, next to this machine's f32 GEMM peak and the numpy baselines, in one run; then
# few-label subsets (N pairs sharing each of LABELS targets), whose clusters are checked against
# the numpy reference sampler on N_CHECK pairs of the same shape.
# Usage: BIN=target/release N=100000 DIM=1536 OUT=runs/bench-mining scripts/bench-mining.sh
# FAST=0 skips fast mode, NUMPY=0 the numpy timings, LABELS="" the few-label cases; INT8_KERNEL=vnni|avx2
# names fast mode's int8 kernel (default: vnni if the CPU has it, else avx2, else fast mode runs exact retrieval).
set -euo pipefail
BIN=${BIN:-target/release}
N=${N:-100000}
DIM=${DIM:-1536}
OUT=${OUT:-runs/bench-mining}
FAST=${FAST:-1}
NUMPY=${NUMPY:-1}
LABELS=${LABELS-24 2}
N_CHECK=${N_CHECK:-4000}
TOP_K=15
POOL_MULT=3
mkdir -p "$OUT"
python3 -c 'import numpy' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check numpy==2.2.6
export SAHA_NO_PROGRESS=1

timed() { # name command...: appends "name seconds peak_rss_mib" to $OUT/times
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$OUT/.time" "$@" > "$OUT/.out" 2>&1 || { cat "$OUT/.out" >&2; exit 1; }
  read -r secs kib < "$OUT/.time"
  cp "$OUT/.out" "$OUT/.out-$name"
  echo "$name $secs $((kib / 1024))" >> "$OUT/times"
}

: > "$OUT/times"
load_start=$(cut -d' ' -f1 /proc/loadavg)
echo "generating $N x $N x $DIM ..." >&2
timed generate "$BIN/saha-bench-data" --out "$OUT" --n "$N" --dim "$DIM"
peak_ours=$("$BIN/saha-bench-data" --gemm-peak --dim "$DIM")
peak_numpy=$(python3 tests/oracle/bench_numpy.py peak "$DIM" | awk '{print $2}')
mine() { # prefix data-folder out-folder [retrieve flags...]: the three stages, timed as prefix-<stage>
  local prefix=$1 data=$2 out=$3; shift 3
  mkdir -p "$out"
  echo "$prefix: retrieve, remap, filter ..." >&2
  timed "${prefix}retrieve" "$BIN/saha-retrieve" --pairs "$data/pairs.parquet" --embeddings "$data/embeddings.parquet" --out "$out/candidates.parquet" --top-k "$TOP_K" --pool-mult "$POOL_MULT" "$@"
  timed "${prefix}remap" "$BIN/saha-remap" --pairs "$data/pairs.parquet" --candidates "$out/candidates.parquet" --out "$out/owners.parquet"
  timed "${prefix}filter" "$BIN/saha-filter" --pairs "$data/pairs.parquet" --embeddings "$data/embeddings.parquet" --candidates "$out/candidates.parquet" --owners "$out/owners.parquet" --clusters "$out/clusters.parquet" --stats "$out/mining_stats.parquet" --top-k "$TOP_K" --pool-mult "$POOL_MULT"
}
mine saha- "$OUT" "$OUT"
differing=-
fast_scoring=
fast_check=
INT8_KERNEL_FLAG=${INT8_KERNEL:+--int8-kernel $INT8_KERNEL}
if [ "$FAST" = 1 ]; then
  mine fast- "$OUT" "$OUT/fast" --mode fast $INT8_KERNEL_FLAG
  fast_scoring=$(grep -o 'int8 pre-selection by the [a-z0-9]* kernel' "$OUT/.out-fast-retrieve" || echo "no int8 kernel: ran exact retrieval (neither AVX-512 VNNI nor AVX2)")
  # saha-retrieve's own check: "N of M queries searched exactly as well got other candidates".
  fast_check=$(grep -o '[0-9]* of [0-9]* queries searched exactly as well' "$OUT/.out-fast-retrieve" | awk '{print $1 " of " $3 " checked queries differ"}')
  differing=$("$BIN/saha-sql" --run "$OUT" -e "select count(*) as n from clusters a full outer join fast_clusters b on a.cluster_id = b.cluster_id and a.position = b.position and a.pair_id = b.pair_id and a.phase = b.phase where a.pair_id is null or b.pair_id is null" | sed -n 3p | tr -dc '0-9')
fi
per_anchor=-
if [ "$NUMPY" = 1 ]; then
  echo "numpy batched ..." >&2
  timed numpy-batched python3 tests/oracle/bench_numpy.py batched "$OUT"
  echo "numpy per-anchor (sampled) ..." >&2
  per_anchor=$(python3 tests/oracle/bench_numpy.py per-anchor "$OUT" | awk '{print $2}')
fi

# Few-label subsets: time and memory at N pairs; clusters against the numpy reference sampler
# (every owner considered) on N_CHECK pairs of the same shape.
clusters_as_lines() { # run folder -> one line per cluster: phase, anchor pair, negative pairs
  rm -f "$1/ours.csv"
  "$BIN/saha-sql" --run "$1" -e "select phase, cluster_id, position, pair_id from clusters order by cluster_id, position" --out "$1/ours.csv" > /dev/null
  awk -F, 'NR > 1 { if (NR == 2 || $2 != c) { if (NR > 2) print line; c = $2; line = $1 } line = line " " $4 } END { if (NR > 1) print line }' "$1/ours.csv"
}
: > "$OUT/labels"
for k in $LABELS; do
  data="$OUT/labels-$k"
  timed "labels$k-generate" "$BIN/saha-bench-data" --out "$data" --n "$N" --dim "$DIM" --targets "$k"
  mine "labels$k-" "$data" "$data"
  check="$OUT/labels-$k-check"
  "$BIN/saha-bench-data" --out "$check" --n "$N_CHECK" --dim "$DIM" --targets "$k" --seed 2
  mine "check$k-" "$check" "$check"
  python3 tests/oracle/bench_numpy.py labels "$check" > "$check/numpy.txt"
  clusters_as_lines "$check" > "$check/ours.txt"
  total=$(wc -l < "$check/numpy.txt")
  same=$(paste -d'|' "$check/ours.txt" "$check/numpy.txt" | awk -F'|' '$1 == $2' | wc -l)
  [ "$(wc -l < "$check/ours.txt")" = "$total" ] || same=0
  clusters=$("$BIN/saha-sql" --run "$data" -e "select count(distinct cluster_id) as n from clusters" | sed -n 3p | tr -dc '0-9')
  echo "$k $clusters $same $total" >> "$OUT/labels"
done

matrices_mib=$((2 * N * DIM * 4 / 1024 / 1024))
awk -v cpu="$(bash scripts/cpu-line.sh "$load_start")" -v n="$N" -v dim="$DIM" -v peak="$peak_ours" -v np_peak="$peak_numpy" -v pa="$per_anchor" -v mat="$matrices_mib" -v diff="$differing" -v fast_scoring="$fast_scoring" -v fast_check="$fast_check" -v labels="$OUT/labels" -v n_check="$N_CHECK" '
  function max3(a, b, c) { return a > b ? (a > c ? a : c) : (b > c ? b : c) }
  { secs[$1] = $2; rss[$1] = $3 }
  END {
    ours = secs["saha-retrieve"] + secs["saha-remap"] + secs["saha-filter"]
    gflops = 2 * n * n * dim / secs["saha-retrieve"] / 1e9
    printf "\nMining benchmark: %d queries x %d targets x %d dims (two embedding matrices: %d MiB)\n", n, n, dim, mat
    printf "%s\n\n", cpu
    printf "| step | wall s | peak RSS MiB | note |\n|---|---|---|---|\n"
    printf "| saha-retrieve (exact) | %.1f | %d | %.0f GFLOP/s; f32 GEMM peak measured in the same run: %.0f GFLOP/s with our kernel (%.0f%%), %.0f with numpy (%.0f%%) |\n", secs["saha-retrieve"], rss["saha-retrieve"], gflops, peak, 100 * gflops / peak, np_peak, 100 * gflops / np_peak
    printf "| saha-remap | %.1f | %d | |\n", secs["saha-remap"], rss["saha-remap"]
    printf "| saha-filter | %.1f | %d | |\n", secs["saha-filter"], rss["saha-filter"]
    # Stages run one at a time, so the peak of a pipeline is the largest peak of its stages.
    exact_rss = max3(rss["saha-retrieve"], rss["saha-remap"], rss["saha-filter"])
    printf "| **exact, end to end** | **%.1f** | %d | remap, filter and all I/O add %.0f%% to retrieval |\n", ours, exact_rss, 100 * (ours - secs["saha-retrieve"]) / secs["saha-retrieve"]
    if ("fast-retrieve" in secs) {
      fast = secs["fast-retrieve"] + secs["fast-remap"] + secs["fast-filter"]
      fast_rss = max3(rss["fast-retrieve"], rss["fast-remap"], rss["fast-filter"])
      how = (fast_scoring ~ /^int8/) ? fast_scoring " (2x the pool), exact f32 re-score; " fast_check : fast_scoring
      printf "| saha-retrieve --mode fast | %.1f | %d | %s |\n", secs["fast-retrieve"], rss["fast-retrieve"], how
      same = (diff == 0) ? "clusters identical to exact mode (0 differing rows)" : ("clusters differ from exact mode in " diff " rows")
      printf "| **fast, end to end** | **%.1f** | %d | %s |\n", fast, fast_rss, same
    }
    if ("numpy-batched" in secs) {
      vs_fast = fast ? sprintf(", %.2fx fast", secs["numpy-batched"] / fast) : ""
      printf "| numpy, batched reference sampler | %.1f | %d | %.2fx exact%s |\n", secs["numpy-batched"], rss["numpy-batched"], secs["numpy-batched"] / ours, vs_fast
      vs_fast = fast ? sprintf(", %.1fx fast", pa / fast) : ""
      printf "| numpy, one exact search per anchor (1000 sampled, scaled) | %.1f | | %.1fx exact%s |\n", pa, pa / ours, vs_fast
    }
    while ((getline line < labels) > 0) {
      split(line, f, " ")
      k = f[1]; p = "labels" k "-"
      t = secs[p "retrieve"] + secs[p "remap"] + secs[p "filter"]
      r = max3(rss[p "retrieve"], rss[p "remap"], rss[p "filter"])
      printf "| few-label: %d pairs sharing %d targets, exact (retrieve %.1f + remap %.1f + filter %.1f) | **%.1f** | %d | %d clusters; on %d pairs of the same shape %d of %d clusters identical to the numpy reference sampler |\n", n, k, secs[p "retrieve"], secs[p "remap"], secs[p "filter"], t, r, f[2], n_check, f[3], f[4]
    }
  }' "$OUT/times"
