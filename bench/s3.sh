#!/bin/bash
# S3 benchmark against the local radosgw: build/s3 (our client, one process
# per request) against the curl tool signing with --aws-sigv4 (the
# reference), GET and PUT of 1 MiB and GET of 16 MiB; hyperfine medians.
# BENCH_S3_RUNS (default 20) runs per command.
set -eu
cd "$(dirname "$0")/.."
B=${SPIM_BUILD:-build}
runs=${BENCH_S3_RUNS:-20}
command -v hyperfine >/dev/null || { echo "s3: hyperfine missing (scripts/deps.sh bench)"; exit 0; }
SPIM_SERVERS_OWNER=$$ tests/it/servers.sh start >/dev/null 2>&1 || { echo "s3: radosgw did not start"; exit 1; }
trap 'SPIM_SERVERS_OWNER=$$ tests/it/servers.sh stop >/dev/null 2>&1' EXIT
# shellcheck disable=SC1091
. "$B/servers.env"
make -s "$B/s3" >/dev/null
export AWS_ACCESS_KEY_ID=$SPIM_TEST_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SPIM_TEST_SECRET_KEY
export AWS_ENDPOINT_URL_S3=$SPIM_TEST_S3_ENDPOINT AWS_REGION=$SPIM_TEST_REGION
export AWS_SHARED_CREDENTIALS_FILE=/dev/null
T=$(mktemp -d); trap 'rm -rf "$T"; SPIM_SERVERS_OWNER=$$ tests/it/servers.sh stop >/dev/null 2>&1' EXIT
head -c $((1 << 20)) /dev/urandom > "$T/1m"; head -c $((16 << 20)) /dev/urandom > "$T/16m"
bucket=spim-bench
"$B/s3" mb "s3://$bucket" >/dev/null
"$B/s3" put "s3://$bucket/1m" "$T/1m" >/dev/null
"$B/s3" put "s3://$bucket/16m" "$T/16m" >/dev/null
sig=(--aws-sigv4 "aws:amz:$SPIM_TEST_REGION:s3" --user "$SPIM_TEST_ACCESS_KEY:$SPIM_TEST_SECRET_KEY")
median() {  # name ours reference
    hyperfine -N -r "$runs" -w 2 --export-json "$T/h.json" "$2" "$3" >/dev/null 2>&1
    python3 - "$1" "$T/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))["results"]
a, b = r[0]["median"] * 1000, r[1]["median"] * 1000
print("s3: %-10s build/s3 %7.2f ms   curl --aws-sigv4 %7.2f ms   ours/curl = %.2f" % (sys.argv[1], a, b, a / b))
PY
}
median "GET 1MiB" "$B/s3 get s3://$bucket/1m $T/o1" \
    "curl -sf ${sig[*]} -H x-amz-content-sha256:UNSIGNED-PAYLOAD -o $T/o2 $SPIM_TEST_S3_ENDPOINT/$bucket/1m"
median "GET 16MiB" "$B/s3 get s3://$bucket/16m $T/o1" \
    "curl -sf ${sig[*]} -H x-amz-content-sha256:UNSIGNED-PAYLOAD -o $T/o2 $SPIM_TEST_S3_ENDPOINT/$bucket/16m"
median "PUT 1MiB" "$B/s3 put s3://$bucket/p1 $T/1m" \
    "curl -sf ${sig[*]} -H x-amz-content-sha256:UNSIGNED-PAYLOAD -T $T/1m $SPIM_TEST_S3_ENDPOINT/$bucket/p2"
"$B/s3" rm "s3://$bucket/1m"; "$B/s3" rm "s3://$bucket/16m"; "$B/s3" rm "s3://$bucket/p1"; "$B/s3" rm "s3://$bucket/p2"
