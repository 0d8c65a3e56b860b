#!/bin/bash
# The public API as a user sees it: the non-static spim_* functions of an
# object that defines the implementation (at most 57: issue 10, plus issue 25's three
# rules functions), every one of them in the reference list at the top of
# the header, and nothing listed there that is not exported.
set -u
cd "${SPIM_ROOT:-$(dirname "$0")/..}"
B=${SPIM_BUILD:-build}
passed=0 failed=0
mkdir -p "$B/test"
printf '#define SPARTA_IMAGER_IMPLEMENTATION\n#include "sparta_imager.h"\n' > "$B/test/api_count.c"
# shellcheck disable=SC2046
if ! cc -std=c99 -I. $(pkg-config --cflags libcurl libcjson stb zlib) -c "$B/test/api_count.c" -o "$B/test/api_count.o"; then
    echo "FAIL api_builds: the implementation does not compile"; echo "0 passed, 1 failed"; exit 1
fi
nm -g --defined-only "$B/test/api_count.o" | awk '{print $3}' | grep '^spim_' | grep -v '^spim__' | sort > "$B/test/api_exported.txt"
n=$(wc -l < "$B/test/api_exported.txt")
if [ "$n" -le 57 ] && [ "$n" -ge 30 ]; then
    echo "ok   api_size ($n public functions, at most 57)"; passed=$((passed + 1))
else
    echo "FAIL api_size: expected 30..57 public functions, got $n"; failed=$((failed + 1))
fi
# The reference list: the top comment up to the first "#ifndef", one
# "type name(" line per function.
sed -n '1,/^#ifndef SPARTA_IMAGER_H/p' sparta_imager.h | grep -oE '\bspim_[a-z0-9_]+\(' | tr -d '(' | sort -u > "$B/test/api_listed.txt"
missing=$(comm -23 "$B/test/api_exported.txt" "$B/test/api_listed.txt" | tr '\n' ' ')
if [ -z "$missing" ]; then
    echo "ok   api_reference_lists_every_function"; passed=$((passed + 1))
else
    echo "FAIL api_reference_lists_every_function: not in the reference list: $missing"; failed=$((failed + 1))
fi
extra=$(comm -13 "$B/test/api_exported.txt" "$B/test/api_listed.txt" | tr '\n' ' ')
if [ -z "$extra" ]; then
    echo "ok   api_reference_lists_only_exported_functions"; passed=$((passed + 1))
else
    echo "FAIL api_reference_lists_only_exported_functions: listed but not exported: $extra"; failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
