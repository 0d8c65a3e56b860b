# shellcheck shell=bash
# What every integration script starts with, sourced as its first line:
#   . "$(dirname "$0")/preamble.sh"
# The script runs from the repository root, with B the build directory
# (SPIM_BUILD, which tests/run.sh exports), counts its cases with ok / fail /
# skip, and ends with finish: the "N passed, N failed, N skipped" line
# tests/run.sh adds up, and a status that is 0 only when nothing failed.
set -u
cd "${SPIM_ROOT:-$(dirname "${BASH_SOURCE[0]}")/../..}" || exit 1
B=${SPIM_BUILD:-build}
passed=0 failed=0 skipped=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
# fail CASE WHAT, or fail CASE EXPECTED GOT
fail() {
    if [ $# -ge 3 ]; then echo "FAIL $1: expected $2, got $3"; else echo "FAIL $1: $2"; fi
    failed=$((failed + 1))
}
skip() { echo "skip $1: $2"; skipped=$((skipped + 1)); }
check() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "$2" "$3"; fi; }  # CASE WANT GOT
finish() { echo "$passed passed, $failed failed, $skipped skipped"; [ "$failed" = 0 ]; exit; }

# need CASE PROGRAM...: the programs the script runs are built, or it fails
# here and now.
need() {
    local name=$1 f
    shift
    for f in "$@"; do
        [ -x "$f" ] || fail "$name" "$f (make check-build builds it)" "nothing"
    done
    [ "$failed" = 0 ] || finish
}

# need_s3 CASE: radosgw's variables (tests/run.sh sources tests/it/servers.sh's
# servers.env), or the script is skipped here (failed with
# SPIM_REQUIRE_SERVERS=1).
need_s3() {
    [ -n "${SPIM_TEST_S3_ENDPOINT:-}" ] && return
    if [ "${SPIM_REQUIRE_SERVERS:-0}" = 1 ]; then
        fail "$1" "SPIM_TEST_S3_ENDPOINT set" "nothing"
    else
        skip "$1" "no radosgw: SPIM_TEST_S3_ENDPOINT is not set (run through tests/run.sh)"
    fi
    finish
}
