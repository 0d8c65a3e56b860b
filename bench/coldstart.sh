#!/bin/bash
# Cold start (issue 12): spawn to first `next` of the packaged bootstraps
# (static, build/package/*/bootstrap) against the floor, a glibc-only
# program that connects and asks for `next` (bench/floor.c), and the dynamic
# dev build of the imager, all in the same run; then the arm64 zips' bootstraps
# against the arm64 floor, both under qemu-aarch64 (emulated: the ratio is the
# figure to read, not the milliseconds).   BENCH_COLDSTART_STARTS (30)
set -eu
cd "$(dirname "$0")/.."
B=${SPIM_BUILD:-build}
mkdir -p "$B/bench"
cc -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -o "$B/bench/floor" bench/floor.c
for f in "$B/package/imager/bootstrap" "$B/package/hello/bootstrap" "$B/imager/bootstrap"; do
    [ -x "$f" ] || { echo "coldstart bench: $f is missing (make package all)" >&2; exit 1; }
done
python3 bench/coldstart.py "${BENCH_COLDSTART_STARTS:-30}" floor="$B/bench/floor" \
    "imager static"="$B/package/imager/bootstrap" "hello static"="$B/package/hello/bootstrap" \
    "imager dynamic (dev build)"="$B/imager/bootstrap"

q=/usr/aarch64-linux-gnu
if command -v qemu-aarch64 >/dev/null && command -v aarch64-linux-gnu-gcc >/dev/null &&
    [ -x "$B/arm64/package/imager/bootstrap" ] && [ -x "$B/arm64/package/hello/bootstrap" ]; then
    aarch64-linux-gnu-gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -o "$B/bench/floor-arm64" bench/floor.c
    BENCH_COLDSTART_TITLE=" (arm64 under qemu-aarch64)" python3 bench/coldstart.py "${BENCH_COLDSTART_STARTS:-30}" \
        "floor arm64"="qemu-aarch64 -L $q $B/bench/floor-arm64" \
        "imager static arm64"="qemu-aarch64 -L $q $B/arm64/package/imager/bootstrap" \
        "hello static arm64"="qemu-aarch64 -L $q $B/arm64/package/hello/bootstrap"
else
    echo "(arm64 cold start skipped: needs qemu-user, gcc-aarch64-linux-gnu and make package ARCH=arm64)"
fi
