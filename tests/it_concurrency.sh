#!/bin/bash
# Lambda workers (AWS_LAMBDA_MAX_CONCURRENCY): the hello function with 4
# workers against tests/emulator.py, under ThreadSanitizer where it checks
# races and the optimised build where it measures memory. Cases in
# tests/concurrency_it.py.
set -u
cd "${SPIM_ROOT:-$(dirname "$0")/..}"
build=${SPIM_BUILD:-build}
plain=$build/hello/bootstrap
tsan=$build/hello/bootstrap-tsan
for f in "$plain" "$tsan"; do
    if [ ! -x "$f" ]; then
        echo "FAIL it_concurrency: expected $f got nothing (run: make $f)"
        echo "0 passed, 1 failed, 0 skipped"
        exit 1
    fi
done
exec python3 tests/concurrency_it.py "$plain" "$tsan" "${CONCURRENCY_IT_FILTER:-}"
