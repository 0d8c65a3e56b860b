#!/bin/bash
# The public API as a user sees it: the non-static spim_* functions of an
# object that defines the implementation (at most 55, issue 10), every one of
# them in the reference list at the top of the header, and nothing listed
# there that is not exported.
. "$(dirname "$0")/preamble.sh"
mkdir -p "$B/test"
printf '#define SPARTA_IMAGER_IMPLEMENTATION\n#include "sparta_imager.h"\n' > "$B/test/api_count.c"
# shellcheck disable=SC2046
if ! cc -std=c99 -I. $(pkg-config --cflags libcurl libcjson stb zlib) -c "$B/test/api_count.c" -o "$B/test/api_count.o"; then
    fail api_builds "the implementation does not compile"; finish
fi
nm -g --defined-only "$B/test/api_count.o" | awk '{print $3}' | grep '^spim_' | grep -v '^spim__' | sort > "$B/test/api_exported.txt"
n=$(wc -l < "$B/test/api_exported.txt")
if [ "$n" -le 55 ] && [ "$n" -ge 30 ]; then
    ok "api_size ($n public functions, at most 55)"
else
    fail api_size "30..55 public functions" "$n"
fi
# The reference list: the top comment up to the first "#ifndef", one
# "type name(" line per function.
sed -n '1,/^#ifndef SPARTA_IMAGER_H/p' sparta_imager.h | grep -oE '\bspim_[a-z0-9_]+\(' | tr -d '(' | sort -u > "$B/test/api_listed.txt"
missing=$(comm -23 "$B/test/api_exported.txt" "$B/test/api_listed.txt" | tr '\n' ' ')
if [ -z "$missing" ]; then
    ok api_reference_lists_every_function
else
    fail api_reference_lists_every_function "not in the reference list: $missing"
fi
extra=$(comm -13 "$B/test/api_exported.txt" "$B/test/api_listed.txt" | tr '\n' ' ')
if [ -z "$extra" ]; then
    ok api_reference_lists_only_exported_functions
else
    fail api_reference_lists_only_exported_functions "listed but not exported: $extra"
fi
finish
