#!/usr/bin/env bash
# bench/w4/run.sh [BUILD_DIR] — W4 alone (bench/run.sh with BENCH_ONLY=w4).
exec env BENCH_ONLY=w4 bash "$(dirname "${BASH_SOURCE[0]}")/../run.sh" "$@"
