#!/bin/bash
# Race harness: 3 imager bootstraps (build/imager/bootstrap, or $RACE_IMAGER)
# against radosgw while originals change under them and events arrive
# duplicated, late, out of order and retried. Cases and the convergence
# check live in tests/it/it_race.py. SEEDS=N runs N schedules (default 16);
# SEED=S replays one printed schedule.
. "$(dirname "$0")/preamble.sh"
imager=${RACE_IMAGER:-$B/imager/bootstrap}
need it_race "$imager" "$B/s3" "$B/tools/imgcheck"
need_s3 it_race
# Rules on (issue 25): race/ keys go through a rule with its own output
# prefix and options, next to a skip rule; the bootstraps inherit SPARTA_RULES.
mkdir -p "$B/test"
export SPARTA_RULES=$B/test/race_rules.json RACE_OUTPUT_PREFIX=raced_
printf '[{"prefix": "skipped/", "skip": true},\n {"prefix": "race/", "output_prefix": "%s", "margin": 1, "metadata": "strip"}]\n' \
    "$RACE_OUTPUT_PREFIX" > "$SPARTA_RULES"
echo "# imager $imager, rules $SPARTA_RULES"
exec python3 tests/it/it_race.py "$imager"
