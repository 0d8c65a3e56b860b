#!/bin/bash
# Fuzz targets as regression tests: replay the seed corpus and every input
# that ever crashed (tests/fuzz/regress/NAME/), then fuzz each target for a
# short while (FUZZ_SMOKE_SECONDS, default 15). One ok/FAIL line per target
# and step, then "N passed, N failed, N skipped".
set -u
cd "${SPIM_ROOT:-$(dirname "$0")/..}"
B=${SPIM_BUILD:-build}
SECS=${FUZZ_SMOKE_SECONDS:-15}
passed=0 failed=0 skipped=0
log=$B/fuzz/it_fuzz.log
mkdir -p "$B/fuzz"

targets=()
for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c | sed 's/^fuzz_//')"); done
missing=0
for n in "${targets[@]}"; do
    [ -x "$B/fuzz/fuzz_$n" ] || { echo "FAIL fuzz_build_$n: $B/fuzz/fuzz_$n is not built (make fuzz-build)"; missing=1; failed=$((failed + 1)); }
done
[ -x "$B/fuzz/seed" ] || { echo "FAIL fuzz_build_seed: $B/fuzz/seed is not built"; missing=1; failed=$((failed + 1)); }
if [ $missing = 1 ]; then echo "$passed passed, $failed failed, $skipped skipped"; exit 1; fi

# Replay: run.sh prints "ok   fuzz_replay_NAME" / "FAIL fuzz_replay_NAME: ..." itself.
SPIM_BUILD=$B tests/fuzz/run.sh --replay > "$log" 2>&1
grep -a -E '^(ok|FAIL) ' "$log"
grep -a -A30 '^FAIL ' "$log" | grep -v -E '^(ok|FAIL) ' | head -60
p=$(grep -a -c '^ok ' "$log"); f=$(grep -a -c '^FAIL ' "$log")
passed=$((passed + p)); failed=$((failed + f))

# Smoke: a short run per target; any crash, leak or timeout fails it.
if [ "$SECS" -gt 0 ]; then
    SPIM_BUILD=$B tests/fuzz/run.sh "$SECS" > "$log.smoke" 2>&1
    while IFS='|' read -r _ name secs execs rate cov corpus crashes _; do
        name=$(echo $name); execs=$(echo $execs); crashes=$(echo $crashes); cov=$(echo $cov)
        case "$name" in ''|target|---) continue ;; esac
        if [ "$crashes" = 0 ] && [ "${execs:-0}" -gt 0 ]; then
            echo "ok   fuzz_smoke_$name ($execs runs in ${SECS}s, $cov edges)"; passed=$((passed + 1))
        else
            echo "FAIL fuzz_smoke_$name: $crashes crash input(s) in $B/fuzz/crashes/$name, $execs runs (log $B/fuzz/$name.log)"
            grep -a -m1 -E 'invariant failed|ERROR: |runtime error' "$B/fuzz/$name.log" | head -1
            failed=$((failed + 1))
        fi
    done < <(grep '^|' "$log.smoke")
else
    echo "skip fuzz_smoke: FUZZ_SMOKE_SECONDS=0"; skipped=$((skipped + 1))
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
