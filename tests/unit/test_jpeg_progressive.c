/* Progressive JPEGs in the coefficient domain (path "progressive"): every
   DCT block outside the MCUs the stamp covers keeps its coefficients (read
   back through libjpeg's jpeg_read_coefficients, tests only); the output is
   progressive with the source's scan script, quantisation tables and
   sampling; libjpeg decodes it without a warning; inside the stamp it is as
   exact as libjpeg encoding the exact blend. Sources: libjpeg's own
   progression (the one `cjpeg -progressive` writes: successive
   approximation, EOB runs), a custom script (non-interleaved DC, bands
   split, two refinement steps), every layout, restart intervals, odd sizes,
   and files from cjpeg, Pillow and ImageMagick when they are installed. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "spim_test.h"

#include "jpeg_lib.h"

#include <unistd.h>

typedef struct layout {
    const char *name;
    int grey, h0, v0; /* luma sampling; chroma 1x1 */
} layout;

static const layout layouts[] = {
    { "grey", 1, 1, 1 },  { "4:4:4", 0, 1, 1 }, { "4:2:2", 0, 2, 1 },
    { "4:2:0", 0, 2, 2 }, { "4:4:0", 0, 1, 2 },
};

/* Encode progressively with libjpeg: script 0 its own progression, 1 ours;
   restart = MCUs per interval. */
static int make_prog(spim_buf *out, const unsigned char *rgb, int w, int h, const layout *L,
                     int restart, int script, int quality)
{
    struct jpeg_compress_struct c;
    jerr e;
    unsigned char *mem = NULL;
    unsigned long len = 0;
    unsigned char *row = (unsigned char *)malloc((size_t)w * 3);
    int y, x;
    c.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jerr_exit;
    if (setjmp(e.jump)) {
        jpeg_destroy_compress(&c);
        free(row);
        return 0;
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &mem, &len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = L->grey ? 1 : 3;
    c.in_color_space = L->grey ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (!L->grey) {
        c.comp_info[0].h_samp_factor = L->h0;
        c.comp_info[0].v_samp_factor = L->v0;
        c.comp_info[1].h_samp_factor = c.comp_info[1].v_samp_factor = 1;
        c.comp_info[2].h_samp_factor = c.comp_info[2].v_samp_factor = 1;
    }
    c.restart_interval = (unsigned)restart;
    if (script == 0) {
        jpeg_simple_progression(&c);
    } else {
        c.scan_info = L->grey ? custom1 : custom3;
        c.num_scans = L->grey ? (int)(sizeof custom1 / sizeof custom1[0])
                              : (int)(sizeof custom3 / sizeof custom3[0]);
    }
    jpeg_start_compress(&c, TRUE);
    for (y = 0; y < h; y++) {
        const unsigned char *src = rgb + (size_t)y * (size_t)w * 3;
        JSAMPROW rp = row;
        if (L->grey)
            for (x = 0; x < w; x++) row[x] = src[3 * x + 1];
        else
            memcpy(row, src, (size_t)w * 3);
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    out->len = 0;
    spim_buf_append(out, mem, len);
    free(mem);
    return 1;
}

/* The coefficients of a JPEG, every component, blocks row by row. */
/* What must not change: the SOF (marker, size, sampling, tables), the DQT
   segments and each SOS header (components, band, approximation), in
   order, as text. */
static void structure(const spim_buf *b, char *s, size_t cap)
{
    size_t pos = 2, n = 0;
    s[0] = 0;
    while (pos + 4 <= b->len && b->data[pos] == 0xFF) {
        int m = b->data[pos + 1];
        size_t seg = (size_t)b->data[pos + 2] << 8 | b->data[pos + 3], i;
        if (m == 0xD9 || pos + 2 + seg > b->len) break;
        if ((m >= 0xC0 && m <= 0xCF && m != 0xC4) || m == 0xDB || m == 0xDA) {
            n += (size_t)snprintf(s + n, n < cap ? cap - n : 0, "%02X:", m);
            for (i = 4; i < 2 + seg && n + 3 < cap; i++)
                n += (size_t)snprintf(s + n, cap - n, "%02X", b->data[pos + i]);
            if (n + 2 < cap) s[n++] = ' ', s[n] = 0;
        }
        pos += 2 + seg;
        if (m == 0xDA) { /* past the entropy-coded data */
            while (pos + 1 < b->len && !(b->data[pos] == 0xFF && b->data[pos + 1] != 0 &&
                                         (b->data[pos + 1] < 0xD0 || b->data[pos + 1] > 0xD7)))
                pos++;
        }
    }
}

static spim_stamp the_stamp;

/* The stored rectangle a stamp covers, found by drawing an opaque one on black. */
static void stamp_rect(const spim_stamp *st, int w, int h, int ch, int orientation,
                       const spim_stamp_options *o, int *r)
{
    unsigned char *img = (unsigned char *)calloc((size_t)w * (size_t)h, (size_t)ch);
    spim_stamp white;
    spim_error err;
    int x, y;
    white.width = st->width;
    white.height = st->height;
    white.rgba = (unsigned char *)malloc((size_t)white.width * (size_t)white.height * 4);
    memset(white.rgba, 255, (size_t)white.width * (size_t)white.height * 4);
    r[0] = r[1] = 1 << 30;
    r[2] = r[3] = -1;
    if (spim__stamp_draw(img, w, h, ch, orientation, &white, o, &err) == SPIM_OK)
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++)
                if (img[((size_t)y * (size_t)w + (size_t)x) * (size_t)ch]) {
                    if (x < r[0]) r[0] = x;
                    if (y < r[1]) r[1] = y;
                    if (x > r[2]) r[2] = x;
                    if (y > r[3]) r[3] = y;
                }
    free(white.rgba);
    free(img);
}

static int failures, optimal;

/* Blocks that differ between a and b, outside and inside the covered MCUs. */
static void compare(const coefs *a, const coefs *b, const int *r, int *out, int *in)
{
    int hmax = 1, vmax = 1, ci, x, y;
    for (ci = 0; ci < a->nc; ci++) {
        if (a->hs[ci] > hmax) hmax = a->hs[ci];
        if (a->vs[ci] > vmax) vmax = a->vs[ci];
    }
    if (a->nc == 1) hmax = vmax = 1;
    *out = *in = 0;
    for (ci = 0; ci < a->nc; ci++) {
        int hs = a->nc == 1 ? 1 : a->hs[ci], vs = a->nc == 1 ? 1 : a->vs[ci], mw = 8 * hmax,
            mh = 8 * vmax;
        if (a->w[ci] != b->w[ci] || a->h[ci] != b->h[ci]) {
            (*out)++;
            continue;
        }
        for (y = 0; y < a->h[ci]; y++)
            for (x = 0; x < a->w[ci]; x++) {
                int mx = x / hs, my = y / vs;
                int covered =
                    mx >= r[0] / mw && mx <= r[2] / mw && my >= r[1] / mh && my <= r[3] / mh;
                size_t off = ((size_t)y * (size_t)a->w[ci] + (size_t)x) * 64;
                int same = memcmp(a->blk[ci] + off, b->blk[ci] + off, 64 * sizeof(short)) == 0;
                if (!same) (*(covered ? in : out))++;
            }
    }
}

/* Stamp one progressive input and check everything the path promises. */
static void check_prog(const char *what, const spim_buf *in, int w, int h, int grey,
                       const spim_stamp_options *o)
{
    spim_buf out = SPIM_BUF_INIT;
    spim_image_info info;
    spim_error err;
    coefs a, b;
    static char sa[1 << 16], sb[1 << 16];
    int r[4], rc, differ_out = 0, differ_in = 0, bad = 0;
    memset(&info, 0, sizeof info);
    rc = spim_stamp_image(in->data, in->len, &the_stamp, o, &out, &info, &err);
    CHECKF(rc == SPIM_OK, "%s: %s", what, err.message);
    CHECKF(info.path && !strcmp(info.path, "progressive"), "%s: path %s", what,
           info.path ? info.path : "(null)");
    if (rc != SPIM_OK || !info.path || strcmp(info.path, "progressive")) {
        failures++;
        spim_buf_free(&out);
        return;
    }
    if (info.huffman && !strcmp(info.huffman, "optimal")) optimal++;
    structure(in, sa, sizeof sa);
    structure(&out, sb, sizeof sb);
    CHECKF(!strcmp(sa, sb),
           "%s: frame, tables or scan script changed:\n      in  %.200s\n      out %.200s", what,
           sa, sb);
    CHECK_INT(1, read_coefs(in, &a));
    rc = read_coefs(&out, &b);
    CHECKF(rc == 1, "%s: libjpeg reads the output %s", what,
           rc == 2 ? "with warnings" : "not at all");
    stamp_rect(&the_stamp, w, h, grey ? 1 : 3, 1, o, r);
    if (rc) compare(&a, &b, r, &differ_out, &differ_in);
    CHECKF(rc && differ_out == 0, "%s: %d blocks outside the stamp's MCUs changed", what,
           differ_out);
    CHECKF(differ_in > 0, "%s: no block under the stamp changed", what);
    bad = rc != 1 || differ_out || !differ_in || strcmp(sa, sb) != 0;
    failures += bad;
    free_coefs(&a);
    free_coefs(&b);
    spim_buf_free(&out);
}

TEST(every_layout_script_restart_gravity)
{
    unsigned char *rgb = make_photo(333, 251, 1);
    spim_buf in = SPIM_BUF_INIT;
    size_t li;
    int mode, g, cases = 0;
    failures = optimal = 0;
    for (li = 0; li < sizeof layouts / sizeof layouts[0]; li++)
        for (mode = 0; mode < 4; mode++) {
            int restart = (mode & 1) ? 5 : 0, script = mode >> 1;
            REQUIRE(make_prog(&in, rgb, 333, 251, &layouts[li], restart, script, 85));
            for (g = 0; g < 9; g++) {
                spim_stamp_options o;
                char what[128];
                memset(&o, 0, sizeof o);
                o.gravity = (spim_gravity)g;
                o.margin = 7;
                snprintf(what, sizeof what, "%s restart=%d script=%d gravity=%d", layouts[li].name,
                         restart, script, g);
                check_prog(what, &in, 333, 251, layouts[li].grey, &o);
                cases++;
            }
        }
    CHECKF(failures == 0, "%d of %d cases failed", failures, cases);
    printf("    %d cases (%d with optimal tables)\n", cases, optimal);
    spim_buf_free(&in);
    free(rgb);
}

TEST(odd_sizes)
{
    static const int sizes[][2] = { { 97, 61 }, { 16, 16 }, { 129, 257 },
                                    { 1, 1 },   { 9, 17 },  { 801, 13 } };
    spim_buf in = SPIM_BUF_INIT;
    size_t si, li;
    int cases = 0;
    failures = optimal = 0;
    for (si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int w = sizes[si][0], h = sizes[si][1];
        unsigned char *rgb = make_photo(w, h, (int)si + 2);
        for (li = 0; li < sizeof layouts / sizeof layouts[0]; li++) {
            spim_stamp_options o;
            char what[128];
            REQUIRE(make_prog(&in, rgb, w, h, &layouts[li], (int)(si & 1) * 2, (int)(li & 1), 90));
            memset(&o, 0, sizeof o);
            o.gravity = (spim_gravity)((si + li) % 9);
            o.scale = 0.4;
            snprintf(what, sizeof what, "%dx%d %s", w, h, layouts[li].name);
            check_prog(what, &in, w, h, layouts[li].grey, &o);
            cases++;
        }
        free(rgb);
    }
    CHECKF(failures == 0, "%d of %d cases failed", failures, cases);
    printf("    %d cases (%d with optimal tables)\n", cases, optimal);
    spim_buf_free(&in);
}

/* Mean absolute error per channel inside the stored rectangle r between
   the exact blend over the decoded source and the decoded output. */
static void stamp_error(const spim_buf *in, const spim_buf *out, const spim_stamp *st,
                        const spim_stamp_options *o, const int *r, double *mae, int *channels)
{
    spim_image src, got;
    spim_error err;
    double sum[3] = { 0, 0, 0 };
    long n = 0;
    int x, y, k, ch;
    mae[0] = mae[1] = mae[2] = 1e9;
    if (spim_image_decode(in->data, in->len, 0, &src, &err) != SPIM_OK) return;
    if (spim__stamp_draw(src.pixels, src.width, src.height, src.channels, 1, st, o, &err) !=
            SPIM_OK ||
        spim_image_decode(out->data, out->len, 0, &got, &err) != SPIM_OK) {
        spim_image_free(&src);
        return;
    }
    ch = *channels = src.channels;
    for (y = r[1]; y <= r[3] && got.channels == ch; y++)
        for (x = r[0]; x <= r[2]; x++, n++)
            for (k = 0; k < ch; k++) {
                size_t i = ((size_t)y * (size_t)src.width + (size_t)x) * (size_t)ch + (size_t)k;
                sum[k] += abs((int)src.pixels[i] - (int)got.pixels[i]);
            }
    for (k = 0; k < ch && n; k++) mae[k] = sum[k] / (double)n;
    spim_image_free(&src);
    spim_image_free(&got);
}

/* The floor: libjpeg encoding the exact blend over the decoded source with
   the same quality (so the same quantisation tables) and layout. */
static int ideal_encoding(const spim_buf *in, const spim_stamp *st, const spim_stamp_options *o,
                          const layout *L, spim_buf *ideal)
{
    spim_image src;
    spim_error err;
    unsigned char *rgb;
    size_t i, n;
    int ok;
    if (spim_image_decode(in->data, in->len, 0, &src, &err) != SPIM_OK) return 0;
    if (spim__stamp_draw(src.pixels, src.width, src.height, src.channels, 1, st, o, &err) !=
        SPIM_OK) {
        spim_image_free(&src);
        return 0;
    }
    n = (size_t)src.width * (size_t)src.height;
    rgb = (unsigned char *)malloc(n * 3);
    for (i = 0; rgb && i < n * 3; i++) rgb[i] = src.pixels[src.channels == 1 ? i / 3 : i];
    ok = rgb && make_prog(ideal, rgb, src.width, src.height, L, 0, 0, 90);
    free(rgb);
    spim_image_free(&src);
    return ok;
}

/* Inside the stamp the output is within 0.3 per channel of libjpeg encoding
   the exact blend with the file's tables and layout: the default stamp on
   the shared sample photo, every layout, both scripts. */
TEST(stamp_is_as_exact_as_libjpeg)
{
    const char *shared = getenv("SPIM_SHARED");
    char path[1024];
    spim_buf photo = SPIM_BUF_INIT, png = SPIM_BUF_INIT, in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_buf ideal = SPIM_BUF_INIT;
    spim_image img;
    spim_stamp st;
    spim_error err;
    size_t li;
    int script;
    snprintf(path, sizeof path, "%s/samples/ben.jpg", shared ? shared : "../shared");
    if (spim_read_file(path, 0, &photo, &err) != SPIM_OK) SKIP("no shared sample photo");
    snprintf(path, sizeof path, "%s/assets/stamp.png",
             getenv("SPIM_BUILD") ? getenv("SPIM_BUILD") : "build");
    if (spim_read_file(path, 0, &png, &err) != SPIM_OK) {
        spim_buf_free(&photo);
        SKIP("no build/assets/stamp.png (make builds it)");
    }
    REQUIRE(spim_stamp_load(&st, png.data, png.len, &err) == SPIM_OK);
    REQUIRE(spim_image_decode(photo.data, photo.len, 0, &img, &err) == SPIM_OK &&
            img.channels == 3);
    for (li = 0; li < sizeof layouts / sizeof layouts[0]; li++)
        for (script = 0; script < 2; script++) {
            spim_stamp_options o;
            spim_image_info info;
            double mae[3], floor_[3];
            int r[4], k, ch = 0;
            REQUIRE(make_prog(&in, img.pixels, img.width, img.height, &layouts[li], 0, script, 90));
            memset(&o, 0, sizeof o);
            o.gravity = SPIM_GRAVITY_C;
            out.len = 0;
            memset(&info, 0, sizeof info);
            REQUIRE(spim_stamp_image(in.data, in.len, &st, &o, &out, &info, &err) == SPIM_OK);
            CHECK_STR("progressive", info.path);
            stamp_rect(&st, img.width, img.height, layouts[li].grey ? 1 : 3, 1, &o, r);
            stamp_error(&in, &out, &st, &o, r, mae, &ch);
            REQUIRE(ideal_encoding(&in, &st, &o, &layouts[li], &ideal));
            stamp_error(&in, &ideal, &st, &o, r, floor_, &k);
            for (k = 0; k < ch; k++) {
                CHECKF(mae[k] <= floor_[k] + 0.3,
                       "%s script %d channel %d: mean abs error %.3f, "
                       "libjpeg encoding the exact blend %.3f",
                       layouts[li].name, script, k, mae[k], floor_[k]);
                printf("    %s script %d channel %d: mean abs error %.3f inside the stamp (libjpeg "
                       "on the "
                       "exact blend %.3f)\n",
                       layouts[li].name, script, k, mae[k], floor_[k]);
            }
        }
    spim_buf_free(&ideal);
    spim_image_free(&img);
    spim_stamp_free(&st);
    spim_buf_free(&photo);
    spim_buf_free(&png);
    spim_buf_free(&in);
    spim_buf_free(&out);
}

/* Files from the encoders people use, when installed: cjpeg's progression
   in every layout, with restart intervals and a -scans script; Pillow's
   progressive=True; ImageMagick's -interlace Plane. */
TEST(real_encoders)
{
    static const char *const makers[] = {
        "cjpeg -progressive -quality 85 -sample 1x1 %s.ppm > %s",
        "cjpeg -progressive -quality 85 -sample 2x1 -restart 3 %s.ppm > %s",
        "cjpeg -progressive -quality 90 -sample 2x2 %s.ppm > %s",
        "cjpeg -progressive -quality 90 -sample 1x2 -restart 1B %s.ppm > %s",
        "cjpeg -progressive -grayscale -quality 80 %s.ppm > %s",
        "cjpeg -quality 88 -scans %s.scans %s.ppm > %s",
        "/usr/bin/python3 -c 'import sys; from PIL import Image; Image.open(sys.argv[1] + \".ppm\")"
        ".save(sys.argv[2], quality=87, progressive=True)' %s %s",
        "/usr/bin/python3 -c 'import sys; from PIL import Image; Image.open(sys.argv[1] + \".ppm\")"
        ".save(sys.argv[2], quality=80, progressive=True, optimize=True, subsampling=0)' %s %s",
        "convert %s.ppm -interlace Plane -quality 86 %s",
        "convert %s.ppm -colorspace Gray -interlace Plane -quality 86 %s",
    };
    static const char scans[] = "0: 0 0 0 1;\n1 2: 0 0 0 0;\n0: 1 5 0 2;\n2: 1 63 0 1;\n"
                                "1: 1 63 0 0;\n0: 6 63 0 2;\n0: 1 63 2 1;\n0: 0 0 1 0;\n"
                                "2: 1 63 1 0;\n0: 1 63 1 0;\n";
    const int w = 301, h = 203;
    unsigned char *rgb = make_photo(w, h, 9);
    char base[] = "/tmp/spim_prog_XXXXXX", cmd[1024], file[600];
    spim_buf in = SPIM_BUF_INIT;
    spim_error err;
    FILE *f;
    size_t i;
    int fd = mkstemp(base), cases = 0, made = 0;
    REQUIRE(fd >= 0);
    close(fd);
    snprintf(file, sizeof file, "%s.ppm", base);
    REQUIRE((f = fopen(file, "wb")) != NULL);
    fprintf(f, "P6\n%d %d\n255\n", w, h);
    fwrite(rgb, 3, (size_t)w * (size_t)h, f);
    fclose(f);
    snprintf(file, sizeof file, "%s.scans", base);
    REQUIRE((f = fopen(file, "w")) != NULL);
    fputs(scans, f);
    fclose(f);
    failures = optimal = 0;
    for (i = 0; i < sizeof makers / sizeof makers[0]; i++) {
        spim_stamp_options o;
        snprintf(file, sizeof file, "%s.jpg", base);
        if (strstr(makers[i], "-scans"))
            snprintf(cmd, sizeof cmd, makers[i], base, base, file);
        else
            snprintf(cmd, sizeof cmd, makers[i], base, file);
        strncat(cmd, " 2>/dev/null", sizeof cmd - strlen(cmd) - 1);
        in.len = 0;
        if (system(cmd) != 0 || spim_read_file(file, 0, &in, &err) != SPIM_OK || in.len < 4) {
            printf("    skipped (not installed?): %.60s\n", makers[i]);
            continue;
        }
        made++;
        memset(&o, 0, sizeof o);
        o.gravity = (spim_gravity)(i % 9);
        o.margin = (int)i;
        check_prog(makers[i], &in, w, h, strstr(makers[i], "ray") != NULL, &o);
        cases++;
    }
    CHECKF(failures == 0, "%d of %d files failed", failures, cases);
    printf("    %d of %d encoders' files stamped (%d with optimal tables)\n", cases, made, optimal);
    snprintf(cmd, sizeof cmd, "rm -f %s %s.ppm %s.scans %s.jpg", base, base, base, base);
    CHECK_INT(0, system(cmd));
    spim_buf_free(&in);
    free(rgb);
}

/* Truncations, bit flips and marker damage of progressive files (EOB runs,
   refinements, restart intervals): each is an error or a JPEG that decodes,
   never a crash (ASan and UBSan watch). */
TEST(hostile_progressive_files_fail_cleanly)
{
    unsigned char *rgb = make_photo(120, 90, 5);
    const size_t nl = sizeof layouts / sizeof layouts[0];
    spim_buf in = SPIM_BUF_INIT, bad = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_stamp_options o;
    spim_error err;
    size_t li, cut;
    unsigned r = 7;
    int i, ok = 0, failed = 0;
    memset(&o, 0, sizeof o);
    o.max_pixels = 1u << 20;
    for (li = 0; li < 2 * nl; li++) {
        REQUIRE(make_prog(&in, rgb, 120, 90, &layouts[li % nl], li & 1 ? 3 : 0, li >= nl, 85));
        for (cut = 0; cut < in.len; cut += 1 + in.len / 97) {
            out.len = 0;
            if (spim_stamp_image(in.data, cut, &the_stamp, &o, &out, NULL, &err) == SPIM_OK)
                ok++;
            else
                failed++;
        }
        for (i = 0; i < 300; i++) {
            spim_image img;
            bad.len = 0;
            spim_buf_append(&bad, in.data, in.len);
            r = r * 1103515245u + 12345u;
            bad.data[(r >> 8) % bad.len] ^= (unsigned char)(1u << ((r >> 4) & 7));
            if (i & 1) {
                r = r * 1103515245u + 12345u;
                bad.data[(r >> 8) % bad.len] = i & 2 ? 0xFF : 0xD3;
            }
            out.len = 0;
            if (spim_stamp_image(bad.data, bad.len, &the_stamp, &o, &out, NULL, &err) != SPIM_OK) {
                failed++;
                CHECKF(out.len == 0, "a failed stamp left %zu bytes", out.len);
                continue;
            }
            ok++;
            CHECKF(spim_format_detect(out.data, out.len) == SPIM_FORMAT_JPEG,
                   "output is not a JPEG");
            if (spim_image_decode(out.data, out.len, 0, &img, &err) == SPIM_OK)
                spim_image_free(&img);
        }
    }
    printf("    %d stamped, %d refused\n", ok, failed);
    spim_buf_free(&in);
    spim_buf_free(&bad);
    spim_buf_free(&out);
    free(rgb);
}

/* Tiles: every block of an MCU no tile touches keeps its coefficients
   (those between the tiles too), some under the tiles change; found by
   drawing opaque white tiles on black. */
TEST(tiles_recode_only_the_mcus_they_touch)
{
    unsigned char *rgb = make_photo(333, 251, 5);
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    size_t li;
    int script, cases = 0;
    failures = 0;
    for (li = 0; li < sizeof layouts / sizeof layouts[0]; li++)
        for (script = 0; script < 2; script++) {
            spim_stamp_options o;
            spim_image_info info;
            spim_error err;
            spim_stamp white = the_stamp;
            coefs a, b;
            unsigned char *img;
            int ci, x, y, ch = layouts[li].grey ? 1 : 3, moved = 0, changed = 0, gaps = 0;
            int mw = 8 * (layouts[li].grey ? 1 : layouts[li].h0),
                mh = 8 * (layouts[li].grey ? 1 : layouts[li].v0);
            int mx = (333 + mw - 1) / mw, my = (251 + mh - 1) / mh;
            unsigned char *mask = (unsigned char *)calloc((size_t)mx * (size_t)my, 1);
            REQUIRE(make_prog(&in, rgb, 333, 251, &layouts[li], script ? 4 : 0, script, 88));
            memset(&o, 0, sizeof o);
            o.tile = 1;
            o.tile_gap = 40 + 7 * script;
            o.gravity = (spim_gravity)(li % 9);
            memset(&info, 0, sizeof info);
            out.len = 0;
            CHECKF(spim_stamp_image(in.data, in.len, &the_stamp, &o, &out, &info, &err) == SPIM_OK,
                   "%s", err.message);
            CHECK_STR("progressive", info.path);
            white.rgba = (unsigned char *)malloc((size_t)white.width * (size_t)white.height * 4);
            memset(white.rgba, 255, (size_t)white.width * (size_t)white.height * 4);
            img = (unsigned char *)calloc((size_t)333 * 251, (size_t)ch);
            REQUIRE(spim__stamp_draw(img, 333, 251, ch, 1, &white, &o, &err) == SPIM_OK);
            for (y = 0; y < 251; y++)
                for (x = 0; x < 333; x++)
                    if (img[((size_t)y * 333 + (size_t)x) * (size_t)ch])
                        mask[(y / mh) * mx + x / mw] = 1;
            for (x = 0; x < mx * my; x++) gaps += !mask[x];
            REQUIRE(read_coefs(&in, &a) == 1);
            CHECK_INT(1, read_coefs(&out, &b));
            for (ci = 0; ci < a.nc && ci < b.nc; ci++) {
                int hs = a.nc == 1 ? 1 : a.hs[ci], vs = a.nc == 1 ? 1 : a.vs[ci];
                for (y = 0; y < a.h[ci]; y++)
                    for (x = 0; x < a.w[ci]; x++) {
                        size_t off = ((size_t)y * (size_t)a.w[ci] + (size_t)x) * 64;
                        int same = !memcmp(a.blk[ci] + off, b.blk[ci] + off, 64 * sizeof(short));
                        if (mask[(y / vs) * mx + x / hs])
                            changed += !same;
                        else
                            moved += !same;
                    }
            }
            CHECKF(moved == 0 && changed > 0 && gaps > 0,
                   "%s script %d: %d blocks no tile touches changed, "
                   "%d under the tiles, %d MCUs untouched",
                   layouts[li].name, script, moved, changed, gaps);
            failures += moved || !changed || !gaps;
            cases++;
            free_coefs(&a);
            free_coefs(&b);
            free(img);
            free(white.rgba);
            free(mask);
        }
    CHECKF(failures == 0, "%d of %d cases failed", failures, cases);
    printf("    %d tiled cases\n", cases);
    spim_buf_free(&in);
    spim_buf_free(&out);
    free(rgb);
}

int main(void)
{
    spim_stamp s;
    int x, y;
    s.width = 45;
    s.height = 33;
    s.rgba = (unsigned char *)malloc(45 * 33 * 4);
    for (y = 0; y < 33; y++)
        for (x = 0; x < 45; x++) {
            unsigned char *p = s.rgba + ((size_t)y * 45 + (size_t)x) * 4;
            p[0] = (unsigned char)(x * 255 / 45);
            p[1] = (unsigned char)(y * 255 / 33);
            p[2] = (unsigned char)((x + y) & 255);
            p[3] = (unsigned char)(1 + (x * 7 + y * 3) % 255);
        }
    the_stamp = s;
    RUN(every_layout_script_restart_gravity);
    RUN(odd_sizes);
    RUN(stamp_is_as_exact_as_libjpeg);
    RUN(real_encoders);
    RUN(hostile_progressive_files_fail_cleanly);
    RUN(tiles_recode_only_the_mcus_they_touch);
    free(the_stamp.rgba);
    return spim_test_finish();
}
