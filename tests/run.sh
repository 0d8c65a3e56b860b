#!/bin/bash
# Run the whole suite: every unit-test binary in BINDIR, then every
# integration script tests/it/it_*.sh, with the real servers they need started
# here and stopped at the end. Each program ends with "N passed, N failed[,
# N skipped]"; this script adds them up and ends with the same line.
#   tests/run.sh BINDIR [NAME_FILTER]
set -u
cd "$(dirname "$0")/.."
BINDIR=${1:?usage: tests/run.sh BINDIR [filter]}
FILTER=${2:-}
export SPIM_ROOT=$PWD
export SPIM_BUILD=${SPIM_BUILD:-$PWD/build}
export SPIM_SHARED=${SPIM_SHARED:-$(cd .. && pwd)/shared}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
logs=$SPIM_BUILD/test/logs
mkdir -p "$logs"

passed=0 failed=0 skipped=0
stop_servers() { [ -x tests/it/servers.sh ] && [ "${SPIM_NO_SERVERS:-0}" != 1 ] && tests/it/servers.sh stop >/dev/null 2>&1; }
trap stop_servers EXIT

# Start the real servers (radosgw on 127.0.0.1) once for the whole run
# (SPIM_NO_SERVERS=1 skips them, for quick unit-test runs).
if [ -x tests/it/servers.sh ] && [ "${SPIM_NO_SERVERS:-0}" != 1 ]; then
    if tests/it/servers.sh start > "$logs/servers.log" 2>&1; then
        # shellcheck disable=SC1091
        . "$SPIM_BUILD/servers.env"
    else
        echo "FAIL servers: could not start the test servers (see $logs/servers.log)"
        tail -20 "$logs/servers.log"
        failed=$((failed + 1))
    fi
fi

run_one() {  # name command...
    local name=$1; shift
    local log="$logs/$name.log" rc line p f s
    echo "== $name"
    timeout 1200 "$@" > "$log" 2>&1; rc=$?
    grep -v '^ok ' "$log" | grep -v -E '^[0-9]+ passed, [0-9]+ failed' | head -200
    line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -1)
    if [ -z "$line" ]; then
        echo "FAIL $name: ended without a summary (exit $rc)"; tail -20 "$log"
        failed=$((failed + 1)); return
    fi
    p=$(echo "$line" | grep -oE '[0-9]+ passed' | cut -d' ' -f1)
    f=$(echo "$line" | grep -oE '[0-9]+ failed' | cut -d' ' -f1)
    s=$(echo "$line" | grep -oE '[0-9]+ skipped' | cut -d' ' -f1)
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        echo "FAIL $name: exit status $rc (sanitizer report or crash?)"; tail -30 "$log"
        failed=$((failed + 1))
    fi
    echo "   $line"
}

for t in "$BINDIR"/test_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t")
    [ -n "$FILTER" ] && [[ "$n" != *$FILTER* ]] && continue
    run_one "$n" "$t"
done
for t in tests/it/it_*.sh; do
    [ -f "$t" ] || continue
    n=$(basename "$t" .sh)
    [ -n "$FILTER" ] && [[ "$n" != *$FILTER* ]] && continue
    run_one "$n" bash "$t"
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
