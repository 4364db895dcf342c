#!/usr/bin/env bash
# bindings/python/run_tests.sh [BUILD_DIR] — the Python binding's checks:
# mypy --strict on the package, then the pytest suite (which starts its own
# test server, nginx if tests/nginx/nginx.sh and nginx are there, and fresh
# venvs for the install tests). Exits non-zero if either fails.
#
#   BUILD_DIR   where libgunmetal.so and testserver are (default: <repo>/build).
#               What is missing there is built with `go build`; set
#               GUNMETAL_REBUILD=1 to rebuild both anyway.
#   PYTHON      the interpreter (default: python3)
#
# The Python packages of requirements-test.txt are installed with pip first
# when one is missing (quietly; nothing is run when all are there).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${1:-$repo/build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
PY=${PYTHON:-python3}
say() { printf 'python: %s\n' "$*" >&2; }

# ---- Python packages -------------------------------------------------------
# requirements-test.txt lists them; check_requirements.py looks each one up in
# the installed distributions' metadata (not by import: from the repository
# root, the build/ output folder passes for the `build` package) and pip
# installs the file only when something is missing.
reqs="$here/requirements-test.txt"
if ! missing=$("$PY" "$here/check_requirements.py" "$reqs"); then
    say "pip install -r $reqs (missing: $(echo $missing))"
    if ! out=$("$PY" -m pip install -q -r "$reqs" 2>&1); then
        if grep -q externally-managed <<<"$out"; then
            "$PY" -m pip install -q --break-system-packages -r "$reqs"
        else
            printf '%s\n' "$out" >&2
            exit 1
        fi
    fi
    if ! missing=$("$PY" "$here/check_requirements.py" "$reqs"); then
        say "still missing after pip install: $(echo $missing)"
        exit 1
    fi
fi

# ---- the library and the test server ---------------------------------------
if [ "${GUNMETAL_REBUILD:-0}" = 1 ] || [ ! -e "$build/libgunmetal.so" ]; then
    say "go build -buildmode=c-shared -o $build/libgunmetal.so ./capi"
    (cd "$repo" && go build -buildmode=c-shared -o "$build/libgunmetal.so.tmp" ./capi)
    rm -f "$build/libgunmetal.so.h" "$build/libgunmetal.h"
    mv -f "$build/libgunmetal.so.tmp" "$build/libgunmetal.so"
fi
if [ "${GUNMETAL_REBUILD:-0}" = 1 ] || [ ! -x "$build/testserver" ]; then
    say "go build -o $build/testserver ./tests/server"
    (cd "$repo" && go build -o "$build/testserver" ./tests/server)
fi

export GUNMETAL_BUILD_DIR="$build"
export GUNMETAL_LIBRARY="$build/libgunmetal.so"
export GUNMETAL_TESTSERVER="$build/testserver"
cd "$here"

status=0
say "mypy --strict src/gunmetal"
"$PY" -m mypy --strict src/gunmetal || status=1
say "pytest tests"
"$PY" -m pytest -q -p no:cacheprovider --timeout 300 tests || status=1
exit $status
