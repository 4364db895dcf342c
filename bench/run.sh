#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR] — issue 16's workloads W1–W6 for every client
# against the same server, interleaved rounds, medians, ratios to the base
# (h2load for W1–W3, Go's coder/websocket client for W4), client CPU per
# request and peak RSS beside every rate (bench/harness). `make bench` runs
# it after `make deps` and `make`; it installs the bench's own Python peer
# (aiohttp) and builds the clients:
#
#   bench/clients/gm_client.c    gunmetal from C (W1, W2, W3, W5)
#   bench/clients/curl_client.c  libcurl multi, HTTP/2 multiplexing
#   bench/clients/goclient       Go net/http
#   bench/w1/py_client.py        gunmetal from Python (sync, asyncio), httpx
#   bindings/erlang_nif/bench_w1.escript   gunmetal from Erlang
#   bench/w4/w4.c, bench/w4/peer, bench/w4/aiohttp_ws.py   W4
#   bench/w6/w6.c                W6 (the event drain)
#
# Environment: BENCH_QUICK=1 (each workload once, briefly: a smoke run
# whose figures mean nothing), BENCH_ONLY=w1,w4 (a subset), BENCH_ROUNDS
# (default 5), CC, PYTHON. Not a test: it prints figures, and exits non-zero
# only if a client failed. Run it on an otherwise idle machine: the harness
# prints the load average at the start and end of every workload.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=${1:-$ROOT/build}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
CC=${CC:-cc}
PY=${PYTHON:-python3}
cd "$ROOT"
export PATH="$PATH:/usr/sbin" # nghttpd

for bin in nghttpd h2load curl-config; do
    command -v "$bin" >/dev/null ||
        { echo "bench: $bin is missing: make deps (nghttp2-server nghttp2-client libcurl4-openssl-dev)" >&2; exit 1; }
done
# The bench's own Python peer (make deps installs httpx).
"$PY" -c 'import aiohttp' 2>/dev/null || {
    echo "bench: installing aiohttp (W4 peer)" >&2
    PIP_BREAK_SYSTEM_PACKAGES=1 "$PY" -m pip install -q aiohttp
}

[ -e "$BUILD/libgunmetal.so" ] || { echo "bench: $BUILD/libgunmetal.so missing: run make first" >&2; exit 1; }
GM="-I $ROOT/include -L$BUILD -lgunmetal -Wl,-rpath,$BUILD"
# shellcheck disable=SC2086
{
    $CC -O2 -Wall -Wextra -o "$BUILD/gm_client" bench/clients/gm_client.c $GM
    $CC -O2 -Wall -Wextra -o "$BUILD/w4" bench/w4/w4.c $GM
    $CC -O2 -Wall -Wextra -o "$BUILD/w6" bench/w6/w6.c $GM
    $CC -O2 -Wall -Wextra -o "$BUILD/rusage" bench/clients/rusage.c
    $CC -O2 -Wall -Wextra -o "$BUILD/curl_client" bench/clients/curl_client.c $(curl-config --cflags --libs)
}
go build -o "$BUILD/goclient" ./bench/clients/goclient
go build -o "$BUILD/harness" ./bench/harness
# coder/websocket stays out of gunmetal's go.mod: the peer is a module of its own.
(cd bench/w4/peer && go build -o "$BUILD/w4-peer" .)

# gunmetal from Erlang: the NIF built against this build's library, as
# bindings/erlang_nif/run_tests.sh does (replaced by rename: a running VM
# may have the old one loaded). Without erl the harness shows it as n/a.
ERL_DIR="$ROOT/bindings/erlang_nif"
if command -v erl >/dev/null && command -v escript >/dev/null; then
    mkdir -p "$ERL_DIR/priv"
    if ! cmp -s "$BUILD/libgunmetal.so" "$ERL_DIR/priv/libgunmetal.so"; then
        cp -f "$BUILD/libgunmetal.so" "$ERL_DIR/priv/libgunmetal.so.bench.$$"
        mv -f "$ERL_DIR/priv/libgunmetal.so.bench.$$" "$ERL_DIR/priv/libgunmetal.so"
    fi
    make -C "$ERL_DIR" --no-print-directory all >"$BUILD/bench-erlang-build.log" 2>&1 ||
        echo "bench: building the Erlang binding failed (see $BUILD/bench-erlang-build.log)" >&2
fi

args=(-build "$BUILD" -root "$ROOT" -only "${BENCH_ONLY:-w1,w2,w3,w4,w5,w6}" -rounds "${BENCH_ROUNDS:-5}")
[ "${BENCH_QUICK:-0}" = 1 ] && args+=(-quick)
exec "$BUILD/harness" "${args[@]}"
