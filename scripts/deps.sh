#!/bin/sh
# Install the Debian packages a task needs, when they are missing.
#   scripts/deps.sh build|test|demo|bench|fuzz
# As root it runs apt-get update + install; otherwise it prints the exact
# command to run and fails.
set -eu

build="gcc make pkg-config libcurl4-openssl-dev libcjson-dev libstb-dev zlib1g-dev"
servers="radosgw ceph-mon ceph-osd ceph-common python3 curl"
want=$build
case "${1:-build}" in
    build)   ;;
    test)    want="$build clang g++ libclang-rt-14-dev $servers python3-botocore python3-yaml openssl zip unzip valgrind binutils gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user clang-tidy cppcheck libjpeg62-turbo-dev libjpeg-turbo-progs" ;;
    demo)    want="$build $servers zip unzip" ;;
    bench)   want="$build clang $servers libpixman-1-dev imagemagick libvips-tools golang-go hyperfine time zip unzip libjpeg-turbo-progs" ;;
    fuzz)    want="$build clang libclang-rt-14-dev libjpeg-turbo-progs" ;;
    *) echo "usage: $0 build|test|demo|bench|fuzz" >&2; exit 2 ;;
esac

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y$missing"
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages:$missing" >&2
    echo "run as root:  $cmd" >&2
    exit 1
fi
echo "installing:$missing" >&2
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
