#!/bin/bash
# Lambda runtime integration: the hello function (examples/hello) against
# tests/emulator.py, our Runtime API, plus `bootstrap --event FILE`.
# The cases live in tests/lambda_it.py; the sanitizer build serves the
# functional cases when present, the optimised one the memory case.
set -u
cd "${SPIM_ROOT:-$(dirname "$0")/..}"
build=${SPIM_BUILD:-build}
plain=$build/hello/bootstrap
san=$build/hello/bootstrap-san
if [ ! -x "$plain" ]; then
    echo "FAIL it_lambda: expected $plain got nothing (run: make $plain)"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
fi
exe=$plain
[ -x "$san" ] && exe=$san
echo "# functional cases with $exe, memory with $plain"
exec python3 tests/lambda_it.py "$exe" "$plain" "${LAMBDA_IT_FILTER:-}"
