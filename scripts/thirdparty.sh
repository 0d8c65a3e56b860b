#!/bin/bash
# Static third-party libraries for `make package`, for one architecture.
#   scripts/thirdparty.sh ARCH OUT        ARCH: x86_64 | arm64
#
# OUT/include and OUT/lib receive what the packaged bootstrap links with,
# everything static:
#   libcurl.a    Debian's curl source package (apt-get source curl, Debian's
#                patches applied), lib/ only, configured for HTTP/1.1 and
#                HTTPS over mbedTLS and nothing else: no other protocol, no
#                proxy (the functions document none), no IDN, PSL, brotli,
#                zstd, zlib, krb5/GSS, ldap, ssh, nghttp2, alt-svc, HSTS,
#                cookies, netrc, DoH, MIME, NTLM/digest auth, verbose texts,
#                and no compiled-in CA bundle (the header finds the bundle:
#                $SSL_CERT_FILE, AL2023's, Debian's). Timeouts, CA file
#                handling and the threaded resolver stay.
#   libmbed{tls,x509,crypto}.a, libz.a   copied from Debian's libmbedtls-dev
#                and zlib1g-dev (the :arm64 packages for arm64)
#   libwebp{,mux,demux}.a, libgif.a   copied from Debian's libwebp-dev and
#                libgif-dev (SPIM_WEBP, SPIM_GIF; the :arm64 packages for arm64)
#   libcjson.a   cJSON.c from Debian's cjson source package (Debian ships no
#                static archive)
# Debian's curl patches to configure.ac only rename the library and touch
# ldap/krb5 flags (all off here), so the release's configure is used as is
# (no autoreconf, no autotools needed).
# OUT/stamp holds the hash of this script, the architecture and the Debian
# versions used; a matching stamp means OUT is current and nothing is done.
# The sources are unpacked once under $SPIM_THIRDPARTY_SRC
# (default: OUT/../src).
set -euo pipefail
ARCH=${1:?usage: scripts/thirdparty.sh x86_64|arm64 OUT}
OUT=${2:?usage: scripts/thirdparty.sh x86_64|arm64 OUT}
case "$ARCH" in
    x86_64) triplet=x86_64-linux-gnu; cc=${CC_X86_64:-gcc}; host="" ;;
    arm64)  triplet=aarch64-linux-gnu; cc=aarch64-linux-gnu-gcc; host=--host=aarch64-linux-gnu ;;
    *) echo "thirdparty: unknown architecture $ARCH (x86_64 or arm64)" >&2; exit 2 ;;
esac
die() { echo "thirdparty: $*" >&2; exit 1; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SRC=${SPIM_THIRDPARTY_SRC:-$(dirname "$OUT")/src}
mkdir -p "$SRC"
SRC=$(cd "$SRC" && pwd)
arch_dpkg=$([ "$ARCH" = x86_64 ] && echo amd64 || echo arm64)
ver() { dpkg-query -W -f='${Version}' "$1:$arch_dpkg" 2>/dev/null || die "$1:$arch_dpkg is not installed (scripts/deps.sh package)"; }
stamp="recipe $(sha256sum "$0" | cut -c1-16) arch $ARCH cc $($cc -dumpfullversion 2>/dev/null || echo none)"
stamp="$stamp mbedtls $(ver libmbedtls-dev) zlib $(ver zlib1g-dev) webp $(ver libwebp-dev) gif $(ver libgif-dev)"

# ---- sources, once (both architectures share them) ---------------------------
fetch_sources() {
    (
        flock 9
        if [ ! -f "$SRC/fetched" ]; then
            rm -rf "$SRC"/curl-* "$SRC"/cjson-* "$SRC"/*.dsc "$SRC"/*.tar.*
            (cd "$SRC" && apt-get source -q curl cjson > fetch.log 2>&1) ||
                { tail -20 "$SRC/fetch.log" >&2; die "apt-get source curl cjson failed (deb-src entries: scripts/deps.sh package)"; }
            touch "$SRC/fetched"
        fi
    ) 9> "$SRC/.lock"
    curl_src=$(find "$SRC" -maxdepth 1 -type d -name 'curl-*' | head -1)
    cjson_src=$(find "$SRC" -maxdepth 1 -type d -name 'cjson-*' | head -1)
    [ -n "$curl_src" ] && [ -n "$cjson_src" ] || die "no curl-*/cjson-* under $SRC"
}
fetch_sources
stamp="$stamp curl $(basename "$(ls "$SRC"/curl_*.dsc)" .dsc) cjson $(basename "$(ls "$SRC"/cjson_*.dsc)" .dsc)"
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$stamp" ]; then exit 0; fi

start=$(date +%s)
echo "thirdparty: building static libraries for $ARCH in $OUT (a few minutes, once)" >&2
rm -rf "${OUT:?}/include" "${OUT:?}/lib" "${OUT:?}/work" "${OUT:?}/stamp"
mkdir -p "$OUT/include" "$OUT/lib" "$OUT/work"
CFLAGS_TP="-O2 -ffunction-sections -fdata-sections"

# ---- Debian's static archives (headers are arch-independent except zconf.h) --
for a in libmbedtls.a libmbedx509.a libmbedcrypto.a libz.a libwebp.a libwebpmux.a libwebpdemux.a libgif.a; do
    cp "/usr/lib/$triplet/$a" "$OUT/lib/$a" || die "/usr/lib/$triplet/$a missing (scripts/deps.sh package)"
done
cp -r /usr/include/mbedtls /usr/include/psa "$OUT/include/" 2>/dev/null || cp -r /usr/include/mbedtls "$OUT/include/"
cp /usr/include/zlib.h "$OUT/include/"
cp -r /usr/include/webp /usr/include/gif_lib.h "$OUT/include/"
if [ -f "/usr/include/$triplet/zconf.h" ]; then cp "/usr/include/$triplet/zconf.h" "$OUT/include/"; else cp /usr/include/zconf.h "$OUT/include/"; fi

# ---- cJSON --------------------------------------------------------------------
$cc $CFLAGS_TP -std=c89 -c -o "$OUT/work/cJSON.o" "$cjson_src/cJSON.c"
ar rcsD "$OUT/lib/libcjson.a" "$OUT/work/cJSON.o"
cp "$cjson_src/cJSON.h" "$OUT/include/"

# ---- libcurl --------------------------------------------------------------------
# Configured out of tree so the two architectures share one source tree.
mkdir -p "$OUT/work/curl"
(
    cd "$OUT/work/curl"
    # shellcheck disable=SC2086
    "$curl_src/configure" $host CC="$cc" CFLAGS="$CFLAGS_TP" \
        CPPFLAGS="-I$OUT/include" LDFLAGS="-L$OUT/lib" LIBS="-lmbedtls -lmbedx509 -lmbedcrypto" \
        --disable-shared --enable-static --disable-dependency-tracking --disable-maintainer-mode \
        --with-mbedtls="$OUT" --without-openssl --without-gnutls --without-wolfssl --without-rustls --without-bearssl \
        --without-zlib --without-brotli --without-zstd --without-libpsl --without-libidn2 \
        --without-nghttp2 --without-ngtcp2 --without-nghttp3 --without-libssh2 --without-libssh \
        --without-librtmp --without-libgsasl --without-gssapi --without-ca-bundle --without-ca-path \
        --without-ca-fallback --without-hyper --without-quiche --without-msh3 \
        --enable-http --disable-ftp --disable-file --disable-ldap --disable-ldaps --disable-rtsp \
        --disable-dict --disable-telnet --disable-tftp --disable-pop3 --disable-imap --disable-smb \
        --disable-smtp --disable-gopher --disable-mqtt --disable-proxy --disable-manual \
        --disable-libcurl-option --disable-ntlm --disable-ntlm-wb --disable-tls-srp \
        --disable-unix-sockets --disable-cookies --disable-doh --disable-mime --disable-netrc \
        --disable-alt-svc --disable-hsts --disable-websockets --disable-dnsshuffle \
        --disable-get-easy-options --disable-headers-api --disable-crypto-auth --disable-http-auth \
        --disable-progress-meter --disable-verbose --disable-dateparse \
        --enable-threaded-resolver --enable-ipv6 --disable-ech --disable-sspi \
        > configure.log 2>&1 || { tail -30 configure.log >&2; die "curl configure failed ($OUT/work/curl/configure.log)"; }
    make -C lib -j"${SPIM_JOBS:-2}" libcurl.la > make.log 2>&1 ||
        { tail -30 make.log >&2; die "curl lib/ build failed ($OUT/work/curl/make.log)"; }
)
cp "$OUT/work/curl/lib/.libs/libcurl.a" "$OUT/lib/"
mkdir -p "$OUT/include/curl"
cp "$curl_src"/include/curl/*.h "$OUT/include/curl/"
grep -E '^(Protocols|Features|SSL):|  SSL:|  Protocols:|  Features:' "$OUT/work/curl/configure.log" > "$OUT/curl-features.txt" || true
rm -rf "$OUT/work"
echo "$stamp" > "$OUT/stamp"
echo "thirdparty: $ARCH done in $(( $(date +%s) - start )) s: $(cd "$OUT/lib" && ls | tr '\n' ' ')" >&2
