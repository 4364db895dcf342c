#!/usr/bin/env bash
# gunmetal as an Erlang user gets it: a throw-away rebar3 project in a temp
# dir that depends on this checkout, offline.
#
#   bindings/erlang_nif/test_packaging.sh BUILD_DIR
#
# BUILD_DIR holds testserver (built when missing). Steps, each a check:
#   1. the working tree (tracked and new files, as they are now) is committed
#      into a scratch git repository; the project's rebar.config has the one
#      line {gunmetal, {git, "file://...", {branch, "main"}}};
#   2. `rebar3 compile` fetches it, builds libgunmetal.so (Go) and the NIF into
#      the dependency's priv/; the app does a GET against the test server;
#   3. `rebar3 release` (relx, dev_mode off) builds a release; the dependency's
#      build dir is deleted, and the release does the same GET, loading the
#      NIF from its own lib/gunmetal-*/priv (code:priv_dir(gunmetal));
#   4. with Go off the PATH, `rebar3 compile` fails and says Go is missing;
#   5. the hex package (bindings/erlang_nif/make_hex.sh, `make hex`) unpacked
#      as a _checkouts dependency compiles with vendored Go modules and does
#      the GET; `make IS_DEP=1` in the unpacked package (what erlang.mk runs
#      on a dependency) builds ebin/ and priv/ and does the GET;
#   6. the same `make IS_DEP=1` at the top of a git clone (erlang.mk's git
#      dependency) builds ebin/ and priv/ there and does the GET.
# Offline: HOME is a temp dir (no user rebar3 config or hex cache), the hex
# CDN points at a closed port, GOPROXY=off (Go modules from the local cache or
# vendor/), and when `unshare -n` is allowed every rebar3 run has no network.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build}"
mkdir -p "$build"
build="$(cd "$build" && pwd)"

say() { printf 'test_packaging: %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
command -v rebar3 >/dev/null || fail "rebar3 not found (apt-get install rebar3; scripts/deps.sh installs it)"
command -v go >/dev/null || fail "go not found"
[ -x "$build/testserver" ] || (cd "$root" && go build -o "$build/testserver" ./tests/server)

tmp="$(mktemp -d "${TMPDIR:-/tmp}/gunmetal-rebar3.XXXXXX")"
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then
		exec 3>&- || true
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# Go's caches stay where they are (HOME moves): the build cache makes the
# library build cheap, the module cache is what makes GOPROXY=off work.
export GOCACHE="$(go env GOCACHE)" GOMODCACHE="$(go env GOMODCACHE)" GOPATH="$(go env GOPATH)"
export HOME="$tmp/home" HEX_CDN="http://127.0.0.1:9" GOPROXY=off GOTOOLCHAIN=local \
	REBAR_COLOR=none
mkdir -p "$HOME"
if unshare -n true 2>/dev/null; then offline=(unshare -n); else
	offline=(); say "unshare -n not permitted here: offline by configuration only"; fi
rebar() { timeout 600 "${offline[@]}" rebar3 "$@"; }

# --- the test server --------------------------------------------------------
coproc SERVER { exec "$build/testserver" 2>"$tmp/testserver.log"; }
server_pid=$SERVER_PID
exec 3>&"${SERVER[1]}"
read -r -t 20 line <&"${SERVER[0]}" || { cat "$tmp/testserver.log" >&2; fail "test server did not start"; }
port="$(printf '%s' "$line" | sed -n 's/.*"http":\([0-9]*\).*/\1/p')"
[ -n "$port" ] || fail "cannot read the server's line: $line"

# --- 1. this checkout as a git repository ------------------------------------
src="$tmp/gunmetal-src"
mkdir -p "$src"
(cd "$root" && git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
	[ -e "$f" ] && printf '%s\0' "$f"; done | tar --null -T - -cf -) | tar -xf - -C "$src"
git -C "$src" init -q -b main
git -C "$src" add -A
git -C "$src" -c user.name=test -c user.email=test@localhost commit -q -m snapshot

# A project whose app does one GET on start when DEMO_GET_PORT is set, prints
# the result and code:priv_dir(gunmetal), and halts with 0 if it got 200 and
# the 10 bytes of /bytes/10.
make_project() {
	local dir=$1 dep=$2
	mkdir -p "$dir/src" "$dir/config"
	cat >"$dir/rebar.config" <<-EOF
	{erl_opts, [debug_info]}.
	{deps, [$dep]}.
	{relx, [{release, {demo, "0.1.0"}, [demo]},
	        {dev_mode, false}, {include_erts, false}, {include_src, false},
	        {vm_args, "config/vm.args"}, {extended_start_script, true}]}.
	EOF
	# relx's start script wants a node name; the node neither starts epmd
	# (nothing outlives the test) nor listens (no port to collide on).
	printf -- '-sname demo\n-start_epmd false\n-dist_listen false\n' >"$dir/config/vm.args"
	cat >"$dir/src/demo.app.src" <<-'EOF'
	{application, demo, [{description, "gunmetal as a rebar3 dependency"}, {vsn, "0.1.0"},
	    {registered, []}, {mod, {demo, []}}, {applications, [kernel, stdlib, gunmetal]}, {env, []}]}.
	EOF
	cat >"$dir/src/demo.erl" <<-'EOF'
	-module(demo).
	-behaviour(application).
	-behaviour(supervisor).
	-export([start/2, stop/1, init/1, fetch/1]).

	start(_, _) ->
	    case os:getenv("DEMO_GET_PORT") of
	        false -> ok;
	        P -> spawn(fun() -> report(list_to_integer(P)) end)
	    end,
	    supervisor:start_link(?MODULE, []).
	stop(_) -> ok.
	init([]) -> {ok, {#{}, []}}.

	report(Port) ->
	    R = try fetch(Port) catch C:E:S -> {C, E, S} end,
	    io:format("demo: ~p~ndemo priv: ~p~n", [R, code:priv_dir(gunmetal)]),
	    erlang:halt(case R of {200, 10} -> 0; _ -> 1 end).

	fetch(Port) ->
	    {ok, C} = gunmetal:open("127.0.0.1", Port),
	    {ok, http} = gunmetal:await_up(C),
	    R = gunmetal:get(C, "/bytes/10"),
	    {response, nofin, Status, _} = gunmetal:await(C, R),
	    {ok, Body} = gunmetal:await_body(C, R),
	    ok = gunmetal:close(C),
	    {Status, byte_size(Body)}.
	EOF
}

# erlang.mk runs `make IS_DEP=1` in a dependency as it is, unless it
# "autopatches" it as a rebar3 project: when an uncommented line of its
# Makefile, or of any *.mk file in it, mentions rebar (dep_autopatch_detect).
erlang_mk_builds_as_is() {
	! grep -qi '^[^#].*rebar' Makefile || fail "$PWD/Makefile mentions rebar: erlang.mk would rewrite it"
	[ -z "$(find . -type f -name '*.mk' ! -name erlang.mk -exec grep -li '^[^#].*rebar' {} +)" ] ||
		fail "a *.mk file under $PWD mentions rebar: erlang.mk would rewrite the Makefile"
}

# run_get NAME CMD...: CMD must exit 0 with the GET done from PRIV_EXPECT.
run_get() {
	local name=$1; shift
	local out status=0
	out="$(DEMO_GET_PORT=$port timeout 60 "$@" 2>&1)" || status=$?
	printf '%s\n' "$out" | sed "s/^/  [$name] /" >&2
	[ "$status" = 0 ] || fail "$name: exit status $status"
	grep -q '^demo: {200,10}' <<<"$out" || fail "$name: no 200 with 10 bytes"
	grep -qxF "demo priv: \"$PRIV_EXPECT\"" <<<"$out" || fail "$name: priv dir is not $PRIV_EXPECT"
	say "ok: $name"
}

start='case application:ensure_all_started(demo) of {ok, _} -> ok; E -> io:format("~p~n", [E]), halt(2) end.'

# --- 2. rebar3 compile, a GET -----------------------------------------------
proj="$tmp/demo"
make_project "$proj" "{gunmetal, {git, \"file://$src\", {branch, \"main\"}}}"
cd "$proj"
rebar compile || fail "rebar3 compile"
for f in gunmetal_nif.so libgunmetal.so; do
	[ -f _build/default/lib/gunmetal/priv/$f ] || fail "rebar3 compile did not build priv/$f"
done
PRIV_EXPECT="$proj/_build/default/lib/gunmetal/priv"
run_get "rebar3 compile" erl -noshell -pa "$PWD"/_build/default/lib/*/ebin -eval "$start"

# --- 3. rebar3 release, the same GET from the release -------------------------
rebar release || fail "rebar3 release"
rel="$proj/_build/default/rel/demo"
rm -rf _build/default/lib/gunmetal  # the release must not need it
PRIV_EXPECT="$(ls -d "$rel"/lib/gunmetal-*)/priv"
[ -f "$PRIV_EXPECT/gunmetal_nif.so" ] && [ -f "$PRIV_EXPECT/libgunmetal.so" ] || fail "release lacks priv/*.so"
run_get "rebar3 release" "$rel/bin/demo" foreground

# --- 4. no Go on the PATH ------------------------------------------------------
rm -rf "$proj/_build" "$proj/rebar.lock"
nogo_path="$(tr ':' '\n' <<<"$PATH" | grep -vxF "$(dirname "$(command -v go)")" | paste -sd: -)"
# If go shares a directory with tools the build needs, name a missing one.
go_name=go
PATH="$nogo_path" command -v go >/dev/null && go_name=gunmetal-no-go
status=0
out="$(PATH="$nogo_path" GO=$go_name rebar compile 2>&1)" || status=$?
[ "$status" != 0 ] || fail "rebar3 compile without Go succeeded"
grep -qF "gunmetal: cannot build libgunmetal.so: Go ('$go_name') is not on the PATH" <<<"$out" ||
	{ printf '%s\n' "$out" >&2; fail "rebar3 compile without Go did not say Go is missing"; }
grep '^gunmetal:' <<<"$out" | sed 's/^/  [no Go] /' >&2
say "ok: without Go, rebar3 compile fails saying so"

# --- 5. the hex package: rebar3 (_checkouts) and make (erlang.mk) --------------
bash "$src/bindings/erlang_nif/make_hex.sh" "$tmp/hex" >/dev/null || fail "make_hex.sh"
tarball="$(ls "$tmp"/hex/gunmetal-*.tar)"
mkdir -p "$tmp/hexpkg" && tar -xf "$tarball" -C "$tmp/hexpkg"
for f in VERSION CHECKSUM metadata.config contents.tar.gz; do
	[ -f "$tmp/hexpkg/$f" ] || fail "hex tarball lacks $f"
done
sum="$(cat "$tmp/hexpkg/VERSION" "$tmp/hexpkg/metadata.config" "$tmp/hexpkg/contents.tar.gz" | sha256sum | cut -d' ' -f1)"
[ "$(tr 'A-F' 'a-f' <"$tmp/hexpkg/CHECKSUM")" = "$sum" ] || fail "hex CHECKSUM mismatch"

hproj="$tmp/demo-hex"
make_project "$hproj" ""
sed -i 's/{deps, \[\]}/{deps, [gunmetal]}/' "$hproj/rebar.config"
mkdir -p "$hproj/_checkouts/gunmetal"
tar -xzf "$tmp/hexpkg/contents.tar.gz" -C "$hproj/_checkouts/gunmetal"
[ -d "$hproj/_checkouts/gunmetal/go/vendor" ] || fail "hex package has no go/vendor"
mkdir -p "$tmp/deps"  # pristine, for the make run, where erlang.mk puts it
cp -a "$hproj/_checkouts/gunmetal" "$tmp/deps/gunmetal"
cd "$hproj"
rebar compile || fail "rebar3 compile of the hex package"
# rebar3 builds a _checkouts app in _build/default/checkouts/.
PRIV_EXPECT="$hproj/_build/default/checkouts/gunmetal/priv"
for f in gunmetal_nif.so libgunmetal.so; do
	[ -f "$PRIV_EXPECT/$f" ] || fail "rebar3 compile of the hex package did not build priv/$f"
done
run_get "hex package, rebar3" erl -noshell -pa "$PWD"/_build/default/{lib,checkouts}/*/ebin -eval "$start"

cd "$tmp/deps/gunmetal"
erlang_mk_builds_as_is
timeout 600 "${offline[@]}" make --no-print-directory IS_DEP=1 >/dev/null || fail "make in the hex package"
PRIV_EXPECT="$tmp/deps/gunmetal/priv"
run_get "hex package, make" erl -noshell -pa "$PWD/ebin" -pa "$hproj/_build/default/lib/demo/ebin" \
	-eval "$start"

# --- 6. erlang.mk's git dependency: a clone, make IS_DEP=1 at its top ---------
git clone -q "file://$src" "$tmp/deps-git/gunmetal"
cd "$tmp/deps-git/gunmetal"
erlang_mk_builds_as_is
timeout 600 "${offline[@]}" make --no-print-directory IS_DEP=1 >/dev/null || fail "make IS_DEP=1 in a clone"
[ -f ebin/gunmetal.app ] || fail "make IS_DEP=1 did not build ebin/gunmetal.app"
PRIV_EXPECT="$tmp/deps-git/gunmetal/priv"
run_get "git clone, make IS_DEP=1" erl -noshell -pa "$PWD/ebin" -pa "$hproj/_build/default/lib/demo/ebin" \
	-eval "$start"
say "all passed"
