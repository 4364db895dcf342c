#!/usr/bin/env bash
# Builds gunmetal's hex package: OUTDIR/gunmetal-VSN.tar (hex tarball format
# 3: VERSION, CHECKSUM, metadata.config, contents.tar.gz) and, next to it, the
# unpacked contents in OUTDIR/gunmetal-VSN/.
#
#   bindings/erlang_nif/make_hex.sh OUTDIR        (`make hex` at the top)
#
# The package is the Erlang application at its top (src/, c_src/, rebar.config
# and this binding's Makefile) plus the Go module in go/ with its dependencies
# vendored, so `rebar3 compile` (the pre_hook runs `make native`) or `make`
# (erlang.mk) builds libgunmetal.so and the NIF into priv/ with nothing but Go
# and a C compiler: no module downloads. To publish, run `rebar3 hex publish`
# in OUTDIR/gunmetal-VSN (its .app.src lists go/ among the package's files);
# that step needs hex.pm and is not tested here.
# Needs the Go module cache to hold go.sum's modules (`go mod download`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:?usage: make_hex.sh OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

vsn="$(sed -n 's/.*{vsn, *"\([^"]*\)"}.*/\1/p' "$here/src/gunmetal.app.src")"
[ -n "$vsn" ] || { echo "make_hex.sh: no vsn in gunmetal.app.src" >&2; exit 1; }
pkg="$out/gunmetal-$vsn"
rm -rf "$pkg" "$out/gunmetal-$vsn.tar"
mkdir -p "$pkg/src" "$pkg/c_src" "$pkg/go/include"

# The Erlang application.
cp "$here"/src/*.erl "$here/src/gunmetal.app.src" "$pkg/src/"
cp "$here/c_src/gunmetal_nif.c" "$pkg/c_src/"
cp "$here/Makefile" "$here/README.md" "$pkg/"
[ -f "$root/LICENSE" ] && cp "$root/LICENSE" "$pkg/"
# rebar3_hex takes the package's license and file list from the .app.src
# (its default list would leave go/ out).
APPSRC="$pkg/src/gunmetal.app.src" erl -noshell -eval '
	F = os:getenv("APPSRC"),
	{ok, [{application, gunmetal, L}]} = file:consult(F),
	Extra = [{licenses, ["Apache-2.0"]},
	         {files, ["src", "c_src", "go", "rebar.config", "Makefile", "README.md", "LICENSE"]}],
	ok = file:write_file(F, io_lib:format("~p.~n", [{application, gunmetal, L ++ Extra}])),
	halt().'
cat >"$pkg/rebar.config" <<'EOF'
%% gunmetal's hex package. The pre_hook builds priv/libgunmetal.so from go/
%% (Go must be on the PATH; modules are vendored) and priv/gunmetal_nif.so.
{erl_opts, [debug_info]}.
{deps, []}.
{pre_hooks, [{compile, "make --no-print-directory native"}]}.
{post_hooks, [{clean, "rm -f priv/gunmetal_nif.so priv/libgunmetal.so"}]}.
EOF

# The Go module: what libgunmetal.so is built from (no tests), then vendor/.
cp "$root/go.mod" "$root/go.sum" "$pkg/go/"
cp "$root/include/gunmetal.h" "$pkg/go/include/"
(cd "$root" && find core capi $( [ -d internal ] && echo internal ) -type f \
	\( -name '*.go' ! -name '*_test.go' -o -name '*.c' -o -name '*.h' \) ! -path '*/testdata/*' -print0) |
	(cd "$root" && tar --null -T - -cf -) | tar -xf - -C "$pkg/go"
(cd "$pkg/go" && GOFLAGS= go mod vendor)

# Hex tarball format 3: contents.tar.gz; metadata.config (Erlang terms);
# CHECKSUM = SHA-256 of VERSION, metadata.config and contents.tar.gz, in hex.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
(cd "$pkg" && find . -type f | sed 's|^\./||' | LC_ALL=C sort >"$stage/files")
(cd "$pkg" && tar --owner=0 --group=0 --numeric-owner --mtime='2000-01-01 00:00Z' \
	-T "$stage/files" -cf - | gzip -n >"$stage/contents.tar.gz")
printf '3' >"$stage/VERSION"
FILES="$stage/files" VSN="$vsn" OUT="$stage/metadata.config" erl -noshell -eval '
	B = fun unicode:characters_to_binary/1,
	{ok, Txt} = file:read_file(os:getenv("FILES")),
	Files = [F || F <- binary:split(Txt, <<"\n">>, [global]), F =/= <<>>],
	Meta = [{<<"name">>, <<"gunmetal">>}, {<<"app">>, <<"gunmetal">>},
	        {<<"version">>, B(os:getenv("VSN"))},
	        {<<"description">>, <<"Gun'\''s API on the gunmetal engine (Go, through a NIF)">>},
	        {<<"licenses">>, [<<"Apache-2.0">>]},
	        {<<"build_tools">>, [<<"rebar3">>, <<"make">>]},
	        {<<"requirements">>, []},
	        {<<"files">>, Files}],
	ok = file:write_file(os:getenv("OUT"), [io_lib:format("~tp.~n", [T]) || T <- Meta]),
	halt().'
cat "$stage/VERSION" "$stage/metadata.config" "$stage/contents.tar.gz" | sha256sum |
	cut -d' ' -f1 | tr 'a-f' 'A-F' | tr -d '\n' >"$stage/CHECKSUM"
(cd "$stage" && tar --owner=0 --group=0 --numeric-owner --mtime='2000-01-01 00:00Z' \
	-cf "$out/gunmetal-$vsn.tar" VERSION CHECKSUM metadata.config contents.tar.gz)
echo "$out/gunmetal-$vsn.tar"
