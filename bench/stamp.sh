#!/bin/bash
# Image benchmarks (markdown on stdout):
#   1. the stamp kernel against pixman's OVER and memcpy (bench/kernel.c)
#   2. where one 12 MP JPEG -> stamp -> JPEG job spends its time (bench/pipeline.c)
#   3. the whole job, wall time and peak RSS (medians of RUNS runs) on 12 and
#      20 MP: build/stamp (the compressed-domain splice) against
#      build/stamp --recode (decode -> stamp -> encode), jpegtran -copy all
#      (a lossless re-code of every block), vips composite2, ImageMagick
#      composite and the Go sample's image/draw (bench/gostamp)
#   4. peak RSS of build/stamp on 12 and 20 MP JPEGs against the targets
# Test images are made by tools/mkjpeg (4:2:0, quality 90, like a camera).
# Tools: Debian libpixman-1-dev imagemagick libvips-tools golang-go time
# libjpeg-turbo-progs.
# The machine is shared: the load average is printed with the results.
set -u
cd "$(dirname "$0")/.."
B=${SPIM_BUILD:-build}
B=${B#$PWD/}
RUNS=${RUNS:-5}
BD=$B/bench
mkdir -p "$BD"

have() { command -v "$1" >/dev/null 2>&1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "-")}'; }

make -s "$B/stamp" "$B/tools/mkjpeg" "$B/assets/stamp.png" "$BD/pipeline" || exit 1
[ -f "$BD/photo12.jpg" ] || "$B/tools/mkjpeg" 4000 3000 90 "$BD/photo12.jpg" || exit 1
[ -f "$BD/photo20.jpg" ] || "$B/tools/mkjpeg" 5472 3648 90 "$BD/photo20.jpg" || exit 1
STAMP=$B/assets/stamp.png

echo
echo "## Image benchmarks ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"

if pkg-config --exists pixman-1 && make -s "$BD/kernel"; then
    "$BD/kernel" 40
else
    echo; echo "(kernel benchmark skipped: apt-get install libpixman-1-dev)"
fi

echo
echo "### One job in build/stamp's library calls, ms (median of $RUNS)"
echo
echo "| input | decode | stamp | encode | total |"
echo "|---|---|---|---|---|"
"$BD/pipeline" "$BD/photo12.jpg" "$RUNS"
"$BD/pipeline" "$BD/photo20.jpg" "$RUNS"

# run NAME CMD...: median wall milliseconds (clock read around the process,
# to the microsecond) and peak RSS (MiB, from /usr/bin/time) over RUNS runs
run() {
    local name=$1 i w=() m=() t=$BD/time.out t0 t1
    shift
    for ((i = 0; i < RUNS; i++)); do
        t0=$(date +%s%N)
        if ! /usr/bin/time -o "$t" -f "%M" "$@" >/dev/null 2>&1; then
            echo "| $name | failed: $* | |"; return
        fi
        t1=$(date +%s%N)
        w+=("$(( (t1 - t0) / 1000 ))")
        m+=("$(tail -1 "$t")")
    done
    local wm mm
    wm=$(printf '%s\n' "${w[@]}" | median)
    mm=$(printf '%s\n' "${m[@]}" | median)
    awk -v n="$name" -v w="$wm" -v m="$mm" 'BEGIN { printf "| %s | %.1f | %.1f |\n", n, w / 1000, m / 1024 }'
}

if [ ! -x /usr/bin/time ]; then
    echo; echo "(job benchmarks skipped: apt-get install time)"; exit 0
fi
have go && make -s "$BD/gostamp" 2>/dev/null
echo
echo "Versions: $(jpegtran -version 2>&1 | head -1); $(composite -version 2>/dev/null | head -1 | cut -d' ' -f2-3);" \
     "$(vips --version 2>/dev/null); the Go sample built with $(go version 2>/dev/null | cut -d' ' -f3)."

# wall milliseconds of one row of the table below, for the ratios
wall_of() { grep -F "| $1 |" "$BD/jpeg.md" | head -1 | cut -d'|' -f3 | tr -d ' '; }
for f in photo12:4000:3000:12 photo20:5472:3648:20; do
    IFS=: read -r n w h mp <<<"$f"
    IN=$BD/$n.jpg
    echo
    echo "### $mp MP JPEG -> stamp (256 px, bottom-right) -> JPEG q90, median of $RUNS"
    echo
    {
    echo "| program | wall ms | peak RSS MiB |"
    echo "|---|---|---|"
    run "build/stamp (compressed-domain splice)" "$B/stamp" --stamp "$STAMP" "$IN" "$BD/out_splice.jpg"
    run "build/stamp --recode" "$B/stamp" --recode --stamp "$STAMP" "$IN" "$BD/out_recode.jpg"
    if have jpegtran; then
        run "jpegtran -copy all" jpegtran -copy all -outfile "$BD/out_jpegtran.jpg" "$IN"
    else
        echo "| jpegtran | skipped: apt-get install libjpeg-turbo-progs | |"
    fi
    if have vips; then
        run "vips composite2" vips composite2 "$IN" "$STAMP" "$BD/out_vips.jpg[Q=90]" over --x $((w - 256)) --y $((h - 256))
    else
        echo "| vips | skipped: apt-get install libvips-tools | |"
    fi
    if [ -x /usr/bin/composite ]; then
        run "ImageMagick composite" /usr/bin/composite -gravity SouthEast -quality 90 "$STAMP" "$IN" "$BD/out_im.jpg"
    else
        echo "| ImageMagick | skipped: apt-get install imagemagick | |"
    fi
    if [ -x "$BD/gostamp" ]; then
        run "Go image/jpeg + draw.Over (the original sample)" "$BD/gostamp" "$STAMP" "$IN" "$BD/out_go.jpg"
    else
        echo "| Go sample | skipped: apt-get install golang-go | |"
    fi
    } | tee "$BD/jpeg.md"
    s=$(wall_of "build/stamp (compressed-domain splice)"); r=$(wall_of "build/stamp --recode"); j=$(wall_of "jpegtran -copy all")
    awk -v s="$s" -v r="$r" -v j="${j:-0}" 'BEGIN { if (s > 0) printf "\nsplice: %.2fx jpegtran -copy all (goal <= 0.5), %.1fx faster than --recode (goal >= 10)\n", (j > 0 ? s / j : 0), r / s }'
done

echo
echo "### Peak RSS of build/stamp (targets: 12 MP <= 64 MiB, 20 MP <= 24 MiB in the compressed domain)"
echo
echo "| input | pixels | peak RSS MiB | target MiB |"
echo "|---|---|---|---|"
for f in photo12:4000x3000:64 photo20:5472x3648:24; do
    IFS=: read -r n px t <<<"$f"
    m=$(for ((i = 0; i < 3; i++)); do
            /usr/bin/time -o "$BD/time.out" -f "%M" "$B/stamp" "$BD/$n.jpg" "$BD/out_$n.jpg" && tail -1 "$BD/time.out"
        done | median)
    awk -v n="$n" -v p="$px" -v m="$m" -v t="$t" 'BEGIN { printf "| %s.jpg | %s | %.1f | %s |\n", n, p, m / 1024, t }' 
done

# PNG -> PNG: rows above the stamp keep their deflate bits (the compressed
# domain), against build/stamp --recode, vips and ImageMagick. Inputs: the
# 12 MP photo saved by Pillow at its default level 6, as RGB and as RGBA.
# CPU time (user + sys) beside the wall time: on a shared, loaded machine
# it is the fairer comparison.
run_cpu() {
    local name=$1 i w=() m=() c=() t=$BD/time.out t0 t1 wm mm cm
    shift
    for ((i = 0; i < RUNS; i++)); do
        t0=$(date +%s%N)
        /usr/bin/time -o "$t" -f "%M %U %S" "$@" >/dev/null 2>&1 || { echo "| $name | failed: $* | | |"; return; }
        t1=$(date +%s%N)
        w+=("$(( (t1 - t0) / 1000 ))")
        m+=("$(tail -1 "$t" | cut -d' ' -f1)")
        c+=("$(tail -1 "$t" | awk '{ print ($2 + $3) * 1000 }')")
    done
    wm=$(printf '%s\n' "${w[@]}" | median)
    mm=$(printf '%s\n' "${m[@]}" | median)
    cm=$(printf '%s\n' "${c[@]}" | median)
    awk -v n="$name" -v w="$wm" -v m="$mm" -v c="$cm" \
        'BEGIN { printf "| %s | %.1f | %.0f | %.1f |\n", n, w / 1000, c, m / 1024 }'
}
PY=/usr/bin/python3
for kind in RGB RGBA; do
    IN=$BD/photo12_$kind.png
    [ -f "$IN" ] || $PY -c 'import sys; from PIL import Image
Image.open(sys.argv[1]).convert(sys.argv[2]).save(sys.argv[3])' "$BD/photo12.jpg" "$kind" "$IN" ||
        { echo "(PNG benchmark skipped: apt-get install python3-pil)"; break; }
    echo
    echo "### 12 MP $kind PNG ($(( $(stat -c %s "$IN") / 1000000 )) MB) -> stamp (256 px, SE) -> PNG, median of $RUNS"
    echo
    {
    echo "| program | wall ms | CPU ms | peak RSS MiB |"
    echo "|---|---|---|---|"
    run_cpu "build/stamp (PNG compressed domain)" "$B/stamp" --stamp "$STAMP" "$IN" "$BD/out_png.png"
    run_cpu "build/stamp --recode" "$B/stamp" --recode --stamp "$STAMP" "$IN" "$BD/out_png_recode.png"
    if have vips; then
        run_cpu "vips composite2" vips composite2 "$IN" "$STAMP" "$BD/out_vips.png" over \
            --x $((4000 - 256)) --y $((3000 - 256))
    fi
    if [ -x /usr/bin/composite ]; then
        run_cpu "ImageMagick composite" /usr/bin/composite -gravity SouthEast "$STAMP" "$IN" "$BD/out_im.png"
    fi
    } | tee "$BD/png.md"
    s=$(grep -F "| build/stamp (PNG" "$BD/png.md" | cut -d'|' -f3,4 | tr -d ' ')
    v=$(grep -F "| vips composite2 |" "$BD/png.md" | cut -d'|' -f3,4 | tr -d ' ')
    [ -n "$v" ] && awk -v s="$s" -v v="$v" 'BEGIN { split(s, a, "|"); split(v, b, "|")
        printf "\nPNG: %.3fx vips composite2 wall, %.3fx CPU (goal <= 0.1)\n", a[1] / b[1], a[2] / b[2] }'
done
