#!/usr/bin/env bash
# One line naming the machine and day a benchmark ran on, printed above every benchmark table:
# figures from one CPU family say nothing about another. Usage: cpu-line.sh [LOAD_AT_START]
# (the 1-minute load average the benchmark saw when it started; the one now is added beside it).
flags=$(grep -m1 '^flags' /proc/cpuinfo)
model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
has() { grep -qw "$1" <<< "$flags"; }
simd="no AVX2"
has avx2 && simd="AVX2"
has avx512f && simd="AVX-512"
has avx512_vnni && simd="$simd, VNNI"
has avx512_bf16 && simd="$simd, BF16"
has amx_tile && simd="$simd, AMX"
load=""
[[ -n ${1:-} ]] && load="; 1-minute load average $1 at the start, $(cut -d' ' -f1 /proc/loadavg) at the end"
echo "Measured on $(date -u +%Y-%m-%d): ${model:-unknown CPU} ($simd), $(nproc) cores$load"
