#!/bin/sh
# Install the Debian packages a task needs, when they are missing.
#   scripts/deps.sh build|test|demo|bench|fuzz|package
# As root it runs apt-get update + install; otherwise it prints the exact
# command to run and fails.
set -eu

# libwebp-dev and libgif-dev: the programs that turn SPIM_WEBP and SPIM_GIF on
# (build/stamp, the imager) link them.
build="gcc make pkg-config libcurl4-openssl-dev libcjson-dev libstb-dev zlib1g-dev fonts-dejavu-core python3-fonttools libwebp-dev libgif-dev"
# make package: static third-party builds (scripts/thirdparty.sh) from Debian
# source packages (dpkg-dev unpacks them) and static archives, for x86_64 and,
# cross-built, arm64 (multiarch :arm64 packages, run under qemu-user).
package="dpkg-dev libmbedtls-dev zlib1g-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libmbedtls-dev:arm64 zlib1g-dev:arm64 libwebp-dev:arm64 libgif-dev:arm64 zip unzip binutils"
servers="radosgw ceph-mon ceph-osd ceph-common python3 curl"
want=$build
task=${1:-build}
case "$task" in
    build)   ;;
    package) want="$build $package" ;;
    test)    want="$build $package clang g++ libclang-rt-14-dev $servers python3-botocore python3-yaml python3-pil openssl zip unzip valgrind binutils gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user clang-tidy cppcheck libjpeg62-turbo-dev libjpeg-turbo-progs fonts-droid-fallback imagemagick golang-1.19-src adwaita-icon-theme webp" ;;
    demo)    want="$build $package $servers zip unzip webp" ;;
    bench)   want="$build $package clang $servers libpixman-1-dev imagemagick libvips-tools golang-go hyperfine time zip unzip libjpeg-turbo-progs python3-pil webp lomiri-wallpapers" ;;
    fuzz)    want="$build clang libclang-rt-14-dev libjpeg-turbo-progs" ;;
    *) echo "usage: $0 build|test|demo|bench|fuzz|package" >&2; exit 2 ;;
esac

# The package task also needs the arm64 architecture (for the :arm64
# packages) and the archive's source packages (apt-get source curl cjson):
# a deb-src stanza for every deb stanza of the system's own sources.
apt_sources_ok() {
    case " $want " in *" dpkg-dev "*) ;; *) return 0 ;; esac
    dpkg --print-foreign-architectures | grep -qx arm64 &&
        [ -f /etc/apt/sources.list.d/spim-deb-src.sources ]
}
setup_apt_sources() {
    dpkg --add-architecture arm64
    src=/etc/apt/sources.list.d/debian.sources
    [ -f "$src" ] || { echo "deps: no $src to derive deb-src entries from" >&2; exit 1; }
    sed -n 's/^Types: deb$/Types: deb-src/; p' "$src" > /etc/apt/sources.list.d/spim-deb-src.sources
}

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && apt_sources_ok && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y$missing"
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages:$missing" >&2
    echo "run as root:  $cmd" >&2
    exit 1
fi
apt_sources_ok || setup_apt_sources
echo "installing:$missing" >&2
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
