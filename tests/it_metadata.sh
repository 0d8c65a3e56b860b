#!/bin/bash
# The metadata policy (issue 25) on files Pillow makes: build/stamp under
# strip-gps (default), keep and strip, JPEG (compressed domain and --recode,
# EXIF in both byte orders, XMP) and PNG (eXIf), read back with Pillow and
# with the project's parser; tests/metadata_check.py has the cases.
set -u
cd "${SPIM_ROOT:-$(dirname "$0")/..}"
B=${SPIM_BUILD:-build}
B=${B#"$PWD"/}   # make knows its targets by relative names
T=$B/test/it_metadata
mkdir -p "$T"
if ! /usr/bin/python3 -c 'import PIL.ImageCms' 2>/dev/null; then
    echo "skip metadata: /usr/bin/python3 has no Pillow with ImageCms (python3-pil)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
make -s "$B/stamp" "$B/test/meta_dump" >/dev/null || { echo "FAIL build"; echo "0 passed, 1 failed"; exit 1; }
rm -f "$T"/*
/usr/bin/python3 tests/metadata_check.py "$B/stamp" "$B/test/meta_dump" "$T"
