#!/bin/bash
# Race harness: 3 imager bootstraps (build/imager/bootstrap, or $RACE_IMAGER)
# against radosgw while originals change under them and events arrive
# duplicated, late, out of order and retried. Cases and the convergence
# check live in tests/race.py. SEEDS=N runs N schedules (default 16);
# SEED=S replays one printed schedule.
set -u
cd "${SPIM_ROOT:-$(dirname "$0")/..}"
build=${SPIM_BUILD:-build}
imager=${RACE_IMAGER:-$build/imager/bootstrap}
for f in "$imager" "$build/s3" "$build/tools/imgcheck"; do
    if [ ! -x "$f" ]; then
        echo "FAIL it_race: expected $f got nothing (run: make $f)"
        echo "0 passed, 1 failed, 0 skipped"
        exit 1
    fi
done
if [ -z "${SPIM_TEST_S3_ENDPOINT:-}" ]; then
    echo "# no radosgw (SPIM_TEST_S3_ENDPOINT unset: run through tests/run.sh)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
# Rules on (issue 25): race/ keys go through a rule with its own output
# prefix and options, next to a skip rule; the bootstraps inherit SPARTA_RULES.
mkdir -p "$build/test"
export SPARTA_RULES=$build/test/race_rules.json RACE_OUTPUT_PREFIX=raced_
printf '[{"prefix": "skipped/", "skip": true},\n {"prefix": "race/", "output_prefix": "%s", "margin": 1, "metadata": "strip"}]\n' \
    "$RACE_OUTPUT_PREFIX" > "$SPARTA_RULES"
echo "# imager $imager, rules $SPARTA_RULES"
exec python3 tests/race.py "$imager"
