#!/bin/bash
# JPEG splice by kind of file (markdown on stdout): the same photo saved
# with standard Huffman tables and with optimised ones by real encoders
# (cjpeg, cjpeg -optimize, Pillow optimize=True), each at 4:2:0 and 4:4:4,
# plus the Debian wallpapers that are baseline (lomiri-wallpapers) as
# shipped. For each file, median wall ms and peak RSS MiB of RUNS runs of
# build/stamp, jpegtran -copy all, vips composite2 and build/stamp --recode,
# the tables the splice took (build/stamp -v) and its ratio to jpegtran
# (goal: median <= 0.5x for standard and optimised tables).
# Tools: libjpeg-turbo-progs, libvips-tools, time, python3-pil (optional),
# lomiri-wallpapers (optional). The machine is shared: load is printed.
set -u
cd "$(dirname "$0")/.."
B=${SPIM_BUILD:-build}
B=${B#$PWD/}
RUNS=${RUNS:-5}
BD=$B/bench/kinds
mkdir -p "$BD"
have() { command -v "$1" >/dev/null 2>&1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "-")}'; }
make -s "$B/stamp" "$B/tools/mkjpeg" "$B/assets/stamp.png" || exit 1
have cjpeg && have djpeg && have jpegtran && [ -x /usr/bin/time ] || {
    echo "(JPEG kinds benchmark skipped: apt-get install libjpeg-turbo-progs time)"; exit 0; }
STAMP=$B/assets/stamp.png

# The photo: a real one when a Debian wallpaper is there, else tools/mkjpeg's.
SRC=/usr/share/backgrounds/Fossa_by_Jasper_Roks.jpg
if [ -f "$SRC" ]; then djpeg -pnm "$SRC" > "$BD/src.ppm"
else "$B/tools/mkjpeg" 4000 3000 90 "$BD/mk.jpg" && djpeg -pnm "$BD/mk.jpg" > "$BD/src.ppm"; fi
files=()
for s in 2x2 1x1; do
    cjpeg -quality 90 -sample $s -outfile "$BD/std_$s.jpg" "$BD/src.ppm" && files+=("standard:cjpeg-$s:$BD/std_$s.jpg")
    cjpeg -quality 90 -optimize -sample $s -outfile "$BD/opt_$s.jpg" "$BD/src.ppm" &&
        files+=("optimised:cjpeg-optimize-$s:$BD/opt_$s.jpg")
done
if /usr/bin/python3 -c "import PIL" 2>/dev/null; then
    /usr/bin/python3 -c "from PIL import Image; Image.open('$BD/src.ppm').save('$BD/pil.jpg', quality=90, optimize=True)" &&
        files+=("optimised:Pillow-optimize:$BD/pil.jpg")
fi
for f in /usr/share/backgrounds/*.jpg; do
    [ -f "$f" ] || continue
    identify -format '%[interlace]' "$f" 2>/dev/null | grep -q None || continue
    files+=("wallpaper:$(basename "$f" .jpg | cut -c1-24):$f")
done

# run CMD...: "wall_ms rss_mib", medians of RUNS runs
run() {
    local i w=() m=() t0 t1
    for ((i = 0; i < RUNS; i++)); do
        t0=$(date +%s%N)
        /usr/bin/time -o "$BD/time.out" -f "%M" "$@" >/dev/null 2>&1 || { echo "- -"; return; }
        t1=$(date +%s%N)
        w+=("$(( (t1 - t0) / 1000 ))")
        m+=("$(tail -1 "$BD/time.out")")
    done
    awk -v w="$(printf '%s\n' "${w[@]}" | median)" -v m="$(printf '%s\n' "${m[@]}" | median)" \
        'BEGIN { printf "%.1f %.1f", w / 1000, m / 1024 }'
}

echo
echo "## JPEG splice by kind of file, 256 px stamp at SE, median of $RUNS ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| kind | file | size | tables taken | build/stamp ms / MiB | jpegtran -copy all ms / MiB | ratio | vips composite2 ms / MiB | --recode ms / MiB |"
echo "|---|---|---|---|---|---|---|---|---|"
: > "$BD/ratios"
for entry in "${files[@]}"; do
    IFS=: read -r kind name f <<<"$entry"
    read -r w h <<<"$(identify -format '%w %h' "$f" 2>/dev/null)"
    tables=$("$B/stamp" -v --stamp "$STAMP" "$f" "$BD/o.jpg" 2>&1 | grep -oE 'path=[a-z]+ huffman=[a-z-]+' | tr ' ' ',')
    read -r sw sm <<<"$(run "$B/stamp" --stamp "$STAMP" "$f" "$BD/o.jpg")"
    read -r jw jm <<<"$(run jpegtran -copy all -outfile "$BD/j.jpg" "$f")"
    if have vips; then read -r vw vm <<<"$(run vips composite2 "$f" "$STAMP" "$BD/v.jpg[Q=90]" over --x $((w - 256)) --y $((h - 256)))"
    else vw=-; vm=-; fi
    read -r rw rm_ <<<"$(run "$B/stamp" --recode --stamp "$STAMP" "$f" "$BD/r.jpg")"
    ratio=$(awk -v s="$sw" -v j="$jw" 'BEGIN { printf "%.2f", (j > 0 ? s / j : 0) }')
    echo "$kind $ratio" >> "$BD/ratios"
    echo "| $kind | $name | ${w}x$h | $tables | $sw / $sm | $jw / $jm | ${ratio}x | $vw / $vm | $rw / $rm_ |"
done
echo
for kind in standard optimised wallpaper; do
    m=$(awk -v k=$kind '$1 == k { print $2 }' "$BD/ratios" | median)
    [ "$m" != - ] && echo "median build/stamp / jpegtran -copy all, $kind: ${m}x"
done
