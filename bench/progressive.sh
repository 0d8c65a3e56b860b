#!/bin/bash
# Progressive JPEGs (the coefficient-domain path, path=progressive): median
# wall time and peak RSS of RUNS runs of build/stamp against jpegtran -copy
# all -progressive (a lossless re-code of every block), vips composite2 and
# build/stamp --recode, on one 18 MP photo (5640x3172) saved progressive by
# cjpeg (4:2:0 q90 and 4:4:4 q92), Pillow (progressive=True, optimize) and
# ImageMagick (-interlace Plane). The photo is a crop of a real one from
# Debian's lomiri-wallpapers (Kleiber_by_Lukas_Baubkus.jpg) when installed,
# else tools/mkjpeg's synthetic photo. Goals: <= 1.0x jpegtran -progressive,
# <= 48 MiB peak.
# Tools: Debian libjpeg-turbo-progs libvips-tools imagemagick python3-pil time.
set -u
cd "$(dirname "$0")/.."
B=${SPIM_BUILD:-build}
B=${B#$PWD/}
RUNS=${RUNS:-5}
BD=$B/bench/progressive
mkdir -p "$BD"

have() { command -v "$1" >/dev/null 2>&1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "-")}'; }

# run NAME CMD...: "NAME wall_ms peak_MiB" (medians of RUNS runs)
run() {
    local name=$1 i w=() m=() t=$BD/time.out t0 t1
    shift
    for ((i = 0; i < RUNS; i++)); do
        t0=$(date +%s%N)
        /usr/bin/time -o "$t" -f "%M" "$@" >/dev/null 2>&1 || { echo "$name - -"; return; }
        t1=$(date +%s%N)
        w+=("$(( (t1 - t0) / 1000 ))")
        m+=("$(tail -1 "$t")")
    done
    awk -v n="$name" -v w="$(printf '%s\n' "${w[@]}" | median)" -v m="$(printf '%s\n' "${m[@]}" | median)" \
        'BEGIN { printf "%s %.1f %.1f\n", n, w / 1000, m / 1024 }'
}

if [ ! -x /usr/bin/time ] || ! have cjpeg || ! have jpegtran; then
    echo; echo "(progressive benchmark skipped: apt-get install time libjpeg-turbo-progs)"; exit 0
fi
make -s "$B/stamp" "$B/tools/mkjpeg" "$B/assets/stamp.png" || exit 1
STAMP=$B/assets/stamp.png
W=5640 H=3172
SRC=/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg
if [ ! -f "$BD/photo.ppm" ]; then
    if [ -f "$SRC" ] && have vips; then
        vips crop "$SRC" "$BD/photo.ppm" 0 0 $W $H || exit 1
        echo "real photo" > "$BD/photo.kind"
    else
        "$B/tools/mkjpeg" $W $H 95 "$BD/synthetic.jpg" && djpeg "$BD/synthetic.jpg" > "$BD/photo.ppm" || exit 1
        echo "synthetic photo (tools/mkjpeg)" > "$BD/photo.kind"
    fi
fi
kinds=()
make_kind() {  # NAME CMD... (CMD writes $BD/NAME.jpg)
    local n=$1; shift
    [ -s "$BD/$n.jpg" ] || "$@" >/dev/null 2>&1 || { rm -f "$BD/$n.jpg"; return; }
    [ -s "$BD/$n.jpg" ] && kinds+=("$n")
}
make_kind cjpeg-420-q90 sh -c "cjpeg -progressive -quality 90 '$BD/photo.ppm' > '$BD/cjpeg-420-q90.jpg'"
make_kind cjpeg-444-q92 sh -c "cjpeg -progressive -quality 92 -sample 1x1 '$BD/photo.ppm' > '$BD/cjpeg-444-q92.jpg'"
make_kind pillow-q85-optimize /usr/bin/python3 -c "from PIL import Image; Image.open('$BD/photo.ppm')\
.save('$BD/pillow-q85-optimize.jpg', quality=85, progressive=True, optimize=True)"
make_kind imagemagick-q88 convert "$BD/photo.ppm" -interlace Plane -quality 88 "$BD/imagemagick-q88.jpg"

echo
echo "### Progressive JPEG, 18 MP ($W x $H, $(cat "$BD/photo.kind")) -> stamp (bottom-right) -> JPEG, median of $RUNS"
echo "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| file | MB | build/stamp ms | MiB | huffman | jpegtran -copy all -progressive ms | MiB | vips composite2 ms | MiB | --recode ms | MiB | stamp / jpegtran |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for k in "${kinds[@]}"; do
    IN=$BD/$k.jpg
    huff=$(SPIM_LOG= "$B/stamp" -v --stamp "$STAMP" "$IN" "$BD/out.jpg" 2>&1 | grep -o 'huffman=[a-z]*' | cut -d= -f2)
    read -r _ sw sm < <(run stamp "$B/stamp" --stamp "$STAMP" "$IN" "$BD/out.jpg")
    read -r _ jw jm < <(run jpegtran jpegtran -copy all -progressive -outfile "$BD/out_jt.jpg" "$IN")
    vw=- vm=-
    have vips && read -r _ vw vm < <(run vips vips composite2 "$IN" "$STAMP" "$BD/out_vips.jpg[Q=90,interlace]" over \
                                         --x $((W - 256)) --y $((H - 256)))
    read -r _ rw rm < <(run recode "$B/stamp" --recode --stamp "$STAMP" "$IN" "$BD/out_recode.jpg")
    awk -v k="$k" -v mb="$(stat -c %s "$IN")" -v sw="$sw" -v sm="$sm" -v h="${huff:--}" -v jw="$jw" -v jm="$jm" \
        -v vw="$vw" -v vm="$vm" -v rw="$rw" -v rm="$rm" \
        'BEGIN { printf "| %s | %.1f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2fx |\n", k, mb / 1e6, sw, sm, h,
                 jw, jm, vw, vm, rw, rm, (jw > 0 ? sw / jw : 0) }'
done
