#!/bin/bash
# Cold start (issue 12): spawn to first `next` of the packaged bootstraps
# (static, build/package/*/bootstrap) against the floor, a glibc-only
# program that connects and asks for `next` (bench/floor.c), and the dynamic
# dev build of the imager, all in the same run.   BENCH_COLDSTART_STARTS (30)
set -eu
cd "$(dirname "$0")/.."
B=${SPIM_BUILD:-build}
mkdir -p "$B/bench"
cc -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -o "$B/bench/floor" bench/floor.c
for f in "$B/package/imager/bootstrap" "$B/package/hello/bootstrap" "$B/imager/bootstrap"; do
    [ -x "$f" ] || { echo "coldstart bench: $f is missing (make package all)" >&2; exit 1; }
done
python3 bench/coldstart.py "${BENCH_COLDSTART_STARTS:-30}" floor="$B/bench/floor" \
    "imager static"="$B/package/imager/bootstrap" "hello static"="$B/package/hello/bootstrap" \
    "imager dynamic (dev build)"="$B/imager/bootstrap"
