#!/bin/bash
# build/stamp end to end: arguments, exit codes, output formats by extension,
# the embedded default stamp, gravity, the pixel budget. Images are made by
# build/tools/mkjpeg; BMP output is read back with python3 to look at pixels.
. "$(dirname "$0")/preamble.sh"
B=${B#"$PWD"/}   # make knows its targets by relative names
T=$B/test/it_stamp
mkdir -p "$T"

make -s "$B/stamp" "$B/tools/mkjpeg" >/dev/null || { fail build "make $B/stamp $B/tools/mkjpeg failed"; finish; }
S=$B/stamp
"$B/tools/mkjpeg" 320 240 90 "$T/in.jpg"
"$B/tools/mkjpeg" 320 240 90 "$T/in.png"
rm -f "$T"/o.*
printf 'this is not an image\n' > "$T/text.jpg"

# expect_exit CASE CODE STDERR_PATTERN ARGS...
expect_exit() {
    local name=$1 want=$2 pat=$3 rc
    shift 3
    "$S" "$@" >"$T/out.txt" 2>"$T/err.txt"; rc=$?
    if [ "$rc" != "$want" ]; then fail "$name" "expected exit $want, got $rc ($(head -1 "$T/err.txt"))"
    elif [ -n "$pat" ] && ! grep -qi -- "$pat" "$T/err.txt"; then
        fail "$name" "expected stderr matching '$pat', got '$(head -1 "$T/err.txt")'"
    else ok "$name"; fi
}

expect_exit no_arguments 2 "usage"
expect_exit one_argument 2 "required" "$T/in.jpg"
expect_exit bad_gravity 2 "gravity" --gravity up "$T/in.jpg" "$T/o.jpg"
expect_exit bad_scale 2 "scale" --scale 2 "$T/in.jpg" "$T/o.jpg"
expect_exit scale_not_a_number 2 "scale" --scale big "$T/in.jpg" "$T/o.jpg"
expect_exit bad_opacity 2 "opacity" --opacity 0 "$T/in.jpg" "$T/o.jpg"
expect_exit bad_quality 2 "quality" --quality 101 "$T/in.jpg" "$T/o.jpg"
expect_exit bad_margin 2 "margin" --margin -3 "$T/in.jpg" "$T/o.jpg"
expect_exit missing_value 2 "needs a value" "$T/in.jpg" "$T/o.jpg" --margin
expect_exit unknown_option 2 "unknown option" --colour red "$T/in.jpg" "$T/o.jpg"
expect_exit unwritable_extension 2 "ending in .jpg" "$T/in.jpg" "$T/o.pcx"
expect_exit gif_only_from_gif 1 "GIF is written only from a GIF" "$T/in.jpg" "$T/o.gif"
expect_exit webp_only_from_webp 1 "WebP is written only from a WebP" "$T/in.jpg" "$T/o.webp"
expect_exit missing_input 1 "cannot open" "$T/nope.jpg" "$T/o.jpg"
expect_exit not_an_image 1 "not a readable image" "$T/text.jpg" "$T/o.jpg"
expect_exit missing_stamp 1 "cannot open" --stamp "$T/nope.png" "$T/in.jpg" "$T/o.jpg"
expect_exit stamp_not_an_image 1 "stamp" --stamp "$T/text.jpg" "$T/in.jpg" "$T/o.jpg"
SPARTA_MAX_PIXELS=1000 expect_exit pixel_budget 1 "budget" "$T/in.jpg" "$T/o.jpg"
expect_exit stamp_entirely_outside 1 "stamp falls outside the image (margin 100000 on 320x240)" --margin 100000 "$T/in.jpg" "$T/o.jpg"
expect_exit stamp_entirely_outside_recode 1 "stamp falls outside the image" --recode --margin 100000 "$T/in.jpg" "$T/o.jpg"
expect_exit opacity_names_the_rule 2 "--opacity: must be a number above 0, at most 1, got 'x'" --opacity x "$T/in.jpg" "$T/o.jpg"
SPARTA_JPEG_MODE=fast expect_exit bad_jpeg_mode 2 "SPARTA_JPEG_MODE: must be auto or recode, got 'fast'" "$T/in.jpg" "$T/o.jpg"
[ -e "$T/o.jpg" ] && fail no_output_on_failure "expected no $T/o.jpg" || ok no_output_on_failure
expect_exit output_directory_missing 1 "cannot write" "$T/in.jpg" "$T/nodir/o.jpg"
if [ -w /dev/full ]; then
    ln -sf /dev/full "$T/full.jpg"
    expect_exit disk_full 1 "cannot write" "$T/in.jpg" "$T/full.jpg"
fi

# an output of many 64 KiB write pieces reads back whole: djpeg finds no
# missing or repeated bytes, and the file ends in EOI
"$B/tools/mkjpeg" 1600 1200 95 "$T/big.jpg"
if ! "$S" "$T/big.jpg" "$T/big_out.jpg" 2>"$T/err.txt"; then fail large_output "stamp failed: $(head -1 "$T/err.txt")"
elif [ "$(stat -c %s "$T/big_out.jpg")" -le 262144 ]; then fail large_output "expected an output over 256 KiB"
elif [ "$(tail -c 2 "$T/big_out.jpg" | od -An -tx1 | tr -d ' ')" != ffd9 ]; then fail large_output "output does not end in EOI"
elif command -v djpeg >/dev/null; then
    if djpeg -outfile /dev/null "$T/big_out.jpg" 2>"$T/djpeg.txt" && [ ! -s "$T/djpeg.txt" ]; then ok large_output
    else fail large_output "djpeg: $(head -1 "$T/djpeg.txt")"; fi
else
    ok large_output_without_djpeg
fi

# --help / -h: usage on stdout, exit 0, exit codes documented
for h in --help -h; do
    if "$S" "$h" >"$T/out.txt" 2>"$T/err.txt" && grep -q "usage: stamp" "$T/out.txt" && grep -q "Exit status" "$T/out.txt" &&
       grep -q -- "--recode" "$T/out.txt" && [ ! -s "$T/err.txt" ]; then ok "help_$h"
    else fail "help_$h" "expected usage with exit codes on stdout and exit 0"; fi
done

# baseline JPEG -> JPEG: compressed domain by default; --recode and
# SPARTA_JPEG_MODE=recode re-encode. The splice keeps every byte of the scan
# before the stamp's first MCU row (a 320x240 4:2:0 file, a 24 px stamp
# bottom-right).
"$S" --scale 0.1 "$T/in.jpg" "$T/splice.jpg" && "$S" --scale 0.1 --recode "$T/in.jpg" "$T/recode.jpg" &&
    SPARTA_JPEG_MODE=recode "$S" --scale 0.1 "$T/in.jpg" "$T/recode_env.jpg"
if cmp -s "$T/recode.jpg" "$T/recode_env.jpg"; then ok jpeg_mode_env_recode; else fail jpeg_mode_env_recode "SPARTA_JPEG_MODE=recode differs from --recode"; fi
if cmp -s "$T/splice.jpg" "$T/recode.jpg"; then fail splice_differs_from_recode "expected two paths, got the same bytes"
else ok splice_differs_from_recode; fi
common=$(cmp "$T/in.jpg" "$T/splice.jpg" 2>/dev/null | grep -oE 'byte [0-9]+' | grep -oE '[0-9]+')
size=$(stat -c %s "$T/in.jpg")
if [ -n "$common" ] && [ "$common" -gt $((size * 3 / 4)) ]; then ok splice_keeps_the_prefix
else fail splice_keeps_the_prefix "expected the first three quarters of the file kept, first difference at byte ${common:-?} of $size"; fi
if command -v djpeg >/dev/null; then
    if djpeg "$T/splice.jpg" >/dev/null 2>"$T/err.txt" && [ ! -s "$T/err.txt" ]; then ok splice_decodes_cleanly
    else fail splice_decodes_cleanly "djpeg: $(head -1 "$T/err.txt")"; fi
    if cjpeg -progressive "$T/in.png" > "$T/prog.jpg" 2>/dev/null || djpeg "$T/in.jpg" | cjpeg -progressive > "$T/prog.jpg"; then
        if "$S" "$T/prog.jpg" "$T/prog_out.jpg" && djpeg "$T/prog_out.jpg" >/dev/null 2>&1 &&
           LC_ALL=C grep -q $'\xFF\xC2' "$T/prog_out.jpg"; then ok progressive_stays_progressive
        else fail progressive_stays_progressive "expected a progressive JPEG (SOF2) from a progressive one"; fi
    fi
else
    echo "skip djpeg cases: apt-get install libjpeg-turbo-progs"; skipped=$((skipped + 2))
fi

# JPEG sources the splice and the progressive path do not take (CMYK from
# ImageMagick and Pillow), and real encoders' files through --recode, are
# written again with the source's quantisation tables and sampling,
# progressive when the source was: never a fixed q90 4:2:0. Sizes stay
# within a sane factor of the input's; djpeg reads every output cleanly.
same_tables() {  # SOURCE OUTPUT -> "ok" or what differs
    /usr/bin/python3 - "$@" <<'EOF'
import sys
from PIL import Image
a, b = Image.open(sys.argv[1]), Image.open(sys.argv[2])
qa, qb, la, lb = a.quantization, b.quantization, a.layer, b.layer
why = []
if bool(a.info.get('progressive')) != bool(b.info.get('progressive')):
    why.append('progressive %s from %s' % (b.info.get('progressive'), a.info.get('progressive')))
for i, (cid, h, v, t) in enumerate(lb):
    if len(la) == 4:   # CMYK/YCCK: the first table for luma, the second for chroma
        ids = sorted(qa)
        want = qa[ids[0] if i == 0 or len(ids) == 1 else ids[1]]
        sh, sv = la[0 if i == 0 else 1][1:3]
    else:
        want, sh, sv = qa[la[i][3]], la[i][1], la[i][2]
    if list(qb[t]) != list(want): why.append('component %d table' % i)
    if (h, v) != (sh, sv): why.append('component %d sampled %dx%d, source %dx%d' % (i, h, v, sh, sv))
print('; '.join(why) or 'ok')
EOF
}
if command -v djpeg >/dev/null && command -v convert >/dev/null && /usr/bin/python3 -c 'import PIL' 2>/dev/null; then
    djpeg "$T/big.jpg" > "$T/big.ppm"
    convert "$T/big.ppm" -colorspace CMYK -quality 85 "$T/r_im_cmyk.jpg"
    /usr/bin/python3 -c "from PIL import Image; Image.open('$T/big.ppm').convert('CMYK').save('$T/r_pil_cmyk.jpg', quality=80)"
    cjpeg -progressive -sample 1x1 -quality 88 "$T/big.ppm" > "$T/r_cjpeg_prog444.jpg"
    cjpeg -sample 2x1 -quality 70 -restart 2 -optimize "$T/big.ppm" > "$T/r_cjpeg_422.jpg"
    cjpeg -grayscale -quality 60 "$T/big.ppm" > "$T/r_cjpeg_grey.jpg"
    /usr/bin/python3 -c "from PIL import Image; Image.open('$T/big.ppm').save('$T/r_pil_prog.jpg', quality=83, subsampling=0, progressive=True, optimize=True)"
    for f in r_im_cmyk r_pil_cmyk r_cjpeg_prog444 r_cjpeg_422 r_cjpeg_grey r_pil_prog; do
        case $f in *cmyk) args=() ;; *) args=(--recode) ;; esac
        if ! "$S" -v "${args[@]}" "$T/$f.jpg" "$T/${f}_out.jpg" 2>"$T/err.txt"; then
            fail "recode_$f" "exit $? ($(head -1 "$T/err.txt"))"; continue
        fi
        why=$(same_tables "$T/$f.jpg" "$T/${f}_out.jpg")
        in=$(stat -c %s "$T/$f.jpg") out=$(stat -c %s "$T/${f}_out.jpg")
        lo=$((in / 2)); case $f in *cmyk) lo=$((in / 4)) ;; esac
        if ! grep -q "path=recode" "$T/err.txt"; then fail "recode_$f" "-v: $(head -1 "$T/err.txt")"
        elif [ "$why" != ok ]; then fail "recode_$f" "the source's tables and sampling" "$why"
        elif [ "$out" -lt "$lo" ] || [ "$out" -gt $((in * 3 / 2)) ]; then fail "recode_$f" "$out bytes from $in"
        elif ! djpeg "$T/${f}_out.jpg" >/dev/null 2>"$T/djpeg.txt" || [ -s "$T/djpeg.txt" ]; then
            fail "recode_$f" "djpeg: $(head -1 "$T/djpeg.txt")"
        else ok "recode_$f"; fi
    done
else
    echo "skip recode corpus: needs djpeg, ImageMagick and Pillow"; skipped=$((skipped + 6))
fi

# output format follows the extension
for ext in jpg jpeg png bmp tga; do
    rm -f "$T/o.$ext"
    if ! "$S" "$T/in.jpg" "$T/o.$ext" 2>"$T/err.txt"; then fail "format_$ext" "exit $? ($(head -1 "$T/err.txt"))"; continue; fi
    magic=$(head -c 4 "$T/o.$ext" | od -An -tx1 | tr -d ' \n')
    case $ext in
        jpg|jpeg) want=ffd8ffe0 ;;
        png) want=89504e47 ;;
        bmp) want=424d* ;;
        tga) want=* ;;
    esac
    # shellcheck disable=SC2053
    if [[ $magic == $want ]]; then ok "format_$ext"; else fail "format_$ext" "expected magic $want, got $magic"; fi
done
if "$S" "$T/o.tga" "$T/from_tga.png" 2>/dev/null; then ok tga_reads_back; else fail tga_reads_back "expected exit 0"; fi

# WebP stays WebP, GIF stays GIF (build/stamp has SPIM_WEBP and SPIM_GIF)
if command -v cwebp >/dev/null && /usr/bin/python3 -c 'import PIL' 2>/dev/null; then
    cwebp -quiet -q 80 "$T/in.jpg" -o "$T/in.webp"
    /usr/bin/python3 -c "from PIL import Image; Image.open('$T/in.jpg').quantize(64).save('$T/in.gif')"
    for ext in webp gif; do
        if ! "$S" "$T/in.$ext" "$T/kept.$ext" 2>"$T/err.txt"; then
            fail "${ext}_stays_$ext" "exit $? ($(head -1 "$T/err.txt"))"; continue
        fi
        magic=$(head -c 12 "$T/kept.$ext" | od -An -c | tr -d ' \n')
        case $ext in webp) want='RIFF*WEBP' ;; gif) want='GIF89a*' ;; esac
        # shellcheck disable=SC2053
        if [[ $magic == $want ]]; then ok "${ext}_stays_$ext"; else fail "${ext}_stays_$ext" "got $magic"; fi
    done
else
    echo "skip webp/gif cases: apt-get install webp python3-pil"; skipped=$((skipped + 2))
fi

# pixels: the default stamp lands bottom-right, --gravity nw top-left
pix() {  # BMP X Y -> "r g b" (stb writes bottom-up 24-bit BMPs)
    python3 - "$@" <<'EOF'
import struct, sys
d = open(sys.argv[1], 'rb').read()
off, w, h, bpp = struct.unpack('<I', d[10:14])[0], *struct.unpack('<iiH', d[18:28])[0:2], struct.unpack('<H', d[28:30])[0]
x, y = int(sys.argv[2]), int(sys.argv[3])
row = (w * bpp // 8 + 3) & ~3
p = off + (h - 1 - y) * row + x * bpp // 8
print(d[p + 2], d[p + 1], d[p])
EOF
}
if command -v python3 >/dev/null; then
    "$S" "$T/in.png" "$T/plain.bmp" --opacity 0.0001 2>/dev/null   # a stamp too faint to change a pixel
    "$S" "$T/in.png" "$T/se.bmp"
    "$S" --gravity nw --margin 10 "$T/in.png" "$T/nw.bmp"
    # the 256 px seal: inside it near (250,200) when se, near (100,100) when nw
    base_se=$(pix "$T/plain.bmp" 250 200); base_nw=$(pix "$T/plain.bmp" 100 100); base_tl=$(pix "$T/plain.bmp" 40 40)
    se_se=$(pix "$T/se.bmp" 250 200); se_tl=$(pix "$T/se.bmp" 40 40)
    nw_nw=$(pix "$T/nw.bmp" 100 100); nw_far=$(pix "$T/nw.bmp" 300 220); base_far=$(pix "$T/plain.bmp" 300 220)
    [ "$se_se" != "$base_se" ] && ok default_stamp_bottom_right || fail default_stamp_bottom_right "expected a change at (250,200), got $se_se = $base_se"
    [ "$se_tl" = "$base_tl" ] && ok top_left_untouched || fail top_left_untouched "expected $base_tl at (40,40), got $se_tl"
    [ "$nw_nw" != "$base_nw" ] && ok gravity_nw || fail gravity_nw "expected a change at (100,100), got $nw_nw = $base_nw"
    [ "$nw_far" = "$base_far" ] && ok gravity_nw_leaves_se || fail gravity_nw_leaves_se "expected $base_far at (300,220), got $nw_far"
    "$S" --scale 0.25 "$T/in.png" "$T/small.bmp"    # a 60 px seal at (260,180)-(319,239)
    if [ "$(pix "$T/small.bmp" 250 200)" = "$base_se" ] && [ "$(pix "$T/small.bmp" 290 210)" != "$(pix "$T/plain.bmp" 290 210)" ]; then
        ok scale_shrinks_the_stamp
    else fail scale_shrinks_the_stamp "expected (250,200) untouched and (290,210) stamped with --scale 0.25"; fi
else
    echo "skip pixel cases: python3 missing"; skipped=$((skipped + 5))
fi

# tiles and text (issue 25): every bad value is refused naming its flag;
# --tile covers the whole image, --text draws with the embedded font or
# --font's, alone or beside the stamp (quadrants: pixels changed against
# the faint-stamp copy, top-left top-right bottom-left bottom-right)
expect_exit tile_negative 2 "--tile: must be a gap in whole pixels" --tile -5 "$T/in.jpg" "$T/o.jpg"
expect_exit tile_too_wide 2 "--tile: must be" --tile 2000% "$T/in.jpg" "$T/o.jpg"
expect_exit text_missing_glyph 2 "--text: the font has no glyph for U+4E2D" --text $'\xe4\xb8\xad' "$T/in.jpg" "$T/o.jpg"
expect_exit text_placeholder 2 "--text: unknown placeholder {month}" --text "{month}" "$T/in.jpg" "$T/o.jpg"
expect_exit text_not_utf8 2 "--text: not valid UTF-8" --text $'bad \xff' "$T/in.jpg" "$T/o.jpg"
expect_exit font_not_a_font 2 "--font: not a TrueType" --text hi --font "$T/text.jpg" "$T/in.jpg" "$T/o.jpg"
expect_exit font_missing 2 "--font: cannot open" --text hi --font "$T/nope.ttf" "$T/in.jpg" "$T/o.jpg"
expect_exit text_color 2 "--text-color: must be #rrggbb" --text hi --text-color red "$T/in.jpg" "$T/o.jpg"
quads() {  # A.bmp B.bmp -> changed pixels per quadrant: "tl tr bl br"
    python3 -c '
import struct, sys
def load(f):
    d = open(f, "rb").read()
    off, w, h = struct.unpack("<I", d[10:14])[0], *struct.unpack("<ii", d[18:26])
    return d, off, w, h, (w * 3 + 3) & ~3
a, off, w, h, row = load(sys.argv[1]); b = load(sys.argv[2])[0]
q = [0, 0, 0, 0]
for y in range(h):
    for x in range(w):
        p = off + (h - 1 - y) * row + x * 3
        if a[p:p + 3] != b[p:p + 3]: q[(y >= h // 2) * 2 + (x >= w // 2)] += 1
print(*q)' "$@"
}
if command -v python3 >/dev/null && [ -f "$T/plain.bmp" ]; then
    "$S" --tile 0.5 --scale 0.15 --opacity 0.5 "$T/in.png" "$T/tile.bmp" 2>"$T/err.txt"
    read -r q1 q2 q3 q4 < <(quads "$T/plain.bmp" "$T/tile.bmp")
    if [ "$q1" -gt 500 ] && [ "$q2" -gt 500 ] && [ "$q3" -gt 500 ] && [ "$q4" -gt 500 ]; then
        ok tile_covers_every_quadrant
    else fail tile_covers_every_quadrant "changed per quadrant: $q1 $q2 $q3 $q4 ($(head -1 "$T/err.txt"))"; fi
    "$S" --stamp none --text $'\xc2\xa9 {year} Caf\xc3\xa9 {basename}' "$T/in.png" "$T/text.bmp" 2>"$T/err.txt"
    read -r q1 q2 q3 q4 < <(quads "$T/plain.bmp" "$T/text.bmp")
    seal=$(quads "$T/plain.bmp" "$T/se.bmp" | cut -d' ' -f4)   # --stamp none: no seal beside the text
    if [ "$q4" -gt 200 ] && [ "$q4" -lt $((seal / 2)) ] && [ "$q1" = 0 ]; then ok text_alone_bottom_right
    else fail text_alone_bottom_right "changed per quadrant: $q1 $q2 $q3 $q4 ($(head -1 "$T/err.txt"))"; fi
    "$S" --scale 0.2 --text "Sparta" --text-gravity nw --text-effect shadow \
        --text-color '#ffd000' "$T/in.png" "$T/both.bmp" 2>"$T/err.txt"
    read -r q1 q2 q3 q4 < <(quads "$T/plain.bmp" "$T/both.bmp")
    if [ "$q1" -gt 100 ] && [ "$q4" -gt 100 ] && [ "$q2" = 0 ]; then ok text_and_stamp_each_at_its_gravity
    else fail text_and_stamp_each_at_its_gravity "changed per quadrant: $q1 $q2 $q3 $q4 ($(head -1 "$T/err.txt"))"; fi
else
    echo "skip tile/text pixel cases: python3 missing"; skipped=$((skipped + 3))
fi
expect_exit tile_on_the_jpeg_splice 0 "" --tile 24 --scale 0.1 "$T/in.jpg" "$T/tile.jpg"
if command -v djpeg >/dev/null && djpeg "$T/tile.jpg" >/dev/null 2>"$T/err.txt" && [ ! -s "$T/err.txt" ]; then
    ok tiled_jpeg_reads_back
else fail tiled_jpeg_reads_back "djpeg: $(head -1 "$T/err.txt")"; fi
cjk=/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf
if [ -f "$cjk" ]; then
    expect_exit text_cjk_with_its_font 0 "" --font "$cjk" --text $'\xe4\xb8\xad\xe6\x96\x87 {date}' "$T/in.jpg" "$T/cjk.jpg"
else echo "skip text_cjk_with_its_font: no $cjk (Debian fonts-droid-fallback)"; skipped=$((skipped + 1)); fi

# SPIM_NO_STB_IMPLEMENTATION: the library with stb compiled by the user in
# another file (non-static stb, stb's own allocator and deflate)
cat > "$T/own_stb.c" <<'EOF'
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STB_TRUETYPE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_truetype.h>
EOF
cat > "$T/lib_only.c" <<'EOF'
#define SPIM_NO_STB_IMPLEMENTATION
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
int main(int argc, char **argv)
{
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_stamp st;
    spim_stamp_options o;
    spim_error err;
    unsigned char px[4] = { 255, 0, 0, 255 };
    st.rgba = px; st.width = 1; st.height = 1;
    memset(&o, 0, sizeof o);
    o.output_format = SPIM_FORMAT_PNG;
    o.scale = 0.5;
    if (argc < 2 || spim_read_file(argv[1], 0, &in, &err) != SPIM_OK) return 2;
    if (spim_stamp_image(in.data, in.len, &st, &o, &out, NULL, &err) != SPIM_OK) { puts(err.message); return 1; }
    return spim_format_detect(out.data, out.len) == SPIM_FORMAT_PNG ? 0 : 1;
}
EOF
CF=$(pkg-config --cflags libcurl libcjson stb zlib) LF="$(pkg-config --libs libcurl libcjson zlib) -lm"
# shellcheck disable=SC2086
if cc -O1 -w $CF -c -o "$T/own_stb.o" "$T/own_stb.c" 2>"$T/err.txt" &&
   cc -std=c99 -Wall -Wextra -Wpedantic -Werror -O1 -I. $CF -c -o "$T/lib_only.o" "$T/lib_only.c" 2>>"$T/err.txt" &&
   cc -o "$T/lib_only" "$T/lib_only.o" "$T/own_stb.o" $LF 2>>"$T/err.txt"; then
    if "$T/lib_only" "$T/in.jpg" >"$T/out.txt" 2>&1; then ok no_stb_implementation
    else fail no_stb_implementation "expected a stamped PNG, got: $(head -1 "$T/out.txt")"; fi
else
    fail no_stb_implementation "expected a clean build with the user's stb, got: $(head -3 "$T/err.txt")"
fi

finish
