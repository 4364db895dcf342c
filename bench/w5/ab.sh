#!/usr/bin/env bash
# bench/w5/ab.sh N ROUNDS DIR... — W5 before/after: `gm_client idle` (N
# idle h2c connections after one GET each, 3 s idle) against one nghttpd,
# with each DIR's gm_client (linked against that DIR's libgunmetal.so; make
# one from an older commit as bench/ab.sh says), alternating per round.
# Prints the RSS growth per connection. Not a test: it prints figures.
set -euo pipefail
N=$1 R=$2
shift 2
ulimit -n "$(ulimit -Hn)"
export PATH="$PATH:/usr/sbin"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gm-w5ab.XXXXXX")
mkdir -p "$TMP/www/bytes"
head -c 100 /dev/zero | tr '\0' a >"$TMP/www/bytes/100"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nghttpd --no-tls -n 1 -a 127.0.0.1 -d "$TMP/www" "$PORT" >/dev/null 2>&1 &
NP=$!
trap 'kill $NP; rm -rf "$TMP"' EXIT
sleep 0.5
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$R"); do
    for d in "$@"; do
        printf '%s %s ' "$r" "$d"
        "$d/gm_client" idle "$PORT" 0 /bytes/100 "$N" 3 |
            sed -n 's/.*n=\([0-9]*\).*rss_before_kb=\([0-9]*\) rss_after_kb=\([0-9]*\).*/\1 \2 \3/p' |
            awk '{ printf "%.2f KiB/conn\n", ($3 - $2) / $1 }'
    done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
