#!/bin/bash
# SigV4 benchmark: our SHA-256 throughput against coreutils sha256sum and
# openssl on the same 64 MiB, and header/presigned signatures per second.
# Medians of BENCH_SIGV4_ROUNDS (5) runs.
set -eu
cd "$(dirname "$0")/.."
B=${SPIM_BUILD:-build}
rounds=${BENCH_SIGV4_ROUNDS:-5}
make -s "$B/bench/sigv4" >/dev/null
ours=$("$B/bench/sigv4" 64 "$rounds")
echo "$ours" | sed 's/^/sigv4: /'
data=$B/bench/sigv4_64m.bin
head -c $((64 << 20)) /dev/urandom > "$data"
median_mibs() {  # command... -> median MiB/s hashing $data
    local i t0 t1 all=()
    for i in $(seq "$rounds"); do
        t0=$(date +%s%N); "$@" "$data" >/dev/null; t1=$(date +%s%N)
        all+=("$(( 64 * 1000000000 / (t1 - t0 + 1) ))")
    done
    printf '%s\n' "${all[@]}" | sort -n | sed -n "$(( (rounds + 1) / 2 ))p"
}
mine=$(echo "$ours" | awk '$1 == "sha256" { print $2 }')
ref=$(median_mibs sha256sum)
echo "sigv4: sha256sum $ref MiB/s (ours/sha256sum = $(awk -v a="$mine" -v b="$ref" 'BEGIN { printf "%.2f", a / b }'))"
if command -v openssl >/dev/null; then
    ref=$(median_mibs openssl dgst -sha256)
    echo "sigv4: openssl dgst -sha256 $ref MiB/s (ours/openssl = $(awk -v a="$mine" -v b="$ref" 'BEGIN { printf "%.2f", a / b }'))"
fi
rm -f "$data"
