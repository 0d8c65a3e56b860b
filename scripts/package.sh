#!/bin/bash
# Package one Lambda bootstrap for the provided.al2023 runtime.
#   scripts/package.sh BOOTSTRAP ZIP
#
# The zip holds one file, `bootstrap` (mode 755). mk/package.mk links it
# statically against everything but glibc, which must come from the
# runtime's own (2.34 on AL2023). Checks, each fatal:
#   - the only NEEDED libraries are glibc's (readelf -d)
#   - no GLIBC_ version reference above PACKAGE_MAX_GLIBC (default 2.34)
#   - the zip is at most PACKAGE_MAX_BYTES (default 1 MiB)
# readelf reads any architecture, so x86_64 and arm64 are checked alike.
# The file time is set to SOURCE_DATE_EPOCH (default 2020-01-01) and zip
# extra fields are dropped, so the same input gives the same zip bytes.
set -euo pipefail
BOOTSTRAP=${1:?usage: scripts/package.sh BOOTSTRAP ZIP}
ZIP=${2:?usage: scripts/package.sh BOOTSTRAP ZIP}
MAX_GLIBC=${PACKAGE_MAX_GLIBC:-2.34}
MAX_BYTES=${PACKAGE_MAX_BYTES:-1048576}
EPOCH=${SOURCE_DATE_EPOCH:-1577836800}

die() { echo "package: $*" >&2; exit 1; }

# Libraries of glibc itself: present on every Linux runtime, matching its loader.
is_glibc() {
    case "$1" in
        ld-linux*.so.*|libc.so.*|libm.so.*|libmvec.so.*|libpthread.so.*|libdl.so.*|librt.so.*|\
        libresolv.so.*|libutil.so.*|libanl.so.*|libnss_*) return 0 ;;
    esac
    return 1
}

version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]; }

[ -x "$BOOTSTRAP" ] || die "$BOOTSTRAP is not an executable"
name=$(basename "$(dirname "$BOOTSTRAP")")

# Check 1: glibc only.
needed=$(readelf -d "$BOOTSTRAP" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for n in $needed; do
    is_glibc "$n" || die "$name/bootstrap needs $n: only glibc may be dynamic (link it statically)"
done

# Check 2: nothing needs a newer glibc than the runtime has.
refs=$(readelf -V "$BOOTSTRAP" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sed 's/GLIBC_//' | sort -uV)
worst=$(echo "$refs" | tail -1)
if [ -n "$worst" ] && ! version_le "$worst" "$MAX_GLIBC"; then
    echo "package: $name/bootstrap needs GLIBC_$worst (> $MAX_GLIBC):" >&2
    for v in $refs; do
        version_le "$v" "$MAX_GLIBC" && continue
        readelf --dyn-syms -W "$BOOTSTRAP" | grep -E "@GLIBC_$v( |$)" | awk '{print "    " $8}' >&2
    done
    die "newer glibc symbols than provided.al2023 has"
fi

# The zip: one file, fixed time, no extra fields. A private staging
# directory: two `make package` runs may overlap.
stage=$(mktemp -d "$(dirname "$BOOTSTRAP")/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
install -m 755 "$BOOTSTRAP" "$stage/bootstrap"
touch -h -d "@$EPOCH" "$stage/bootstrap"
mkdir -p "$(dirname "$ZIP")"
ZIP=$(cd "$(dirname "$ZIP")" && pwd)/$(basename "$ZIP")
tmp="$ZIP.tmp.$$"
rm -f "$tmp"
(cd "$stage" && TZ=UTC zip -X -D -q -9 "$tmp" bootstrap)
size=$(stat -c %s "$tmp")
if [ "$size" -gt "$MAX_BYTES" ]; then
    rm -f "$tmp"
    die "$name: the zip is $size bytes, above the $MAX_BYTES limit"
fi
mv -f "$tmp" "$ZIP"
echo "package: $ZIP  $size bytes  ($name: bootstrap $(stat -c %s "$BOOTSTRAP") bytes, NEEDED $(echo $needed | tr ' ' ','), GLIBC <= ${worst:-none})"
