#!/usr/bin/env bash
# scripts/demo.sh BUILD_DIR — `make demo`: start the test server on 127.0.0.1,
# run the example (BUILD_DIR/get, from examples/c/get.c) against its HTTP
# port, print what it prints, and stop the server whatever happens.
set -euo pipefail
build=${1:-build}
server=$build/testserver
example=$build/get
ws_example=$build/ws_echo
for f in "$server" "$example" "$ws_example"; do
    [ -x "$f" ] || { echo "demo: $f is missing: run make first" >&2; exit 1; }
done

tmp=$(mktemp -d)
srv_pid=
cleanup() {
    if [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; then
        kill -TERM "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The server prints one JSON line with its addresses, then runs until SIGTERM
# or until its stdin closes: the coprocess's stdin is a pipe this script
# holds, so the server also goes if the script is killed outright.
coproc SRV { exec "$server" -cert-dir "$tmp"; }
srv_pid=$SRV_PID
if ! IFS= read -r -t 15 line <&"${SRV[0]}"; then
    echo "demo: the test server printed no address line" >&2
    exit 1
fi
port=$(sed -n 's/.*"http":\([0-9]*\).*/\1/p' <<<"$line")
tls_port=$(sed -n 's/.*"https":\([0-9]*\).*/\1/p' <<<"$line")
ca=$(sed -n 's/.*"ca":"\([^"]*\)".*/\1/p' <<<"$line")
[ -n "$port" ] && [ -n "$tls_port" ] && [ -n "$ca" ] || { echo "demo: cannot read the address line: $line" >&2; exit 1; }

echo "== test server on 127.0.0.1:$port (HTTP/1.1, h2c) and :$tls_port (TLS: h2, http/1.1)"
echo
echo "== HTTP/1.1: $example 127.0.0.1 $port"
"$example" 127.0.0.1 "$port"
echo
# Over TLS Gun offers h2 and http/1.1 by ALPN; the server picks h2. The
# server's certificate is made by the test server, so we trust its CA.
opts="{\"transport\":\"tls\",\"tls_opts\":{\"cacertfile\":\"$ca\"}}"
echo "== HTTP/2 over TLS: $example localhost $tls_port '$opts'"
"$example" localhost "$tls_port" "$opts"
echo
echo "== WebSocket: $ws_example 127.0.0.1 $port"
"$ws_example" 127.0.0.1 "$port"
echo
echo "== every example exited with status 0"
