#!/bin/bash
# Differential test: our SigV4 signer against botocore's signers on 400
# generated S3 requests and 100 generic (non-S3) ones (tests/botocore_diff.py),
# through build/test/sigv4_tool.
# Needs Debian's python3-botocore, run with /usr/bin/python3 (a pyenv or venv
# python3 on PATH does not see dist-packages).
set -u
cd "${SPIM_ROOT:-$(dirname "$0")/..}"
tool=${SPIM_BUILD:-build}/test/sigv4_tool
py=/usr/bin/python3
if [ ! -x "$tool" ]; then
    echo "FAIL botocore: expected $tool (make check-build builds it), got nothing"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
fi
if ! "$py" -c 'import botocore.auth' 2>/dev/null; then
    echo "skip botocore: $py cannot import botocore (apt-get install python3-botocore)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
exec "$py" tests/botocore_diff.py "$tool" --count "${SPIM_BOTOCORE_COUNT:-400}" \
    --generic "${SPIM_BOTOCORE_GENERIC:-100}"
