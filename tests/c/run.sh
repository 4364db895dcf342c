#!/usr/bin/env bash
# tests/c/run.sh BUILD_DIR — gunmetal's C tests under AddressSanitizer,
# UndefinedBehaviorSanitizer and LeakSanitizer.
#
#   1. builds BUILD_DIR/libgunmetal.so and BUILD_DIR/testserver if missing
#      (delete them to rebuild),
#   2. compiles every tests/c/*.c against the library (rpath),
#   3. starts one test server (certificates and unix socket in a temp dir)
#      and passes its addresses in GM_TEST_HTTP_PORT, GM_TEST_HTTPS_PORT,
#      GM_TEST_UNIX, GM_TEST_CA,
#   4. runs every test case in its own process, so that a crash, a hang or a
#      sanitizer report is pinned to one case: a case passes when it says so,
#      exits 0 and its stderr holds no sanitizer report,
#   5. prints "N passed, N failed" (test cases) last, and exits non-zero on
#      any failure.
#
# Environment: GM_TEST_CASE_TIMEOUT (seconds per case, default 60),
# GM_TEST_VERBOSE=1 (show every case's output), GM_TEST_FILTER (a grep -E
# pattern on "file:case"), and for fuzz_api.c (random API call sequences,
# 20 s by default) GM_FUZZ_SEED, GM_FUZZ_SECONDS (<= 30) and GM_FUZZ_OPS.
set -u

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
mkdir -p "$1" || exit 2
BUILD=$(cd "$1" && pwd)
CASE_TIMEOUT=${GM_TEST_CASE_TIMEOUT:-60}
CC=${CC:-cc}

die() { echo "run.sh: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

# ---------------------------------------------------------------- build

if [ ! -f "$BUILD/libgunmetal.so" ]; then
    echo "building $BUILD/libgunmetal.so"
    (cd "$ROOT" && go build -buildmode=c-shared -o "$BUILD/libgunmetal.so" ./capi) ||
        die "building the library failed"
fi
if [ ! -x "$BUILD/testserver" ]; then
    echo "building $BUILD/testserver"
    (cd "$ROOT" && go build -o "$BUILD/testserver" ./tests/server) ||
        die "building the test server failed"
fi

BIN="$BUILD/ctests"
mkdir -p "$BIN" || die "cannot make $BIN"
CFLAGS="-std=gnu11 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g -O1 -Wall -Wextra -Werror -I $ROOT/include -I $HERE"
TESTS=()
for src in "$HERE"/*.c; do
    name=$(basename "$src" .c)
    # shellcheck disable=SC2086
    $CC $CFLAGS -o "$BIN/$name" "$src" -L"$BUILD" -lgunmetal -Wl,-rpath,"$BUILD" -lpthread ||
        die "compiling $src failed"
    TESTS+=("$name")
done

# ---------------------------------------------------------------- test server

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gm-ctest.XXXXXX") || die "mktemp failed"
SERVER_PID=
SCEN_PID=
cleanup() {
    exec 9>&- 8>&- 2>/dev/null # the servers' stdin: closing it ends them
    if [ -n "$SCEN_PID" ]; then
        kill -TERM "$SCEN_PID" 2>/dev/null
        wait "$SCEN_PID" 2>/dev/null
    fi
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The server runs until its stdin (a fifo whose writer is this script) closes,
# so it dies with us even if we are killed.
mkfifo "$TMP/server.in" || die "mkfifo failed"
mkdir -p "$TMP/certs"
"$BUILD/testserver" -unix "$TMP/gm.sock" -cert-dir "$TMP/certs" \
    <"$TMP/server.in" >"$TMP/server.json" 2>"$TMP/server.err" &
SERVER_PID=$!
exec 9>"$TMP/server.in"

for _ in $(seq 1 200); do
    [ -s "$TMP/server.json" ] && grep -q '}' "$TMP/server.json" && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
done
LINE=$(head -n 1 "$TMP/server.json" 2>/dev/null)
json_field() { printf '%s' "$LINE" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p"; }
GM_TEST_HTTP_PORT=$(json_field http)
GM_TEST_HTTPS_PORT=$(json_field https)
GM_TEST_UNIX=$(json_field unix)
GM_TEST_CA=$(json_field ca)
[ -n "$GM_TEST_HTTP_PORT" ] || die "the test server did not start: $(cat "$TMP/server.err")"
export GM_TEST_HTTP_PORT GM_TEST_HTTPS_PORT GM_TEST_UNIX GM_TEST_CA
echo "test server: http $GM_TEST_HTTP_PORT, https $GM_TEST_HTTPS_PORT, unix $GM_TEST_UNIX"

# The scenario suite (scenarios.c): the scenarios flattened for C, and the
# scenario server (test server + scripted servers), which also ends when its
# stdin (fd 8) closes.
(cd "$ROOT" && go build -o "$BUILD/scenserver" ./tests/scenarios/server) || die "building the scenario server failed"
"$BUILD/scenserver" -dir "$ROOT/tests/scenarios/cases" -flatten >"$TMP/scenarios.flat" || die "flattening the scenarios failed"
mkfifo "$TMP/scen.in" || die "mkfifo failed"
"$BUILD/scenserver" -dir "$ROOT/tests/scenarios/cases" <"$TMP/scen.in" >"$TMP/scen.json" 2>"$TMP/scen.err" &
SCEN_PID=$!
exec 8>"$TMP/scen.in"
for _ in $(seq 1 200); do
    grep -q '}' "$TMP/scen.json" 2>/dev/null && break
    kill -0 "$SCEN_PID" 2>/dev/null || break
    sleep 0.05
done
GM_SCEN_INFO=$(head -n 1 "$TMP/scen.json" 2>/dev/null)
[ -n "$GM_SCEN_INFO" ] || die "the scenario server did not start: $(cat "$TMP/scen.err")"
GM_SCEN_FILE="$TMP/scenarios.flat"
export GM_SCEN_INFO GM_SCEN_FILE

# ---------------------------------------------------------------- sanitizers

# The Go runtime in the process (checked by api_misuse's
# go_fault_is_einternal_not_a_crash and by hand):
#  - allow_user_segv_handler=1 is required. When the library loads, Go
#    installs its own SIGSEGV/SIGBUS handlers: a fault in Go code becomes a
#    Go panic (recovered by every export into GM_EINTERNAL), a fault in C code
#    is forwarded to the handler installed before, ASan's. ASan intercepts
#    sigaction; with allow_user_segv_handler=0 it keeps Go's handler out and
#    a recoverable Go nil dereference kills the process with an ASan SEGV.
#  - handle_segv=1 (ASan's handler, installed first with SA_ONSTACK as Go
#    requires): C faults in the tests are still reported with a stack.
#  - Go's own stacks and SIGURG preemption need nothing else: the defaults
#    of use_sigaltstack and detect_stack_use_after_return both pass.
#  - detect_leaks=1: LeakSanitizer works with the Go runtime loaded. Go's
#    heap is mmap'ed outside malloc, so it is neither reported nor scanned:
#    a C allocation the library keeps only in Go memory is reported as a
#    leak (that is a library bug, not noise). The Go runtime itself leaks
#    nothing through malloc here, so lsan.supp suppresses nothing; it is
#    where Go-runtime-only frames would go.
ASAN_OPTIONS="detect_leaks=1:allow_user_segv_handler=1:handle_segv=1:halt_on_error=1:exitcode=66:strict_string_checks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
LSAN_OPTIONS="suppressions=$HERE/lsan.supp:print_suppressions=0:report_objects=1${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS

# ---------------------------------------------------------------- run

PASSED=0
FAILED=0
NA=0
FAILURES=()
for t in "${TESTS[@]}"; do
    mapfile -t CASES < <("$BIN/$t" --list 9>&- 8>&- 2>"$TMP/list.err")
    if [ ${#CASES[@]} -eq 0 ]; then
        echo "FAIL $t: cannot list its cases"
        cat "$TMP/list.err"
        FAILED=$((FAILED + 1))
        FAILURES+=("$t")
        continue
    fi
    for c in "${CASES[@]}"; do
        if [ -n "${GM_TEST_FILTER:-}" ] && ! printf '%s:%s\n' "$t" "$c" | grep -Eq "$GM_TEST_FILTER"; then
            continue
        fi
        start=$(date +%s%N)
        timeout -k 5 "$CASE_TIMEOUT" "$BIN/$t" "$c" >"$TMP/out" 2>"$TMP/err" 9>&- 8>&-
        rc=$?
        if [ $rc -eq 0 ] && grep -qx 'n/a' "$TMP/out"; then
            # a scenario C cannot express: reported, never counted as passed
            NA=$((NA + 1))
            printf 'n/a  %-12s %-48s  (%s)\n' "$t" "$c" "$(grep -m1 -o 'n/a: .*' "$TMP/out")"
            continue
        fi
        ms=$((($(date +%s%N) - start) / 1000000))
        why=
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
            why="timed out after ${CASE_TIMEOUT}s"
        elif grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)' "$TMP/err"; then
            why="sanitizer report"
        elif [ $rc -ne 0 ]; then
            why="exit status $rc"
        elif ! grep -qx '1 passed, 0 failed' "$TMP/out"; then
            why="no pass line"
        fi
        if [ -z "$why" ]; then
            PASSED=$((PASSED + 1))
            printf 'ok   %-12s %-48s %6d ms\n' "$t" "$c" "$ms"
            if [ "${GM_TEST_VERBOSE:-0}" = 1 ]; then
                sed 's/^/    | /' "$TMP/out" "$TMP/err"
            fi
        else
            FAILED=$((FAILED + 1))
            FAILURES+=("$t:$c ($why)")
            printf 'FAIL %-12s %-48s %6d ms  (%s)\n' "$t" "$c" "$ms" "$why"
            sed 's/^/    | /' "$TMP/out" "$TMP/err" | head -n 200
        fi
    done
done

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the test server died during the run:"
    cat "$TMP/server.err"
    FAILED=$((FAILED + 1))
    FAILURES+=("test server died")
fi

if [ ${#FAILURES[@]} -gt 0 ]; then
    echo
    echo "failures:"
    printf '  %s\n' "${FAILURES[@]}"
fi
[ "$NA" -eq 0 ] || echo "$NA scenarios not applicable in C"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
