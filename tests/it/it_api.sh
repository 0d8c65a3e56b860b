#!/bin/bash
# The public API as a user sees it: the non-static spim_* functions of an
# object that defines the implementation (at most 60: issue 10's 55, plus
# spim_format_detect for the examples, issue 25's three rules functions and
# spim_stamp_check), every one of them in the reference list
# at the top of the header, and nothing listed there that is not exported.
# The examples, which users copy, name no private (spim__ / SPIM__) function,
# type or macro; they read at 100 columns, the imager in at
# most 250 lines.
. "$(dirname "$0")/preamble.sh"
mkdir -p "$B/test"
printf '#define SPARTA_IMAGER_IMPLEMENTATION\n#include "sparta_imager.h"\n' > "$B/test/api_count.c"
# shellcheck disable=SC2046
if ! cc -std=c99 -I. $(pkg-config --cflags libcurl libcjson stb zlib) -c "$B/test/api_count.c" -o "$B/test/api_count.o"; then
    fail api_builds "the implementation does not compile"; finish
fi
nm -g --defined-only "$B/test/api_count.o" | awk '{print $3}' | grep '^spim_' | grep -v '^spim__' | sort > "$B/test/api_exported.txt"
n=$(wc -l < "$B/test/api_exported.txt")
if [ "$n" -le 60 ] && [ "$n" -ge 30 ]; then
    ok "api_size ($n public functions, at most 60)"
else
    fail api_size "30..60 public functions" "$n"
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
private=$(grep -rn -i 'spim__' examples/ | cut -c1-160)
if [ -z "$private" ]; then
    ok examples_use_only_the_public_api
else
    fail examples_use_only_the_public_api "no spim__ name in examples/" "$private"
fi
# Examples are read at 100 columns, and the imager's length is met by
# structure, not by packing (issue 21): no line of an example runs past 100
# columns and the imager's main.c stays within 250 lines.
wide=$(find examples -name '*.[ch]' -print0 | sort -z |
       xargs -0 awk 'length > 100 {print FILENAME ":" FNR " (" length " columns)"}')
if [ -z "$wide" ]; then
    ok examples_fit_100_columns
else
    fail examples_fit_100_columns "no line over 100 columns" "$(echo "$wide" | head -5 | tr '\n' ' ')"
fi
n=$(wc -l < examples/imager/main.c)
if [ "$n" -le 250 ]; then ok "imager_within_250_lines ($n)"; else fail imager_within_250_lines "at most 250 lines" "$n"; fi
finish
