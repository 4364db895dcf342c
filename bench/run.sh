#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR] — every benchmark (bench/*/run.sh), one after
# the other. Each prints its figures next to its peers' from the same run;
# bench/RESULTS.md records them. Not tests: nothing here fails on a figure.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=${1:-$ROOT/build}
status=0
for run in "$HERE"/*/run.sh; do
    name=$(basename "$(dirname "$run")")
    echo "== $name"
    bash "$run" "$BUILD" || { echo "$name failed" >&2; status=1; }
    echo
done
exit $status
