#!/bin/bash
# Lambda workers (AWS_LAMBDA_MAX_CONCURRENCY): the hello function with 4
# workers against tests/it/emulator.py, under ThreadSanitizer where it checks
# races and the optimised build where it measures memory. Cases in
# tests/it/it_concurrency.py.
. "$(dirname "$0")/preamble.sh"
plain=$B/hello/bootstrap
tsan=$B/hello/bootstrap-tsan
need it_concurrency "$plain" "$tsan"
exec python3 tests/it/it_concurrency.py "$plain" "$tsan" "${CONCURRENCY_IT_FILTER:-}"
