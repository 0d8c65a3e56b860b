#!/bin/bash
# WebP and animated GIF, each stamped in its own format (markdown on stdout):
#   - a lossy WebP (cwebp -q 80) of a photo (the 4224x3168 photograph
#     Dragonfly_by_Bolly from lomiri-wallpapers when installed, else
#     tools/mkjpeg's 12 MP one) and a 1280x1024 crop of it as a lossless WebP (cwebp -lossless
#     -z 1), build/stamp against vips composite2 writing WebP at the same
#     setting (Q=80; lossless at vips' default effort, as libwebp's default
#     method is what build/stamp uses);
#   - a 100-frame 640x360 animated GIF (frames panned over the photo,
#     ImageMagick's own palette per frame), build/stamp against ImageMagick
#     -coalesce ... -layers composite -layers optimize (vips does not write
#     the stamp into every frame of an animation).
# The 256 px stamp at SE. Median wall ms, CPU ms (user + system) and peak RSS
# of RUNS runs. Tools: Debian webp libvips-tools imagemagick time.
set -u
cd "$(dirname "$0")/.."
B=${SPIM_BUILD:-build}
B=${B#$PWD/}
RUNS=${RUNS:-5}
BD=$B/bench/formats
mkdir -p "$BD"
have() { command -v "$1" >/dev/null 2>&1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "-")}'; }
make -s "$B/stamp" "$B/tools/mkjpeg" "$B/assets/stamp.png" || exit 1
have cwebp && have djpeg && [ -x /usr/bin/time ] || {
    echo "(formats benchmark skipped: apt-get install webp libjpeg-turbo-progs time)"; exit 0; }
STAMP=$B/assets/stamp.png
IM=$(command -v magick || command -v convert || true)

# row NAME CMD...: median wall ms, CPU ms and peak RSS MiB of RUNS runs.
row() {
    local name=$1 i w=() c=() m=() t=$BD/time.out
    shift
    for ((i = 0; i < RUNS; i++)); do
        /usr/bin/time -o "$t" -f "%e %U %S %M" "$@" >/dev/null 2>&1 ||
            { echo "| $name | failed: $* | | |"; return; }
        read -r e u s k < <(tail -1 "$t")
        w+=("$(awk -v e="$e" 'BEGIN { print e * 1000 }')")
        c+=("$(awk -v u="$u" -v s="$s" 'BEGIN { print (u + s) * 1000 }')")
        m+=("$(awk -v k="$k" 'BEGIN { printf "%.1f", k / 1024 }')")
    done
    printf '| %s | %s | %s | %s |\n' "$name" "$(printf '%s\n' "${w[@]}" | median)" \
        "$(printf '%s\n' "${c[@]}" | median)" "$(printf '%s\n' "${m[@]}" | median)"
}
col() { grep -F "| $2 |" "$BD/formats.md" | head -1 | cut -d'|' -f"$1" | tr -d ' '; }
ratio() {  # ours reference column label
    local a b
    a=$(col "$3" "$1") b=$(col "$3" "$2")
    awk -v a="$a" -v b="$b" -v l="$4" 'BEGIN { if (a > 0 && b > 0) printf "%s %.2fx\n", l, a / b }'
}

# The photo: a real one when a Debian wallpaper is there, else tools/mkjpeg's.
SRC=/usr/share/backgrounds/Dragonfly_by_Bolly.jpg
if [ -f "$SRC" ]; then djpeg -pnm "$SRC" > "$BD/src.ppm"
else "$B/tools/mkjpeg" 4000 3000 90 "$BD/mk.jpg" && djpeg -pnm "$BD/mk.jpg" > "$BD/src.ppm"; fi
[ -f "$BD/lossy.webp" ] || cwebp -quiet -q 80 "$BD/src.ppm" -o "$BD/lossy.webp" || exit 1
if [ ! -f "$BD/lossless.webp" ] && [ -n "$IM" ]; then
    "$IM" "$BD/src.ppm" -crop 1280x1024+0+0 +repage "$BD/crop.ppm" &&
        cwebp -quiet -lossless -z 1 "$BD/crop.ppm" -o "$BD/lossless.webp"
fi
if [ ! -f "$BD/anim.gif" ] && [ -n "$IM" ]; then
    # 100 frames of 640x360 panned across the photo, 4 cs each
    frames=()
    for i in $(seq 0 99); do
        frames+=("(" -clone 0 -crop "640x360+$((i * 12))+$((i * 6))" +repage ")")
    done
    "$IM" "$BD/src.ppm" -resize 1920x "${frames[@]}" -delete 0 -set delay 4 -loop 0 \
        "$BD/anim.gif"
fi
read -r W H < <(head -c 64 "$BD/src.ppm" | tr -s ' \n' '  ' | awk '{print $2, $3}')
echo
echo "### WebP and animated GIF, stamped in their own format, median of $RUNS" \
     "(load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
{
echo "| program | wall ms | CPU ms | peak RSS MiB |"
echo "|---|---:|---:|---:|"
row "build/stamp lossy WebP" "$B/stamp" --stamp "$STAMP" "$BD/lossy.webp" "$BD/out.webp"
if have vips; then
    row "vips composite2 lossy WebP Q=80" vips composite2 "$BD/lossy.webp" "$STAMP" \
        "$BD/out_vips.webp[Q=80]" over --x $((W - 256)) --y $((H - 256))
else echo "| vips composite2 lossy WebP Q=80 | skipped: apt-get install libvips-tools | | |"; fi
if [ -f "$BD/lossless.webp" ]; then
    row "build/stamp lossless WebP" "$B/stamp" --stamp "$STAMP" "$BD/lossless.webp" "$BD/out_ll.webp"
    have vips && row "vips composite2 lossless WebP" vips composite2 "$BD/lossless.webp" "$STAMP" \
        "$BD/out_ll_vips.webp[lossless]" over --x 1024 --y 768
fi
if [ -f "$BD/anim.gif" ]; then
    row "build/stamp animated GIF" "$B/stamp" --stamp "$STAMP" "$BD/anim.gif" "$BD/out.gif"
    row "ImageMagick animated GIF" "$IM" "$BD/anim.gif" -coalesce null: "$STAMP" \
        -gravity southeast -layers composite -layers optimize "$BD/out_im.gif"
else echo "| animated GIF | skipped: apt-get install imagemagick | | |"; fi
} | tee "$BD/formats.md"
echo
for c in 3:wall 4:CPU; do
    ratio "build/stamp lossy WebP" "vips composite2 lossy WebP Q=80" "${c%%:*}" "${c#*:}: lossy WebP vs vips"
    ratio "build/stamp lossless WebP" "vips composite2 lossless WebP" "${c%%:*}" "${c#*:}: lossless WebP vs vips"
    ratio "build/stamp animated GIF" "ImageMagick animated GIF" "${c%%:*}" "${c#*:}: animated GIF vs ImageMagick"
done
