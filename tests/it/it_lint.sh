#!/bin/bash
# Static analysis of the whole header, implementation included (the TU
# tests/fuzz/lint.c): clang-tidy with the checks in .clang-tidy (analyzer +
# bugprone, each exclusion justified there) and cppcheck (warning and
# portability, false positives in tests/fuzz/cppcheck.supp). stb and the
# system headers are not ours: -isystem, and excluded from both reports.
# A linter with any finding fails; a missing linter is a skip.
. "$(dirname "$0")/preamble.sh"
mkdir -p "$B/test"
cflags=$(pkg-config --cflags libcurl libcjson stb zlib | sed 's|-I/usr/include/stb|-isystem /usr/include/stb|')

tidy=$(command -v clang-tidy-14 || command -v clang-tidy || true)
if [ -z "$tidy" ]; then
    skip lint_clang_tidy "clang-tidy not installed (Debian clang-tidy)"
else
    log=$B/test/clang-tidy.log
    # shellcheck disable=SC2086
    "$tidy" --quiet tests/fuzz/lint.c -- -std=c99 -I. $cflags > "$log" 2>&1
    rc=$?
    n=$(grep -c -E '(warning|error):' "$log")
    if [ "$rc" = 0 ] && [ "$n" = 0 ]; then
        ok "lint_clang_tidy (no findings)"
    else
        fail lint_clang_tidy "$n finding(s), exit $rc"
        grep -A3 -E '(warning|error):' "$log" | head -60
    fi
fi

if ! command -v cppcheck >/dev/null; then
    skip lint_cppcheck "cppcheck not installed"
else
    log=$B/test/cppcheck.log
    cppcheck --quiet --enable=warning,portability --std=c99 --inline-suppr -I. \
        -DSPARTA_IMAGER_IMPLEMENTATION --suppressions-list=tests/fuzz/cppcheck.supp \
        --error-exitcode=1 tests/fuzz/lint.c > "$log" 2>&1
    rc=$?
    if [ "$rc" = 0 ] && ! grep -q -E '(error|warning|portability|style):' "$log"; then
        ok "lint_cppcheck (no findings)"
    else
        fail lint_cppcheck "findings (exit $rc)"
        head -60 "$log"
    fi
fi
finish
