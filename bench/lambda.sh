#!/bin/bash
# Lambda runtime benchmark: cold start (spawn to first `next`) and
# invocations/s of build/hello/bootstrap against tests/it/emulator.py.
#   BENCH_LAMBDA_STARTS (20), BENCH_LAMBDA_ROUNDS (5), BENCH_LAMBDA_INVOCATIONS (2000)
set -eu
cd "$(dirname "$0")/.."
exe=${SPIM_BUILD:-build}/hello/bootstrap
[ -x "$exe" ] || { echo "lambda bench: $exe is missing (make $exe)" >&2; exit 1; }
python3 bench/lambda.py "$exe" "${BENCH_LAMBDA_STARTS:-20}" \
    "${BENCH_LAMBDA_ROUNDS:-5}" "${BENCH_LAMBDA_INVOCATIONS:-2000}"
