#!/usr/bin/env bash
# bench/w4/run.sh [BUILD_DIR] — W4: one WebSocket connection, 100-byte
# echo, 100 messages in flight: gunmetal from C (w4.c) next to Go's
# coder/websocket client (peer/), against the same echo server (the
# project's test server, /ws), in one run. Prints msgs/s and client CPU
# (user + sys) per message for each, and their ratios. Not a test: it prints
# figures. The machine may be shared: CPU per message is the comparable
# figure, msgs/s depends on the load.
#
# Environment: W4_ROUNDS (default 3), W4_SECONDS (per round and client, 3),
# W4_INFLIGHT (100), W4_SIZE (100), W4_WARMUP (1), CC.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${1:-$ROOT/build}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
SECONDS_=${W4_SECONDS:-3}
ROUNDS=${W4_ROUNDS:-3}
INFLIGHT=${W4_INFLIGHT:-100}
SIZE=${W4_SIZE:-100}
WARMUP=${W4_WARMUP:-1}
CC=${CC:-cc}

cd "$ROOT"
# The library as `make` builds it (soname libgunmetal.so.0), or a plain one.
LIBDIR=$BUILD
if [ ! -e "$BUILD/libgunmetal.so" ]; then
    go build -buildmode=c-shared -o "$BUILD/libgunmetal.so" ./capi
    rm -f "$BUILD/libgunmetal.h"
fi
[ -x "$BUILD/testserver" ] || go build -o "$BUILD/testserver" ./tests/server
# The peer is a module of its own (bench/w4/peer/go.mod), so that
# coder/websocket stays out of gunmetal's go.mod.
(cd "$HERE/peer" && go build -o "$BUILD/w4-peer" .)
$CC -O2 -Wall -Wextra -I "$ROOT/include" -o "$BUILD/w4" "$HERE/w4.c" -L"$LIBDIR" -lgunmetal -Wl,-rpath,"$LIBDIR"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gm-w4.XXXXXX")
SERVER_PID=
cleanup() {
    exec 9>&- 2>/dev/null || true
    [ -n "$SERVER_PID" ] && { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
    rm -rf "$TMP"
}
trap cleanup EXIT
mkfifo "$TMP/in"
"$BUILD/testserver" -cert-dir "$TMP" <"$TMP/in" >"$TMP/server.json" 2>"$TMP/server.err" &
SERVER_PID=$!
exec 9>"$TMP/in"
for _ in $(seq 1 200); do
    grep -q '}' "$TMP/server.json" 2>/dev/null && break
    sleep 0.05
done
PORT=$(sed -n 's/.*"http":\([0-9]*\).*/\1/p' "$TMP/server.json")
[ -n "$PORT" ] || { echo "w4: the test server did not start: $(cat "$TMP/server.err")" >&2; exit 1; }

# Rounds alternate the two clients, so that both see the same machine.
GM_RATES=()
GO_RATES=()
GM_CPU=()
GO_CPU=()
for _ in $(seq 1 "$ROUNDS"); do
    read -r n s u < <("$BUILD/w4" "$PORT" "$SECONDS_" "$INFLIGHT" "$SIZE" "$WARMUP")
    GM_RATES+=("$(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.0f", n / s }')")
    GM_CPU+=("$(awk -v n="$n" -v u="$u" 'BEGIN { printf "%.2f", u * 1e6 / n }')")
    read -r n s u < <("$BUILD/w4-peer" -url "ws://127.0.0.1:$PORT/ws" -seconds "$SECONDS_" -inflight "$INFLIGHT" -size "$SIZE" -warmup "$WARMUP")
    GO_RATES+=("$(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.0f", n / s }')")
    GO_CPU+=("$(awk -v n="$n" -v u="$u" 'BEGIN { printf "%.2f", u * 1e6 / n }')")
done

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
GM=$(median "${GM_RATES[@]}")
GO=$(median "${GO_RATES[@]}")
GMC=$(median "${GM_CPU[@]}")
GOC=$(median "${GO_CPU[@]}")
printf 'W4  one WebSocket connection, %d-byte echo, %d in flight (server: tests/testserver /ws)\n' "$SIZE" "$INFLIGHT"
printf '    %d rounds of %s s per client, alternating; median msgs/s (each round)\n' "$ROUNDS" "$SECONDS_"
printf '    %-32s %10.0f msgs/s   (%s)\n' "gunmetal from C (libgunmetal)" "$GM" "${GM_RATES[*]}"
printf '    %-32s %10.0f msgs/s   (%s)\n' "coder/websocket client (Go)" "$GO" "${GO_RATES[*]}"
awk -v g="$GM" -v o="$GO" 'BEGIN { printf "    %-32s %10.2f\n", "ratio gunmetal / coder/websocket", g / o }'
printf '    client CPU (user + sys) per message, median\n'
printf '    %-32s %10.2f us/msg   (%s)\n' "gunmetal from C (libgunmetal)" "$GMC" "${GM_CPU[*]}"
printf '    %-32s %10.2f us/msg   (%s)\n' "coder/websocket client (Go)" "$GOC" "${GO_CPU[*]}"
awk -v g="$GMC" -v o="$GOC" 'BEGIN { printf "    %-32s %10.2f\n", "CPU ratio gunmetal / coder", g / o }'
