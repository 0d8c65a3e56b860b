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
echo "# imager $imager"
exec python3 tests/it/it_race.py "$imager"
