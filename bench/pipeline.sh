#!/bin/bash
# End-to-end benchmark of the packaged functions: zip sizes, cold start of
# the packaged bootstrap (spawn to first `next`), and per-image time and peak
# RSS for 2, 12 and 20 MP JPEGs through radosgw GET -> stamp -> PUT under the
# Runtime API emulator. Details and knobs: bench/pipeline_bench.py.
#   BENCH_PIPELINE_STARTS (15), BENCH_PIPELINE_REPEATS (5),
#   BENCH_PIPELINE_MEMORY (128), BENCH_PIPELINE_SIZES (2,12,20),
#   BENCH_PIPELINE_WORKERS (1,2,4,8), BENCH_PIPELINE_LATENCY_MS (20), BENCH_PIPELINE_ONLY (workers),
#   BENCH_PIPELINE_PROXY (delayproxy; faultproxy)
set -eu
cd "$(dirname "$0")/.."
B=${SPIM_BUILD:-build}
export SPIM_BUILD=$B SPIM_SERVERS_OWNER=$$
# BENCH_PIPELINE_ONLY=workers: the worker table alone, on build/imager/bootstrap
targets="package"
[ "${BENCH_PIPELINE_ONLY:-}" = workers ] && targets="$B/imager/bootstrap"
make --no-print-directory $targets "$B/s3" "$B/bench/pipeline_tool" "$B/bench/delayproxy" > /dev/null ||
    { echo "pipeline bench: build failed (make $targets)" >&2; exit 1; }
trap 'tests/it/servers.sh stop > /dev/null 2>&1 || true' EXIT
tests/it/servers.sh start > /dev/null 2>&1 || { echo "pipeline bench: radosgw did not start (tests/it/servers.sh start)" >&2; exit 1; }
set -a
# shellcheck disable=SC1091
. "$B/servers.env"
set +a
python3 bench/pipeline_bench.py "$B"
