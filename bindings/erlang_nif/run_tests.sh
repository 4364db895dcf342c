#!/usr/bin/env bash
# Builds and tests gunmetal's Erlang binding.
#
#   bindings/erlang_nif/run_tests.sh BUILD_DIR
#
# BUILD_DIR holds libgunmetal.so (and testserver); what is missing there is
# built from the repository with `go build`. The script copies the library
# into priv/, builds the NIF and the modules (make), starts the Go test server,
# runs the EUnit suites and stops the server. Exit status: EUnit's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$here/_build}"
mkdir -p "$build"
build="$(cd "$build" && pwd)"

command -v erl >/dev/null || { echo "run_tests.sh: erl not found (apt-get install erlang-nox erlang-dev)" >&2; exit 2; }

if [ ! -f "$build/libgunmetal.so" ]; then
	(cd "$root" && go build -buildmode=c-shared -o "$build/libgunmetal.so" ./capi)
fi
if [ ! -x "$build/testserver" ]; then
	(cd "$root" && go build -o "$build/testserver" ./tests/server)
fi

mkdir -p "$here/priv"
cp -f "$build/libgunmetal.so" "$here/priv/libgunmetal.so"
make -C "$here" --no-print-directory all tests >/dev/null

# The test server: one JSON line with its addresses; it stops when its stdin
# closes (our end of the pipe, held by fd 3) or on SIGTERM.
unix_sock="$build/gunmetal-erl-test.$$.sock"
info="$build/testserver.$$.json"
coproc SERVER { exec "$build/testserver" -unix "$unix_sock" 2>"$build/testserver.$$.log"; }
server_pid=$SERVER_PID
exec 3>&"${SERVER[1]}"
cleanup() {
	exec 3>&- || true
	kill "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	rm -f "$unix_sock" "$info" "$build/testserver.$$.log"
}
trap cleanup EXIT
read -r -t 20 line <&"${SERVER[0]}" || { echo "run_tests.sh: test server did not start" >&2; cat "$build/testserver.$$.log" >&2; exit 2; }
json_get() { printf '%s' "$line" | sed -n "s/.*\"$1\":\\(\"[^\"]*\"\\|[0-9]*\\).*/\\1/p" | tr -d '"'; }
export GM_HTTP_PORT="$(json_get http)" GM_HTTPS_PORT="$(json_get https)" GM_UNIX="$(json_get unix)" GM_CA="$(json_get ca)"
[ -n "$GM_HTTP_PORT" ] || { echo "run_tests.sh: cannot read the server's line: $line" >&2; exit 2; }

# The scenario suite's server (gunmetal_scenarios_tests starts it).
(cd "$root" && go build -o "$build/scenserver" ./tests/scenarios/server)
export GM_SCENSERVER="$build/scenserver"

cd "$here"
status=0
timeout 300 erl -noshell -pa ebin -pa test -eval '
	R = eunit:test([gunmetal_tests, gunmetal_guide_tests, gunmetal_trace_tests, gunmetal_sse_tests, gunmetal_raw_tests, gunmetal_tunnel_tests], [verbose]),
	halt(case R of ok -> 0; _ -> 1 end).' || status=$?
# The scenario suite on its own: a timeout above cancels the rest of that run.
timeout 300 erl -noshell -pa ebin -pa test -eval '
	R = eunit:test([gunmetal_scenarios_tests], [verbose]),
	halt(case R of ok -> 0; _ -> 1 end).' || status=$?
exit $status
