#!/bin/bash
# The metadata policy (issue 25) on files Pillow makes: build/stamp under
# strip-gps (default), keep and strip, JPEG (compressed domain and --recode,
# EXIF in both byte orders, XMP) and PNG (eXIf), read back with Pillow and
# with the project's parser (build/test/it_metadata); the cases live in
# tests/it/it_metadata.py.
. "$(dirname "$0")/preamble.sh"
need it_metadata "$B/stamp" "$B/test/it_metadata"
if ! /usr/bin/python3 -c 'import PIL.ImageCms' 2>/dev/null; then
    skip it_metadata "/usr/bin/python3 has no Pillow with ImageCms (python3-pil)"
    finish
fi
T=$B/test/it_metadata.d
rm -rf "$T" && mkdir -p "$T"
exec /usr/bin/python3 tests/it/it_metadata.py "$B/stamp" "$B/test/it_metadata" "$T"
