#!/usr/bin/env bash
# bench/w4/compare.sh BEFORE_DIR [BUILD_DIR] — W4 for two builds of the
# library and the Go peer in one time window: rounds alternate "before"
# (BEFORE_DIR/w4, linked against BEFORE_DIR/libgunmetal.so), "after"
# (BUILD_DIR/w4) and the coder/websocket peer, against BUILD_DIR/testserver.
# Prints per round "NAME MSGS SECONDS CPU_SECONDS" and per client the median
# CPU per message. Make BEFORE_DIR from an older commit with
#   go build -buildmode=c-shared -o DIR/libgunmetal.so ./capi
#   cc -O2 -I include -o DIR/w4 bench/w4/w4.c -LDIR -lgunmetal -Wl,-rpath,DIR
# Environment: ROUNDS (default 7). Not a test: it prints figures.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BEFORE=$(cd "$1" && pwd)
B=$(cd "${2:-$ROOT/build}" && pwd)
[ -x "$B/testserver" ] || go build -o "$B/testserver" ./tests/server
(cd "$HERE/peer" && go build -o "$B/w4-peer" .)
${CC:-cc} -O2 -Wall -I "$ROOT/include" -o "$B/w4" "$HERE/w4.c" -L"$B" -lgunmetal -Wl,-rpath,"$B"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gm-w4c.XXXXXX")
SP=
cleanup() { exec 9>&- 2>/dev/null || true; [ -n "$SP" ] && { kill "$SP" 2>/dev/null || true; wait "$SP" 2>/dev/null || true; }; rm -rf "$TMP"; }
trap cleanup EXIT
mkfifo "$TMP/in"
"$B/testserver" -cert-dir "$TMP" <"$TMP/in" >"$TMP/server.json" 2>"$TMP/err" &
SP=$!
exec 9>"$TMP/in"
for _ in $(seq 1 200); do grep -q '}' "$TMP/server.json" 2>/dev/null && break; sleep 0.05; done
PORT=$(sed -n 's/.*"http":\([0-9]*\).*/\1/p' "$TMP/server.json")
for _ in $(seq 1 "${ROUNDS:-7}"); do
    echo "before $("$BEFORE/w4" "$PORT" 3 100 100 1)"
    echo "after $("$B/w4" "$PORT" 3 100 100 1)"
    echo "coder $("$B/w4-peer" -url "ws://127.0.0.1:$PORT/ws" -seconds 3 -inflight 100 -size 100 -warmup 1)"
done | tee "$TMP/out"
for n in before after coder; do
    awk -v n="$n" '$1 == n { print $4 * 1e6 / $2 }' "$TMP/out" | sort -n |
        awk -v n="$n" '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%-7s median CPU per message %.2f us\n", n, m }'
done
