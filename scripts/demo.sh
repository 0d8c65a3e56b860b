#!/bin/bash
# make demo: the whole SpartaImager path on this machine, with the packaged
# Lambda functions exactly as they would be deployed.
#
#   1. installs what it needs (scripts/deps.sh demo), builds and packages
#   2. starts radosgw on 127.0.0.1 (tests/it/servers.sh) and one Lambda Runtime
#      API emulator per function (tests/it/emulator.py)
#   3. runs build/imager/function.zip and build/presign/function.zip unzipped,
#      with only the variables Lambda sets (env -i)
#   4. uploads the project's sample photos (build/tools/mksamples), delivers
#      S3 ObjectCreated:Put events (URL-encoded keys, as S3 sends them),
#      downloads the stamped copies into build/demo/stamped/
#   5. asks the presign function for a URL (API Gateway HTTP API v2 event)
#      and fetches it with curl
#   6. deletes an original, delivers ObjectRemoved:Delete, shows the copy gone
#   7. writes build/demo/before-after.jpg; stops everything it started
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${SPIM_BUILD:-$ROOT/build}
OUT=$B/demo
export SPIM_BUILD=$B SPIM_SERVERS_OWNER=$$
step=0
say()  { step=$((step + 1)); printf '\n[%d] %s\n' "$step" "$*"; }
info() { printf '    %s\n' "$*"; }
die()  { printf '\ndemo: %s\n' "$*" >&2; exit 1; }
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

pids=()
servers_started=0
cleanup() {
    local rc=$? p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ "$servers_started" = 1 ] && tests/it/servers.sh stop >/dev/null 2>&1 || true
    [ "$rc" = 0 ] && printf '\ndone: stopped every process the demo started; results in %s\n' "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. dependencies, build, package ---------------------------------------
say "Debian packages (scripts/deps.sh demo)"
scripts/deps.sh demo
info "ok"

say "build and package (make package)"
rm -rf "$OUT"
mkdir -p "$OUT/logs"
make --no-print-directory B="$B" package "$B/s3" "$B/tools/mksamples" "$B/bench/pipeline_tool" \
    > "$OUT/logs/build.log" 2>&1 || { tail -20 "$OUT/logs/build.log"; die "build failed (see $OUT/logs/build.log)"; }
for f in imager presign; do
    [ -f "$B/$f/function.zip" ] || die "$B/$f/function.zip was not built"
    info "$(printf '%-28s %6d KB' "build/$f/function.zip" $(( $(stat -c %s "$B/$f/function.zip") / 1024 )))"
done

# ---- 2. servers -------------------------------------------------------------
say "radosgw on 127.0.0.1 (tests/it/servers.sh start)"
servers_started=1
tests/it/servers.sh start > "$OUT/logs/servers.log" 2>&1 || { tail -20 "$OUT/logs/servers.log"; die "radosgw did not start"; }
# shellcheck disable=SC1091
. "$B/servers.env"
info "S3 endpoint $SPIM_TEST_S3_ENDPOINT (SigV4 checked by the server)"
export AWS_ENDPOINT_URL_S3=$SPIM_TEST_S3_ENDPOINT AWS_ACCESS_KEY_ID=$SPIM_TEST_ACCESS_KEY \
    AWS_SECRET_ACCESS_KEY=$SPIM_TEST_SECRET_KEY AWS_REGION=${SPIM_TEST_REGION:-us-east-1}
s3() { "$B/s3" "$@"; }

say "Lambda: one Runtime API emulator per function, packaged bootstraps (env -i)"
start_emulator() {  # name -> sets api_<name>
    local port_file=$OUT/logs/$1.port
    python3 tests/it/emulator.py --port-file "$port_file" --timeout-ms 60000 \
        --function-arn "arn:aws:lambda:$AWS_REGION:123456789012:function:sparta-demo-$1" \
        > "$OUT/logs/emulator-$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 200); do [ -s "$port_file" ] && break; sleep 0.05; done
    [ -s "$port_file" ] || die "the emulator for $1 did not start (see $OUT/logs/emulator-$1.log)"
    printf -v "api_$1" '127.0.0.1:%s' "$(cat "$port_file")"
}
bucket=sparta-demo-$(date +%s)
start_function() {  # name api
    local task=$OUT/task/$1
    mkdir -p "$task"
    unzip -q -o "$B/$1/function.zip" -d "$task"
    env -i AWS_LAMBDA_RUNTIME_API="$2" LAMBDA_TASK_ROOT="$task" LAMBDA_RUNTIME_DIR=/var/runtime \
        _HANDLER=bootstrap AWS_EXECUTION_ENV=AWS_Lambda_provided.al2023 \
        AWS_LAMBDA_FUNCTION_NAME="sparta-demo-$1" AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
        AWS_LAMBDA_FUNCTION_VERSION='$LATEST' AWS_REGION="$AWS_REGION" AWS_DEFAULT_REGION="$AWS_REGION" \
        AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" \
        AWS_ENDPOINT_URL_S3="$AWS_ENDPOINT_URL_S3" SPARTA_BUCKET="$bucket" \
        TZ=:UTC LANG=en_US.UTF-8 PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin \
        LD_LIBRARY_PATH="/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:$task:$task/lib:/opt/lib" \
        "$task/bootstrap" 2> "$OUT/logs/$1.log" &
    pids+=($!)
    info "$(printf '%-8s %s/bootstrap (pid %d) <-> Runtime API %s' "$1" "${task#"$ROOT"/}" "$!" "$2")"
}
start_emulator imager
start_emulator presign
start_function imager "$api_imager"
start_function presign "$api_presign"

invoke() {  # api payload -> the function's answer body (fails on /error)
    local rid doc
    rid=$(curl -sf -X POST --data-binary "$2" "http://$1/control/event" | json 'd["requestIds"][0]') ||
        die "the emulator at $1 refused the event"
    doc=$(curl -sf "http://$1/control/result/$rid?timeout=60") || die "no answer for $rid from the function at $1"
    [ "$(echo "$doc" | json 'd["records"][-1]["kind"]')" = response ] ||
        die "the invocation failed: $(echo "$doc" | json 'd["records"][-1]["body"]')"
    echo "$doc" | json 'd["records"][-1]["body"]'
}
s3_event() {  # eventName key size -> one S3 notification, key URL-encoded like S3
    python3 - "$1" "$bucket" "$2" "$3" <<'EOF'
import json, sys, time, urllib.parse
name, bucket, key, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
obj = {"key": urllib.parse.quote_plus(key, safe="/"), "sequencer": "%016X" % time.time_ns()}
if name.startswith("ObjectCreated"):
    obj.update(size=size, eTag="0" * 32)
print(json.dumps({"Records": [{
    "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
    "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()), "eventName": name,
    "userIdentity": {"principalId": "AWS:AIDADEMO"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
    "responseElements": {"x-amz-request-id": "DEMO", "x-amz-id-2": "DEMO"},
    "s3": {"s3SchemaVersion": "1.0", "configurationId": "sparta-demo",
           "bucket": {"name": bucket, "ownerIdentity": {"principalId": "DEMO"}, "arn": "arn:aws:s3:::" + bucket},
           "object": obj}}]}))
EOF
}

# ---- 3. upload and stamp ----------------------------------------------------
say "bucket s3://$bucket: upload the sample photos (build/tools/mksamples)"
"$B/tools/mksamples" "$OUT/originals" > "$OUT/logs/mksamples.log"
s3 mb "s3://$bucket" > /dev/null
# sample file | key | content type  (keys with spaces, '+' and parentheses on purpose)
uploads=(
    "photo.jpg|holiday/beach day.jpg|image/jpeg"
    "rotated.jpg|holiday/portrait (EXIF orientation 6).jpg|image/jpeg"
    "large.jpg|holiday/panorama 6MP.jpg|image/jpeg"
    "alpha.png|logos/fade+alpha.png|image/png"
    "palette.gif|logos/palette.gif|image/gif"
    "notimage.txt|notes/readme.txt|text/plain"
)
for u in "${uploads[@]}"; do
    IFS='|' read -r file key type <<< "$u"
    s3 put "s3://$bucket/$key" "$OUT/originals/$file" --content-type "$type" > /dev/null
    info "$(printf '%-14s -> %-44s %7d bytes' "$file" "$key" "$(stat -c %s "$OUT/originals/$file")")"
done

say "S3 ObjectCreated:Put events -> imager"
mkdir -p "$OUT/stamped"
for u in "${uploads[@]}"; do
    IFS='|' read -r file key type <<< "$u"
    body=$(invoke "$api_imager" "$(s3_event ObjectCreated:Put "$key" "$(stat -c %s "$OUT/originals/$file")")")
    action=$(echo "$body" | json 'd["records"][0]["action"]')
    why=$(echo "$body" | json 'd["records"][0].get("reason", "")')
    took=$(grep -F "key=" "$OUT/logs/imager.log" | grep " stamped " | tail -1 |
        sed -n 's/.*get_ms=\([0-9]*\) image_ms=\([0-9]*\) put_ms=\([0-9]*\).*/GET \1 ms, stamp \2 ms, PUT \3 ms/p')
    [ "$action" = stamped ] || took=$why
    info "$(printf '%-44s %-8s %s' "$key" "$action" "${took:+($took)}")"
    if [ "$action" = stamped ]; then
        out_key=$(echo "$body" | json 'd["records"][0]["output"]')
        dest=$OUT/stamped/$(echo "$out_key" | tr '/' '_')
        s3 get "s3://$bucket/$out_key" "$dest" > /dev/null
        type=$(s3 head "s3://$bucket/$out_key" | sed -n 's/^content-type: //p')
        info "$(printf '  -> %-40s %-10s %7d bytes  %s' "$out_key" "$type" "$(stat -c %s "$dest")" "${dest#"$ROOT"/}")"
    fi
done

# ---- 4. presigned URL ---------------------------------------------------------
say "presign: GET /presign?key=... (API Gateway HTTP API v2 event) -> curl"
key="holiday/beach day.jpg"
apigw=$(python3 - "$key" <<'EOF'
import json, sys, time, urllib.parse
key = sys.argv[1]
print(json.dumps({"version": "2.0", "routeKey": "GET /presign", "rawPath": "/presign",
    "rawQueryString": "key=" + urllib.parse.quote(key, safe=""), "queryStringParameters": {"key": key},
    "headers": {"host": "demo.execute-api.us-east-1.amazonaws.com"},
    "requestContext": {"accountId": "123456789012", "apiId": "demo", "stage": "$default",
        "domainName": "demo.execute-api.us-east-1.amazonaws.com", "requestId": "demo",
        "routeKey": "GET /presign", "timeEpoch": int(time.time() * 1000),
        "http": {"method": "GET", "path": "/presign", "protocol": "HTTP/1.1",
                 "sourceIp": "127.0.0.1", "userAgent": "curl"}},
    "isBase64Encoded": False}))
EOF
)
answer=$(invoke "$api_presign" "$apigw")
status=$(echo "$answer" | json 'd["statusCode"]')
[ "$status" = 200 ] || die "presign answered $status: $(echo "$answer" | json 'd.get("body")')"
url=$(echo "$answer" | json 'json.loads(d["body"])["url"]')
info "statusCode 200, url (expires in $(echo "$answer" | json 'json.loads(d["body"])["expires_in"]') s):"
info "$url"
read -r code bytes < <(curl -s -o "$OUT/presigned-download.jpg" -w '%{http_code} %{size_download}\n' "$url")
info "curl: HTTP $code, $bytes bytes"
[ "$code" = 200 ] || die "the presigned URL answered HTTP $code"
cmp -s "$OUT/presigned-download.jpg" "$OUT/stamped/xformed_holiday_beach day.jpg" &&
    info "same bytes as the stamped copy downloaded above"

# ---- 5. delete ------------------------------------------------------------------
say "delete the original -> S3 ObjectRemoved:Delete -> imager"
s3 rm "s3://$bucket/$key" > /dev/null
info "s3 rm s3://$bucket/$key"
body=$(invoke "$api_imager" "$(s3_event ObjectRemoved:Delete "$key" 0)")
info "imager: $(echo "$body" | json 'd["records"][0]["action"]') $(echo "$body" | json 'd["records"][0].get("output", "")')"
if s3 head "s3://$bucket/xformed_$key" > "$OUT/logs/head.log" 2>&1; then
    die "xformed_$key is still there"
else
    info "HEAD xformed_$key: $(grep -o 'HTTP [0-9]*' "$OUT/logs/head.log" | head -1 || echo 'not found') (gone)"
fi

# ---- 6. before / after ----------------------------------------------------------
say "before/after picture"
"$B/bench/pipeline_tool" sidebyside "$OUT/originals/photo.jpg" "$OUT/stamped/xformed_holiday_beach day.jpg" \
    360 "$OUT/before-after.jpg"
info "${OUT#"$ROOT"/}/before-after.jpg ($(stat -c %s "$OUT/before-after.jpg") bytes)"
info "function logs: ${OUT#"$ROOT"/}/logs/imager.log, presign.log"
