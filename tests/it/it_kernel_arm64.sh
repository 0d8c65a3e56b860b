#!/bin/bash
# The NEON kernel on arm64 (Graviton Lambdas), checked here: tests/unit/test_kernel.c
# cross-compiled with aarch64-linux-gnu-gcc and run under qemu-aarch64, so
# the NEON path meets the same exhaustive, bit-for-bit checks as SSE2/AVX2.
# Skips without the cross tools (Debian: gcc-aarch64-linux-gnu
# libc6-dev-arm64-cross qemu-user). The kernel test calls no curl, cJSON or
# zlib code, so their (x86-only) libraries are left unresolved at link time.
. "$(dirname "$0")/preamble.sh"
if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    skip kernel_arm64 "apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"; finish
fi
out=$B/test/arm64
mkdir -p "$out/inc"
# only the third-party headers: the cross compiler must not see x86 glibc
for h in "$(pkg-config --variable=includedir libcurl)/curl" /usr/include/x86_64-linux-gnu/curl \
         /usr/include/cjson/cJSON.h /usr/include/zlib.h /usr/include/x86_64-linux-gnu/zconf.h /usr/include/zconf.h \
         /usr/include/stb; do
    [ -e "$h" ] && ln -sfn "$h" "$out/inc/$(basename "$h")"
done
if ! aarch64-linux-gnu-gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -O2 -I. -I"$out/inc" -I"$out/inc/stb" \
        -static -o "$out/test_kernel" tests/unit/test_kernel.c -Wl,--unresolved-symbols=ignore-all -lm 2>"$out/build.log"; then
    fail kernel_arm64_build "a clean aarch64 build" "$(head -20 "$out/build.log")"; finish
fi
qemu-aarch64 "$out/test_kernel" > "$out/run.log" 2>&1; rc=$?
grep -v '^ok ' "$out/run.log" | grep -v -E '^[0-9]+ passed'
if ! grep -q '^kernels:.*neon' "$out/run.log"; then
    fail kernel_arm64_neon "the NEON kernel to be available" "$(head -1 "$out/run.log")"; finish
fi
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out/run.log" | tail -1)
[ -n "$line" ] || { fail kernel_arm64 "a summary" "none (exit $rc)"; finish; }
echo "$line"
[ "$rc" = 0 ]
