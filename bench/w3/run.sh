#!/usr/bin/env bash
# bench/w3/run.sh [BUILD_DIR] — W3 alone (bench/run.sh with BENCH_ONLY=w3).
exec env BENCH_ONLY=w3 bash "$(dirname "${BASH_SOURCE[0]}")/../run.sh" "$@"
