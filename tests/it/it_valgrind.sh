#!/bin/bash
# Memcheck over the unit tests: every build/test/gcc/test_* (the -O2 gcc
# build: no sanitizer runtime in the way) under valgrind, which must report
# no error and no definite or indirect leak. One ok/FAIL line per binary with
# its time, then "N passed, N failed, N skipped".
#   VALGRIND_TESTS="test_base test_s3"  only these binaries
. "$(dirname "$0")/preamble.sh"
logs=$B/test/valgrind
mkdir -p "$logs"

if ! command -v valgrind >/dev/null; then
    skip valgrind "not installed (scripts/deps.sh test installs it)"; finish
fi

ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { local d=$(( $(ms) - $1 )); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
total_start=$(ms)
for t in "$B"/test/gcc/test_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t")
    if [ -n "${VALGRIND_TESTS:-}" ] && [[ " $VALGRIND_TESTS " != *" $n "* ]]; then continue; fi
    log=$logs/$n.log
    start=$(ms)
    # the tests read their fixtures relative to the repository root;
    # libjpeg-turbo (the JPEG tests' reference decoder) without its SIMD
    # upsampling, whose vector code memcheck cannot follow: with it, pixels
    # of test_jpeg_recode's reference decodes show as uninitialised, without
    # it (the same pixels) memcheck is clean
    JSIMD_FORCENONE=1 SPIM_TEST_VALGRIND=1 timeout 900 valgrind -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        --suppressions=tests/fuzz/valgrind.supp --num-callers=30 "$t" > "$log" 2>&1
    rc=$?
    secs=$(secs_since "$start")
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if [ $rc = 0 ]; then
        ok "valgrind_$n (${secs} s; $summary)"
    elif [ $rc = 99 ]; then
        fail "valgrind_$n" "memcheck errors or leaks in ${secs} s (see $log)"
        grep -E '^==[0-9]+== ' "$log" | head -40
    elif [ $rc = 124 ]; then
        fail "valgrind_$n" "over 900 s under valgrind"
    else
        fail "valgrind_$n" "exit $rc under valgrind in ${secs} s (${summary:-no summary}; see $log)"
        grep -E '^FAIL|^  |^    ' "$log" | head -30
    fi
done
total=$(secs_since "$total_start")
echo "valgrind total: ${total} s"
finish
