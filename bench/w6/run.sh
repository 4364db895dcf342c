#!/usr/bin/env bash
# bench/w6/run.sh [BUILD_DIR] — W6 alone (bench/run.sh with BENCH_ONLY=w6).
exec env BENCH_ONLY=w6 bash "$(dirname "${BASH_SOURCE[0]}")/../run.sh" "$@"
