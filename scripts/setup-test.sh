#!/usr/bin/env bash
# Installs what the tests need on a fresh machine. Idempotent and quiet when all is there.
set -euo pipefail
need=()
command -v make >/dev/null || need+=(make)
command -v cc >/dev/null || need+=(gcc)
if ((${#need[@]})); then
  apt-get update -qq && apt-get install -y -qq "${need[@]}"
fi
