#!/usr/bin/env bash
# bench/w1/run.sh [BUILD_DIR] — W1: one HTTP/2 connection, 100 concurrent
# streams, 100-byte GETs against nghttpd (h2c): h2load, gunmetal's engine
# from Go, gunmetal from C through the ABI (w1.c), Go's net/http client,
# gunmetal from Python (sync batch and asyncio, bench/w1/py_client.py),
# httpx (HTTP/2, same script) and gunmetal from Erlang
# (bindings/erlang_nif/bench_w1.escript), from one run (bench/w1/driver):
# the same nghttpd, interleaved rounds, with ratios and the issues' targets.
# Not a test: it prints figures; it exits non-zero only if a client failed
# (each failure is printed as "client X failed: why").
#
# Environment: W1_REQUESTS (per built-in client per round, default 200000),
# W1_ROUNDS (7), W1_CONCURRENCY (100), W1_EXT_SECONDS (measured seconds per
# round for the Python and Erlang clients, a whole number, default 2),
# W1_EXT_WARMUP (their warm-up on the same connection, whole seconds, 1),
# PYTHON (python3), CC.
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

EXT_S=${W1_EXT_SECONDS:-2}
EXT_W=${W1_EXT_WARMUP:-1}
PY=${PYTHON:-python3}
q() { printf '%q' "$1"; }

# gunmetal from Python: this checkout's package (bindings/python/src) on this
# build's library; httpx from pip (make deps installs it).
export GUNMETAL_BUILD_DIR="$BUILD" GUNMETAL_LIBRARY="$BUILD/libgunmetal.so"
PYC="$(q "$PY") $(q "$HERE/py_client.py") --host {host} --port {port} --path {path} --streams {streams} --seconds $EXT_S --warmup $EXT_W"

# gunmetal from Erlang: the NIF and modules built in bindings/erlang_nif
# (as its run_tests.sh does) on this build's library — replaced by rename,
# not rewritten in place, should a VM have the old one loaded. If that fails,
# the client's command prints the build's output and fails, so that the run
# says "client gunmetal (Erlang) failed: ..." instead of leaving it out.
ERL_DIR="$ROOT/bindings/erlang_nif"
ERL_LOG="$BUILD/w1-erlang-build.log"
erl_lib() {
    cmp -s "$BUILD/libgunmetal.so" "$ERL_DIR/priv/libgunmetal.so" && return 0
    cp -f "$BUILD/libgunmetal.so" "$ERL_DIR/priv/libgunmetal.so.w1.$$" &&
        mv -f "$ERL_DIR/priv/libgunmetal.so.w1.$$" "$ERL_DIR/priv/libgunmetal.so"
}
: >"$ERL_LOG"
if { command -v erl && command -v escript; } >/dev/null 2>&1 &&
    { mkdir -p "$ERL_DIR/priv" && erl_lib && make -C "$ERL_DIR" --no-print-directory all; } >>"$ERL_LOG" 2>&1; then
    ERLC="escript $(q "$ERL_DIR/bench_w1.escript") --host {host} --port {port} --protocol http2 --path {path} --streams {streams} --seconds $EXT_S --warmup $EXT_W"
else
    { command -v erl && command -v escript; } >/dev/null 2>&1 ||
        echo "erl/escript not found: apt-get install erlang-nox erlang-dev (or make deps)" >>"$ERL_LOG"
    ERLC="echo 'cannot build the Erlang binding (make -C bindings/erlang_nif):' >&2; tail -n 20 $(q "$ERL_LOG") >&2; exit 1"
fi

exec "$BUILD/w1-driver" -c-client "$BUILD/w1" -n "${W1_REQUESTS:-200000}" -rounds "${W1_ROUNDS:-7}" -m "${W1_CONCURRENCY:-100}" \
    -client "gunmetal (Python sync)=$PYC --client sync" \
    -client "gunmetal (Python asyncio)=$PYC --client asyncio" \
    -client "httpx (HTTP/2)=$PYC --client httpx" \
    -client "gunmetal (Erlang)=$ERLC" \
    -vs "h2load,Go net/http,httpx (HTTP/2)" \
    -target "issue 3: gunmetal (C ABI) vs h2load >= 0.7" \
    -target "issue 3: gunmetal (C ABI) vs Go net/http >= 2.5" \
    -target "issue 5: gunmetal (Python sync) vs httpx (HTTP/2) >= 40" \
    -target "issue 5: gunmetal (Python asyncio) vs httpx (HTTP/2) >= 40" \
    -target "issue 6: gunmetal (Erlang) vs h2load >= 0.35"
