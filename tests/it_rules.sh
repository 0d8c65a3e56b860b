#!/bin/bash
# SPARTA_RULES end to end (issue 25): the imager (the sanitizer build when
# there is one) through tests/emulator.py against the real radosgw, with a
# rules document in S3: another stamp, a skip, another output prefix and
# bucket; stamping, guards, convergence and deletion per rule, and init
# errors. The cases live in tests/rules_it.py (Pillow: /usr/bin/python3).
set -u
cd "${SPIM_ROOT:-$(dirname "$0")/..}"
build=${SPIM_BUILD:-build}
for f in "$build/imager/bootstrap" "$build/s3"; do
    if [ ! -x "$f" ]; then
        echo "FAIL it_rules: expected $f got nothing (run: make $f)"
        echo "0 passed, 1 failed, 0 skipped"
        exit 1
    fi
done
if [ -z "${SPIM_TEST_S3_ENDPOINT:-}" ]; then
    echo "# no radosgw (SPIM_TEST_S3_ENDPOINT unset: run through tests/run.sh)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
if ! /usr/bin/python3 -c 'import PIL' 2>/dev/null; then
    echo "# /usr/bin/python3 has no Pillow (python3-pil)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
imager=$build/imager/bootstrap
[ -x "$build/imager/bootstrap-san" ] && imager=$build/imager/bootstrap-san
echo "# imager $imager"
exec /usr/bin/python3 tests/rules_it.py "$imager"
