#!/bin/bash
# PNG -> PNG through build/stamp on files other programs wrote: Pillow at
# compress levels 0..9 and in every mode, ImageMagick (24-, 48-bit and
# Adam7), the PNG suite Go ships, icons. Pillow (/usr/bin/python3, a
# decoder that is neither zlib's inflate in our code nor stb) reads every
# output back: same size, changes only where the stamp is, and for 8-bit
# RGB(A) photos the IDAT stream starts with most of the input's bytes.
# Files come from python3-pil, imagemagick, golang-1.19-src and
# adwaita-icon-theme (scripts/deps.sh test); a missing one is left out.
. "$(dirname "$0")/preamble.sh"
B=${B#"$PWD"/}   # make knows its targets by relative names
T=$B/test/it_png
mkdir -p "$T"
rm -f "$T"/*.png
PY=/usr/bin/python3

make -s "$B/stamp" "$B/tools/mkjpeg" "$B/assets/stamp.png" >/dev/null || { fail build "make failed"; finish; }
if ! $PY -c 'import PIL' 2>/dev/null; then skip pillow "apt-get install python3-pil"; finish; fi

"$B/tools/mkjpeg" 640 480 90 "$T/photo.jpg"
$PY - "$T" <<'EOF'
import sys
from PIL import Image
t = sys.argv[1]
im = Image.open(t + "/photo.jpg").convert("RGB")
for level in (0, 1, 6, 9):
    im.save("%s/pil_rgb_z%d.png" % (t, level), compress_level=level)
im.save(t + "/pil_rgb_opt.png", optimize=True)
rgba = im.convert("RGBA")
rgba.putalpha(im.convert("L"))
rgba.save(t + "/pil_rgba.png")
im.convert("L").save(t + "/pil_l.png")
rgba.convert("LA").save(t + "/pil_la.png")
im.convert("P", palette=Image.ADAPTIVE, colors=64).save(t + "/pil_p.png")
im.convert("P", palette=Image.ADAPTIVE, colors=16).save(t + "/pil_p_trns.png", transparency=3, bits=4)
im.convert("1").save(t + "/pil_1.png")
im.convert("I").point(lambda v: v * 256).convert("I;16").save(t + "/pil_i16.png")
EOF
if [ -x /usr/bin/convert ]; then
    /usr/bin/convert "$T/photo.jpg" "PNG24:$T/im_rgb.png"
    /usr/bin/convert "$T/photo.jpg" -depth 16 "PNG48:$T/im_rgb16.png"
    /usr/bin/convert "$T/photo.jpg" -interlace PNG "$T/im_adam7.png"
fi
suite=/usr/share/go-1.19/src/image/png/testdata/pngsuite
for f in "$suite"/basn*.png "$suite"/ftbbn2c16.png "$suite"/ftp1n3p08.png \
         /usr/share/icons/Adwaita/512x512/places/folder-pictures.png; do
    [ -f "$f" ] && cp "$f" "$T/real_$(basename "$f")"
done

# png_check IN OUT: Pillow reads OUT; outside the bottom-right quarter it equals IN
png_check() {
    $PY - "$1" "$2" <<'EOF'
import struct, sys
from PIL import Image, ImageChops
a, b = Image.open(sys.argv[1]), Image.open(sys.argv[2])
b.load()
if a.size != b.size:
    sys.exit("size %s, expected %s" % (b.size, a.size))
if a.mode.startswith("I") or b.mode.startswith("I"):
    sys.exit(0)  # Pillow converts 16-bit grey to RGBA by clipping: decoding is the check
# per band: getbbox() of an RGBA image looks at alpha only
boxes = [d.getbbox() for d in ImageChops.difference(a.convert("RGBA"), b.convert("RGBA")).split()]
boxes = [x for x in boxes if x]
box = boxes and (min(x[0] for x in boxes), min(x[1] for x in boxes))
w, h = a.size
if not box or box[0] < w // 2 or box[1] < h // 2:
    sys.exit("changes at %s, expected inside the bottom-right quarter of %dx%d" % (box, w, h))
EOF
}

# idat_prefix IN OUT: the share of IN's IDAT stream that OUT starts with
idat_prefix() {
    $PY - "$1" "$2" <<'EOF'
import struct, sys
def idat(path):
    d, pos, z = open(path, "rb").read(), 8, b""
    while pos + 12 <= len(d):
        n = struct.unpack(">I", d[pos:pos + 4])[0]
        if d[pos + 4:pos + 8] == b"IDAT":
            z += d[pos + 8:pos + 8 + n]
        pos += 12 + n
    return z
a, b = idat(sys.argv[1]), idat(sys.argv[2])
n = 0
while n < min(len(a), len(b)) and a[n] == b[n]:
    n += 1
print("%d" % (100 * n // len(a)))
EOF
}

for f in "$T"/pil_*.png "$T"/im_*.png "$T"/real_*.png; do
    [ -f "$f" ] || continue
    name=$(basename "$f" .png)
    out=$T/out_$name.png
    if ! "$B/stamp" --stamp "$B/assets/stamp.png" --scale 0.25 "$f" "$out" 2>"$T/err.txt"; then
        fail "$name" "stamp failed: $(head -1 "$T/err.txt")"; continue
    fi
    if ! why=$(png_check "$f" "$out" 2>&1); then fail "$name" "$why"; continue; fi
    case $name in
    pil_rgb_z[169] | pil_rgb_opt | pil_rgba | im_rgb)
        share=$(idat_prefix "$f" "$out")
        if [ "$share" -lt 50 ]; then fail "$name" "output IDAT starts with only $share% of the input's"; continue; fi
        ok "$name (IDAT prefix kept: $share%)" ;;
    *) ok "$name" ;;
    esac
done

finish
