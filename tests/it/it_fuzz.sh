#!/bin/bash
# Fuzz targets as regression tests: replay the seed corpus and every input
# that ever crashed (tests/fuzz/regress/NAME/), then fuzz each target for a
# short while (FUZZ_SMOKE_SECONDS, default 15). One ok/FAIL line per target
# and step, then "N passed, N failed, N skipped".
. "$(dirname "$0")/preamble.sh"
SECS=${FUZZ_SMOKE_SECONDS:-15}
log=$B/fuzz/it_fuzz.log
mkdir -p "$B/fuzz"

targets=()
for f in tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c | sed 's/^fuzz_//')"); done
need fuzz_build "${targets[@]/#/$B/fuzz/fuzz_}" "$B/fuzz/seed"

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
            ok "fuzz_smoke_$name ($execs runs in ${SECS}s, $cov edges)"
        else
            fail "fuzz_smoke_$name" "$crashes crash input(s) in $B/fuzz/crashes/$name, $execs runs (log $B/fuzz/$name.log)"
            grep -a -m1 -E 'invariant failed|ERROR: |runtime error' "$B/fuzz/$name.log" | head -1
        fi
    done < <(grep '^|' "$log.smoke")
else
    skip fuzz_smoke "FUZZ_SMOKE_SECONDS=0"
fi
finish
