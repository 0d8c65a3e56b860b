/* JPEG in the compressed domain (the splice in spim_stamp_image): every DCT
   block outside the MCUs the stamp covers is the source's, read back through
   libjpeg's jpeg_read_coefficients (libjpeg62-turbo-dev, tests only); the
   quantisation tables and sampling factors are the source's; the stamp is as
   exact as on the pixel path; what the splice cannot take is recoded. The
   inputs are made here with libjpeg's encoder: every layout, restart
   intervals, optimised tables, odd sizes, EXIF orientations 1..8. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "spim_test.h"

#include "jpeg_lib.h"

typedef struct layout {
    const char *name;
    int grey, h0, v0;            /* luma sampling; chroma 1x1 */
} layout;

static const layout layouts[] = {
    { "grey", 1, 1, 1 }, { "4:4:4", 0, 1, 1 }, { "4:2:2", 0, 2, 1 }, { "4:2:0", 0, 2, 2 }, { "4:4:0", 0, 1, 2 },
};

/* When set, make_jpeg codes the AC coefficients with a table that is full
   where a re-tabling could make room: codes of 1 to 9 bits, then 127 of 16
   bits, and no code for sizes 6 to 10 after runs of 0 to 4 zeros nor for
   size 10 after 5 (what a stamp's edges want, and a smooth photo never
   does). */
static int crafted_ac;

static void craft_ac_table(JHUFF_TBL *t)
{
    static const unsigned char shortest[9] = { 0x00, 0x01, 0x02, 0x11, 0x03, 0x21, 0x12, 0x31, 0xF0 };
    int s, n = 9, i;
    memset(t->bits, 0, sizeof t->bits);
    for (i = 1; i <= 9; i++) t->bits[i] = 1;
    t->bits[16] = 127;
    memcpy(t->huffval, shortest, sizeof shortest);
    for (s = 1; s < 256; s++) {
        int run = s >> 4, size = s & 15, have = 0;
        if (size < 1 || size > 10 || (run <= 4 && size >= 6) || (run == 5 && size == 10)) continue;
        for (i = 0; i < 9; i++) have |= shortest[i] == s;
        if (!have) t->huffval[n++] = (UINT8)s;
    }
}

/* Encode with libjpeg; restart = MCUs per interval (0 none); orientation 0 = no EXIF. */
static int make_jpeg(spim_buf *out, const unsigned char *rgb, int w, int h, const layout *L, int restart,
                     int optimize, int progressive, int orientation, int quality)
{
    struct jpeg_compress_struct c;
    jerr e;
    unsigned char *mem = NULL;
    unsigned long len = 0;
    unsigned char *row = (unsigned char *)malloc((size_t)w * 3);
    int y, x;
    c.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jerr_exit;
    if (setjmp(e.jump)) { jpeg_destroy_compress(&c); free(row); return 0; }
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
    c.optimize_coding = optimize ? TRUE : FALSE;
    if (crafted_ac) {
        craft_ac_table(c.ac_huff_tbl_ptrs[0]);
        craft_ac_table(c.ac_huff_tbl_ptrs[1]);
    }
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    if (orientation) {
        unsigned char ex[6 + 26] = { 'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
                                     0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0 };
        ex[25] = (unsigned char)orientation;
        jpeg_write_marker(&c, JPEG_APP0 + 1, ex, sizeof ex);
    }
    for (y = 0; y < h; y++) {
        const unsigned char *src = rgb + (size_t)y * (size_t)w * 3;
        JSAMPROW rp = row;
        if (L->grey) for (x = 0; x < w; x++) row[x] = src[3 * x + 1];
        else memcpy(row, src, (size_t)w * 3);
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
static spim_stamp the_stamp;       /* the real, translucent stamp */

/* The stored rectangle a stamp of the_stamp's size covers (x0, y0, x1, y1
   inclusive), found by drawing an opaque white stamp on black. */
static void stamp_rect(int w, int h, int ch, int orientation, const spim_stamp_options *o, int *r)
{
    unsigned char *img = (unsigned char *)calloc((size_t)w * (size_t)h, (size_t)ch);
    spim_stamp white;
    spim_error err;
    int x, y;
    white.width = the_stamp.width;
    white.height = the_stamp.height;
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

static int failures, huffman_file, huffman_constrained, huffman_extended, huffman_optimal;

/* stamp_rect measures the_stamp's footprint: let it measure another. */
static void the_stamp_swap(spim_stamp *s)
{
    spim_stamp t = the_stamp;
    the_stamp = *s;
    *s = t;
}

/* Stamp one input with the splice and check everything the issue promises;
   huffman: the tables it must have taken ("file", "optimal"; NULL either),
   the output is kept in *kept when not NULL. */
static void check_splice_as(const char *what, const spim_buf *in, int w, int h, int grey, int orientation,
                            const spim_stamp_options *o, const char *huffman, spim_buf *kept)
{
    spim_buf out = SPIM_BUF_INIT;
    spim_image_info info;
    spim_error err;
    coefs a, b;
    int r[4], ci, ch = grey ? 1 : 3, hmax = 1, vmax = 1, differ_out = 0, differ_in = 0, rc;
    memset(&info, 0, sizeof info);
    spim__error_clear(&err);
    rc = spim_stamp_image(in->data, in->len, &the_stamp, o, &out, &info, &err);
    CHECKF(rc == SPIM_OK, "%s: %s", what, err.message);
    CHECKF(info.path && strcmp(info.path, "splice") == 0, "%s: path %s", what, info.path ? info.path : "(null)");
    if (rc != SPIM_OK || !info.path || strcmp(info.path, "splice") != 0) { failures++; spim_buf_free(&out); return; }
    CHECKF(info.huffman && (!strcmp(info.huffman, "file") || !strcmp(info.huffman, "constrained") ||
                            !strcmp(info.huffman, "extended") || !strcmp(info.huffman, "optimal")),
           "%s: huffman %s", what, info.huffman ? info.huffman : "(null)");
    if (info.huffman && !strcmp(info.huffman, "optimal")) huffman_optimal++;
    else if (info.huffman && !strcmp(info.huffman, "extended"))
        huffman_extended++;
    else if (info.huffman && !strcmp(info.huffman, "constrained"))
        huffman_constrained++;
    else huffman_file++;
    if (huffman && (!info.huffman || !strstr(huffman, info.huffman))) {
        CHECKF(0, "%s: huffman %s, want %s", what, info.huffman ? info.huffman : "(null)", huffman);
        failures++;
    }
    CHECK_INT(1, read_coefs(in, &a));
    rc = read_coefs(&out, &b);
    CHECKF(rc == 1, "%s: libjpeg reads the output %s", what, rc == 2 ? "with warnings" : "not at all");
    stamp_rect(w, h, ch, orientation, o, r);
    CHECKF(r[2] >= 0, "%s: the probe stamp landed nowhere", what);
    CHECK_INT(a.nc, b.nc);
    for (ci = 0; ci < a.nc && ci < b.nc; ci++) {
        if (a.hs[ci] > hmax) hmax = a.hs[ci];
        if (a.vs[ci] > vmax) vmax = a.vs[ci];
    }
    if (a.nc == 1) hmax = vmax = a.hs[0] = a.vs[0] = 1;
    for (ci = 0; ci < a.nc && ci < b.nc; ci++) {
        int x, y, mw = 8 * hmax, mh = 8 * vmax;
        CHECKF(a.hs[ci] == b.hs[ci] || a.nc == 1, "%s: sampling of component %d changed", what, ci);
        CHECKF(a.vs[ci] == b.vs[ci] || a.nc == 1, "%s: sampling of component %d changed", what, ci);
        CHECKF(memcmp(a.q[ci], b.q[ci], sizeof a.q[ci]) == 0, "%s: quantisation table of component %d changed", what, ci);
        CHECK(a.w[ci] == b.w[ci] && a.h[ci] == b.h[ci]);
        if (a.w[ci] != b.w[ci] || a.h[ci] != b.h[ci]) continue;
        for (y = 0; y < a.h[ci]; y++)
            for (x = 0; x < a.w[ci]; x++) {
                int mx = x / a.hs[ci], my = y / a.vs[ci];
                int covered = mx >= r[0] / mw && mx <= r[2] / mw && my >= r[1] / mh && my <= r[3] / mh;
                size_t off = ((size_t)y * (size_t)a.w[ci] + (size_t)x) * 64;
                int same = memcmp(a.blk[ci] + off, b.blk[ci] + off, 64 * sizeof(short)) == 0;
                if (!covered && !same) {
                    if (!differ_out) printf("    %s: component %d block (%d,%d) outside the stamp's MCUs changed\n",
                                            what, ci, x, y);
                    differ_out++;
                }
                if (covered && !same) differ_in++;
            }
    }
    CHECKF(differ_out == 0, "%s: %d blocks outside the stamp changed", what, differ_out);
    CHECKF(differ_in > 0, "%s: no block under the stamp changed", what);
    if (differ_out || !differ_in) failures++;
    free_coefs(&a);
    free_coefs(&b);
    if (kept) { spim_buf_free(kept); *kept = out; }
    else spim_buf_free(&out);
}

static void check_splice(const char *what, const spim_buf *in, int w, int h, int grey, int orientation,
                         const spim_stamp_options *o)
{
    check_splice_as(what, in, w, h, grey, orientation, o, NULL, NULL);
}

TEST(every_layout_restart_optimised_gravity)
{
    unsigned char *rgb = make_photo(333, 251, 1);
    spim_buf in = SPIM_BUF_INIT;
    size_t li;
    int mode, g, cases = 0;
    failures = huffman_file = huffman_constrained = huffman_extended = huffman_optimal = 0;
    for (li = 0; li < sizeof layouts / sizeof layouts[0]; li++)
        for (mode = 0; mode < 4; mode++) {
            int restart = (mode & 1) ? 5 : 0, optimize = (mode & 2) != 0;
            REQUIRE(make_jpeg(&in, rgb, 333, 251, &layouts[li], restart, optimize, 0, 0, 88));
            for (g = 0; g < 9; g++) {
                spim_stamp_options o;
                char what[128];
                memset(&o, 0, sizeof o);
                o.gravity = (spim_gravity)g;
                o.margin = 7;
                snprintf(what, sizeof what, "%s restart=%d optimize=%d gravity=%d", layouts[li].name, restart,
                         optimize, g);
                check_splice(what, &in, 333, 251, layouts[li].grey, 1, &o);
                cases++;
            }
        }
    CHECKF(failures == 0, "%d of %d cases failed", failures, cases);
    printf("    %d cases (huffman: %d file, %d constrained, %d extended, %d optimal)\n", cases,
           huffman_file, huffman_constrained, huffman_extended, huffman_optimal);
    spim_buf_free(&in);
    free(rgb);
}

TEST(exif_orientations_and_odd_sizes)
{
    static const int sizes[][2] = { { 97, 61 }, { 16, 16 }, { 129, 257 }, { 1, 1 }, { 9, 17 } };
    unsigned char *rgb;
    spim_buf in = SPIM_BUF_INIT;
    size_t si, li;
    int orient, cases = 0;
    failures = huffman_file = huffman_constrained = huffman_extended = huffman_optimal = 0;
    for (si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int w = sizes[si][0], h = sizes[si][1];
        rgb = make_photo(w, h, (int)si + 2);
        for (li = 0; li < sizeof layouts / sizeof layouts[0]; li++)
            for (orient = 1; orient <= 8; orient++) {
                spim_stamp_options o;
                char what[128];
                REQUIRE(make_jpeg(&in, rgb, w, h, &layouts[li], orient & 1 ? 0 : 2, orient > 4, 0, orient, 90));
                memset(&o, 0, sizeof o);
                o.gravity = (spim_gravity)(orient % 9);
                o.scale = 0.4;
                o.opacity = orient == 3 ? 0.5 : 0;
                snprintf(what, sizeof what, "%dx%d %s orientation %d", w, h, layouts[li].name, orient);
                check_splice(what, &in, w, h, layouts[li].grey, orient, &o);
                cases++;
            }
        free(rgb);
    }
    CHECKF(failures == 0, "%d of %d cases failed", failures, cases);
    printf("    %d cases (huffman: %d file, %d constrained, %d extended, %d optimal)\n", cases,
           huffman_file, huffman_constrained, huffman_extended, huffman_optimal);
    spim_buf_free(&in);
}

/* A smooth image: the optimised Huffman tables libjpeg makes for it hold
   few codes, far from all a stamped block needs. */
static unsigned char *make_smooth(int w, int h)
{
    unsigned char *p = (unsigned char *)malloc((size_t)w * (size_t)h * 3);
    int x, y, k;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++)
            for (k = 0; k < 3; k++)
                p[((size_t)y * (size_t)w + (size_t)x) * 3 + (size_t)k] = (unsigned char)(70 + 40 * k + x * 24 / w + y * 16 / h);
    return p;
}

/* Whether two JPEGs hold the same DCT coefficients, table for table. */
static int same_coefs(const spim_buf *x, const spim_buf *y)
{
    coefs a, b;
    int ci, same;
    memset(&b, 0, sizeof b); /* read_coefs(y) may not run */
    same = read_coefs(x, &a) == 1 && read_coefs(y, &b) == 1 && a.nc == b.nc;
    for (ci = 0; same && ci < a.nc; ci++)
        same = a.w[ci] == b.w[ci] && a.h[ci] == b.h[ci] && memcmp(a.q[ci], b.q[ci], sizeof a.q[ci]) == 0 &&
               memcmp(a.blk[ci], b.blk[ci], (size_t)a.w[ci] * (size_t)a.h[ci] * 64 * sizeof(short)) == 0;
    free_coefs(&a);
    free_coefs(&b);
    return same;
}

/* A source whose optimised tables lack codes the stamped blocks need: the
   scan is re-tabled (huffman "extended"; "optimal" where those tables
   have no room: full_tables_take_optimal), every block
   outside the covered MCUs keeps its coefficients, and nothing is clamped:
   the output holds exactly the coefficients the same stamp gives on the
   same image coded with libjpeg's standard tables, which have every code
   (huffman "file"; the coefficients do not depend on the tables). */
TEST(missing_codes_take_optimal_tables)
{
    static const int sizes[][2] = { { 333, 251 }, { 97, 61 }, { 40, 36 } };
    static const size_t lis[] = { 0, 1, 3, 2 };
    spim_buf tiny = SPIM_BUF_INIT, ample = SPIM_BUF_INIT, a = SPIM_BUF_INIT, b = SPIM_BUF_INIT;
    size_t si, li;
    int restart, cases = 0, unclamped = 0;
    failures = huffman_extended = huffman_optimal = 0;
    for (si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        int w = sizes[si][0], h = sizes[si][1];
        unsigned char *rgb = make_smooth(w, h);
        for (li = 0; li < sizeof lis / sizeof lis[0]; li++)
            for (restart = 0; restart <= 3; restart += 3) {
                const layout *L = &layouts[lis[li]];
                spim_stamp_options o;
                char what[128];
                REQUIRE(make_jpeg(&tiny, rgb, w, h, L, restart, 1, 0, 0, 90));
                REQUIRE(make_jpeg(&ample, rgb, w, h, L, restart, 0, 0, 0, 90));
                memset(&o, 0, sizeof o);
                o.gravity = (spim_gravity)(cases % 9);
                o.margin = cases % 4;
                snprintf(what, sizeof what, "smooth %dx%d %s restart=%d", w, h, L->name, restart);
                check_splice_as(what, &tiny, w, h, L->grey, 1, &o, "extended|optimal", &a);
                check_splice_as(what, &ample, w, h, L->grey, 1, &o, "file", &b);
                if (same_coefs(&a, &b)) unclamped++;
                else CHECKF(0, "%s: the re-coded blocks differ from the ones standard tables code", what);
                cases++;
            }
        free(rgb);
    }
    CHECKF(failures == 0, "%d of %d cases failed", failures, cases);
    CHECK_INT(cases, unclamped);
    CHECKF(huffman_extended > 0, "no case kept the file's short codes (huffman=extended)");
    printf("    %d cases, %d coefficient-identical to the standard-table splice (%d extended, %d "
           "optimal)\n",
           cases, unclamped, huffman_extended, huffman_optimal);
    spim_buf_free(&tiny);
    spim_buf_free(&ample);
    spim_buf_free(&a);
    spim_buf_free(&b);
}

/* Tables with no room for the codes the stamp needs (crafted_ac: neither
   the nearest codable blocks nor extended tables will do): the scan is
   re-encoded with new tables (huffman "optimal"), every block outside the
   covered MCUs keeps its coefficients and the covered ones are those the
   standard tables code. */
TEST(full_tables_take_optimal)
{
    static const size_t lis[] = { 0, 3 };
    unsigned char *rgb = make_smooth(160, 120);
    spim_buf tiny = SPIM_BUF_INIT, ample = SPIM_BUF_INIT, a = SPIM_BUF_INIT, b = SPIM_BUF_INIT;
    size_t li;
    int restart, cases = 0;
    failures = huffman_optimal = 0;
    for (li = 0; li < sizeof lis / sizeof lis[0]; li++)
        for (restart = 0; restart <= 3; restart += 3) {
            const layout *L = &layouts[lis[li]];
            spim_stamp_options o;
            char what[128];
            crafted_ac = 1;
            REQUIRE(make_jpeg(&tiny, rgb, 160, 120, L, restart, 0, 0, 0, 90));
            crafted_ac = 0;
            REQUIRE(make_jpeg(&ample, rgb, 160, 120, L, restart, 0, 0, 0, 90));
            memset(&o, 0, sizeof o);
            o.gravity = restart ? SPIM_GRAVITY_NW : SPIM_GRAVITY_SE;
            snprintf(what, sizeof what, "crafted full table %s restart=%d", L->name, restart);
            check_splice_as(what, &tiny, 160, 120, L->grey, 1, &o, "optimal", &a);
            check_splice_as(what, &ample, 160, 120, L->grey, 1, &o, "file", &b);
            CHECKF(same_coefs(&a, &b), "%s: the re-coded blocks differ from the standard tables'", what);
            cases++;
        }
    CHECKF(failures == 0, "%d of %d cases failed", failures, cases);
    CHECK_INT(cases, huffman_optimal);
    free(rgb);
    spim_buf_free(&tiny);
    spim_buf_free(&ample);
    spim_buf_free(&a);
    spim_buf_free(&b);
}

/* A smooth photo with a rough block here and there: the optimised tables
   give the rough blocks' rare symbols codes of 13 to 16 bits, which the
   extended tables re-assign. Re-tabling copies the bits between the MCUs
   the declined splice marked (covered, after covered, a code over 12
   bits): every other block keeps its coefficients, and the covered ones
   are those the standard tables code. */
TEST(extended_tables_copy_between_marked_mcus)
{
    static const size_t lis[] = { 0, 3, 1 };
    static const spim_gravity gs[] = { SPIM_GRAVITY_SE, SPIM_GRAVITY_NE, SPIM_GRAVITY_C };
    const int w = 480, h = 360;
    unsigned char *rgb = make_smooth(w, h);
    spim_buf tiny = SPIM_BUF_INIT, ample = SPIM_BUF_INIT, a = SPIM_BUF_INIT, b = SPIM_BUF_INIT;
    size_t li, gi, i;
    unsigned r = 7;
    int cases = 0;
    for (i = 0; i < (size_t)w * (size_t)h * 3; i++) { /* every 29th block of 8x8 pixels rough */
        size_t px = i / 3, bx = px % (size_t)w / 8, by = px / (size_t)w / 8;
        r = r * 1103515245u + 12345u;
        if ((bx * 7 + by * 13) % 29 == 0) rgb[i] = (unsigned char)(r >> 16);
    }
    failures = huffman_extended = 0;
    for (li = 0; li < sizeof lis / sizeof lis[0]; li++) {
        const layout *L = &layouts[lis[li]];
        spim__jpeg j;
        int longest = 0, t, len;
        REQUIRE(make_jpeg(&tiny, rgb, w, h, L, 0, 1, 0, 0, 90));
        REQUIRE(make_jpeg(&ample, rgb, w, h, L, 0, 0, 0, 0, 90));
        memset(&j, 0, sizeof j);
        j.p = tiny.data;
        j.len = tiny.len;
        REQUIRE(spim__jpeg_parse(&j));
        for (t = 0; t < 2; t++)
            for (len = 13; len <= 16; len++)
                if (j.ac[t].defined && j.ac[t].maxcode[len] >= 0) longest = len;
        CHECKF(longest > 12, "%s: the optimised tables' longest AC code is %d bits, want > 12",
               L->name, longest);
        for (gi = 0; gi < sizeof gs / sizeof gs[0]; gi++) {
            spim_stamp_options o;
            char what[128];
            memset(&o, 0, sizeof o);
            o.gravity = gs[gi];
            snprintf(what, sizeof what, "rough blocks %s gravity=%d", L->name, (int)gs[gi]);
            check_splice_as(what, &tiny, w, h, L->grey, 1, &o, "extended", &a);
            check_splice_as(what, &ample, w, h, L->grey, 1, &o, "file", &b);
            CHECKF(same_coefs(&a, &b), "%s: the re-coded blocks differ from the standard tables'", what);
            cases++;
        }
    }
    CHECKF(failures == 0, "%d of %d cases failed", failures, cases);
    CHECK_INT(cases, huffman_extended);
    free(rgb);
    spim_buf_free(&tiny);
    spim_buf_free(&ample);
    spim_buf_free(&a);
    spim_buf_free(&b);
}

/* Tiles over a whole 1600x1200 4:4:4 photo with optimised tables: the
   covered MCUs' coefficients (over 8 MiB) are too many to keep and the
   MCUs to mark too many (over a quarter), so re-tabling decodes the scan
   again and stamps the covered MCUs again; the result is still the
   standard-table splice's coefficients. */
TEST(retabling_without_marks_or_kept_coefficients)
{
    const int w = 1600, h = 1200;
    unsigned char *rgb = make_smooth(w, h);
    spim_buf tiny = SPIM_BUF_INIT, ample = SPIM_BUF_INIT, a = SPIM_BUF_INIT, b = SPIM_BUF_INIT;
    spim_stamp_options o;
    spim_image_info ia, ib;
    spim_error err;
    REQUIRE(make_jpeg(&tiny, rgb, w, h, &layouts[1], 0, 1, 0, 0, 90));
    REQUIRE(make_jpeg(&ample, rgb, w, h, &layouts[1], 0, 0, 0, 0, 90));
    memset(&o, 0, sizeof o);
    o.tile = 1;
    o.tile_gap = 0;
    memset(&ia, 0, sizeof ia);
    memset(&ib, 0, sizeof ib);
    CHECK_INT(SPIM_OK, spim_stamp_image(tiny.data, tiny.len, &the_stamp, &o, &a, &ia, &err));
    CHECK_INT(SPIM_OK, spim_stamp_image(ample.data, ample.len, &the_stamp, &o, &b, &ib, &err));
    CHECK_STR("extended", ia.huffman ? ia.huffman : "(null)");
    CHECK_STR("file", ib.huffman ? ib.huffman : "(null)");
    CHECKF(ia.mcus_recoded * 3 * 64 * 2 > ((uint64_t)8 << 20),
           "%llu MCUs re-coded: their coefficients fit in 8 MiB", (unsigned long long)ia.mcus_recoded);
    CHECK_INT((int)ib.mcus_recoded, (int)ia.mcus_recoded);
    CHECKF(same_coefs(&a, &b), "the re-coded blocks differ from the standard tables'");
    free(rgb);
    spim_buf_free(&tiny);
    spim_buf_free(&ample);
    spim_buf_free(&a);
    spim_buf_free(&b);
}

/* Mean absolute error per channel, inside the stored rectangle r, between
   the exact blend over the decoded source and the decoded output. */
static void stamp_error(const spim_buf *in, const spim_buf *out, const spim_stamp *st, const spim_stamp_options *o,
                        const int *r, double *mae, int *channels)
{
    spim_image src, got;
    spim_error err;
    double sum[3] = { 0, 0, 0 };
    long n = 0;
    int x, y, k, ch;
    mae[0] = mae[1] = mae[2] = 1e9;
    if (spim_image_decode(in->data, in->len, 0, &src, &err) != SPIM_OK) return;
    if (spim__stamp_draw(src.pixels, src.width, src.height, src.channels, src.meta.orientation, st, o, &err) != SPIM_OK ||
        spim_image_decode(out->data, out->len, 0, &got, &err) != SPIM_OK) { spim_image_free(&src); return; }
    if (got.channels != src.channels) { spim_image_free(&src); spim_image_free(&got); return; }
    ch = *channels = src.channels;
    for (y = r[1]; y <= r[3]; y++)
        for (x = r[0]; x <= r[2]; x++, n++)
            for (k = 0; k < ch; k++) {
                size_t i = ((size_t)y * (size_t)src.width + (size_t)x) * (size_t)ch + (size_t)k;
                sum[k] += abs((int)src.pixels[i] - (int)got.pixels[i]);
            }
    for (k = 0; k < ch; k++) mae[k] = sum[k] / (double)(n ? n : 1);
    spim_image_free(&src);
    spim_image_free(&got);
}

/* The best any encoder with the file's tables and layout can do: libjpeg
   encoding the exact blend over the decoded source (same quality, so the
   same quantisation tables; same sampling), as an `out` for stamp_error. */
static int ideal_encoding(const spim_buf *in, const spim_stamp *st, const spim_stamp_options *o, const layout *L,
                          spim_buf *ideal)
{
    spim_image src;
    spim_error err;
    unsigned char *rgb;
    size_t i, n;
    int ok;
    if (spim_image_decode(in->data, in->len, 0, &src, &err) != SPIM_OK) return 0;
    if (spim__stamp_draw(src.pixels, src.width, src.height, src.channels, src.meta.orientation, st, o, &err) != SPIM_OK) {
        spim_image_free(&src);
        return 0;
    }
    n = (size_t)src.width * (size_t)src.height;
    rgb = (unsigned char *)malloc(n * 3);
    for (i = 0; rgb && i < n * 3; i++) rgb[i] = src.pixels[src.channels == 1 ? i / 3 : i];
    ideal->len = 0;
    ok = rgb && make_jpeg(ideal, rgb, src.width, src.height, L, 0, 0, 0, 0, 90);
    free(rgb);
    spim_image_free(&src);
    return ok;
}

/* Inside the stamp, the output is as close to the exact straight-alpha
   blend over the decoded source as libjpeg encoding that blend with the
   file's tables and layout (the floor of any encoder there), and no worse
   than the recode path: the default stamp (build/assets/stamp.png) on the
   shared sample photo at q90, in every layout. The 1.5 per channel
   is asserted where that floor allows it: grey. Measured at q90, the floor
   in colour is quantisation (4:4:4: 2.4/1.8/3.0) plus chroma subsampling
   (4:2:0: 3.7/2.0/6.3); 4:4:4 first reaches 1.5 near q98. */
TEST(stamp_is_as_exact_as_the_pixel_path)
{
    const char *shared = getenv("SPIM_SHARED");
    char path[1024];
    spim_buf photo = SPIM_BUF_INIT, png = SPIM_BUF_INIT, in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_buf ideal = SPIM_BUF_INIT;
    spim_image img;
    spim_stamp st;
    spim_error err;
    size_t li;
    snprintf(path, sizeof path, "%s/samples/ben.jpg", shared ? shared : "../shared");
    if (spim_read_file(path, 0, &photo, &err) != SPIM_OK) SKIP("no shared sample photo");
    snprintf(path, sizeof path, "%s/assets/stamp.png", getenv("SPIM_BUILD") ? getenv("SPIM_BUILD") : "build");
    if (spim_read_file(path, 0, &png, &err) != SPIM_OK) {
        spim_buf_free(&photo);
        SKIP("no build/assets/stamp.png (make builds it)");
    }
    REQUIRE(spim_stamp_load(&st, png.data, png.len, &err) == SPIM_OK);
    REQUIRE(spim_image_decode(photo.data, photo.len, 0, &img, &err) == SPIM_OK && img.channels == 3);
    for (li = 0; li < 2 * sizeof layouts / sizeof layouts[0]; li++) {
        const layout *L = &layouts[li / 2];
        int optimised = (int)(li & 1);
        spim_stamp_options o;
        spim_image_info info;
        double mae[3], ref[3], floor_[3];
        int r[4], k, ch = 0, mode;
        const char *huffman = "";
        REQUIRE(make_jpeg(&in, img.pixels, img.width, img.height, L, 0, optimised, 0, 0, 90));
        for (mode = 0; mode < 2; mode++) {
            memset(&o, 0, sizeof o);
            o.gravity = SPIM_GRAVITY_C;
            o.jpeg_mode = mode ? SPIM_JPEG_RECODE : SPIM_JPEG_AUTO;
            out.len = 0;
            memset(&info, 0, sizeof info);
            REQUIRE(spim_stamp_image(in.data, in.len, &st, &o, &out, &info, &err) == SPIM_OK);
            CHECK_STR(mode ? "recode" : "splice", info.path);
            if (!mode) huffman = info.huffman;
            the_stamp_swap(&st);
            stamp_rect(img.width, img.height, L->grey ? 1 : 3, 1, &o, r);
            the_stamp_swap(&st);
            stamp_error(&in, &out, &st, &o, r, mode ? ref : mae, &ch);
        }
        o.jpeg_mode = SPIM_JPEG_AUTO;
        REQUIRE(ideal_encoding(&in, &st, &o, L, &ideal));
        stamp_error(&in, &ideal, &st, &o, r, floor_, &k);
        if (optimised)
            CHECKF(strcmp(huffman, "optimal") != 0,
                   "%s optimised: huffman %s, want file or constrained", L->name, huffman);
        for (k = 0; k < ch; k++) {
            CHECKF(mae[k] <= floor_[k] + (optimised ? 0.3 : 0.1),
                   "%s %s channel %d: mean abs error %.3f, libjpeg encoding the exact blend %.3f",
                   L->name, huffman, k, mae[k], floor_[k]);
            if (ref[k] < 1e9 && !optimised)
                CHECKF(mae[k] <= ref[k] + 0.05,
                       "%s channel %d: mean abs error %.3f, the recode path's %.3f", L->name, k,
                       mae[k], ref[k]);
            if (L->grey && !optimised)
                CHECKF(mae[k] <= 1.5, "%s channel %d: mean abs error %.3f, want <= 1.5", L->name, k,
                       mae[k]);
            printf("    %s huffman=%s channel %d: mean abs error %.3f inside the stamp (libjpeg on "
                   "the exact "
                   "blend %.3f, recode path %.3f)\n",
                   L->name, huffman, k, mae[k], floor_[k], ref[k] < 1e9 ? ref[k] : -1.0);
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

TEST(progressive_and_recode_mode)
{
    unsigned char *rgb = make_photo(200, 150, 3);
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_stamp_options o;
    spim_image_info info;
    spim_error err;
    spim_image img;
    REQUIRE(make_jpeg(&in, rgb, 200, 150, &layouts[3], 0, 0, 1, 0, 90));
    memset(&o, 0, sizeof o);
    memset(&info, 0, sizeof info);
    CHECK_INT(SPIM_OK, spim_stamp_image(in.data, in.len, &the_stamp, &o, &out, &info, &err));
    CHECK_STR("progressive", info.path); /* tests/test_jpeg_progressive.c checks that path */
    o.jpeg_mode = SPIM_JPEG_RECODE;
    out.len = 0;
    CHECK_INT(SPIM_OK, spim_stamp_image(in.data, in.len, &the_stamp, &o, &out, &info, &err));
    CHECK_STR("recode", info.path);
    o.jpeg_mode = SPIM_JPEG_AUTO;
    CHECK_INT(SPIM_OK, spim_image_decode(out.data, out.len, 0, &img, &err));
    CHECK_INT(200, img.width);
    spim_image_free(&img);
    REQUIRE(make_jpeg(&in, rgb, 200, 150, &layouts[3], 0, 0, 0, 0, 90));
    o.jpeg_mode = SPIM_JPEG_RECODE;
    out.len = 0;
    CHECK_INT(SPIM_OK, spim_stamp_image(in.data, in.len, &the_stamp, &o, &out, &info, &err));
    CHECK_STR("recode", info.path);
    o.jpeg_mode = SPIM_JPEG_AUTO;
    o.output_format = SPIM_FORMAT_PNG;
    out.len = 0;
    CHECK_INT(SPIM_OK, spim_stamp_image(in.data, in.len, &the_stamp, &o, &out, &info, &err));
    CHECK_STR("recode", info.path);
    CHECK_INT(SPIM_FORMAT_PNG, info.out_format);
    spim_buf_free(&in);
    spim_buf_free(&out);
    free(rgb);
}

TEST(stamp_entirely_outside_is_an_error)
{
    unsigned char *rgb = make_photo(100, 80, 4);
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_stamp_options o;
    spim_error err;
    int mode;
    REQUIRE(make_jpeg(&in, rgb, 100, 80, &layouts[3], 0, 0, 0, 0, 90));
    for (mode = 0; mode < 2; mode++) {
        memset(&o, 0, sizeof o);
        o.margin = 100000;
        o.jpeg_mode = mode ? SPIM_JPEG_RECODE : SPIM_JPEG_AUTO;
        CHECK_INT(SPIM_ERR_INVALID, spim_stamp_image(in.data, in.len, &the_stamp, &o, &out, NULL, &err));
        CHECK_STR("stamp falls outside the image (margin 100000 on 100x80)", err.message);
        CHECK_INT(0, out.len);
    }
    spim_buf_free(&in);
    free(rgb);
}

/* Truncations, bit flips and marker damage of spliceable files: each is an
   error or a valid JPEG, never a crash or a hang (ASan/UBSan watch). */
TEST(hostile_jpegs_fail_cleanly)
{
    unsigned char *rgb = make_photo(120, 90, 5), *smooth = make_smooth(120, 90);
    const size_t nl = sizeof layouts / sizeof layouts[0];
    spim_buf in = SPIM_BUF_INIT, bad = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_stamp_options o;
    spim_error err;
    size_t li, cut;
    unsigned r = 1;
    int i, ok = 0, failed = 0;
    memset(&o, 0, sizeof o);
    o.max_pixels = 1u << 20;
    for (li = 0; li < 2 * nl; li++) { /* then smooth sources whose tables send the splice to new ones */
        if (li < nl) REQUIRE(make_jpeg(&in, rgb, 120, 90, &layouts[li], li & 1 ? 3 : 0, li & 2, 0, 0, 85));
        else REQUIRE(make_jpeg(&in, smooth, 120, 90, &layouts[li - nl], li & 1 ? 3 : 0, 1, 0, 0, 85));
        for (cut = 0; cut < in.len; cut += 1 + in.len / 97) {
            out.len = 0;
            if (spim_stamp_image(in.data, cut, &the_stamp, &o, &out, NULL, &err) == SPIM_OK) ok++; else failed++;
        }
        for (i = 0; i < 400; i++) {
            bad.len = 0;
            spim_buf_append(&bad, in.data, in.len);
            r = r * 1103515245u + 12345u;
            bad.data[(r >> 8) % bad.len] ^= (unsigned char)(1u << ((r >> 4) & 7));
            if (i & 1) {
                r = r * 1103515245u + 12345u;
                bad.data[(r >> 8) % bad.len] = i & 2 ? 0xFF : 0xD3;
            }
            out.len = 0;
            if (spim_stamp_image(bad.data, bad.len, &the_stamp, &o, &out, NULL, &err) == SPIM_OK) {
                spim_image img;
                ok++;
                CHECKF(spim_format_detect(out.data, out.len) == SPIM_FORMAT_JPEG, "output is not a JPEG");
                if (spim_image_decode(out.data, out.len, 0, &img, &err) == SPIM_OK) spim_image_free(&img);
            } else {
                failed++;
                CHECKF(out.len == 0, "a failed stamp left %zu bytes", out.len);
            }
        }
        /* trailing garbage after EOI is dropped */
        bad.len = 0;
        spim_buf_append(&bad, in.data, in.len);
        spim_buf_append(&bad, "garbage\xFF\xD8", 9);
        out.len = 0;
        CHECK_INT(SPIM_OK, spim_stamp_image(bad.data, bad.len, &the_stamp, &o, &out, NULL, &err));
    }
    printf("    %d stamped, %d refused\n", ok, failed);
    spim_buf_free(&in);
    spim_buf_free(&bad);
    spim_buf_free(&out);
    free(rgb);
    free(smooth);
}

/* Tiling (issue 25): which MCUs the tiles touch, found by drawing opaque
   white tiles on black (mask[my * mx + mx] = 1). */
static unsigned char *tile_mask(int w, int h, int ch, int orientation, const spim_stamp_options *o, int mw, int mh)
{
    unsigned char *img = (unsigned char *)calloc((size_t)w * (size_t)h, (size_t)ch);
    int mx = (w + mw - 1) / mw, my = (h + mh - 1) / mh, x, y;
    unsigned char *mask = (unsigned char *)calloc((size_t)mx * (size_t)my, 1);
    spim_stamp white;
    spim_error err;
    white.width = the_stamp.width;
    white.height = the_stamp.height;
    white.rgba = (unsigned char *)malloc((size_t)white.width * (size_t)white.height * 4);
    memset(white.rgba, 255, (size_t)white.width * (size_t)white.height * 4);
    if (spim__stamp_draw(img, w, h, ch, orientation, &white, o, &err) == SPIM_OK)
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++)
                if (img[((size_t)y * (size_t)w + (size_t)x) * (size_t)ch]) mask[(y / mh) * mx + x / mw] = 1;
    free(white.rgba);
    free(img);
    return mask;
}

/* A tiled splice: every block of an MCU no tile touches keeps its
   coefficients, the MCUs between tiles included (not just those outside
   the tiles' bounding box), and some blocks under the tiles change. */
static void check_tiled(const char *what, const spim_buf *in, int w, int h, int grey, int orientation,
                        const spim_stamp_options *o)
{
    spim_buf out = SPIM_BUF_INIT;
    spim_image_info info;
    spim_error err;
    coefs a, b;
    unsigned char *mask;
    int ci, mw, mh, mx, x, y, kept = 0, changed = 0, moved = 0, gaps = 0;
    memset(&info, 0, sizeof info);
    CHECKF(spim_stamp_image(in->data, in->len, &the_stamp, o, &out, &info, &err) == SPIM_OK, "%s: %s", what,
           err.message);
    CHECKF(info.path && !strcmp(info.path, "splice"), "%s: path %s", what, info.path ? info.path : "(null)");
    if (!info.path || strcmp(info.path, "splice") != 0 || !read_coefs(in, &a)) { failures++; spim_buf_free(&out); return; }
    CHECK_INT(1, read_coefs(&out, &b));
    mw = 8 * (a.nc == 1 ? 1 : a.hs[0]);
    mh = 8 * (a.nc == 1 ? 1 : a.vs[0]);
    mx = (w + mw - 1) / mw;
    mask = tile_mask(w, h, grey ? 1 : 3, orientation, o, mw, mh);
    for (y = 0; y < (h + mh - 1) / mh; y++)
        for (x = 0; x < mx; x++) gaps += !mask[y * mx + x];
    for (ci = 0; ci < a.nc; ci++) {
        int hs = a.nc == 1 ? 1 : a.hs[ci], vs = a.nc == 1 ? 1 : a.vs[ci];
        for (y = 0; y < a.h[ci]; y++)
            for (x = 0; x < a.w[ci]; x++) {
                size_t off = ((size_t)y * (size_t)a.w[ci] + (size_t)x) * 64;
                int same = memcmp(a.blk[ci] + off, b.blk[ci] + off, 64 * sizeof(short)) == 0;
                int m = mask[(y / vs) * mx + x / hs];
                if (!m) { kept += same; moved += !same; }
                else changed += !same;
            }
    }
    CHECKF(moved == 0, "%s: %d blocks of MCUs no tile touches changed (%d kept)", what, moved, kept);
    CHECKF(changed > 0 && gaps > 0, "%s: %d blocks under the tiles changed, %d MCUs untouched", what, changed, gaps);
    if (moved || !changed || !gaps) failures++;
    free(mask);
    free_coefs(&a);
    free_coefs(&b);
    spim_buf_free(&out);
}

TEST(tiles_recode_only_the_mcus_they_touch)
{
    unsigned char *rgb = make_photo(333, 251, 5);
    spim_buf in = SPIM_BUF_INIT;
    size_t li;
    int cases = 0, orient, v;
    failures = 0;
    for (li = 0; li < sizeof layouts / sizeof layouts[0]; li++)
        for (orient = 1; orient <= 8; orient++)
            for (v = 0; v < 3; v++) {
                spim_stamp_options o;
                char what[160];
                REQUIRE(make_jpeg(&in, rgb, 333, 251, &layouts[li], orient & 1 ? 0 : 3, orient > 4, 0, orient, 90));
                memset(&o, 0, sizeof o);
                o.tile = 1;
                o.gravity = (spim_gravity)((orient + v) % 9);
                o.margin = 5 * v;
                if (v == 0) o.tile_gap = 40;
                else if (v == 1) { o.tile_gap_rel = 1.5; o.scale = 0.12; }
                else { o.tile_gap = 33; o.opacity = 0.5; o.scale = 0.1; }
                snprintf(what, sizeof what, "%s orientation %d gap %d/%.1f gravity %d", layouts[li].name, orient,
                         o.tile_gap, o.tile_gap_rel, (int)o.gravity);
                check_tiled(what, &in, 333, 251, layouts[li].grey, orient, &o);
                cases++;
            }
    CHECKF(failures == 0, "%d of %d cases failed", failures, cases);
    printf("    %d tiled cases: MCUs between the tiles kept bit for bit\n", cases);
    spim_buf_free(&in);
    free(rgb);
}

/* The tiled splice is as close to the exact blend of the tiles as libjpeg
   encoding that blend with the file's tables (the encoder's floor),
   measured over the anchor tile (the one a single stamp would be): the real
   stamp on the noisy synthetic photo, where the floor itself is 2 to 13 per
   channel; within 2% + 0.1 of it (measured: -1.3% .. +0.9%). */
TEST(tiles_are_as_exact_as_the_encoder_floor)
{
    unsigned char *rgb = make_photo(320, 240, 9);
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT, ideal = SPIM_BUF_INIT, png = SPIM_BUF_INIT;
    spim_stamp_options o;
    spim_image_info info;
    spim_stamp st;
    spim_error err;
    size_t li;
    int r[4];
    char path[1024];
    snprintf(path, sizeof path, "%s/assets/stamp.png", getenv("SPIM_BUILD") ? getenv("SPIM_BUILD") : "build");
    if (spim_read_file(path, 0, &png, &err) != SPIM_OK) {
        free(rgb);
        SKIP("no build/assets/stamp.png (make builds it)");
    }
    REQUIRE(spim_stamp_load(&st, png.data, png.len, &err) == SPIM_OK);
    spim_buf_free(&png);
    memset(&o, 0, sizeof o);
    o.gravity = SPIM_GRAVITY_C;
    o.scale = 0.3;
    the_stamp_swap(&st);
    stamp_rect(320, 240, 3, 1, &o, r);
    o.tile = 1;
    o.tile_gap_rel = 0.5;
    for (li = 0; li < sizeof layouts / sizeof layouts[0]; li++) {
        double mae[3], floor_[3];
        int k, ch = 0;
        REQUIRE(make_jpeg(&in, rgb, 320, 240, &layouts[li], 0, 0, 0, 0, 90));
        out.len = 0;
        memset(&info, 0, sizeof info);
        REQUIRE(spim_stamp_image(in.data, in.len, &the_stamp, &o, &out, &info, &err) == SPIM_OK);
        CHECK_STR("splice", info.path);
        stamp_error(&in, &out, &the_stamp, &o, r, mae, &ch);
        REQUIRE(ideal_encoding(&in, &the_stamp, &o, &layouts[li], &ideal));
        stamp_error(&in, &ideal, &the_stamp, &o, r, floor_, &k);
        for (k = 0; k < ch; k++) {
            CHECKF(mae[k] <= floor_[k] * 1.02 + 0.1, "%s channel %d: mean abs error %.3f, libjpeg on the exact blend %.3f",
                   layouts[li].name, k, mae[k], floor_[k]);
            printf("    %s channel %d: tiled, mean abs error %.3f (libjpeg on the exact blend %.3f)\n",
                   layouts[li].name, k, mae[k], floor_[k]);
        }
    }
    the_stamp_swap(&st);
    spim_stamp_free(&st);
    spim_buf_free(&in);
    spim_buf_free(&out);
    spim_buf_free(&ideal);
    free(rgb);
}

/* Files from real encoders, made here from the shared sample photo: the
   path and tables each takes, and on the splice, everything
   check_splice_as checks plus the stamp's error within the libjpeg floor
   + 0.3 per channel. Every file is quality 90 with libjpeg's tables (cjpeg,
   Pillow and ImageMagick all scale the same Annex K tables), so
   ideal_encoding's floor is made with the file's tables and layout. */
typedef struct corpus_file {
    const char *name, *make; /* make: a shell command that writes $OUT from src.ppm */
    int layout;              /* index in layouts[] */
    const char *want; /* "splice", "progressive" (the coefficient path), or the error's reason */
    int optimised;
} corpus_file;

static const corpus_file corpus[] = {
    {"cjpeg 4:2:0", "cjpeg -quality 90 -sample 2x2 -outfile $OUT src.ppm", 3, "splice", 0},
    {"cjpeg 4:2:2 -restart 2", "cjpeg -quality 90 -sample 2x1 -restart 2 -outfile $OUT src.ppm", 2,
     "splice", 0},
    {"cjpeg -optimize 4:4:4", "cjpeg -quality 90 -optimize -sample 1x1 -outfile $OUT src.ppm", 1,
     "splice", 1},
    {"cjpeg -optimize 4:2:2", "cjpeg -quality 90 -optimize -sample 2x1 -outfile $OUT src.ppm", 2,
     "splice", 1},
    {"cjpeg -optimize 4:2:0 -restart 1",
     "cjpeg -quality 90 -optimize -sample 2x2 -restart 1 -outfile $OUT src.ppm", 3, "splice", 1},
    {"cjpeg -optimize 4:4:0", "cjpeg -quality 90 -optimize -sample 1x2 -outfile $OUT src.ppm", 4,
     "splice", 1},
    {"cjpeg -optimize -grayscale", "cjpeg -quality 90 -optimize -grayscale -outfile $OUT src.ppm",
     0, "splice", 1},
    {"Pillow optimize=True 4:2:0",
     "/usr/bin/python3 -c \"from PIL import Image; "
     "Image.open('src.ppm').save('$OUT', quality=90, optimize=True, subsampling=2)\"",
     3, "splice", 1},
    {"Pillow optimize=True 4:4:4",
     "/usr/bin/python3 -c \"from PIL import Image; "
     "Image.open('src.ppm').save('$OUT', quality=90, optimize=True, subsampling=0)\"",
     1, "splice", 1},
    {"ImageMagick 4:2:0", "convert src.ppm -strip -quality 90 -sampling-factor 2x2 $OUT", 3,
     "splice", 1},
    {"cjpeg -progressive", "cjpeg -quality 90 -progressive -outfile $OUT src.ppm", 3, "progressive", 0},
    {"cjpeg -arithmetic", "cjpeg -quality 90 -arithmetic -outfile $OUT src.ppm", 3,
     "arithmetic-coded JPEG", 0},
};

/* The photo as src.ppm in dir; 0 when it cannot be written. */
static int write_ppm(const char *dir, const spim_image *img)
{
    char path[1100];
    FILE *f;
    size_t i, n = (size_t)img->width * (size_t)img->height;
    snprintf(path, sizeof path, "%s/src.ppm", dir);
    if (!(f = fopen(path, "wb"))) return 0;
    fprintf(f, "P6\n%d %d\n255\n", img->width, img->height);
    for (i = 0; i < n; i++) fwrite(img->pixels + i * (size_t)img->channels, 1, 3, f);
    return fclose(f) == 0;
}

/* One corpus file made and stamped with the real stamp st at SE. */
static void check_corpus_file(const corpus_file *c, const char *dir, const spim_stamp *st)
{
    char cmd[1400], path[1100], *out_at;
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT, ideal = SPIM_BUF_INIT;
    spim_stamp_options o;
    spim_image_info info;
    spim_error err;
    spim_stamp probe = *st;
    const layout *L = &layouts[c->layout];
    double mae[3], floor_[3];
    int r[4], k, ch = 0, rc;
    snprintf(path, sizeof path, "%s/corpus.jpg", dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && rm -f corpus.jpg && ", dir);
    out_at = cmd + strlen(cmd);
    for (k = 0; c->make[k] && out_at < cmd + sizeof cmd - 16; k++) /* $OUT -> corpus.jpg */
        if (strncmp(c->make + k, "$OUT", 4) == 0) {
            out_at += sprintf(out_at, "corpus.jpg");
            k += 3;
        } else
            *out_at++ = c->make[k];
    snprintf(out_at, 16, " 2>/dev/null");
    if (system(cmd) != 0 || spim_read_file(path, 0, &in, &err) != SPIM_OK) {
        printf("    skip %s: the encoder is missing or failed\n", c->name);
        return;
    }
    memset(&o, 0, sizeof o);
    memset(&info, 0, sizeof info);
    rc = spim_stamp_image(in.data, in.len, st, &o, &out, &info, &err);
    if (strcmp(c->want, "splice") != 0 && strcmp(c->want, "progressive") != 0) {
        CHECKF(rc != SPIM_OK && strstr(err.message, c->want),
               "%s: want an error naming \"%s\", got %s", c->name, c->want,
               rc == SPIM_OK ? "success" : err.message);
    } else if (!strcmp(c->want, "progressive")) {
        CHECKF(rc == SPIM_OK && info.path && !strcmp(info.path, "progressive"), "%s: path %s (%s)",
               c->name, info.path ? info.path : "(none)", rc == SPIM_OK ? "ok" : err.message);
    } else {
        const char *huffman = rc == SPIM_OK && info.huffman ? info.huffman : "(none)";
        CHECKF(c->optimised || !strcmp(huffman, "file"), "%s: standard tables took huffman=%s",
               c->name, huffman);
        the_stamp_swap(&probe);
        check_splice_as(c->name, &in, info.width, info.height, L->grey, 1, &o, NULL, NULL);
        stamp_rect(info.width, info.height, L->grey ? 1 : 3, 1, &o, r);
        the_stamp_swap(&probe);
        stamp_error(&in, &out, st, &o, r, mae, &ch);
        REQUIRE(ideal_encoding(&in, st, &o, L, &ideal));
        stamp_error(&in, &ideal, st, &o, r, floor_, &k);
        for (k = 0; k < ch; k++)
            CHECKF(mae[k] <= floor_[k] + 0.3,
                   "%s huffman=%s channel %d: mean abs error %.3f, floor %.3f", c->name, huffman, k,
                   mae[k], floor_[k]);
        printf("    %-34s path=%s huffman=%-11s mcus=%llu error-floor:", c->name, info.path,
               huffman, (unsigned long long)info.mcus_recoded);
        for (k = 0; k < ch; k++) printf(" %+.3f", mae[k] - floor_[k]);
        printf("\n");
    }
    spim_buf_free(&in);
    spim_buf_free(&out);
    spim_buf_free(&ideal);
}

TEST(real_encoders_corpus)
{
    const char *shared = getenv("SPIM_SHARED");
    char path[1024], dir[64] = "/tmp/spim_corpus_XXXXXX";
    spim_buf photo = SPIM_BUF_INIT, png = SPIM_BUF_INIT;
    spim_image img;
    spim_stamp st;
    spim_error err;
    size_t i;
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
    REQUIRE(mkdtemp(dir) != NULL);
    REQUIRE(write_ppm(dir, &img));
    for (i = 0; i < sizeof corpus / sizeof corpus[0]; i++) check_corpus_file(&corpus[i], dir, &st);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    CHECK_INT(0, system(path));
    spim_image_free(&img);
    spim_stamp_free(&st);
    spim_buf_free(&photo);
    spim_buf_free(&png);
}

/* Kinds no path decodes are refused by name, on the splice and the pixel
   path alike (the header is enough to tell). */
TEST(arithmetic_12bit_lossless_refused_by_name)
{
    static const struct {
        int marker, precision;
        const char *why;
    } kinds[] = {
        {0xC9, 8, "arithmetic-coded JPEG"}, {0xC0, 12, "12-bit JPEG"},
        {0xC1, 12, "12-bit JPEG"},          {0xC3, 8, "lossless JPEG"},
        {0xCA, 8, "arithmetic-coded JPEG"},
    };
    unsigned char *rgb = make_photo(64, 48, 9);
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_error err;
    spim_image img;
    size_t i, sof;
    REQUIRE(make_jpeg(&in, rgb, 64, 48, &layouts[3], 0, 0, 0, 0, 90));
    for (sof = 2; sof + 4 < in.len && !(in.data[sof] == 0xFF && in.data[sof + 1] == 0xC0); sof++) {}
    REQUIRE(sof + 4 < in.len);
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        spim_stamp_options o;
        in.data[sof + 1] = (unsigned char)kinds[i].marker;
        in.data[sof + 4] = (unsigned char)kinds[i].precision;
        memset(&o, 0, sizeof o);
        out.len = 0;
        CHECK_INT(SPIM_ERR_IMAGE,
                  spim_stamp_image(in.data, in.len, &the_stamp, &o, &out, NULL, &err));
        CHECKF(strstr(err.message, kinds[i].why) != NULL,
               "SOF %02X precision %d: want \"%s\", got \"%s\"", kinds[i].marker,
               kinds[i].precision, kinds[i].why, err.message);
        CHECK_INT(SPIM_ERR_IMAGE, spim_image_decode(in.data, in.len, 0, &img, &err));
        CHECKF(strstr(err.message, kinds[i].why) != NULL, "decode: want \"%s\", got \"%s\"",
               kinds[i].why, err.message);
    }
    spim_buf_free(&in);
    spim_buf_free(&out);
    free(rgb);
}

static int has_bytes(const spim_buf *b, const void *what, size_t n)
{
    size_t i;
    for (i = 0; i + n <= b->len; i++)
        if (memcmp(b->data + i, what, n) == 0) return 1;
    return 0;
}

/* A Photoshop resource: "8BIM", id, empty name (padded), size, data. */
static void add_8bim(spim_buf *b, unsigned id, const char *data)
{
    unsigned char h[12] = {'8', 'B', 'I', 'M', 0, 0, 0, 0, 0, 0, 0, 0};
    size_t n = strlen(data);
    h[4] = (unsigned char)(id >> 8);
    h[5] = (unsigned char)id;
    h[11] = (unsigned char)n;
    spim_buf_append(b, h, 12);
    spim_buf_append(b, data, n);
    if (n & 1) spim_buf_append(b, "", 1);
}

/* A segment (marker, payload) inserted right after SOI. */
static void insert_segment(spim_buf *jpeg, int marker, const spim_buf *payload)
{
    spim_buf t = SPIM_BUF_INIT;
    unsigned char h[4];
    h[0] = 0xFF;
    h[1] = (unsigned char)marker;
    h[2] = (unsigned char)((payload->len + 2) >> 8);
    h[3] = (unsigned char)(payload->len + 2);
    spim_buf_append(&t, jpeg->data, 2);
    spim_buf_append(&t, h, 4);
    spim_buf_append(&t, payload->data, payload->len);
    spim_buf_append(&t, jpeg->data + 2, jpeg->len - 2);
    spim_buf_free(jpeg);
    *jpeg = t;
}

/* The Photoshop thumbnails (APP13 resources 0x0409, 0x040C) go, other
   resources stay; an MPF index goes with the images after EOI it points
   at, on the splice and the pixel path. */
TEST(photoshop_thumbnail_and_mpf_images_do_not_leak)
{
    unsigned char *rgb = make_photo(160, 120, 5);
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT, seg = SPIM_BUF_INIT;
    spim_stamp_options o;
    spim_image_info info;
    spim_error err;
    int mode;
    REQUIRE(make_jpeg(&in, rgb, 160, 120, &layouts[3], 0, 1, 0, 0, 90));
    spim_buf_append(&seg, "Photoshop 3.0\0", 14);
    add_8bim(&seg, 0x0404, "KEEP-IPTC");
    add_8bim(&seg, 0x040C, "THUMB-SECRET-1");
    add_8bim(&seg, 0x0409, "THUMB-SECRET-2");
    add_8bim(&seg, 0x0425, "KEEP-DIGEST");
    insert_segment(&in, 0xED, &seg);
    seg.len = 0;
    spim_buf_append(&seg, "MPF\0MM\0*\0\0\0\x08",
                    12); /* the index itself: its offsets point past EOI */
    insert_segment(&in, 0xE2, &seg);
    spim_buf_append(&in, "\xFF\xD8GAINMAP-SECRET\xFF\xD9", 18);
    for (mode = 0; mode < 2; mode++) {
        memset(&o, 0, sizeof o);
        memset(&info, 0, sizeof info);
        o.jpeg_mode = mode ? SPIM_JPEG_RECODE : SPIM_JPEG_AUTO;
        out.len = 0;
        CHECK_INT(SPIM_OK, spim_stamp_image(in.data, in.len, &the_stamp, &o, &out, &info, &err));
        CHECK_STR(mode ? "recode" : "splice", info.path);
        CHECKF(!has_bytes(&out, "SECRET", 6),
               "%s: a thumbnail or secondary image is still in the output", info.path);
        CHECKF(!has_bytes(&out, "MPF\0", 4), "%s: the MPF index is still in the output", info.path);
        CHECKF(out.len > 2 && out.data[out.len - 2] == 0xFF && out.data[out.len - 1] == 0xD9,
               "%s: the output does not end at its EOI", info.path);
        if (!mode) {
            coefs k;
            CHECKF(has_bytes(&out, "KEEP-IPTC", 9) && has_bytes(&out, "KEEP-DIGEST", 11),
                   "splice: the other Photoshop resources are gone");
            CHECK_INT(1, read_coefs(&out, &k));
            free_coefs(&k);
        }
    }
    spim_buf_free(&in);
    spim_buf_free(&out);
    spim_buf_free(&seg);
    free(rgb);
}

/* A stamp with every alpha: gradients of colour and transparency. */
static void make_stamp(spim_stamp *s, int w, int h)
{
    int x, y;
    s->width = w;
    s->height = h;
    s->rgba = (unsigned char *)malloc((size_t)w * (size_t)h * 4);
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            unsigned char *p = s->rgba + ((size_t)y * (size_t)w + (size_t)x) * 4;
            p[0] = (unsigned char)(x * 255 / w);
            p[1] = (unsigned char)(y * 255 / h);
            p[2] = (unsigned char)((x + y) & 255);
            p[3] = (unsigned char)(1 + (x * 7 + y * 3) % 255);
        }
}

int main(void)
{
    make_stamp(&the_stamp, 45, 33);
    RUN(every_layout_restart_optimised_gravity);
    RUN(exif_orientations_and_odd_sizes);
    RUN(missing_codes_take_optimal_tables);
    RUN(full_tables_take_optimal);
    RUN(extended_tables_copy_between_marked_mcus);
    RUN(retabling_without_marks_or_kept_coefficients);
    RUN(stamp_is_as_exact_as_the_pixel_path);
    RUN(progressive_and_recode_mode);
    RUN(stamp_entirely_outside_is_an_error);
    RUN(hostile_jpegs_fail_cleanly);
    RUN(tiles_recode_only_the_mcus_they_touch);
    RUN(tiles_are_as_exact_as_the_encoder_floor);
    RUN(real_encoders_corpus);
    RUN(arithmetic_12bit_lossless_refused_by_name);
    RUN(photoshop_thumbnail_and_mpf_images_do_not_leak);
    free(the_stamp.rgba);
    return spim_test_finish();
}
