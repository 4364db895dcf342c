#!/usr/bin/env bash
# bench/w5/run.sh [BUILD_DIR] — W5 alone (bench/run.sh with BENCH_ONLY=w5).
exec env BENCH_ONLY=w5 bash "$(dirname "${BASH_SOURCE[0]}")/../run.sh" "$@"
