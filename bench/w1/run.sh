#!/usr/bin/env bash
# bench/w1/run.sh [BUILD_DIR] — W1: one HTTP/2 connection, 100 concurrent
# streams, 100-byte GETs against nghttpd (h2c): h2load, gunmetal's engine
# from Go, gunmetal from C through the ABI (w1.c) and Go's net/http client,
# from one run (bench/w1/driver), with ratios. Not a test: it prints figures.
#
# Environment: W1_REQUESTS (per client per round, default 200000),
# W1_ROUNDS (7), W1_CONCURRENCY (100), CC.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${1:-$ROOT/build}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
CC=${CC:-cc}

for bin in nghttpd h2load; do
    PATH="$PATH:/usr/sbin" command -v "$bin" >/dev/null ||
        { echo "w1: $bin is not installed: apt-get install -y nghttp2-server nghttp2-client (or make deps)" >&2; exit 1; }
done
export PATH="$PATH:/usr/sbin"

cd "$ROOT"
# The library as `make` builds it, or a plain one.
if [ ! -e "$BUILD/libgunmetal.so" ]; then
    go build -buildmode=c-shared -o "$BUILD/libgunmetal.so" ./capi
    rm -f "$BUILD/libgunmetal.h"
fi
go build -o "$BUILD/w1-driver" ./bench/w1/driver
$CC -O2 -Wall -Wextra -I "$ROOT/include" -o "$BUILD/w1" "$HERE/w1.c" -L"$BUILD" -lgunmetal -Wl,-rpath,"$BUILD"

exec "$BUILD/w1-driver" -c-client "$BUILD/w1" -n "${W1_REQUESTS:-200000}" -rounds "${W1_ROUNDS:-7}" -m "${W1_CONCURRENCY:-100}"
