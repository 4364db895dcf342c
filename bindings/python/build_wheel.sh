#!/usr/bin/env bash
# bindings/python/build_wheel.sh [OUT_DIR] — the Python wheel in one command
# (`make wheel`): a manylinux wheel that carries a stripped libgunmetal.so, so
# that `pip install` of it needs neither Go nor a compiler.
#
#   OUT_DIR   where the wheel goes (default: <repo>/build/wheel); older
#             gunmetal wheels there are removed first.
#   PYTHON    the interpreter (default: python3); it needs the packages build,
#             wheel, setuptools and auditwheel >= 6.8 (bindings/python/requirements-test.txt).
#
# Steps: go build the library with -ldflags='-s -w' (no symbol table, no
# DWARF: 7 MB instead of 10, and it loads and runs the same: Go's own
# tracebacks use pclntab, which stays); build the py3-none-linux_<arch> wheel
# from a copy of the package (the source tree stays clean); `auditwheel
# repair` then gives it the manylinux tag that the glibc symbol versions the
# library really uses allow. `--patcher none`: the library links libc only,
# so nothing is grafted and no ELF file needs patching; should that ever
# change, repair fails naming the file instead of patching it (and patchelf,
# whose Debian 12 version is too old for auditwheel, is not needed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/build/wheel}
PY=${PYTHON:-python3}
GO=${GO:-go}
say() { printf 'wheel: %s\n' "$*" >&2; }

for mod in build wheel setuptools auditwheel; do
    if ! "$PY" -c "import importlib.metadata as m; m.version('$mod')" 2>/dev/null; then
        say "the Python package '$mod' is missing: $PY -m pip install -r $here/requirements-test.txt"
        exit 1
    fi
done
command -v "$GO" >/dev/null 2>&1 || { say "building libgunmetal.so needs Go on PATH"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say "$GO build -buildmode=c-shared -ldflags='-s -w' ./capi"
mkdir -p "$tmp/lib"
(cd "$repo" && "$GO" build -buildmode=c-shared -ldflags='-s -w' -o "$tmp/lib/libgunmetal.so" ./capi)
rm -f "$tmp/lib/libgunmetal.h"  # cgo's header; include/gunmetal.h is the contract

# A copy of the package, symlinks resolved (LICENSE is the repository's).
mkdir -p "$tmp/pkg"
cp -L "$here/pyproject.toml" "$here/setup.py" "$here/README.md" "$here/LICENSE" "$tmp/pkg/"
cp -rL "$here/src" "$tmp/pkg/src"
find "$tmp/pkg/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
rm -f "$tmp/pkg/src/gunmetal/libgunmetal.so"

say "$PY -m build --wheel"
GUNMETAL_LIBRARY="$tmp/lib/libgunmetal.so" "$PY" -m build --wheel --no-isolation -o "$tmp/dist" "$tmp/pkg" >"$tmp/build.log" 2>&1 ||
    { cat "$tmp/build.log" >&2; exit 1; }

mkdir -p "$out"
rm -f "$out"/gunmetal-*.whl
say "$PY -m auditwheel repair"
"$PY" -m auditwheel repair --patcher none -w "$out" "$tmp"/dist/gunmetal-*.whl >"$tmp/repair.log" 2>&1 ||
    { cat "$tmp/repair.log" >&2; exit 1; }
whl=$(ls "$out"/gunmetal-*.whl)
"$PY" -m auditwheel show "$whl" >&2
say "$whl ($(stat -c %s "$whl") bytes)"
