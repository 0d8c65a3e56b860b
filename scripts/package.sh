#!/bin/bash
# Package one Lambda bootstrap for the provided.al2023 runtime (x86_64).
#   scripts/package.sh BOOTSTRAP ZIP
#
# The zip holds `bootstrap` (mode 755) at its root and, in lib/, every shared
# library the bootstrap needs beyond glibc, found with ldd on this machine.
# The bootstrap must be linked with DT_RPATH $ORIGIN/lib (mk/package.mk) so
# that it and the bundled libraries find each other in /var/task/lib.
# glibc itself is never bundled: it must come from the runtime's own glibc
# (2.34 on AL2023), so no file may need a GLIBC_ version newer than
# PACKAGE_MAX_GLIBC (default 2.34). Checks, each fatal:
#   - every dependency resolves inside the package or to glibc (env -i ldd)
#   - no GLIBC_ version reference above the maximum (objdump -p)
# File times are set to SOURCE_DATE_EPOCH (default 2020-01-01) and zip
# extra fields are dropped, so the same inputs give the same zip bytes.
set -euo pipefail
BOOTSTRAP=${1:?usage: scripts/package.sh BOOTSTRAP ZIP}
ZIP=${2:?usage: scripts/package.sh BOOTSTRAP ZIP}
MAX_GLIBC=${PACKAGE_MAX_GLIBC:-2.34}
EPOCH=${SOURCE_DATE_EPOCH:-1577836800}

die() { echo "package: $*" >&2; exit 1; }

# Libraries of glibc itself (and the kernel's vDSO): present on every Linux
# runtime, and they must match the loader there, so they are never copied.
is_glibc() {
    case "$1" in
        linux-vdso.so.*|ld-linux*.so.*|libc.so.*|libm.so.*|libmvec.so.*|libpthread.so.*|\
        libdl.so.*|librt.so.*|libresolv.so.*|libutil.so.*|libanl.so.*|libnss_*|\
        libBrokenLocale.so.*|libthread_db.so.*|libc_malloc_debug.so.*|libnsl.so.*) return 0 ;;
    esac
    return 1
}

# Highest GLIBC_x.y a file requires, from its version references.
max_glibc() {
    objdump -p "$1" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sed 's/GLIBC_//' | sort -uV | tail -1
}

version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]; }

[ -x "$BOOTSTRAP" ] || die "$BOOTSTRAP is not an executable"
name=$(basename "$(dirname "$BOOTSTRAP")")
# A private staging directory: two `make package` runs may overlap.
stage=$(mktemp -d "$(dirname "$BOOTSTRAP")/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib"
install -m 755 "$BOOTSTRAP" "$stage/bootstrap"

# Copy the closure of dependencies as resolved here, under their sonames.
# `env -i` keeps LD_LIBRARY_PATH and friends out of the resolution.
while read -r soname arrow path _; do
    [ "$arrow" = "=>" ] || continue
    is_glibc "$soname" && continue
    [ -f "$path" ] || die "$soname: not found on this machine (ldd says '$path')"
    install -m 644 "$path" "$stage/lib/$soname"
    strip --strip-unneeded "$stage/lib/$soname"
done < <(env -i ldd "$stage/bootstrap")

# Check 1: resolution inside the package, glibc only from the system. ldd
# of the bootstrap lists the whole closure as the loader resolves it for this
# executable (its RPATH serves the libraries' own dependencies too).
lib_dir=$(cd "$stage/lib" && pwd)
while read -r soname arrow path _; do
    [ "$arrow" = "=>" ] || continue
    [ "$path" = "not" ] && die "bootstrap: $soname not found"
    is_glibc "$soname" && continue
    case "$path" in
        "$lib_dir"/*) ;;
        *) die "bootstrap: $soname resolves to $path, outside the package" ;;
    esac
done < <(env -i ldd "$stage/bootstrap")

# Check 2: nothing needs a newer glibc than the runtime has.
worst=0
for f in "$stage/bootstrap" "$stage"/lib/*; do
    [ -f "$f" ] || continue
    v=$(max_glibc "$f")
    [ -n "$v" ] || continue
    if ! version_le "$v" "$MAX_GLIBC"; then
        echo "package: $(basename "$f") needs GLIBC_$v (> $MAX_GLIBC):" >&2
        objdump -T "$f" | grep -E "GLIBC_$v" | awk '{print "    " $NF}' >&2
        worst=1
    fi
done
[ "$worst" = 0 ] || die "newer glibc symbols than provided.al2023 has"

# The zip: bootstrap first, then the libraries, fixed times, no extra fields.
find "$stage" -exec touch -h -d "@$EPOCH" {} +
mkdir -p "$(dirname "$ZIP")"
ZIP=$(cd "$(dirname "$ZIP")" && pwd)/$(basename "$ZIP")
tmp="$ZIP.tmp.$$"
rm -f "$tmp"
(
    cd "$stage"
    files=(bootstrap)
    for l in lib/*; do [ -f "$l" ] && files+=("$l"); done
    zip -X -D -q -9 "$tmp" "${files[@]}"
)
mv -f "$tmp" "$ZIP"
libs=$(find "$stage/lib" -type f | wc -l)
echo "package: $ZIP  $(stat -c %s "$ZIP") bytes  ($name: bootstrap + $libs libraries, GLIBC <= $(max_glibc "$stage/bootstrap"))"
