#!/bin/bash
# build/s3 against the real radosgw: round trips, presigned URLs fetched by
# the curl tool (good, tampered, expired), ls across pages and the Batch
# Operations manifest, --help, exit codes and error messages.
# Needs SPIM_TEST_* from tests/it/servers.sh (via tests/run.sh); skips without
# them unless SPIM_REQUIRE_SERVERS=1.
. "$(dirname "$0")/preamble.sh"
S3=$B/s3
need_s3 all
need build "$S3"

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
# X-Amz-Date is the signing second, truncated: a URL for 1 s may be expired
# before curl runs on a loaded machine, so 5 s, and 7 s later it is not valid
s3 presign "s3://$BUCKET/$P/plain.bin" --expires 5
URL=$(cat "$T/out")
code=$(curl -s -o "$T/curl.bin" -w '%{http_code}' "$URL")
if [ "$code" = 200 ] && cmp -s "$T/data.bin" "$T/curl.bin"; then ok presigned_plain_key_200
else fail presigned_plain_key_200 "HTTP 200 and the same bytes" "HTTP $code"; fi
sleep 7
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

# usage: --help on stdout with exit 0; each argument error names the
# argument and its rule, exit 2
for h in --help -h "get --help" "presign s3://b/k -h"; do
    # shellcheck disable=SC2086
    s3 $h
    name=help_${h// /_}
    if [ "$(rc)" = 0 ] && grep -q '^usage: s3 get' "$T/out" && grep -q 's3 ls ' "$T/out" && [ ! -s "$T/err" ]; then
        ok "$name"
    else fail "$name" "exit 0, usage on stdout, nothing on stderr" "exit $(rc), $(wc -l < "$T/out") lines out, err '$(head -c 100 "$T/err")'"; fi
done
expect_usage() {  # case message args...
    local name=$1 msg=$2; shift 2
    s3 "$@"
    if [ "$(rc)" = 2 ] && [ "$(head -1 "$T/err")" = "s3: $msg" ]; then ok "$name"
    else fail "$name" "exit 2 and 's3: $msg'" "exit $(rc) and '$(head -1 "$T/err")'"; fi
}
expect_usage unknown_command "unknown command 'frobnicate' (expected get, put, head, rm, presign, mb or ls)" frobnicate "s3://$BUCKET/x"
expect_usage no_command "no command (expected get, put, head, rm, presign, mb or ls)"
expect_usage bad_uri "URI: expected s3://BUCKET/KEY, got 'http://$BUCKET/x'" get "http://$BUCKET/x"
expect_usage no_bucket "URI: no bucket name in 's3:///x'" get "s3:///x"
expect_usage missing_key "get: needs s3://BUCKET/KEY with a key, got 's3://$BUCKET'" get "s3://$BUCKET"
expect_usage missing_uri "rm: needs s3://BUCKET/KEY" rm
expect_usage mb_with_key "mb: takes s3://BUCKET without a key, got 's3://$BUCKET/k'" mb "s3://$BUCKET/k"
expect_usage expires_zero "--expires: must be an integer 1..604800 seconds (7 days), got '0'" presign "s3://$BUCKET/x" --expires 0
expect_usage expires_too_long "--expires: must be an integer 1..604800 seconds (7 days), got '604801'" presign "s3://$BUCKET/x" --expires 604801
expect_usage expires_not_a_number "--expires: must be an integer 1..604800 seconds (7 days), got '1h'" presign "s3://$BUCKET/x" --expires 1h
expect_usage expires_without_value "--expires: needs a value" presign "s3://$BUCKET/x" --expires
expect_usage expires_for_get "--expires: only for presign, not get" get "s3://$BUCKET/x" --expires 60
expect_usage unknown_option "--frob: unknown option (see s3 --help)" get "s3://$BUCKET/x" --frob
expect_usage meta_without_equals "--meta: must be NAME=VALUE, got 'stamped'" put "s3://$BUCKET/x" --meta stamped
expect_usage extra_argument "head: unexpected argument 'extra'" head "s3://$BUCKET/x" extra
expect_usage page_size_zero "--page-size: must be an integer 1..1000 keys, got '0'" ls "s3://$BUCKET/" --page-size 0
expect_usage manifest_for_get "--manifest: only for ls, not get" get "s3://$BUCKET/x" --manifest

# ls across pages, and the Batch Operations manifest
LS=$P/ls/
names=("100% done.jpg" "a b space.jpg" "a+plus.jpg" "café/日本.png" "comma,quote\"x.jpg" "plain.jpg" "😀.gif")
for n in "${names[@]}"; do echo "$n" | "$S3" put "s3://$BUCKET/$LS$n" > /dev/null || fail "put_$n" "exit 0" "exit $?"; done
echo sibling | "$S3" put "s3://$BUCKET/${P}/ls-sibling.jpg" > /dev/null
printf "$LS%s\n" "${names[@]}" > "$T/want.txt"   # in byte order, as S3 lists
AWS_LAMBDA_LOG_LEVEL=DEBUG s3 ls "s3://$BUCKET/$LS" --page-size 2
expect_rc ls_exit_0 0
expect_same ls_prints_every_key_in_order "$T/want.txt" "$T/out"
pages=$(grep -c 's3 request' "$T/err")
if [ "$pages" = 4 ]; then ok ls_takes_four_pages_of_two; else fail ls_takes_four_pages_of_two "4 requests" "$pages"; fi
s3 ls "s3://$BUCKET/$LS"; expect_same ls_one_page_same_keys "$T/want.txt" "$T/out"
s3 ls "s3://$BUCKET/${P}/ls" --page-size 3
if [ "$(head -1 "$T/out")" = "${P}/ls-sibling.jpg" ] && [ "$(wc -l < "$T/out")" = 8 ]; then ok ls_prefix_is_a_prefix
else fail ls_prefix_is_a_prefix "8 keys, the sibling first" "$(wc -l < "$T/out") keys, first '$(head -1 "$T/out")'"; fi
s3 ls "s3://$BUCKET/${P}/nothing/"
if [ "$(rc)" = 0 ] && [ ! -s "$T/out" ]; then ok ls_empty_prefix_prints_nothing
else fail ls_empty_prefix_prints_nothing "exit 0, no output" "exit $(rc), $(wc -c < "$T/out") bytes"; fi
s3 ls "s3://spim-no-such-bucket-cli/"; expect_rc ls_missing_bucket_exit_3 3
expect_err ls_missing_bucket_names_code "ListObjectsV2 s3://spim-no-such-bucket-cli/: NoSuchBucket"

s3 ls --manifest "s3://$BUCKET/$LS" --page-size 3
expect_rc ls_manifest_exit_0 0
{
    echo "$BUCKET,${LS}100%25%20done.jpg"
    echo "$BUCKET,${LS}a%20b%20space.jpg"
    echo "$BUCKET,${LS}a%2Bplus.jpg"
    echo "$BUCKET,${LS}caf%C3%A9/%E6%97%A5%E6%9C%AC.png"
    echo "$BUCKET,${LS}comma%2Cquote%22x.jpg"
    echo "$BUCKET,${LS}plain.jpg"
    echo "$BUCKET,${LS}%F0%9F%98%80.gif"
} > "$T/want.csv"
expect_same ls_manifest_is_bucket_comma_encoded_key "$T/want.csv" "$T/out"
# The service URL-decodes manifest keys: whether or not a decoder takes '+'
# for a space, every line has two fields and decodes to the key itself.
if /usr/bin/python3 - "$T/out" "$T/want.txt" <<'PY'
import csv, sys, urllib.parse
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8")))
want = open(sys.argv[2], encoding="utf-8").read().splitlines()
assert all(len(r) == 2 for r in rows), rows
for dec in (urllib.parse.unquote, urllib.parse.unquote_plus):
    got = [dec(r[1], encoding="utf-8") for r in rows]
    assert got == want, (dec.__name__, got, want)
PY
then ok ls_manifest_keys_decode_to_the_keys; else fail ls_manifest_keys_decode_to_the_keys "every key back" "a difference (above)"; fi
for n in "${names[@]}"; do "$S3" rm "s3://$BUCKET/$LS$n"; done
"$S3" rm "s3://$BUCKET/${P}/ls-sibling.jpg"

s3 rm "s3://$BUCKET/$KEY"; expect_rc rm 0
s3 head "s3://$BUCKET/$KEY"; expect_rc head_after_rm_exit_3 3
s3 rm "s3://$BUCKET/$P/stdin.bin"; expect_rc rm_second 0
s3 rm "s3://$BUCKET/$P/plain.bin"

finish
