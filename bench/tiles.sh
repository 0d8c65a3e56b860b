#!/bin/bash
# Tiled and text stamps (issue 25), markdown on stdout: one 12 MP JPEG
# (tools/mkjpeg, 4000x3000 4:2:0 q90) stamped by build/stamp
#   - tiled: the 256 px stamp every 512 px (--tile 256), 25% of the pixels
#     under a tile, the grid anchored bottom-right;
#   - text: "(c) 2026 Sparta Imager - photo12.jpg", 150 px a line, outlined,
#     bottom-right;
# against vips composite2 doing the same composite: its overlay is made
# beforehand and not timed (the tiled one with vips embed/replicate/crop
# into a 4000x3000 RGBA .v file, the text one with ImageMagick's label:),
# so vips only decodes, composites and encodes (Q=90). Medians of RUNS runs.
# Tools: Debian libvips-tools imagemagick.
set -u
cd "$(dirname "$0")/.."
B=${SPIM_BUILD:-build}
B=${B#$PWD/}
RUNS=${RUNS:-5}
BD=$B/bench
mkdir -p "$BD"
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "-")}'; }

make -s "$B/stamp" "$B/tools/mkjpeg" "$B/assets/stamp.png" || exit 1
[ -f "$BD/photo12.jpg" ] || "$B/tools/mkjpeg" 4000 3000 90 "$BD/photo12.jpg" || exit 1
IN=$BD/photo12.jpg STAMP=$B/assets/stamp.png
TEXT=$(printf '\xc2\xa9 2026 Sparta Imager \xe2\x80\x94 photo12.jpg')

# ms NAME CMD...: a table row, the median wall and CPU (user + system)
# milliseconds of RUNS runs (/usr/bin/time; the machine may be shared, and
# vips runs threads: CPU time is the load-independent figure)
ms() {
    local name=$1 i w=() c=() t=$BD/time.out
    shift
    for ((i = 0; i < RUNS; i++)); do
        /usr/bin/time -o "$t" -f "%e %U %S" "$@" >/dev/null 2>&1 || { echo "| $name | failed: $* | |"; return; }
        read -r e u s < <(tail -1 "$t")
        w+=("$(awk -v e="$e" 'BEGIN { print e * 1000 }')")
        c+=("$(awk -v u="$u" -v s="$s" 'BEGIN { print (u + s) * 1000 }')")
    done
    printf '| %s | %s | %s |\n' "$name" "$(printf '%s\n' "${w[@]}" | median)" "$(printf '%s\n' "${c[@]}" | median)"
}
wall_of() { grep -F "| $1 |" "$BD/tiles.md" | head -1 | cut -d'|' -f3 | tr -d ' '; }
cpu_of() { grep -F "| $1 |" "$BD/tiles.md" | head -1 | cut -d'|' -f4 | tr -d ' '; }

echo
echo "### 12 MP JPEG, tiled and text stamps against vips composite2, median of $RUNS (load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
have_vips=0
if command -v vips >/dev/null; then
    # the grid build/stamp draws: tiles at x = 3744 - 512 i, y = 2744 - 512 j,
    # i.e. x = 160 (mod 512), y = 184 (mod 512)
    vips embed "$STAMP" "$BD/tile512.v" 0 0 512 512 --extend background --background "0 0 0 0" &&
        vips replicate "$BD/tile512.v" "$BD/tiles_rep.v" 9 7 &&
        vips crop "$BD/tiles_rep.v" "$BD/tiles_overlay.v" 352 328 4000 3000 && have_vips=1
fi
have_im=0
if [ -x /usr/bin/convert ] && /usr/bin/convert -background none -font DejaVu-Sans -pointsize 110 -fill white \
        -stroke black -strokewidth 9 label:"$TEXT" "$BD/text_overlay.png" 2>/dev/null; then
    have_im=1
    read -r tw th < <(identify -format '%w %h' "$BD/text_overlay.png")
fi
{
echo "| program | wall ms | CPU ms |"
echo "|---|---|---|"
ms "build/stamp --tile 256 (splice)" "$B/stamp" --stamp "$STAMP" --tile 256 "$IN" "$BD/out_tiles.jpg"
ms "build/stamp --tile 256 --recode" "$B/stamp" --recode --stamp "$STAMP" --tile 256 "$IN" "$BD/out_tiles_recode.jpg"
if [ "$have_vips" = 1 ]; then
    ms "vips composite2 (tiled overlay)" vips composite2 "$IN" "$BD/tiles_overlay.v" "$BD/out_tiles_vips.jpg[Q=90]" over
else
    echo "| vips composite2 (tiled overlay) | skipped: apt-get install libvips-tools | |"
fi
ms "build/stamp --text (splice)" "$B/stamp" --text "$TEXT" "$IN" "$BD/out_text.jpg"
if [ "$have_vips" = 1 ] && [ "$have_im" = 1 ]; then
    ms "vips composite2 (text overlay)" vips composite2 "$IN" "$BD/text_overlay.png" "$BD/out_text_vips.jpg[Q=90]" \
        over --x $((4000 - tw)) --y $((3000 - th))
else
    echo "| vips composite2 (text overlay) | skipped: apt-get install libvips-tools imagemagick | |"
fi
} | tee "$BD/tiles.md"
for col in wall cpu; do
    t=$(${col}_of "build/stamp --tile 256 (splice)"); v=$(${col}_of "vips composite2 (tiled overlay)")
    x=$(${col}_of "build/stamp --text (splice)"); y=$(${col}_of "vips composite2 (text overlay)")
    awk -v c="$col" -v t="$t" -v v="${v:-0}" -v x="$x" -v y="${y:-0}" 'BEGIN {
        if (v > 0) printf "\n%s time: tiled %.2fx vips composite2 (goal <= 0.5)", c, t / v
        if (y > 0) printf ", text %.2fx vips composite2", x / y
        printf "\n" }'
done
