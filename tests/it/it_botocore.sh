#!/bin/bash
# Differential test: our SigV4 signer against botocore's signers on 400
# generated S3 requests and 100 generic (non-S3) ones (tests/it/it_botocore.py),
# through build/test/it_botocore (tests/it/it_botocore.c).
# Needs Debian's python3-botocore, run with /usr/bin/python3 (a pyenv or venv
# python3 on PATH does not see dist-packages).
. "$(dirname "$0")/preamble.sh"
tool=$B/test/it_botocore
py=/usr/bin/python3
need botocore "$tool"
if ! "$py" -c 'import botocore.auth' 2>/dev/null; then
    skip botocore "$py cannot import botocore (apt-get install python3-botocore)"; finish
fi
exec "$py" tests/it/it_botocore.py "$tool" --count "${SPIM_BOTOCORE_COUNT:-400}" \
    --generic "${SPIM_BOTOCORE_GENERIC:-100}"
