#!/usr/bin/env bash
# bench/w1/run.sh [BUILD_DIR] — W1 alone (bench/run.sh with BENCH_ONLY=w1).
exec env BENCH_ONLY=w1 bash "$(dirname "${BASH_SOURCE[0]}")/../run.sh" "$@"
