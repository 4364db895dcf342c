#!/usr/bin/env bash
# bench/w2/run.sh [BUILD_DIR] — W2 alone (bench/run.sh with BENCH_ONLY=w2).
exec env BENCH_ONLY=w2 bash "$(dirname "${BASH_SOURCE[0]}")/../run.sh" "$@"
