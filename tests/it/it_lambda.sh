#!/bin/bash
# Lambda runtime integration: the hello function (examples/hello) against
# tests/it/emulator.py, our Runtime API, plus `bootstrap --event FILE`.
# The cases live in tests/it/it_lambda.py; the sanitizer build serves the
# functional cases when present, the optimised one the memory case.
. "$(dirname "$0")/preamble.sh"
plain=$B/hello/bootstrap
san=$B/hello/bootstrap-san
need it_lambda "$plain"
exe=$plain
[ -x "$san" ] && exe=$san
echo "# functional cases with $exe, memory with $plain"
exec python3 tests/it/it_lambda.py "$exe" "$plain" "${LAMBDA_IT_FILTER:-}"
