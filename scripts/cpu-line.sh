#!/usr/bin/env bash
# One line naming the machine and day a benchmark ran on, printed above every benchmark table:
# figures from one CPU family say nothing about another.
model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
simd=$(grep -m1 -o -w 'avx512f\|avx2' /proc/cpuinfo | head -1)
grep -qw avx512_vnni /proc/cpuinfo && simd="$simd, avx512_vnni"
grep -qw amx_tile /proc/cpuinfo && simd="$simd, amx"
echo "Measured on $(date -u +%Y-%m-%d): ${model:-unknown CPU} (${simd:-no AVX2}), $(nproc) cores"
