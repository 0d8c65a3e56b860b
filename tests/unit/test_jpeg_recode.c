/* The recode path (SPIM_JPEG_RECODE, and what neither the splice nor the
   progressive path takes: CMYK/YCCK, sampling factors above 2) writes a
   JPEG source again with its own quantisation tables (at their precision),
   sampling, restart interval and progression, never at a fixed q90 4:2:0.
   Sources are made here with libjpeg (tests only): grey and every YCbCr
   layout, 16-bit tables, restart intervals, libjpeg's progression and
   custom scan scripts, CMYK and YCCK with Adobe's marker, 4:1:1. Each
   output must carry the source's tables and sampling (the first/second
   table for CMYK's luma/chroma), be SOF2 exactly when the source was (with
   its scan script), decode in libjpeg without a warning, and be as exact
   as libjpeg encoding the same pixels with the same tables and sampling:
   the mean absolute error against the exact blend inside the stamp, and
   against the decoded source outside it, at most libjpeg's + 0.3. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "spim_test.h"

#include "jpeg_lib.h"

#define BOUND 0.3

/* libjpeg's notes (16-bit tables "too coarse for baseline") are expected here. */
static void jerr_quiet(j_common_ptr c)
{
    (void)c;
}

/* A source kind: colour (1 grey, 3 YCbCr, 4 CMYK, 5 YCCK), luma and
   chroma sampling, quality (force_baseline 0: 16-bit tables), restart
   interval, progression (0 none, 1 libjpeg's, 2 a custom script). */
typedef struct kind {
    const char *name;
    int colour, h0, v0, hc, vc, quality, baseline, restart, prog;
} kind;

static const kind kinds[] = {
    { "grey q80", 1, 1, 1, 1, 1, 80, 1, 0, 0 },
    { "4:4:4 q92", 3, 1, 1, 1, 1, 92, 1, 0, 0 },
    { "4:2:2 q75 restart 7", 3, 2, 1, 1, 1, 75, 1, 7, 0 },
    { "4:2:0 q85", 3, 2, 2, 1, 1, 85, 1, 0, 0 },
    { "4:4:0 q70", 3, 1, 2, 1, 1, 70, 1, 0, 0 },
    { "4:2:0 q8 16-bit tables", 3, 2, 2, 1, 1, 8, 0, 0, 0 },
    { "4:1:1 q80 (factor 4)", 3, 4, 1, 1, 1, 80, 1, 0, 0 },
    { "progressive 4:2:0 q80", 3, 2, 2, 1, 1, 80, 1, 0, 1 },
    { "progressive 4:4:4 custom script restart 5", 3, 1, 1, 1, 1, 88, 1, 5, 2 },
    { "progressive grey custom script", 1, 1, 1, 1, 1, 75, 1, 0, 2 },
    { "CMYK q85 (Adobe)", 4, 1, 1, 1, 1, 85, 1, 0, 0 },
    { "YCCK 4:2:0 q80 (Adobe)", 5, 2, 2, 1, 1, 80, 1, 0, 0 },
    { "progressive CMYK q85", 4, 1, 1, 1, 1, 85, 1, 0, 1 },
};

static void set_sampling(struct jpeg_compress_struct *c, const kind *k)
{
    int i;
    for (i = 0; i < c->num_components; i++) {
        int luma = i == 0 || i == 3; /* YCCK's K is sampled like Y */
        c->comp_info[i].h_samp_factor = luma ? k->h0 : k->hc;
        c->comp_info[i].v_samp_factor = luma ? k->v0 : k->vc;
    }
}

/* The source of kind k from rgb: CMYK stored the way Adobe writes it
   (inverted: 255 no ink), so that a decoder gives back about rgb. */
static int make_source(spim_buf *out, const unsigned char *rgb, int w, int h, const kind *k)
{
    struct jpeg_compress_struct c;
    jerr e;
    unsigned char *mem = NULL, *row = (unsigned char *)malloc((size_t)w * 4);
    unsigned long len = 0;
    int y, x, n = k->colour == 5 ? 4 : k->colour;
    c.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jerr_exit;
    e.mgr.output_message = jerr_quiet;
    if (setjmp(e.jump)) {
        jpeg_destroy_compress(&c);
        free(row);
        return 0;
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &mem, &len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = n;
    c.in_color_space = n == 1 ? JCS_GRAYSCALE : n == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    if (k->colour == 5) jpeg_set_colorspace(&c, JCS_YCCK);
    jpeg_set_quality(&c, k->quality, k->baseline ? TRUE : FALSE);
    set_sampling(&c, k);
    c.restart_interval = (unsigned)k->restart;
    if (k->prog == 1) jpeg_simple_progression(&c);
    if (k->prog == 2) {
        c.scan_info = n == 1 ? custom1 : custom3;
        c.num_scans = n == 1 ? (int)(sizeof custom1 / sizeof custom1[0])
                             : (int)(sizeof custom3 / sizeof custom3[0]);
    }
    jpeg_start_compress(&c, TRUE);
    for (y = 0; y < h; y++) {
        const unsigned char *src = rgb + (size_t)y * (size_t)w * 3;
        JSAMPROW rp = row;
        for (x = 0; x < w; x++) {
            if (n == 1) row[x] = src[3 * x + 1];
            else memcpy(row + (size_t)x * (size_t)n, src + 3 * x, 3);
            if (n == 4) row[4 * x + 3] = 255;
        }
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

/* What a JPEG says about itself: its tables, frame and scan headers. */
typedef struct jinfo {
    int sof, nc, ri, id[4], h[4], v[4], tq[4], qdef[4], prec[4], nscans;
    unsigned q[4][64];         /* zigzag order, as stored */
    unsigned char scan[64][10]; /* ns, component indices, Ss, Se, Ah/Al */
} jinfo;

static void read_scan(jinfo *ji, const unsigned char *d, size_t n)
{
    unsigned char *s;
    int i, k;
    if (ji->nscans == 64 || n < 1 || n != 4 + 2 * (size_t)d[0] || d[0] > 4) return;
    s = ji->scan[ji->nscans++];
    memset(s, 0, 10);
    s[0] = d[0];
    for (i = 0; i < d[0]; i++) {
        for (k = 0; k < ji->nc && ji->id[k] != d[1 + 2 * i]; k++) {}
        s[1 + i] = (unsigned char)k;
    }
    memcpy(s + 5, d + 1 + 2 * d[0], 3);
}

static void read_segment(jinfo *ji, int m, const unsigned char *d, size_t n)
{
    size_t i = 0;
    int c, k;
    if (m == 0xDB)
        while (i < n) {
            int pq = d[i] >> 4, t = d[i] & 3;
            ji->qdef[t] = 1;
            ji->prec[t] = pq;
            for (k = 0; k < 64; k++)
                ji->q[t][k] = pq ? (unsigned)(d[i + 1 + 2 * k] << 8 | d[i + 2 + 2 * k])
                                 : d[i + 1 + k];
            i += pq ? 129 : 65;
        }
    if (m >= 0xC0 && m <= 0xC2 && n >= 6) {
        ji->sof = m;
        ji->nc = d[5];
        for (c = 0; c < ji->nc && c < 4; c++) {
            ji->id[c] = d[6 + 3 * c];
            ji->h[c] = d[7 + 3 * c] >> 4;
            ji->v[c] = d[7 + 3 * c] & 15;
            ji->tq[c] = d[8 + 3 * c] & 3;
        }
    }
    if (m == 0xDD && n == 2) ji->ri = d[0] << 8 | d[1];
    if (m == 0xDA) read_scan(ji, d, n);
}

static void read_info(const spim_buf *b, jinfo *ji)
{
    size_t pos = 2;
    memset(ji, 0, sizeof *ji);
    while (pos + 4 <= b->len && b->data[pos] == 0xFF) {
        int m = b->data[pos + 1];
        size_t seg = (size_t)b->data[pos + 2] << 8 | b->data[pos + 3];
        if (m == 0xD9 || pos + 2 + seg > b->len) break;
        read_segment(ji, m, b->data + pos + 4, seg - 2);
        pos += 2 + seg;
        if (m == 0xDA) /* past the entropy-coded data */
            while (pos + 1 < b->len && !(b->data[pos] == 0xFF && b->data[pos + 1] != 0 &&
                                         (b->data[pos + 1] < 0xD0 || b->data[pos + 1] > 0xD7)))
                pos++;
    }
}

/* libjpeg's decoding, grey or RGB; NULL on an error, *warned on a warning. */
static unsigned char *decode(const spim_buf *in, int *nc, int *warned)
{
    struct jpeg_decompress_struct d;
    jerr e;
    unsigned char *px = NULL;
    d.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jerr_exit;
    if (setjmp(e.jump)) {
        jpeg_destroy_decompress(&d);
        free(px);
        return NULL;
    }
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, in->data, (unsigned long)in->len);
    jpeg_read_header(&d, TRUE);
    d.out_color_space = d.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&d);
    *nc = d.output_components;
    px = (unsigned char *)malloc((size_t)d.output_width * d.output_height * (size_t)*nc);
    while (d.output_scanline < d.output_height) {
        JSAMPROW r = px + (size_t)d.output_scanline * d.output_width * (size_t)*nc;
        jpeg_read_scanlines(&d, &r, 1);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    *warned = e.mgr.num_warnings != 0;
    return px;
}

/* libjpeg encoding px with the tables and sampling ji shows (optimised
   Huffman tables, progressive when ji is). */
static int libjpeg_floor(spim_buf *out, const unsigned char *px, int w, int h, int nc,
                         const jinfo *ji)
{
    struct jpeg_compress_struct c;
    jerr e;
    unsigned char *mem = NULL;
    unsigned long len = 0;
    unsigned table[64];
    int y, i, k;
    c.err = jpeg_std_error(&e.mgr);
    e.mgr.error_exit = jerr_exit;
    e.mgr.output_message = jerr_quiet;
    if (setjmp(e.jump)) {
        jpeg_destroy_compress(&c);
        return 0;
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &mem, &len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = nc;
    c.in_color_space = nc == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    for (i = 0; i < 4; i++) {
        if (!ji->qdef[i]) continue;
        for (k = 0; k < 64; k++) table[spim__zigzag[k]] = ji->q[i][k];
        jpeg_add_quant_table(&c, i, table, 100, FALSE);
    }
    for (i = 0; i < nc; i++) {
        c.comp_info[i].h_samp_factor = ji->h[i];
        c.comp_info[i].v_samp_factor = ji->v[i];
        c.comp_info[i].quant_tbl_no = ji->tq[i];
    }
    c.optimize_coding = TRUE;
    if (ji->sof == 0xC2) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    for (y = 0; y < h; y++) {
        JSAMPROW r = (JSAMPROW)(uintptr_t)(px + (size_t)y * (size_t)w * (size_t)nc);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    out->len = 0;
    spim_buf_append(out, mem, len);
    free(mem);
    return 1;
}

static spim_stamp the_stamp;

/* Mean absolute error of a against b inside (in = 1) or outside the
   rectangle r (x0, y0, x1, y1 inclusive). */
static double mae(const unsigned char *a, const unsigned char *b, int w, int h, int nc,
                  const int *r, int in)
{
    double sum = 0;
    long n = 0;
    int x, y, c;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            size_t o = ((size_t)y * (size_t)w + (size_t)x) * (size_t)nc;
            if ((x >= r[0] && x <= r[2] && y >= r[1] && y <= r[3]) != in) continue;
            for (c = 0; c < nc; c++) sum += abs((int)a[o + (size_t)c] - (int)b[o + (size_t)c]);
            n += nc;
        }
    return n ? sum / (double)n : 0;
}

/* The stored rectangle the stamp covers: drawn opaque on black. */
static void stamp_rect(int w, int h, const spim_stamp_options *o, int *r)
{
    unsigned char *img = (unsigned char *)calloc((size_t)w * (size_t)h, 1);
    spim_stamp white = the_stamp;
    spim_error err;
    int x, y;
    white.rgba = (unsigned char *)malloc((size_t)white.width * (size_t)white.height * 4);
    memset(white.rgba, 255, (size_t)white.width * (size_t)white.height * 4);
    r[0] = r[1] = 1 << 30;
    r[2] = r[3] = -1;
    if (spim__stamp_draw(img, w, h, 1, 1, &white, o, &err) == SPIM_OK)
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++)
                if (img[(size_t)y * (size_t)w + (size_t)x]) {
                    if (x < r[0]) r[0] = x;
                    if (y < r[1]) r[1] = y;
                    if (x > r[2]) r[2] = x;
                    if (y > r[3]) r[3] = y;
                }
    free(white.rgba);
    free(img);
}

/* The output's frame and tables against the source's (see the top). */
static void check_tables(const char *what, const kind *k, const jinfo *s, const jinfo *o)
{
    int i, cmyk = s->nc == 4, first = -1, second = -1, t;
    for (t = 0; t < 4; t++)
        if (s->qdef[t] && first < 0) first = t;
        else if (s->qdef[t] && second < 0) second = t;
    if (second < 0) second = first;
    CHECKF(o->nc == (s->nc == 1 ? 1 : 3), "%s: %d components", what, o->nc);
    CHECKF((o->sof == 0xC2) == (s->sof == 0xC2), "%s: SOF %02X from SOF %02X", what, o->sof,
           s->sof);
    CHECKF(o->sof == 0xC2 || o->sof == (k->baseline ? 0xC0 : 0xC1), "%s: SOF %02X", what, o->sof);
    CHECKF(o->ri == s->ri, "%s: restart interval %d, source %d", what, o->ri, s->ri);
    for (i = 0; i < o->nc && i < 3; i++) {
        int si = cmyk ? i > 0 : i, st = cmyk ? (i ? second : first) : s->tq[si];
        int wh = k->h0 > 2 ? (i ? 1 : 2) : s->h[si];
        CHECKF(o->h[i] == wh && o->v[i] == s->v[si], "%s: component %d sampled %dx%d, source %dx%d",
               what, i, o->h[i], o->v[i], s->h[si], s->v[si]);
        CHECKF(o->prec[o->tq[i]] == s->prec[st] &&
                   !memcmp(o->q[o->tq[i]], s->q[st], sizeof o->q[0]),
               "%s: component %d's table (%u %u ...) is not the source's table %d (%u %u ...)",
               what, i, o->q[o->tq[i]][0], o->q[o->tq[i]][1], st, s->q[st][0], s->q[st][1]);
    }
    if (k->prog == 2) {
        CHECKF(o->nscans == s->nscans && !memcmp(o->scan, s->scan, sizeof o->scan[0] * 64),
               "%s: %d scans, the source's script has %d", what, o->nscans, s->nscans);
    }
}

/* Stamp one source through the recode path and check everything promised. */
static void check_kind(const kind *k, const unsigned char *rgb, int w, int h, spim_jpeg_mode mode)
{
    spim_buf src = SPIM_BUF_INIT, out = SPIM_BUF_INIT, lj = SPIM_BUF_INIT;
    spim_stamp_options o;
    spim_image_info info;
    spim_image img;
    spim_error err;
    jinfo si, oi;
    unsigned char *ours = NULL, *floor_px = NULL;
    int r[4], nc = 0, nc2 = 0, warned = 0, warned2 = 0;
    char what[160];
    snprintf(what, sizeof what, "%s%s", k->name, mode == SPIM_JPEG_AUTO ? " (auto)" : "");
    memset(&o, 0, sizeof o);
    o.jpeg_mode = mode;
    REQUIRE(make_source(&src, rgb, w, h, k));
    REQUIRE(spim_stamp_image(src.data, src.len, &the_stamp, &o, &out, &info, &err) == SPIM_OK);
    CHECKF(info.path && !strcmp(info.path, "recode"), "%s: path %s", what, info.path);
    read_info(&src, &si);
    read_info(&out, &oi);
    check_tables(what, k, &si, &oi);
    CHECKF(out.len * 2 > src.len / (si.nc == 4 ? 2 : 1) && out.len < src.len * 3 / 2,
           "%s: %zu bytes from %zu", what, out.len, src.len);
    REQUIRE(spim_image_decode(src.data, src.len, 0, &img, &err) == SPIM_OK);
    REQUIRE(spim_image_stamp(&img, &the_stamp, &o, &err) == SPIM_OK);
    ours = decode(&out, &nc, &warned);
    CHECKF(ours && !warned && nc == img.channels, "%s: libjpeg %s", what,
           ours ? "warns" : "cannot decode the output");
    if (ours && libjpeg_floor(&lj, img.pixels, w, h, img.channels, &oi) &&
        (floor_px = decode(&lj, &nc2, &warned2)) != NULL) {
        double in_o, in_l, out_o, out_l;
        stamp_rect(w, h, &o, r);
        in_o = mae(ours, img.pixels, w, h, nc, r, 1);
        in_l = mae(floor_px, img.pixels, w, h, nc, r, 1);
        out_o = mae(ours, img.pixels, w, h, nc, r, 0);
        out_l = mae(floor_px, img.pixels, w, h, nc, r, 0);
        CHECKF(in_o <= in_l + BOUND && out_o <= out_l + BOUND,
               "%s: mean error inside the stamp %.3f (libjpeg %.3f), outside %.3f (libjpeg %.3f)",
               what, in_o, in_l, out_o, out_l);
        printf("    %-44s %7zu -> %7zu bytes (libjpeg %7zu); error in %.3f (libjpeg %.3f), "
               "out %.3f (%.3f)\n", what, src.len, out.len, lj.len, in_o, in_l, out_o, out_l);
    } else {
        CHECKF(0, "%s: no libjpeg floor", what);
    }
    free(ours);
    free(floor_px);
    spim_image_free(&img);
    spim_buf_free(&src);
    spim_buf_free(&out);
    spim_buf_free(&lj);
}

TEST(recode_keeps_the_sources_tables_sampling_and_progression)
{
    unsigned char *rgb = make_photo(301, 219, 3);
    size_t i;
    for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        check_kind(&kinds[i], rgb, 301, 219, SPIM_JPEG_RECODE);
    free(rgb);
}

/* What the splice and the progressive path decline goes the same way
   without --recode: CMYK, YCCK, a sampling factor of 4. */
TEST(what_the_splice_declines_is_recoded_the_same_way)
{
    unsigned char *rgb = make_photo(250, 170, 5);
    check_kind(&kinds[6], rgb, 250, 170, SPIM_JPEG_AUTO);
    check_kind(&kinds[10], rgb, 250, 170, SPIM_JPEG_AUTO);
    check_kind(&kinds[11], rgb, 250, 170, SPIM_JPEG_AUTO);
    check_kind(&kinds[12], rgb, 250, 170, SPIM_JPEG_AUTO);
    free(rgb);
}

/* A source that is not a JPEG, written as one: stb's encoder at `quality`. */
TEST(quality_applies_where_no_table_was_read)
{
    unsigned char *rgb = make_photo(160, 120, 9);
    spim_buf ppm = SPIM_BUF_INIT, lo = SPIM_BUF_INIT, hi = SPIM_BUF_INIT;
    spim_stamp_options o;
    spim_error err;
    jinfo a, b;
    spim_buf_appendf(&ppm, "P6\n160 120\n255\n");
    spim_buf_append(&ppm, rgb, 160 * 120 * 3);
    memset(&o, 0, sizeof o);
    o.output_format = SPIM_FORMAT_JPEG;
    o.quality = 40;
    CHECK_INT(SPIM_OK, spim_stamp_image(ppm.data, ppm.len, &the_stamp, &o, &lo, NULL, &err));
    o.quality = 95;
    CHECK_INT(SPIM_OK, spim_stamp_image(ppm.data, ppm.len, &the_stamp, &o, &hi, NULL, &err));
    read_info(&lo, &a);
    read_info(&hi, &b);
    CHECKF(a.q[0][0] > b.q[0][0] && lo.len < hi.len, "q40: DC step %u, %zu bytes; q95: %u, %zu",
           a.q[0][0], lo.len, b.q[0][0], hi.len);
    spim_buf_free(&ppm);
    spim_buf_free(&lo);
    spim_buf_free(&hi);
    free(rgb);
}

/* A JPEG whose quantisation table holds a zero (stb decodes it; the
   splice and the table reader refuse it): stb's encoder at `quality`. */
TEST(quality_applies_where_the_tables_cannot_be_read)
{
    unsigned char *rgb = make_photo(128, 96, 11);
    spim_buf src = SPIM_BUF_INIT, lo = SPIM_BUF_INIT, hi = SPIM_BUF_INIT;
    spim_stamp_options o;
    spim_image_info info;
    spim_error err;
    jinfo a, b;
    size_t pos;
    REQUIRE(make_source(&src, rgb, 128, 96, &kinds[3]));
    for (pos = 2; pos + 4 < src.len && !(src.data[pos] == 0xFF && src.data[pos + 1] == 0xDB);)
        pos += 2 + (size_t)(src.data[pos + 2] << 8 | src.data[pos + 3]);
    REQUIRE(pos + 69 < src.len);
    src.data[pos + 4 + 64] = 0; /* table 0's last zigzag step */
    memset(&o, 0, sizeof o);
    o.quality = 40;
    CHECK_INT(SPIM_OK, spim_stamp_image(src.data, src.len, &the_stamp, &o, &lo, &info, &err));
    CHECK_STR("recode", info.path);
    o.quality = 95;
    CHECK_INT(SPIM_OK, spim_stamp_image(src.data, src.len, &the_stamp, &o, &hi, NULL, &err));
    read_info(&lo, &a);
    read_info(&hi, &b);
    CHECKF(a.q[0][0] > b.q[0][0] && a.q[0][63] != 0, "q40: DC step %u, last %u; q95: DC step %u",
           a.q[0][0], a.q[0][63], b.q[0][0]);
    spim_buf_free(&src);
    spim_buf_free(&lo);
    spim_buf_free(&hi);
    free(rgb);
}

/* Lossless (SOF3), arithmetic-coded (SOF9) and 12-bit files are refused
   by name on the recode path too. */
TEST(lossless_arithmetic_and_12_bit_are_refused_by_name)
{
    static const struct {
        int marker, bits;
        const char *why;
    } cases[] = { { 0xC3, 8, "lossless JPEG" }, { 0xC9, 8, "arithmetic-coded JPEG" },
                  { 0xC1, 12, "12-bit JPEG" } };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char f[] = { 0xFF, 0xD8, 0xFF, 0xC3, 0, 11, 8, 0, 16, 0, 16, 1, 1, 0x11, 0,
                              0xFF, 0xDA, 0, 8, 1, 1, 0, 1, 0, 0, 0x12, 0x34, 0xFF, 0xD9 };
        spim_stamp_options o;
        spim_buf out = SPIM_BUF_INIT;
        spim_error err;
        f[3] = (unsigned char)cases[i].marker;
        f[6] = (unsigned char)cases[i].bits;
        memset(&o, 0, sizeof o);
        o.jpeg_mode = SPIM_JPEG_RECODE;
        memset(&err, 0, sizeof err);
        CHECK_INT(SPIM_ERR_IMAGE, spim_stamp_image(f, sizeof f, &the_stamp, &o, &out, NULL, &err));
        CHECKF(strstr(err.message, cases[i].why) != NULL, "expected \"%s\", got \"%s\"",
               cases[i].why, err.message);
        spim_buf_free(&out);
    }
}

int main(void)
{
    int x, y;
    the_stamp.width = 41;
    the_stamp.height = 29;
    the_stamp.rgba = (unsigned char *)malloc(41 * 29 * 4);
    for (y = 0; y < 29; y++)
        for (x = 0; x < 41; x++) {
            unsigned char *p = the_stamp.rgba + ((size_t)y * 41 + (size_t)x) * 4;
            p[0] = (unsigned char)(x * 255 / 41);
            p[1] = (unsigned char)(y * 255 / 29);
            p[2] = (unsigned char)((x * y) & 255);
            p[3] = (unsigned char)(40 + (x * 5 + y * 3) % 215);
        }
    RUN(recode_keeps_the_sources_tables_sampling_and_progression);
    RUN(what_the_splice_declines_is_recoded_the_same_way);
    RUN(quality_applies_where_no_table_was_read);
    RUN(quality_applies_where_the_tables_cannot_be_read);
    RUN(lossless_arithmetic_and_12_bit_are_refused_by_name);
    free(the_stamp.rgba);
    return spim_test_finish();
}
