#!/bin/bash
# The recode path (build/stamp --recode; what neither the splice nor the
# progressive path takes goes the same way) on a 12 MP photo saved by cjpeg
# (4:2:0 q90, 4:4:4 q92 -optimize, -progressive) and by ImageMagick as CMYK:
# median wall ms and peak RSS MiB of RUNS runs, the output's size, and the
# ratio to `jpegtran -copy all` (-progressive for the progressive file) in
# the same run. STAMP_BEFORE=path/to/an/older/build/stamp adds its column
# (the stb encoder at q90 4:2:0 before the recode path kept the source's
# tables). Tools: libjpeg-turbo-progs, imagemagick, time. Load is printed.
set -u
cd "$(dirname "$0")/.."
B=${SPIM_BUILD:-build}
B=${B#$PWD/}
RUNS=${RUNS:-5}
BD=$B/bench/recode
mkdir -p "$BD"
have() { command -v "$1" >/dev/null 2>&1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "-")}'; }
make -s "$B/stamp" "$B/tools/mkjpeg" "$B/assets/stamp.png" || exit 1
have cjpeg && have djpeg && have jpegtran && have convert && [ -x /usr/bin/time ] || {
    echo "(recode benchmark skipped: apt-get install libjpeg-turbo-progs imagemagick time)"; exit 0; }
STAMP=$B/assets/stamp.png

# A 4000x3000 crop of a Debian wallpaper when there is one, else tools/mkjpeg's photo.
SRC=/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg
if [ -f "$SRC" ]; then convert "$SRC" -crop 4000x3000+1000+300 +repage "$BD/src.ppm"
else "$B/tools/mkjpeg" 4000 3000 90 "$BD/mk.jpg" && djpeg -pnm "$BD/mk.jpg" > "$BD/src.ppm"; fi
cjpeg -quality 90 -sample 2x2 -outfile "$BD/c420.jpg" "$BD/src.ppm"
cjpeg -quality 92 -sample 1x1 -optimize -outfile "$BD/c444.jpg" "$BD/src.ppm"
cjpeg -quality 90 -progressive -outfile "$BD/prog.jpg" "$BD/src.ppm"
convert "$BD/src.ppm" -colorspace CMYK -quality 90 "$BD/cmyk.jpg"

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
kb() { echo $(( $(stat -c %s "$1") / 1024 )); }

echo
echo "## Recode path, 12 MP, 256 px stamp at SE, median of $RUNS ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| file | KiB | --recode ms / MiB / KiB | ratio to jpegtran | before (stb q90 4:2:0) ms / MiB / KiB | jpegtran -copy all ms / MiB |"
echo "|---|---|---|---|---|---|"
for f in c420 c444 prog cmyk; do
    in=$BD/$f.jpg
    read -r rw rm_ <<<"$(run "$B/stamp" --recode --stamp "$STAMP" "$in" "$BD/r.jpg")"
    if [ -n "${STAMP_BEFORE:-}" ]; then
        read -r bw bm <<<"$(run "$STAMP_BEFORE" --recode --stamp "$STAMP" "$in" "$BD/b.jpg")"
        before="$bw / $bm / $(kb "$BD/b.jpg")"
    else before="-"; fi
    prog=(); [ "$f" = prog ] && prog=(-progressive)
    read -r jw jm <<<"$(run jpegtran -copy all "${prog[@]}" -outfile "$BD/j.jpg" "$in")"
    ratio=$(awk -v s="$rw" -v j="$jw" 'BEGIN { printf "%.2f", (j > 0 ? s / j : 0) }')
    echo "| $f | $(kb "$in") | $rw / $rm_ / $(kb "$BD/r.jpg") | ${ratio}x | $before | $jw / $jm |"
done
