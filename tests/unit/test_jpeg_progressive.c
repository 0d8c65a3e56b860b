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

#include <setjmp.h>
#include <stdio.h>
#include <jpeglib.h>

typedef struct jerr {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
} jerr;

static void jerr_exit(j_common_ptr c)
{
    longjmp(((jerr *)c->err)->jump, 1);
}

/* A photo-like test image: gradients, texture and hard edges. */
static unsigned char *make_photo(int w, int h, int seed)
{
    unsigned char *p = (unsigned char *)malloc((size_t)w * (size_t)h * 3);
    unsigned r = (unsigned)seed * 2654435761u + 1;
    int x, y, k;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++)
            for (k = 0; k < 3; k++) {
                int v = (x * (k + 1) * 255) / w / 2 + (y * (3 - k) * 255) / h / 3;
                r = r * 1103515245u + 12345u;
                v += (int)((r >> 16) % 24) - 12;
                if (((x / 37) + (y / 23)) % 5 == 0) v = 255 - v;
                p[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)k] =
                    (unsigned char)(v < 0     ? 0
                                    : v > 255 ? 255
                                              : v);
            }
    return p;
}

typedef struct layout {
    const char *name;
    int grey, h0, v0; /* luma sampling; chroma 1x1 */
} layout;

static const layout layouts[] = {
    { "grey", 1, 1, 1 },  { "4:4:4", 0, 1, 1 }, { "4:2:2", 0, 2, 1 },
    { "4:2:0", 0, 2, 2 }, { "4:4:0", 0, 1, 2 },
};

/* A script of libjpeg's kind of our own: DC non-interleaved then for two
   components together, bands split, a band refined in two steps. */
static const jpeg_scan_info custom3[] = {
    { 1, { 0 }, 0, 0, 0, 2 },   { 2, { 1, 2 }, 0, 0, 0, 1 }, { 1, { 0 }, 1, 9, 0, 2 },
    { 1, { 0 }, 10, 63, 0, 1 }, { 1, { 1 }, 1, 63, 0, 0 },   { 1, { 2 }, 1, 63, 0, 1 },
    { 1, { 0 }, 0, 0, 2, 1 },   { 1, { 0 }, 0, 0, 1, 0 },    { 2, { 1, 2 }, 0, 0, 1, 0 },
    { 1, { 0 }, 1, 9, 2, 1 },   { 1, { 0 }, 1, 9, 1, 0 },    { 1, { 0 }, 10, 63, 1, 0 },
    { 1, { 2 }, 1, 63, 1, 0 },
};
static const jpeg_scan_info custom1[] = {
    { 1, { 0 }, 0, 0, 0, 1 },  { 1, { 0 }, 1, 2, 0, 2 }, { 1, { 0 }, 3, 63, 0, 1 },
    { 1, { 0 }, 1, 2, 2, 1 },  { 1, { 0 }, 0, 0, 1, 0 }, { 1, { 0 }, 1, 2, 1, 0 },
    { 1, { 0 }, 3, 63, 1, 0 },
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
typedef struct coefs {
    int nc, w[3], h[3], hs[3], vs[3];
    short *blk[3];
} coefs;

static int read_coefs(const spim_buf *in, coefs *k)
{
    struct jpeg_decompress_struct d;
    jerr e;
    jvirt_barray_ptr *arr;
    int ci;
    JDIMENSION r;
    memset(k, 0, sizeof *k);
    d.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jerr_exit;
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&d);
        return 0;
    }
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, in->data, (unsigned long)in->len);
    jpeg_read_header(&d, TRUE);
    arr = jpeg_read_coefficients(&d);
    k->nc = d.num_components;
    for (ci = 0; ci < k->nc && ci < 3; ci++) {
        jpeg_component_info *cp = d.comp_info + ci;
        k->w[ci] = (int)cp->width_in_blocks;
        k->h[ci] = (int)cp->height_in_blocks;
        k->hs[ci] = cp->h_samp_factor;
        k->vs[ci] = cp->v_samp_factor;
        k->blk[ci] = (short *)malloc((size_t)k->w[ci] * (size_t)k->h[ci] * 64 * sizeof(short));
        for (r = 0; r < cp->height_in_blocks; r++) {
            JBLOCKARRAY row = (d.mem->access_virt_barray)((j_common_ptr)&d, arr[ci], r, 1, FALSE);
            JDIMENSION x;
            int i;
            for (x = 0; x < cp->width_in_blocks; x++)
                for (i = 0; i < 64; i++)
                    k->blk[ci][((size_t)r * (size_t)k->w[ci] + x) * 64 + (size_t)i] = row[0][x][i];
        }
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    return e.mgr.num_warnings == 0 ? 1 : 2;
}

static void free_coefs(coefs *k)
{
    int i;
    for (i = 0; i < 3; i++) free(k->blk[i]);
}

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
    free(the_stamp.rgba);
    return spim_test_finish();
}
