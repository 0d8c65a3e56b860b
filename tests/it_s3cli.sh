#!/bin/bash
# build/s3 against the real radosgw: round trips, presigned URLs fetched by
# the curl tool (good, tampered, expired), exit codes and error messages.
# Needs SPIM_TEST_* from tests/servers.sh (via tests/run.sh); skips without
# them unless SPIM_REQUIRE_SERVERS=1.
set -u
ROOT=${SPIM_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${SPIM_BUILD:-$ROOT/build}
S3=$BUILD/s3
passed=0 failed=0 skipped=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: expected $2, got $3"; failed=$((failed + 1)); }
skip() { echo "skip $1: $2"; skipped=$((skipped + 1)); }
finish() { echo "$passed passed, $failed failed, $skipped skipped"; [ "$failed" = 0 ]; exit $?; }

if [ -z "${SPIM_TEST_S3_ENDPOINT:-}" ]; then
    if [ "${SPIM_REQUIRE_SERVERS:-0}" = 1 ]; then fail servers "SPIM_TEST_S3_ENDPOINT set" "nothing"
    else skip all "no radosgw: SPIM_TEST_S3_ENDPOINT is not set (run through tests/run.sh)"; fi
    finish
fi
if [ ! -x "$S3" ]; then fail build "$S3 (make $S3)" "no such program"; finish; fi

T=$(mktemp -d "${TMPDIR:-/tmp}/it_s3cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
# Only these settings: nothing from the caller's own AWS configuration.
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_REGION
export AWS_SHARED_CREDENTIALS_FILE=$T/no-credentials
export AWS_ACCESS_KEY_ID=$SPIM_TEST_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SPIM_TEST_SECRET_KEY
export AWS_ENDPOINT_URL_S3=$SPIM_TEST_S3_ENDPOINT
export AWS_REGION=${SPIM_TEST_REGION:-us-east-1}
BUCKET=spim-test-cli
P=run-$$-$(date +%s)

s3() { "$S3" "$@" > "$T/out" 2> "$T/err"; echo $? > "$T/rc"; }
rc() { cat "$T/rc"; }
expect_rc() {  # case want
    if [ "$(rc)" = "$2" ]; then ok "$1"; else fail "$1" "exit $2" "exit $(rc) ($(head -c 300 "$T/err"))"; fi
}
expect_err() {  # case text
    if grep -qF -- "$2" "$T/err"; then ok "$1"; else fail "$1" "stderr containing '$2'" "'$(head -c 300 "$T/err")'"; fi
}
expect_same() {  # case file1 file2
    if cmp -s "$2" "$3"; then ok "$1"; else fail "$1" "$(wc -c < "$2") identical bytes" "$(wc -c < "$3") bytes that differ"; fi
}

head -c 100000 /dev/urandom > "$T/data.bin"

s3 mb "s3://$BUCKET"; expect_rc mb_creates_bucket 0
s3 mb "s3://$BUCKET"; expect_rc mb_again_is_fine 0

KEY="$P/dir with space/ünïcödé +=&%~*'()!\$,/../x//y.bin"
s3 put "s3://$BUCKET/$KEY" "$T/data.bin" --content-type image/png --meta stamped-by=cli
expect_rc put_from_file 0
s3 head "s3://$BUCKET/$KEY"
expect_rc head_existing 0
if grep -qx 'content-type: image/png' "$T/out" && grep -qx 'content-length: 100000' "$T/out" &&
   grep -qx 'meta-stamped-by: cli' "$T/out" && grep -q '^etag: "' "$T/out"; then ok head_prints_fields
else fail head_prints_fields "type image/png, length 100000, etag, meta-stamped-by" "$(tr '\n' '|' < "$T/out")"; fi

s3 get "s3://$BUCKET/$KEY" "$T/got.bin"; expect_rc get_to_file 0
expect_same get_to_file_same_bytes "$T/data.bin" "$T/got.bin"
s3 get "s3://$BUCKET/$KEY"; expect_same get_to_stdout_same_bytes "$T/data.bin" "$T/out"

"$S3" put "s3://$BUCKET/$P/stdin.bin" < "$T/data.bin" > /dev/null 2> "$T/err"; echo $? > "$T/rc"
expect_rc put_from_stdin 0
s3 get "s3://$BUCKET/$P/stdin.bin" -; expect_same put_from_stdin_same_bytes "$T/data.bin" "$T/out"

# presigned URLs, fetched by the curl tool
s3 presign "s3://$BUCKET/$KEY" --expires 300; expect_rc presign 0
URL=$(cat "$T/out")
# --path-as-is: the key's "../" and "//" are part of the signed path
code=$(curl -s --path-as-is -o "$T/curl.bin" -w '%{http_code}' "$URL")
if [ "$code" = 200 ]; then ok presigned_url_200; else fail presigned_url_200 "HTTP 200" "HTTP $code"; fi
expect_same presigned_url_same_bytes "$T/data.bin" "$T/curl.bin"
case "$URL" in *X-Amz-Expires=300*X-Amz-Signature=*) ok presigned_url_form ;;
    *) fail presigned_url_form "X-Amz-Expires=300 ... X-Amz-Signature=" "$URL" ;; esac

last=${URL: -1}; if [ "$last" = 0 ]; then flip=1; else flip=0; fi
code=$(curl -s --path-as-is -o "$T/curl.err" -w '%{http_code}' "${URL%?}$flip")
if [ "$code" = 403 ] && grep -q SignatureDoesNotMatch "$T/curl.err"; then ok tampered_signature_403
else fail tampered_signature_403 "HTTP 403 SignatureDoesNotMatch" "HTTP $code $(head -c 200 "$T/curl.err")"; fi
code=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "${URL/x\/\/y.bin/x\/\/z.bin}")
if [ "$code" = 403 ]; then ok tampered_key_403; else fail tampered_key_403 "HTTP 403" "HTTP $code"; fi
code=$(curl -s --path-as-is -o /dev/null -w '%{http_code}' "${URL/X-Amz-Expires=300/X-Amz-Expires=301}")
if [ "$code" = 403 ]; then ok tampered_expiry_403; else fail tampered_expiry_403 "HTTP 403" "HTTP $code"; fi

s3 put "s3://$BUCKET/$P/plain.bin" "$T/data.bin" > /dev/null
s3 presign "s3://$BUCKET/$P/plain.bin" --expires 1
URL=$(cat "$T/out")
code=$(curl -s -o "$T/curl.bin" -w '%{http_code}' "$URL")
if [ "$code" = 200 ] && cmp -s "$T/data.bin" "$T/curl.bin"; then ok presigned_plain_key_200
else fail presigned_plain_key_200 "HTTP 200 and the same bytes" "HTTP $code"; fi
sleep 3
code=$(curl -s -o "$T/curl.err" -w '%{http_code}' "$URL")
if [ "$code" = 403 ]; then ok expired_url_403; else fail expired_url_403 "HTTP 403" "HTTP $code"; fi

# errors: exit status and S3's code on stderr
s3 get "s3://$BUCKET/$P/missing" "$T/never.bin"
expect_rc missing_key_exit_3 3
expect_err missing_key_names_code NoSuchKey
if [ -e "$T/never.bin" ]; then fail failed_get_writes_no_file "no file" "a file"; else ok failed_get_writes_no_file; fi
s3 head "s3://spim-no-such-bucket-cli/k"; expect_rc missing_bucket_head_exit_3 3
s3 get "s3://spim-no-such-bucket-cli/k"; expect_err missing_bucket_names_code NoSuchBucket

AWS_SECRET_ACCESS_KEY=wrongSecretForCliTest0123456789 s3 get "s3://$BUCKET/$KEY"
expect_rc wrong_secret_exit_4 4
expect_err wrong_secret_names_code SignatureDoesNotMatch
if grep -q wrongSecretForCliTest "$T/err"; then fail wrong_secret_not_echoed "no secret on stderr" "the secret"
else ok wrong_secret_not_echoed; fi
AWS_ACCESS_KEY_ID=SPIMUNKNOWNKEYID0000 s3 head "s3://$BUCKET/$KEY"; expect_rc unknown_key_id_exit_4 4
AWS_ACCESS_KEY_ID=SPIMUNKNOWNKEYID0000 s3 get "s3://$BUCKET/$KEY"; expect_err unknown_key_id_names_code InvalidAccessKeyId

env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$S3" get "s3://$BUCKET/$KEY" > /dev/null 2> "$T/err"
echo $? > "$T/rc"
expect_rc no_credentials_exit_4 4
expect_err no_credentials_says_where "no AWS credentials"

AWS_ENDPOINT_URL_S3=http://127.0.0.1:9 s3 head "s3://$BUCKET/$KEY"
expect_rc refused_connection_exit_1 1
expect_err refused_connection_message "3 attempts"

s3 frobnicate "s3://$BUCKET/x"; expect_rc unknown_command_exit_2 2
s3 get "http://$BUCKET/x"; expect_rc bad_uri_exit_2 2
s3 get "s3://$BUCKET"; expect_rc missing_key_usage_exit_2 2
s3 presign "s3://$BUCKET/x" --expires 0; expect_rc bad_expiry_exit_2 2

s3 rm "s3://$BUCKET/$KEY"; expect_rc rm 0
s3 head "s3://$BUCKET/$KEY"; expect_rc head_after_rm_exit_3 3
s3 rm "s3://$BUCKET/$P/stdin.bin"; expect_rc rm_second 0
s3 rm "s3://$BUCKET/$P/plain.bin"

finish
