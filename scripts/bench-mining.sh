#!/usr/bin/env bash
# make bench-mining: the three mining stages on N queries x N targets x DIM generated
# embeddings, next to this machine's f32 GEMM peak and the numpy baselines, in one run.
# Usage: BIN=target/release N=100000 DIM=1536 OUT=runs/bench-mining scripts/bench-mining.sh
set -euo pipefail
BIN=${BIN:-target/release}
N=${N:-100000}
DIM=${DIM:-1536}
OUT=${OUT:-runs/bench-mining}
TOP_K=15
POOL_MULT=3
mkdir -p "$OUT"
python3 -c 'import numpy' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check numpy==2.2.6
export SAHA_NO_PROGRESS=1

timed() { # name command...: appends "name seconds peak_rss_mib" to $OUT/times
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$OUT/.time" "$@" > "$OUT/.out" 2>&1 || { cat "$OUT/.out" >&2; exit 1; }
  read -r secs kib < "$OUT/.time"
  echo "$name $secs $((kib / 1024))" >> "$OUT/times"
}

: > "$OUT/times"
echo "generating $N x $N x $DIM ..." >&2
timed generate "$BIN/saha-bench-data" --out "$OUT" --n "$N" --dim "$DIM"
peak_ours=$("$BIN/saha-bench-data" --gemm-peak --dim "$DIM")
peak_numpy=$(python3 tests/oracle/bench_numpy.py peak "$DIM" | awk '{print $2}')
echo "retrieve ..." >&2
timed saha-retrieve "$BIN/saha-retrieve" --pairs "$OUT/pairs.parquet" --embeddings "$OUT/embeddings.parquet" --out "$OUT/candidates.parquet" --top-k "$TOP_K" --pool-mult "$POOL_MULT"
echo "remap ..." >&2
timed saha-remap "$BIN/saha-remap" --pairs "$OUT/pairs.parquet" --embeddings "$OUT/embeddings.parquet" --candidates "$OUT/candidates.parquet" --out "$OUT/owners.parquet"
echo "filter ..." >&2
timed saha-filter "$BIN/saha-filter" --pairs "$OUT/pairs.parquet" --candidates "$OUT/candidates.parquet" --owners "$OUT/owners.parquet" --clusters "$OUT/clusters.parquet" --stats "$OUT/mining_stats.parquet" --top-k "$TOP_K" --pool-mult "$POOL_MULT"
echo "fast mode ..." >&2
mkdir -p "$OUT/fast"
timed fast-retrieve "$BIN/saha-retrieve" --pairs "$OUT/pairs.parquet" --embeddings "$OUT/embeddings.parquet" --out "$OUT/fast/candidates.parquet" --top-k "$TOP_K" --pool-mult "$POOL_MULT" --mode fast
timed fast-remap "$BIN/saha-remap" --pairs "$OUT/pairs.parquet" --embeddings "$OUT/embeddings.parquet" --candidates "$OUT/fast/candidates.parquet" --out "$OUT/fast/owners.parquet"
timed fast-filter "$BIN/saha-filter" --pairs "$OUT/pairs.parquet" --candidates "$OUT/fast/candidates.parquet" --owners "$OUT/fast/owners.parquet" --clusters "$OUT/fast/clusters.parquet" --stats "$OUT/fast/mining_stats.parquet" --top-k "$TOP_K" --pool-mult "$POOL_MULT"
differing=$("$BIN/saha-sql" --run "$OUT" -e "select count(*) as n from clusters a full outer join fast_clusters b on a.cluster_id = b.cluster_id and a.position = b.position and a.pair_id = b.pair_id and a.phase = b.phase where a.pair_id is null or b.pair_id is null" | sed -n 3p | tr -dc '0-9')
echo "numpy batched ..." >&2
timed numpy-batched python3 tests/oracle/bench_numpy.py batched "$OUT"
echo "numpy per-anchor (sampled) ..." >&2
per_anchor=$(python3 tests/oracle/bench_numpy.py per-anchor "$OUT" | awk '{print $2}')

matrices_mib=$((2 * N * DIM * 4 / 1024 / 1024))
awk -v cpu="$(bash scripts/cpu-line.sh)" -v n="$N" -v dim="$DIM" -v peak="$peak_ours" -v np_peak="$peak_numpy" -v pa="$per_anchor" -v mat="$matrices_mib" -v diff="$differing" '
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
    fast = secs["fast-retrieve"] + secs["fast-remap"] + secs["fast-filter"]
    fast_rss = max3(rss["fast-retrieve"], rss["fast-remap"], rss["fast-filter"])
    printf "| saha-retrieve --mode fast | %.1f | %d | int8 pre-selection (2x the pool), exact f32 re-score |\n", secs["fast-retrieve"], rss["fast-retrieve"]
    same = (diff == 0) ? "clusters identical to exact mode (0 differing rows)" : ("clusters differ from exact mode in " diff " rows")
    printf "| **fast, end to end** | **%.1f** | %d | %s |\n", fast, fast_rss, same
    printf "| numpy, batched reference sampler | %.1f | %d | %.2fx exact, %.2fx fast |\n", secs["numpy-batched"], rss["numpy-batched"], secs["numpy-batched"] / ours, secs["numpy-batched"] / fast
    printf "| numpy, one exact search per anchor (1000 sampled, scaled) | %.1f | | %.1fx exact, %.1fx fast |\n", pa, pa / ours, pa / fast
  }' "$OUT/times"
