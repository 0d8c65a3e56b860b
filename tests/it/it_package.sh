#!/bin/bash
# Packaging integration: what `make package` puts in build/NAME/function.zip
# (and `make package ARCH=arm64` in build/arm64/NAME/function.zip) must run
# on provided.al2023, where only glibc (2.34) is on the system.
# For each Lambda example (hello, imager, presign) the zip is unpacked into an
# empty directory and checked:
#   layout    the zip holds only `bootstrap`, mode 755, and is <= 1 MiB
#   static    NEEDED names glibc's libraries only; no RPATH/RUNPATH
#   stripped  no .symtab in the bootstrap
#   deps      `env -i ldd`: every library resolves to glibc's
#   glibc     no GLIBC_ version reference above 2.34
#   testevent the imager answers an s3:TestEvent with `env -i` and only the
#             variables Lambda sets
#   run       the bootstrap under tests/it/emulator.py with only the variables
#             Lambda sets (env -i): hello echoes; imager stamps an object in
#             radosgw and deletes the copy again; presign answers a URL that
#             curl fetches. Every mapped .so of the live process is glibc's
#             (/proc/PID/maps).
#   rootfs    the same run chrooted into a root holding glibc and the
#             package only (as on AL2023): nothing can come from the host.
#   tls       the imager over HTTPS in such a root, with the CA bundle where
#             Debian keeps it, where AL2023 keeps it, and nowhere (refused).
#   arm64     the arm64 zips: the same layout, static and glibc checks, then
#             under qemu-aarch64 a TestEvent (env -i), hello's echo and a
#             full stamp + delete against radosgw through the emulator.
. "$(dirname "$0")/preamble.sh"
MAX_GLIBC=2.34

tmp=$(mktemp -d /tmp/it_package.XXXXXX)
emu_pid=""
boot_pid=""
proxy_pid=""
cleanup() {
    [ -n "$boot_pid" ] && kill "$boot_pid" 2>/dev/null
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
    [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null
    wait 2>/dev/null
    [ -n "${IT_PACKAGE_KEEP:-}" ] && echo "# kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

is_glibc() {
    case "$1" in
        linux-vdso.so.*|ld-linux*.so.*|libc.so.*|libm.so.*|libmvec.so.*|libpthread.so.*|\
        libdl.so.*|librt.so.*|libresolv.so.*|libutil.so.*|libanl.so.*|libnss_*|\
        libBrokenLocale.so.*|libthread_db.so.*|libc_malloc_debug.so.*|libnsl.so.*) return 0 ;;
    esac
    return 1
}
json_get() {  # JSON on stdin, python expression over `d`
    python3 -c 'import json,sys; d=json.load(sys.stdin); v='"$1"'; print(v if not isinstance(v,(dict,list)) else json.dumps(v))' 2>/dev/null
}

# ---- the emulator ----------------------------------------------------------
python3 tests/it/emulator.py --port-file "$tmp/port" --results "$tmp/results.jsonl" \
    --timeout-ms 60000 > "$tmp/emulator.log" 2>&1 &
emu_pid=$!
for _ in $(seq 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
api=127.0.0.1:$(cat "$tmp/port" 2>/dev/null)

invoke() {  # payload-file -> prints the final answer record (JSON); gives up
    local rid ans i   # when the bootstrap has died or after 90 s
    rid=$(curl -s --max-time 10 -X POST --data-binary "@$1" "http://$api/control/event" | json_get 'd["requestIds"][0]')
    [ -n "$rid" ] || return 1
    for i in $(seq 90); do
        ans=$(curl -s --max-time 5 "http://$api/control/result/$rid?timeout=1" | json_get 'd["records"][-1]')
        [ -n "$ans" ] && { echo "$ans"; return 0; }
        [ -n "$boot_pid" ] && ! kill -0 "$boot_pid" 2>/dev/null && break
    done
    echo '{"kind": "no answer", "body": ""}'
    return 1
}

next_count() { curl -s --max-time 5 "http://$api/control/stats" | json_get 'd["nextRequests"]' || echo 0; }

# S3 settings: radosgw from tests/it/servers.sh (tests/run.sh sources servers.env).
s3_ready=0
if [ -n "${SPIM_TEST_S3_ENDPOINT:-}" ] && [ -x "$B/s3" ]; then s3_ready=1; fi
s3() {
    env AWS_ENDPOINT_URL_S3="$SPIM_TEST_S3_ENDPOINT" AWS_ACCESS_KEY_ID="$SPIM_TEST_ACCESS_KEY" \
        AWS_SECRET_ACCESS_KEY="$SPIM_TEST_SECRET_KEY" AWS_REGION="${SPIM_TEST_REGION:-us-east-1}" \
        "$B/s3" "$@"
}
bucket=spim-pkg-$$-$RANDOM

# The variables Lambda gives a provided.al2023 function, and nothing else.
lambda_env() {  # task-dir-as-seen-by-the-process
    echo AWS_LAMBDA_RUNTIME_API="$api" LAMBDA_TASK_ROOT="$1" LAMBDA_RUNTIME_DIR=/var/runtime \
        _HANDLER=bootstrap AWS_REGION="${SPIM_TEST_REGION:-us-east-1}" \
        AWS_DEFAULT_REGION="${SPIM_TEST_REGION:-us-east-1}" AWS_EXECUTION_ENV=AWS_Lambda_provided.al2023 \
        AWS_LAMBDA_FUNCTION_NAME=it-package AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
        AWS_LAMBDA_FUNCTION_VERSION='$LATEST' TZ=:UTC LANG=en_US.UTF-8 \
        PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin \
        LD_LIBRARY_PATH="/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:$1:$1/lib:/opt/lib"
}
s3_env() {
    [ "$s3_ready" = 1 ] || return 0
    echo AWS_ACCESS_KEY_ID="$SPIM_TEST_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$SPIM_TEST_SECRET_KEY" \
        AWS_ENDPOINT_URL_S3="${endpoint_override:-$SPIM_TEST_S3_ENDPOINT}" SPARTA_BUCKET="$bucket" ${extra_env:-}
}

# Start the bootstrap (in the background); $1 = how: plain DIR | rootfs ROOT
start_bootstrap() {
    local how=$1 dir=$2
    next_before=$(next_count)
    if [ "$how" = qemu ]; then
        # shellcheck disable=SC2046
        env -i $(lambda_env "$dir") $(s3_env) qemu-aarch64 -L "$QEMU_ROOT" "$dir/bootstrap" \
            > "$tmp/boot.out" 2> "$tmp/boot.err" &
    elif [ "$how" = plain ]; then
        # shellcheck disable=SC2046
        env -i $(lambda_env "$dir") $(s3_env) "$dir/bootstrap" > "$tmp/boot.out" 2> "$tmp/boot.err" &
    else
        # shellcheck disable=SC2046
        env -i $(lambda_env /var/task) $(s3_env) /usr/bin/unshare -m /bin/sh -c \
            '/bin/mount -t proc proc "$1/proc" && exec /usr/sbin/chroot "$1" /var/task/bootstrap' \
            sh "$dir" > "$tmp/boot.out" 2> "$tmp/boot.err" &
    fi
    boot_pid=$!
}
stop_bootstrap() {
    [ -n "$boot_pid" ] && kill "$boot_pid" 2>/dev/null
    wait "$boot_pid" 2>/dev/null
    boot_pid=""
}

# Every shared object mapped by the live process, once it has asked for its
# first event, is the package's or glibc's.
check_maps() {  # case pid dir
    local bad="" f real_dir
    real_dir=$(cd "$3" && pwd -P)
    for _ in $(seq 200); do [ "$(next_count)" -gt "$next_before" ] && break; sleep 0.05; done
    while read -r f; do
        case "$f" in
            "$real_dir"/*|*/var/task/*) ;;
            *) is_glibc "$(basename "$f")" || bad="$bad $f" ;;
        esac
    done < <(awk '$6 ~ /\.so(\.[0-9]+)*$/ {print $6}' "/proc/$2/maps" 2>/dev/null | sort -u)
    if [ -z "$(awk '$6 ~ /\.so(\.[0-9]+)*$/' "/proc/$2/maps" 2>/dev/null)" ]; then
        fail "$1" "mapped libraries in /proc/$2/maps" "none (process gone?)"
    else
        check "$1" "" "${bad# }"
    fi
}

# ---- checks of one unpacked zip (both architectures) --------------------------
static_checks() {  # name zip dir arch
    local name=$1 zip=$2 dir=$3 arch=$4 p needed bad="" n worst le
    p=$name; [ "$arch" = x86_64 ] || p=${arch}_$name
    check "${p}_layout_only_bootstrap" "bootstrap" "$(unzip -Z1 "$zip" | tr '\n' ' ' | sed 's/ $//')"
    check "${p}_layout_mode" "-rwxr-xr-x" "$(unzip -Z "$zip" bootstrap 2>/dev/null | awk '{print $1}')"
    check "${p}_zip_at_most_1MiB" "<= 1048576" "$(s=$(stat -c %s "$zip"); [ "$s" -le 1048576 ] && echo '<= 1048576' || echo "$s bytes")"
    check "${p}_machine" "$([ "$arch" = arm64 ] && echo AArch64 || echo 'Advanced Micro Devices X86-64')" \
        "$(readelf -h "$dir/bootstrap" | sed -n 's/^ *Machine: *//p')"
    needed=$(readelf -d "$dir/bootstrap" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    for n in $needed; do is_glibc "$n" || bad="$bad $n"; done
    check "${p}_needed_glibc_only" "" "${bad# }"
    echo "# $p: NEEDED $(echo "$needed" | tr "\n" " "), zip $(stat -c %s "$zip") bytes"
    check "${p}_no_rpath" "" "$(readelf -d "$dir/bootstrap" | grep -E '\((RPATH|RUNPATH)\)')"
    check "${p}_stripped" "no .symtab" "$(readelf -S "$dir/bootstrap" | grep -q '\.symtab' && echo '.symtab present' || echo 'no .symtab')"
    if [ "$arch" = x86_64 ]; then
        bad=""
        while read -r soname arrow path _; do
            [ "$arrow" = "=>" ] || continue
            is_glibc "$soname" || bad="$bad $soname=>$path"
        done < <(env -i ldd "$dir/bootstrap" 2>&1)
        check "${p}_deps_glibc_only" "" "${bad# }"
    fi
    worst=$(readelf -V "$dir/bootstrap" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sed 's/GLIBC_//' | sort -uV | tail -1)
    le=$(printf '%s\n%s\n' "$worst" "$MAX_GLIBC" | sort -V | head -1)
    check "${p}_glibc_max" "<= $MAX_GLIBC" "$( [ "$le" = "$worst" ] && echo "<= $MAX_GLIBC" || echo "GLIBC_$worst")"
    echo "# $p: highest GLIBC_ reference $worst"
}

# s3:TestEvent from a clean environment: only what Lambda sets (credentials
# included: Lambda always gives the function's role), no S3 call needed.
testevent_check() {  # case dir [runner...]
    local c=$1 dir=$2 out; shift 2
    printf '{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T12:00:00.000Z","Bucket":"b","RequestId":"r","HostId":"h"}\n' > "$tmp/testevent.json"
    # shellcheck disable=SC2046
    out=$(env -i $(lambda_env "$dir") AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secretEXAMPLE \
        "$@" "$dir/bootstrap" --event "$tmp/testevent.json" 2>"$tmp/testevent.err")
    check "$c" "1 0" "$(echo "$out" | json_get 'str(d["testEvents"]) + " " + str(d["stamped"])' || echo "$out $(head -2 "$tmp/testevent.err")")"
}

# ---- function-specific runs ------------------------------------------------
s3_event() {  # name key -> S3 notification JSON (key URL-encoded as S3 does)
    local enc
    enc=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote_plus(sys.argv[1], safe="/"))' "$2")
    printf '{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2024-05-01T12:00:00.000Z","eventName":"%s","userIdentity":{"principalId":"AWS:TEST"},"requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"TEST","x-amz-id-2":"TEST"},"s3":{"s3SchemaVersion":"1.0","configurationId":"it-package","bucket":{"name":"%s","ownerIdentity":{"principalId":"TEST"},"arn":"arn:aws:s3:::%s"},"object":{"key":"%s","size":1,"eTag":"0","sequencer":"00"}}}]}' \
        "$1" "$bucket" "$bucket" "$enc"
}

run_hello() {  # case-prefix
    local ans
    echo '{"package":"hello","n":[1,2,3]}' > "$tmp/hello.json"
    ans=$(invoke "$tmp/hello.json")
    check "$1_echo" '{"package":"hello","n":[1,2,3]}' "$(echo "$ans" | json_get 'd["body"]')"
}

run_imager() {  # case-prefix
    local ans src key="pkg test/$1 photo.jpg"
    if [ "$s3_ready" != 1 ]; then skip "$1_stamp" "no radosgw or $B/s3"; return; fi
    src=$tmp/samples/photo.jpg
    [ -f "$src" ] || src=$tmp/samples/small.jpg
    s3 put "s3://$bucket/$key" "$src" --content-type image/jpeg >/dev/null 2>"$tmp/s3.err" ||
        { fail "$1_stamp" "upload of the source" "$(cat "$tmp/s3.err")"; return; }
    s3_event "ObjectCreated:Put" "$key" > "$tmp/created.json"
    ans=$(invoke "$tmp/created.json")
    check "$1_stamp_answer" response "$(echo "$ans" | json_get 'd["kind"]')"
    s3 head "s3://$bucket/xformed_$key" > "$tmp/head.out" 2>&1
    check "$1_stamp_output" "content-type: image/jpeg" "$(grep -i '^content-type' "$tmp/head.out" || head -2 "$tmp/head.out")"
    s3_event "ObjectRemoved:Delete" "$key" > "$tmp/removed.json"
    s3 rm "s3://$bucket/$key" >/dev/null 2>&1
    ans=$(invoke "$tmp/removed.json")
    check "$1_remove_answer" response "$(echo "$ans" | json_get 'd["kind"]')"
    s3 head "s3://$bucket/xformed_$key" >/dev/null 2>&1
    check "$1_remove_output" "s3 head exit 3" "s3 head exit $?"
}

run_presign() {  # case-prefix
    local ans url code key="pkg/$1 file.jpg"
    if [ "$s3_ready" != 1 ]; then skip "$1_url" "no radosgw or $B/s3"; return; fi
    printf 'presigned body %s\n' "$1" > "$tmp/obj.txt"
    s3 put "s3://$bucket/xformed_$key" "$tmp/obj.txt" >/dev/null 2>&1
    python3 - "$key" > "$tmp/apigw.json" <<'EOF'
import json, sys, urllib.parse
key = sys.argv[1]
q = "key=" + urllib.parse.quote(key, safe="")
print(json.dumps({"version": "2.0", "routeKey": "GET /presign", "rawPath": "/presign",
    "rawQueryString": q, "headers": {"host": "example.execute-api.us-east-1.amazonaws.com"},
    "queryStringParameters": {"key": key},
    "requestContext": {"accountId": "123456789012", "apiId": "example", "stage": "$default",
        "domainName": "example.execute-api.us-east-1.amazonaws.com", "requestId": "it-package",
        "routeKey": "GET /presign", "time": "01/May/2024:12:00:00 +0000", "timeEpoch": 1714564800000,
        "http": {"method": "GET", "path": "/presign", "protocol": "HTTP/1.1",
                 "sourceIp": "127.0.0.1", "userAgent": "curl/7.88.1"}},
    "isBase64Encoded": False}))
EOF
    ans=$(invoke "$tmp/apigw.json")
    check "$1_status" 200 "$(echo "$ans" | json_get 'json.loads(d["body"])["statusCode"]')"
    url=$(echo "$ans" | json_get 'd["body"]' | grep -oE 'https?://[^"\\ ]+' | head -1)
    if [ -z "$url" ]; then fail "$1_url" "a URL in the answer" "$ans"; return; fi
    code=$(curl -s -o "$tmp/fetched" -w '%{http_code}' --max-time 10 "$url")
    check "$1_fetch" "200 $(cat "$tmp/obj.txt")" "$code $(cat "$tmp/fetched" 2>/dev/null)"
}

# ---- glibc-only root, like AL2023 -----------------------------------------
make_rootfs() {  # root
    local f
    mkdir -p "$1/proc" "$1/tmp" "$1/var/task" "$1/lib64" "$1/etc"
    while read -r f; do
        case "$f" in *.so|*.so.*) [ -f "$f" ] && mkdir -p "$1$(dirname "$f")" && cp -L "$f" "$1$f" ;; esac
    done < <(dpkg -L "libc6:$(dpkg --print-architecture)" 2>/dev/null)  # libc6:arm64 may be there too
    [ -e "$1/lib64/ld-linux-x86-64.so.2" ] || cp -L /lib64/ld-linux-x86-64.so.2 "$1/lib64/"
    cp /etc/hosts "$1/etc/hosts" 2>/dev/null
}
rootfs_ok=0
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v chroot >/dev/null &&
    unshare -m true 2>/dev/null; then rootfs_ok=1; fi

# ---- per function ----------------------------------------------------------
if [ "$s3_ready" = 1 ]; then
    s3 mb "s3://$bucket" >/dev/null 2>"$tmp/mb.err" || { echo "# cannot create bucket: $(cat "$tmp/mb.err")"; s3_ready=0; }
fi
if [ -x "$B/tools/mksamples" ]; then "$B/tools/mksamples" "$tmp/samples" >/dev/null; fi

for name in hello imager presign; do
    [ -f "examples/$name/main.c" ] || { skip "$name" "examples/$name/main.c does not exist yet"; continue; }
    zip=$B/$name/function.zip
    if [ ! -f "$zip" ]; then fail "${name}_zip" "$zip (make package)" "no file"; continue; fi
    dir=$tmp/$name
    mkdir -p "$dir"
    unzip -q "$zip" -d "$dir"

    static_checks "$name" "$zip" "$dir" x86_64
    if [ "$name" = imager ]; then testevent_check imager_testevent_env_i "$dir"; fi

    # run with a clean environment against the emulator
    start_bootstrap plain "$dir"
    check_maps "${name}_run_maps" "$boot_pid" "$dir"
    "run_$name" "${name}_run"
    stop_bootstrap
    if grep -qiE 'error while loading|not found' "$tmp/boot.err"; then
        fail "${name}_run_stderr" "no loader errors" "$(head -3 "$tmp/boot.err")"
    fi

    # glibc-only root
    if [ "$rootfs_ok" = 1 ]; then
        root=$tmp/root-$name
        make_rootfs "$root"
        cp -a "$dir/." "$root/var/task/"
        start_bootstrap rootfs "$root"
        "run_$name" "${name}_rootfs"
        stop_bootstrap
        [ -s "$tmp/boot.err" ] && grep -qiE 'error while loading' "$tmp/boot.err" &&
            fail "${name}_rootfs_loader" "no loader errors" "$(head -3 "$tmp/boot.err")"
    else
        skip "${name}_rootfs" "needs root, unshare -m and chroot"
    fi
done

# ---- arm64 (Graviton): cross-built zips, run under qemu-aarch64 ----------------
QEMU_ROOT=/usr/aarch64-linux-gnu
if ! command -v qemu-aarch64 >/dev/null || [ ! -e "$QEMU_ROOT/lib/ld-linux-aarch64.so.1" ]; then
    skip arm64 "needs qemu-user and libc6-dev-arm64-cross"
else
    for name in hello imager presign; do
        [ -f "examples/$name/main.c" ] || continue
        zip=$B/arm64/$name/function.zip
        if [ ! -f "$zip" ]; then fail "arm64_${name}_zip" "$zip (make package ARCH=arm64)" "no file"; continue; fi
        dir=$tmp/arm64-$name
        mkdir -p "$dir"
        unzip -q "$zip" -d "$dir"
        static_checks "$name" "$zip" "$dir" arm64
        if [ "$name" = imager ]; then testevent_check arm64_imager_testevent_env_i "$dir" qemu-aarch64 -L "$QEMU_ROOT"; fi
        [ "$name" = presign ] && continue   # nothing arch-specific beyond hello + imager
        start_bootstrap qemu "$dir"
        "run_$name" "arm64_${name}_run"
        stop_bootstrap
    done
fi

# The arm64 SAM template (make package ARCH=arm64): CodeUri names the arm64
# zips, which exist, and the Architecture parameter defaults to arm64.
t=$B/arm64/template.yaml
if [ -f "$t" ]; then
    got=""
    for u in $(sed -n 's/^ *CodeUri: *//p' "$t"); do
        got="$got $u:$([ -f "$(dirname "$t")/$u" ] && echo exists || echo missing)"
    done
    check arm64_template "imager/function.zip:exists presign/function.zip:exists default arm64" \
        "${got# } default $(sed -n '/^  Architecture:/,/Default:/s/.*Default: *//p' "$t")"
else
    fail arm64_template "$t (make package ARCH=arm64)" "no file"
fi

# ---- the packager itself ------------------------------------------------------
# Same input, same zip bytes; a binary that needs a newer glibc than AL2023's
# (arc4random is GLIBC_2.36) is refused, naming the symbol.
if [ -x "$B/package/hello/bootstrap" ]; then
    scripts/package.sh "$B/package/hello/bootstrap" "$tmp/repro1.zip" >/dev/null 2>&1
    sleep 1
    scripts/package.sh "$B/package/hello/bootstrap" "$tmp/repro2.zip" >/dev/null 2>&1
    check packager_reproducible "identical zips" "$(cmp -s "$tmp/repro1.zip" "$tmp/repro2.zip" && echo 'identical zips' || echo 'different bytes')"
else
    skip packager_reproducible "no $B/package/hello/bootstrap (make package)"
fi
mkdir -p "$tmp/new/x"
printf '#include <stdlib.h>\nint main(void) { return (int)(arc4random() & 1u); }\n' > "$tmp/new/new.c"
if cc -o "$tmp/new/x/bootstrap" "$tmp/new/new.c" 2>/dev/null; then
    scripts/package.sh "$tmp/new/x/bootstrap" "$tmp/new/function.zip" > "$tmp/new/out" 2>&1
    rc=$?
    check packager_refuses_new_glibc "exit 1, names arc4random, no zip" \
        "exit $rc, $(grep -q arc4random "$tmp/new/out" && echo names arc4random || echo "says: $(tail -1 "$tmp/new/out")"), $([ -f "$tmp/new/function.zip" ] && echo zip || echo no zip)"
else
    skip packager_refuses_new_glibc "cc cannot build a GLIBC_2.36 program here"
fi

# ---- TLS: where the CA bundle is -------------------------------------------
# The imager talks HTTPS (a TLS proxy in front of radosgw, certificate from a
# test CA) inside a glibc-only root whose only CA bundle is the test CA, once
# where Debian keeps it (libcurl's compiled-in default) and once where Amazon
# Linux 2023 keeps it (/etc/pki/tls/certs/ca-bundle.crt, /etc/ssl/certs a
# link to that directory): the S3 client must find the bundle in both; with
# no bundle at all (the control) the handshake must fail.
tls_proxy() {  # cert key upstream-port port-file
    python3 - "$@" <<'PY'
import os, socket, ssl, sys, threading
cert, key, upstream, port_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(32)
with open(port_file + ".tmp", "w") as f:
    f.write(str(ls.getsockname()[1]))
os.rename(port_file + ".tmp", port_file)

def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.close()
        except OSError:
            pass

def handle(c):
    try:
        t = ctx.wrap_socket(c, server_side=True)
    except (ssl.SSLError, OSError):
        c.close()
        return
    u = socket.create_connection(("127.0.0.1", upstream))
    threading.Thread(target=pipe, args=(u, t), daemon=True).start()
    pipe(t, u)

while True:
    c, _ = ls.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
PY
}
# The proxy is reached by name, as S3 is (s3.REGION.amazonaws.com): the
# root's /etc/hosts maps the name to 127.0.0.1. (mbedTLS 2.28 matches DNS
# names only, not iPAddress entries: an https://IP endpoint does not verify.)
tls_name=s3.it-package.test
tls_ok=0
if [ "$rootfs_ok" = 1 ] && [ "$s3_ready" = 1 ] && [ -f "$B/imager/function.zip" ] && command -v openssl >/dev/null; then
    mkdir -p "$tmp/tls"
    (
        cd "$tmp/tls" &&
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=spim it_package CA" &&
        openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=$tls_name" &&
        printf 'subjectAltName=DNS:%s\n' "$tls_name" > ext &&
        openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext
    ) > "$tmp/openssl.log" 2>&1 && tls_ok=1
fi
if [ "$tls_ok" = 1 ]; then
    rgw_port=${SPIM_TEST_S3_ENDPOINT##*:}
    tls_proxy "$tmp/tls/srv.crt" "$tmp/tls/srv.key" "${rgw_port%%/*}" "$tmp/tls/port" > "$tmp/tls/proxy.log" 2>&1 &
    proxy_pid=$!
    for _ in $(seq 200); do [ -s "$tmp/tls/port" ] && break; sleep 0.05; done
    endpoint_override=https://$tls_name:$(cat "$tmp/tls/port")
    for layout in debian al2023 none; do
        root=$tmp/root-tls-$layout
        make_rootfs "$root"
        echo "127.0.0.1 $tls_name" >> "$root/etc/hosts"
        unzip -q "$B/imager/function.zip" -d "$root/var/task"
        if [ "$layout" = debian ]; then
            mkdir -p "$root/etc/ssl/certs"
            cp "$tmp/tls/ca.crt" "$root/etc/ssl/certs/ca-certificates.crt"
        elif [ "$layout" = al2023 ]; then
            mkdir -p "$root/etc/pki/tls/certs" "$root/etc/ssl"
            cp "$tmp/tls/ca.crt" "$root/etc/pki/tls/certs/ca-bundle.crt"
            ln -s certs/ca-bundle.crt "$root/etc/pki/tls/cert.pem"
            ln -s ../pki/tls/certs "$root/etc/ssl/certs"
        fi
        start_bootstrap rootfs "$root"
        if [ "$layout" = none ]; then
            # control: with no CA bundle the handshake must be refused, so the
            # two cases above show verification, not a lax client
            key="pkg test/tls control.jpg"
            s3 put "s3://$bucket/$key" "$tmp/samples/small.jpg" --content-type image/jpeg >/dev/null 2>&1
            s3_event "ObjectCreated:Put" "$key" > "$tmp/control.json"
            ans=$(invoke "$tmp/control.json")
            check imager_tls_no_ca_refused "error" "$(echo "$ans" | json_get 'd["kind"]')"
            s3 head "s3://$bucket/xformed_$key" >/dev/null 2>&1
            check imager_tls_no_ca_no_output "s3 head exit 3" "s3 head exit $?"
            s3 rm "s3://$bucket/$key" >/dev/null 2>&1
        else
            run_imager "imager_tls_${layout}_ca"
        fi
        stop_bootstrap
        grep -qi 'certificate' "$tmp/boot.err" && echo "# $layout layout, imager log: $(grep -m1 -io '[^"=]*certificate[^"]*' "$tmp/boot.err")"
    done
    # arm64 under qemu-aarch64, the CA given by $SSL_CERT_FILE (qemu's -L
    # root serves opens but not access(), so a bundle placed there is not
    # found by the discovery, which tests the file with access()). The proxy
    # is reached at 127.0.0.1, not by name: resolving a name starts curl's
    # resolver thread, and a thread in a dynamically linked arm64 program
    # hangs under Debian 12's qemu-user 7.2. Its certificate names
    # 127.0.0.1 as a DNS name, which mbedTLS 2.28 compares as text.
    if [ -f "$B/arm64/imager/function.zip" ] && command -v qemu-aarch64 >/dev/null &&
        (cd "$tmp/tls" && openssl req -newkey rsa:2048 -nodes -keyout ip.key -out ip.csr -subj "/CN=127.0.0.1" &&
         printf 'subjectAltName=DNS:127.0.0.1\n' > ipext &&
         openssl x509 -req -in ip.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out ip.crt -days 2 -extfile ipext) \
        >> "$tmp/openssl.log" 2>&1; then
        tls_proxy "$tmp/tls/ip.crt" "$tmp/tls/ip.key" "${rgw_port%%/*}" "$tmp/tls/ipport" > "$tmp/tls/ipproxy.log" 2>&1 &
        ip_proxy_pid=$!
        for _ in $(seq 200); do [ -s "$tmp/tls/ipport" ] && break; sleep 0.05; done
        endpoint_override=https://127.0.0.1:$(cat "$tmp/tls/ipport")
        mkdir -p "$tmp/arm64-tls"
        unzip -q "$B/arm64/imager/function.zip" -d "$tmp/arm64-tls"
        extra_env="SSL_CERT_FILE=$tmp/tls/ca.crt"
        start_bootstrap qemu "$tmp/arm64-tls"
        run_imager "arm64_imager_tls_ssl_cert_file"
        stop_bootstrap
        extra_env=""
        kill "$ip_proxy_pid" 2>/dev/null
        wait "$ip_proxy_pid" 2>/dev/null
    fi
    endpoint_override=""
    kill "$proxy_pid" 2>/dev/null
    wait "$proxy_pid" 2>/dev/null
    proxy_pid=""
else
    skip imager_tls "needs the rootfs, radosgw, the imager zip and openssl"
fi

if [ "$s3_ready" = 1 ]; then
    # best effort: leave no objects behind
    for k in "xformed_pkg/presign_run file.jpg" "xformed_pkg/presign_rootfs file.jpg"; do s3 rm "s3://$bucket/$k" >/dev/null 2>&1; done
fi
finish
