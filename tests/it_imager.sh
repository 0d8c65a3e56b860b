#!/bin/bash
# Imager application end to end: build/imager/bootstrap (the sanitizer build
# when there is one) and build/presign/bootstrap driven through
# tests/emulator.py against the real radosgw; samples from
# build/tools/mksamples, pixels checked by build/tools/imgcheck.
# The cases live in tests/imager_it.py.
set -u
cd "${SPIM_ROOT:-$(dirname "$0")/..}"
build=${SPIM_BUILD:-build}
for f in "$build/imager/bootstrap" "$build/s3" "$build/tools/mksamples" "$build/tools/imgcheck"; do
    if [ ! -x "$f" ]; then
        echo "FAIL it_imager: expected $f got nothing (run: make $f)"
        echo "0 passed, 1 failed, 0 skipped"
        exit 1
    fi
done
if [ -z "${SPIM_TEST_S3_ENDPOINT:-}" ]; then
    echo "# no radosgw (SPIM_TEST_S3_ENDPOINT unset: run through tests/run.sh)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
imager=$build/imager/bootstrap
[ -x "$build/imager/bootstrap-san" ] && imager=$build/imager/bootstrap-san
presign=$build/presign/bootstrap
[ -x "$build/presign/bootstrap-san" ] && presign=$build/presign/bootstrap-san
echo "# imager $imager, presign $presign"
export IMAGER_PLAIN=$build/imager/bootstrap
exec python3 tests/imager_it.py "$imager" "$presign" "${IMAGER_IT_FILTER:-}"
