#!/usr/bin/env bash
# bench/ab.sh BEFORE_DIR [BUILD_DIR] — before/after of issue 16's W5 and W6
# optimisations in one time window: rounds alternate BEFORE_DIR's clients
# (gm_client, w6, linked against BEFORE_DIR/libgunmetal.so) and
# BUILD_DIR's, against the same servers. Make BEFORE_DIR from an older
# commit:
#   mkdir -p /tmp/before && git archive COMMIT | tar -x -C /tmp/before
#   (cd /tmp/before && go build -buildmode=c-shared -o b/libgunmetal.so ./capi)
#   for p in gm_client:bench/clients/gm_client.c w6:bench/w6/w6.c; do
#     cc -O2 -I include -o /tmp/before/b/${p%%:*} ${p#*:} -L/tmp/before/b -lgunmetal -Wl,-rpath,/tmp/before/b; done
# Prints per round and side: W6 events/s (HTTP/2 and WebSocket, batch 16
# and 256, median of 3 drains) and W5 KiB per idle connection.
# Environment: ROUNDS (5), W5_CONNS (10000). Not a test: it prints figures.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BEFORE=$(cd "$1" && pwd)
B=$(cd "${2:-$ROOT/build}" && pwd)
ROUNDS=${ROUNDS:-5}
N5=${W5_CONNS:-10000}
ulimit -n "$(ulimit -Hn)"
export PATH="$PATH:/usr/sbin"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gm-ab.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
mkfifo "$TMP/in"
"$B/testserver" -cert-dir "$TMP" <"$TMP/in" >"$TMP/server.json" 2>/dev/null &
pids+=($!)
exec 9>"$TMP/in"
for _ in $(seq 1 100); do grep -q '}' "$TMP/server.json" 2>/dev/null && break; sleep 0.05; done
GOPORT=$(sed -n 's/.*"http":\([0-9]*\).*/\1/p' "$TMP/server.json")
mkdir -p "$TMP/www/bytes"
head -c 100 /dev/zero | tr '\0' a >"$TMP/www/bytes/100"
H2PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nghttpd --no-tls -n 1 -a 127.0.0.1 -d "$TMP/www" "$H2PORT" >/dev/null 2>&1 &
pids+=($!)
sleep 0.5
med() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
w6() { "$1/w6" "$GOPORT" "$2" "$3" "$4" 3 | awk '{ printf "%.0f\n", $1 / $2 }' | med; }
w5() { "$1/gm_client" idle "$H2PORT" 0 /bytes/100 "$N5" 2 | sed -n 's/.*n=\([0-9]*\).*rss_before_kb=\([0-9]*\) rss_after_kb=\([0-9]*\).*/\1 \2 \3/p' |
    awk '{ printf "%.1f\n", ($3 - $2) / $1 }'; }
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-6s %12s %12s %12s %12s %10s\n' round side "h2/b16" "h2/b256" "ws/b16" "ws/b256" "W5 KiB/c"
for r in $(seq 1 "$ROUNDS"); do
    for side in before after; do
        d=$B
        [ "$side" = before ] && d=$BEFORE
        printf '%-6s %-6s %12s %12s %12s %12s %10s\n' "$r" "$side" "$(w6 "$d" h2 40000 16)" "$(w6 "$d" h2 40000 256)" \
            "$(w6 "$d" ws 100000 16)" "$(w6 "$d" ws 100000 256)" "$(w5 "$d")"
    done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
