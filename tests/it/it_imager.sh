#!/bin/bash
# Imager application end to end: build/imager/bootstrap (the sanitizer build
# when there is one) and build/presign/bootstrap driven through
# tests/it/emulator.py against the real radosgw; samples from
# build/tools/mksamples, pixels checked by build/tools/imgcheck.
# The cases live in tests/it/it_imager.py.
. "$(dirname "$0")/preamble.sh"
need it_imager "$B/imager/bootstrap" "$B/s3" "$B/tools/mksamples" "$B/tools/imgcheck"
need_s3 it_imager
imager=$B/imager/bootstrap
[ -x "$B/imager/bootstrap-san" ] && imager=$B/imager/bootstrap-san
presign=$B/presign/bootstrap
[ -x "$B/presign/bootstrap-san" ] && presign=$B/presign/bootstrap-san
echo "# imager $imager, presign $presign"
export IMAGER_PLAIN=$B/imager/bootstrap
exec python3 tests/it/it_imager.py "$imager" "$presign" "${IMAGER_IT_FILTER:-}"
