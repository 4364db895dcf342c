#!/usr/bin/env bash
# tests/stress/run.sh BUILD_DIR [quick|long] — crash-class stress of the C ABI
# (tests/stress/stress.c, see its header for the shapes).
#
#   1. builds BUILD_DIR/libgunmetal.so and BUILD_DIR/testserver if missing,
#      and a GOEXPERIMENT=cgocheck2 build of the library in
#      BUILD_DIR/cgocheck2/ (every store of a Go pointer into C memory is
#      checked),
#   2. compiles stress.c under AddressSanitizer + UBSan against each library,
#   3. starts one test server,
#   4. runs every shape against (a) the normal library under
#      GODEBUG=invalidptr=1,cgocheck=1 and (b) the cgocheck2 library; a run
#      passes when it prints its ok line, exits 0 and its stderr holds no Go
#      fatal error, signal or sanitizer report.
#
# quick (make test): a bounded slice, well under a minute on 2 idle cores.
# long (make stress): the reproducer of issue 9 500 times on each library,
# and minutes of the other shapes. The last line is "N passed, N failed";
# the exit status is non-zero on any failure.
set -u

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD_DIR [quick|long]" >&2
    exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
mkdir -p "$1" || exit 2
BUILD=$(cd "$1" && pwd)
MODE=${2:-quick}
CC=${CC:-cc}

die() { echo "stress/run.sh: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

# ---------------------------------------------------------------- build

if [ ! -f "$BUILD/libgunmetal.so" ]; then
    (cd "$ROOT" && go build -buildmode=c-shared -o "$BUILD/libgunmetal.so" ./capi) ||
        die "building the library failed"
fi
if [ ! -x "$BUILD/testserver" ]; then
    (cd "$ROOT" && go build -o "$BUILD/testserver" ./tests/server) || die "building the test server failed"
fi
C2="$BUILD/cgocheck2"
mkdir -p "$C2" "$BUILD/stress" || die "mkdir failed"
# go build is incremental: quick when nothing changed.
(cd "$ROOT" && GOEXPERIMENT=cgocheck2 go build -buildmode=c-shared -o "$C2/libgunmetal.so" ./capi) ||
    die "building the cgocheck2 library failed"
rm -f "$C2/libgunmetal.h"

CFLAGS="-std=gnu11 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g -O1 -Wall -Wextra -Werror -I $ROOT/include"
# shellcheck disable=SC2086
$CC $CFLAGS -o "$BUILD/stress/stress" "$HERE/stress.c" -L"$BUILD" -lgunmetal -Wl,-rpath,"$BUILD" -lpthread ||
    die "compiling stress.c failed"
# shellcheck disable=SC2086
$CC $CFLAGS -o "$BUILD/stress/stress-cgocheck2" "$HERE/stress.c" -L"$C2" -lgunmetal -Wl,-rpath,"$C2" -lpthread ||
    die "compiling stress.c (cgocheck2) failed"

# ---------------------------------------------------------------- test server

TMP=$(mktemp -d "${TMPDIR:-/tmp}/gm-stress.XXXXXX") || die "mktemp failed"
SERVER_PID=
cleanup() {
    exec 9>&- 2>/dev/null
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkfifo "$TMP/server.in" || die "mkfifo failed"
"$BUILD/testserver" -cert-dir "$TMP" <"$TMP/server.in" >"$TMP/server.json" 2>"$TMP/server.err" &
SERVER_PID=$!
exec 9>"$TMP/server.in"
for _ in $(seq 1 200); do
    grep -q '}' "$TMP/server.json" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
done
GM_TEST_HTTP_PORT=$(sed -n 's/.*"http":\([0-9]*\).*/\1/p' "$TMP/server.json")
[ -n "$GM_TEST_HTTP_PORT" ] || die "the test server did not start: $(cat "$TMP/server.err")"
export GM_TEST_HTTP_PORT

# As tests/c/run.sh (see there why): Go's signal handlers must stay in.
export ASAN_OPTIONS="detect_leaks=1:allow_user_segv_handler=1:handle_segv=1:halt_on_error=1:exitcode=66${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

# ---------------------------------------------------------------- run

PASSED=0
FAILED=0
FAILDIR="$BUILD/stress/failures"
rm -rf "$FAILDIR"
mkdir -p "$FAILDIR"
fails_total=0
# run LABEL TIMES BIN SHAPE MS: runs BIN SHAPE -t MS, TIMES times.
run() {
    local label=$1 times=$2 bin=$3 shape=$4 ms=$5 i rc why fails=0 aborts=0 start
    start=$(date +%s)
    for i in $(seq 1 "$times"); do
        GODEBUG=invalidptr=1,cgocheck=1 timeout -k 5 $((ms / 1000 + 60)) \
            "$bin" "$shape" -t "$ms" >"$TMP/out" 2>"$TMP/err" 9>&-
        rc=$?
        why=
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
            why="timed out"
        elif grep -Eq '^fatal error:|^SIG[A-Z]+:|^panic:|ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: ' "$TMP/err"; then
            why="abort"
        elif [ $rc -ne 0 ]; then
            why="exit status $rc"
        elif ! grep -q "^stress $shape: ok" "$TMP/out"; then
            why="no ok line"
        fi
        if [ -n "$why" ]; then
            fails=$((fails + 1))
            [ "$why" = abort ] || [ $rc -ge 128 ] && aborts=$((aborts + 1))
            echo "FAIL $label run $i ($why): stderr kept in $FAILDIR/$((fails_total + 1)).err"
            fails_total=$((fails_total + 1))
            cp "$TMP/err" "$FAILDIR/$fails_total.err"
            head -n 60 "$TMP/err" | sed 's/^/    | /'
            sed 's/^/    | /' "$TMP/out"
        fi
    done
    if [ $fails -eq 0 ]; then
        PASSED=$((PASSED + 1))
        printf 'ok   %-28s %4d runs of %6d ms  %4d s  (%s)\n' "$label" "$times" "$ms" $(($(date +%s) - start)) \
            "$(sed -n "s/^stress $shape: ok (\(.*\))/\1/p" "$TMP/out")"
    else
        FAILED=$((FAILED + 1))
        printf 'FAIL %-28s %d of %d runs failed, %d of them aborts\n' "$label" $fails "$times" $aborts
    fi
}

N="$BUILD/stress/stress"
X="$BUILD/stress/stress-cgocheck2"
if [ "$MODE" = long ]; then
    run "repro (issue 9)" 500 "$N" repro 300
    run "repro (issue 9) cgocheck2" 200 "$X" repro 300
    run "freer" 50 "$N" freer 1000
    run "freer cgocheck2" 50 "$X" freer 1000
    run "many" 2 "$N" many 60000
    run "many cgocheck2" 1 "$X" many 60000
else
    run "repro (issue 9)" 10 "$N" repro 300
    run "repro (issue 9) cgocheck2" 5 "$X" repro 300
    run "freer" 3 "$N" freer 500
    run "freer cgocheck2" 2 "$X" freer 500
    run "many" 1 "$N" many 4000
    run "many cgocheck2" 1 "$X" many 2000
fi

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "the test server died during the run:"
    cat "$TMP/server.err"
    FAILED=$((FAILED + 1))
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
