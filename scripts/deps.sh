#!/usr/bin/env bash
# scripts/deps.sh — install what a fresh machine lacks to build and test
# gunmetal (`make deps`; `make demo`, `make test` and `make bench` run it first).
#
# Fast when everything is present: one dpkg-query, one `go mod download`
# (served from the module cache), and no apt-get update.
#
#   Debian packages  installed with apt-get when running as root; otherwise the
#                    script stops and prints the command to run.
#   Go modules       `go mod download` (the versions pinned in go.mod/go.sum).
#   Python packages  PY_DEPS below (the Python bindings' hook; empty for now).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the project uses, and what for:
#   nginx                   interop tests against a server nobody here wrote (tests/nginx)
#   nghttp2-client/-server  h2load for `make bench`, nghttpd for HTTP/2 interop tests
#   erlang-nox erlang-dev   the Erlang binding (bindings/erlang_nif): erl, erlc, erl_nif.h
#   rebar3                  the Erlang binding's packaging test (bindings/erlang_nif/test_packaging.sh):
#                           a throw-away rebar3 project that depends on this checkout
#   libcurl4-openssl-dev    libcurl multi, a peer in `make bench`
#   pkg-config              `pkg-config --cflags --libs gunmetal`
#   valgrind                leak checks of the C tests
#   gcc libc6-dev           cgo and the C tests/examples
#   openssl                 certificates for tests/nginx
#   ca-certificates         the system roots (TLS verifies against them by default)
#   socat                   a server nobody here wrote for the raw protocol's half-close test (core/raw_test.go)
#   tinyproxy               an HTTP/1.1 CONNECT proxy (Basic auth) for the tunnel tests (tests/proxies)
#   microsocks              a SOCKS5 proxy (with and without username/password) for the tunnel tests
#   nghttp2-proxy           nghttpx, an HTTP/2 forward proxy (CONNECT as an HTTP/2 stream) for the tunnel tests
DEB_PKGS=(
    nginx
    nghttp2-client
    nghttp2-server
    erlang-nox
    erlang-dev
    rebar3
    libcurl4-openssl-dev
    pkg-config
    valgrind
    gcc
    libc6-dev
    openssl
    ca-certificates
    socat
    tinyproxy
    microsocks
    nghttp2-proxy
)

# ---- Python hook -----------------------------------------------------------
# Python packages the tests need (pip names, optionally with a version spec):
# the Python binding's test tools and bench peer (httpx), and servers nobody
# here wrote for the WebSocket interop tests (websockets, hypercorn), and
# auditwheel for the manylinux tag of `make wheel` (its `repair --patcher none`,
# from 6.8, needs no patchelf: Debian 12's is too old for auditwheel).
PY_DEPS="pytest pytest-asyncio pytest-timeout mypy build wheel setuptools>=61 httpx[http2] websockets hypercorn auditwheel>=6.8"
# ---------------------------------------------------------------------------

say() { printf 'deps: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# --- toolchains that apt cannot provide at the right version ----------------
command -v go >/dev/null 2>&1 ||
    die "go is not installed or not on PATH: install Go $(sed -n 's/^go //p' go.mod) or newer"

# --- Debian packages --------------------------------------------------------
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    # One call for all packages; a package dpkg has never heard of prints
    # nothing for it, so compare names rather than counting lines.
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${DEB_PKGS[@]}" 2>/dev/null || true)
    for p in "${DEB_PKGS[@]}"; do
        grep -qx "$p installed" <<<"$installed" || missing+=("$p")
    done
else
    say "not a Debian-like system (no dpkg-query): skipping the system packages check;"
    say "make sure these (or your system's equivalents) are installed: ${DEB_PKGS[*]}"
fi

if ((${#missing[@]})); then
    cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        die "missing Debian packages: ${missing[*]}
deps: run as root:  $cmd
deps: (or: sudo sh -c '$cmd'), then run make again"
    fi
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- Go modules -------------------------------------------------------------
go mod download

# --- Python packages (hook) -------------------------------------------------
if [ -n "${PY_DEPS// /}" ]; then
    command -v python3 >/dev/null 2>&1 || die "python3 is needed for: $PY_DEPS"
    py_missing=()
    for spec in $PY_DEPS; do
        name=${spec%%[<>=!~;[]*}
        python3 -c 'import sys, importlib.metadata as m; m.version(sys.argv[1])' "$name" 2>/dev/null ||
            py_missing+=("$spec")
    done
    if ((${#py_missing[@]})); then
        say "installing Python packages: ${py_missing[*]}"
        # Debian's system Python refuses pip installs (PEP 668) unless told.
        PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q "${py_missing[@]}"
    fi
fi

exit 0
