#!/bin/bash
# SPARTA_RULES end to end (issue 25): the imager (the sanitizer build when
# there is one) through tests/it/emulator.py against the real radosgw, with a
# rules document in S3: another stamp, a skip, another output prefix and
# bucket; stamping, guards, convergence and deletion per rule, and init
# errors. The cases live in tests/it/it_rules.py (Pillow: /usr/bin/python3).
. "$(dirname "$0")/preamble.sh"
need it_rules "$B/imager/bootstrap" "$B/s3"
need_s3 it_rules
if ! /usr/bin/python3 -c 'import PIL' 2>/dev/null; then
    skip it_rules "/usr/bin/python3 has no Pillow (python3-pil)"
    finish
fi
imager=$B/imager/bootstrap
[ -x "$B/imager/bootstrap-san" ] && imager=$B/imager/bootstrap-san
echo "# imager $imager"
exec /usr/bin/python3 tests/it/it_rules.py "$imager"
