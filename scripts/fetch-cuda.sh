#!/usr/bin/env bash
# Fetches a CUDA 13.0 toolchain (nvcc, headers, runtime, cuBLAS, cuRAND, NVRTC) from PyPI, pinned and
# checksummed, and prepares what linking a CUDA-enabled candle binary needs on a machine with no GPU and no
# system CUDA toolkit (../shared/reference/cuda-build.md): unversioned link names for the versioned
# libraries the wheels ship, and a stub `libcuda.so.1` (the driver library, which no registry ships; the GPU
# machine's own driver library is loaded at run time). Idempotent; prints the env file to source.
#
# Outputs, under ~/.cache/saha/cuda/ (outside the clone, like the shared cargo target: the link folder's path
# is in RUSTFLAGS, so every clone that uses the same path reuses the same CUDA build):
#   nvidia/cu13/{bin,include,lib,nvvm}   the unpacked wheels (nvcc in bin/)
#   link/                                unversioned symlinks + the stub libcuda.so
#   env.sh                               PATH, CUDA_ROOT, CUDA_COMPUTE_CAP and RUSTFLAGS for cargo
#
# Environment: CUDA_DIR (default ~/.cache/saha/cuda), CUDA_WHEEL_CACHE (default ~/.cache/saha/wheels),
#              CUDA_COMPUTE_CAP (default 90: H100/H200).
set -euo pipefail

# name==version, wheel file, sha256. nvvm is pinned to the same 13.0 release as nvcc: a newer nvvm emits
# PTX (.version 9.5) that 13.0's ptxas rejects.
WHEELS=(
  "nvidia-cuda-nvcc==13.0.88 nvidia_cuda_nvcc-13.0.88-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03"
  "nvidia-nvvm==13.0.88 nvidia_nvvm-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0"
  "nvidia-cuda-runtime==13.0.96 nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548"
  "nvidia-cuda-crt==13.0.88 nvidia_cuda_crt-13.0.88-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl 2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4"
  "nvidia-cuda-cccl==13.0.85 nvidia_cuda_cccl-13.0.85-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649"
  "nvidia-cuda-nvrtc==13.0.88 nvidia_cuda_nvrtc-13.0.88-py3-none-manylinux2010_x86_64.manylinux_2_12_x86_64.whl ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575"
  "nvidia-cublas==13.0.0.19 nvidia_cublas-13.0.0.19-py3-none-manylinux_2_27_x86_64.whl f6723af2e8e2600a11dc384037d90d9bf93070e346c24ef2e8f9001658c99896"
  "nvidia-curand==10.4.5.25 nvidia_curand-10.4.5.25-py3-none-manylinux_2_27_x86_64.whl 22bb226a857e5888fe6b54ae465fc4371296bcff13a35f79e19691bcf454f529"
)
# The CUDA driver API symbols a candle binary references (collected from the linker's undefined-symbol
# errors; cuInit is reached only through dlsym-free paths the first link does not list).
DRIVER_SYMBOLS=(
  cuCtxDestroy_v2 cuCtxGetCurrent cuCtxSetCurrent cuDeviceGet cuDeviceGetAttribute cuDevicePrimaryCtxRelease_v2
  cuDevicePrimaryCtxRetain cuEventCreate cuEventDestroy_v2 cuEventRecord cuGetErrorString cuInit cuLaunchKernel
  cuMemAllocAsync cuMemAlloc_v2 cuMemFreeAsync cuMemFree_v2 cuMemcpyDtoDAsync_v2 cuMemcpyDtoHAsync_v2
  cuMemcpyHtoDAsync_v2 cuMemcpyPeerAsync cuMemsetD8Async cuModuleGetFunction cuModuleLoad cuModuleLoadData
  cuModuleUnload cuStreamDestroy_v2 cuStreamIsCapturing cuStreamSynchronize cuStreamWaitEvent
)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${CUDA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/saha/cuda}"
cache="${CUDA_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/saha/wheels}"
cap="${CUDA_COMPUTE_CAP:-90}"

die() { echo "fetch-cuda: error: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is required (for sha256 and unpacking wheels)"
command -v gcc >/dev/null || die "gcc is required (to build the stub libcuda.so)"
# shellcheck source=lib/pinned-wheel.sh
source "$root/scripts/lib/pinned-wheel.sh"

stamp="$dest/.complete"
want_stamp="$(printf '%s\n' "${WHEELS[@]}" "${DRIVER_SYMBOLS[@]}" | python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want_stamp" ]]; then
  rm -rf "$dest"
  mkdir -p "$dest"
  for entry in "${WHEELS[@]}"; do
    read -r req file sha <<<"$entry"
    fetch_wheel "$req" "$file" "$sha" "$cache"
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$cache/$file" "$dest" \
      || die "could not unpack $file"
  done
  cu="$dest/nvidia/cu13"
  [[ -d "$cu/bin" ]] || die "the wheels did not give nvidia/cu13/bin"
  chmod +x "$cu"/bin/* "$cu"/nvvm/bin/* 2>/dev/null || true
  link="$dest/link"
  mkdir -p "$link"
  for lib in cublas cublasLt nvrtc curand cudart; do
    versioned="$(cd "$cu/lib" && ls "lib$lib.so."* 2>/dev/null | sort | head -1)"
    [[ -n "$versioned" ]] || die "no lib$lib.so.* in $cu/lib"
    ln -sf "$cu/lib/$versioned" "$link/lib$lib.so"
  done
  {
    for s in "${DRIVER_SYMBOLS[@]}"; do echo "int $s(void) { return 999; }"; done
  } >"$link/stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$link/libcuda.so" "$link/stub.c" || die "could not build the stub libcuda.so"
  echo "$want_stamp" >"$stamp"
fi

cu="$dest/nvidia/cu13"
cat >"$dest/env.sh" <<EOF
# Source before \`cargo build --features cuda\` (written by scripts/fetch-cuda.sh).
export PATH="$cu/bin:\$PATH"
export CUDA_ROOT="$cu"
export CUDA_PATH="$cu"
export CUDA_COMPUTE_CAP="$cap"
export LD_LIBRARY_PATH="$cu/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export RUSTFLAGS="-L $dest/link\${RUSTFLAGS:+ \$RUSTFLAGS}"
EOF
echo "$dest/env.sh"
