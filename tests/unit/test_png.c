/* PNG in the compressed domain: the exact blend for every colour type, the
   IDAT prefix copied bit for bit, ancillary chunks in order, hostile files.
   Inputs are written here with zlib (deflate's Z_BLOCK flush puts block ends
   at odd bit offsets); outputs are read back with stb_image. */
#define SPARTA_IMAGER_IMPLEMENTATION
#define SPIM_NO_S3
#define SPIM_NO_EVENTS
#define SPIM_NO_LAMBDA
#include "sparta_imager.h"
#include "spim_test.h"

static uint32_t rng_state = 2323;
static unsigned rnd(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 16;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void chunk(spim_buf *b, const char *type, const void *d, size_t n)
{
    unsigned char h[8], c[4];
    uLong crc;
    put32(h, (uint32_t)n);
    memcpy(h + 4, type, 4);
    crc = crc32(crc32(0L, Z_NULL, 0), h + 4, 4);
    if (n) crc = crc32(crc, (const unsigned char *)d, (uInt)n);
    put32(c, (uint32_t)crc);
    spim_buf_append(b, h, 8);
    if (n) spim_buf_append(b, d, n);
    spim_buf_append(b, c, 4);
}

/* How a test PNG is made. */
typedef struct png_spec {
    int w, h, depth, ct;
    int block_rows;             /* end a deflate block (Z_BLOCK) every this many rows; 0 = never */
    size_t idat_piece;          /* bytes per IDAT chunk; 0 = one chunk */
    int empty_idats;            /* zero-length IDAT chunks between the pieces */
    const spim_buf *pre, *post; /* ready-made chunks before / after IDAT */
    int plte_n, trns_n;
    int wild_index; /* palette indexes past the PLTE entries */
    int flat;       /* every sample 77: zlib makes blocks of megabytes */
} png_spec;

static int channels_of(int ct) { return ct == 0 || ct == 3 ? 1 : ct == 2 ? 3 : ct == 4 ? 2 : 4; }

/* Random samples (palette indexes below plte_n), rows filtered 0..4 in turn. */
static void make_png(const png_spec *s, spim_buf *out)
{
    size_t stride = ((size_t)s->w * (size_t)channels_of(s->ct) * (size_t)s->depth + 7) / 8, i, pos;
    int bpp = channels_of(s->ct) * s->depth / 8 ? channels_of(s->ct) * s->depth / 8 : 1, y;
    unsigned char *prev = (unsigned char *)calloc(1, stride),
                  *row = (unsigned char *)malloc(stride);
    unsigned char *f = (unsigned char *)malloc(stride + 1), ihdr[13], plte[768], trns[256];
    spim_buf z = SPIM_BUF_INIT;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* flat: memLevel 9 lets a block hold 32K matches of 258 bytes, 8 MiB */
    deflateInit2(&zs, 6, Z_DEFLATED, 15, s->flat ? 9 : 8, Z_DEFAULT_STRATEGY);
    spim_buf_append(out, "\x89PNG\r\n\x1a\n", 8);
    put32(ihdr, (uint32_t)s->w);
    put32(ihdr + 4, (uint32_t)s->h);
    ihdr[8] = (unsigned char)s->depth;
    ihdr[9] = (unsigned char)s->ct;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    chunk(out, "IHDR", ihdr, 13);
    if (s->pre) spim_buf_append(out, s->pre->data, s->pre->len);
    for (i = 0; i < 768; i++) plte[i] = (unsigned char)rnd();
    for (i = 0; i < 256; i++) trns[i] = (unsigned char)(i * 37);
    if (s->plte_n) chunk(out, "PLTE", plte, (size_t)s->plte_n * 3);
    if (s->trns_n) chunk(out, "tRNS", trns, (size_t)s->trns_n);
    for (y = 0; y < s->h; y++) {
        for (i = 0; i < stride; i++) {
            row[i] = (unsigned char)(((unsigned)y * 3 + (unsigned)i * 7 + (rnd() & 15)) & 255);
            if (s->flat) row[i] = 77;
            if (s->ct == 3 && s->depth == 8 && !s->wild_index)
                row[i] = (unsigned char)(row[i] % (unsigned)s->plte_n);
        }
        f[0] = (unsigned char)(y % 5);
        for (i = 0; i < stride; i++) {
            unsigned a = i >= (size_t)bpp ? row[i - (size_t)bpp] : 0, b = prev[i],
                     c = i >= (size_t)bpp ? prev[i - (size_t)bpp] : 0;
            int p = (int)a + (int)b - (int)c, pa = abs(p - (int)a), pb = abs(p - (int)b),
                pc = abs(p - (int)c);
            unsigned pred[5] = { 0, a, b, (a + b) / 2,
                                 pa <= pb && pa <= pc ? a
                                     : pb <= pc       ? b
                                                      : c };
            f[1 + i] = (unsigned char)(row[i] - pred[y % 5]);
        }
        memcpy(prev, row, stride);
        zs.next_in = f;
        zs.avail_in = (uInt)(stride + 1);
        do {
            unsigned char buf[4096];
            zs.next_out = buf;
            zs.avail_out = sizeof buf;
            deflate(&zs,
                    y == s->h - 1                                 ? Z_FINISH
                        : s->block_rows && y % s->block_rows == 0 ? Z_BLOCK
                                                                  : Z_NO_FLUSH);
            spim_buf_append(&z, buf, sizeof buf - zs.avail_out);
        } while (zs.avail_out == 0 || zs.avail_in);
    }
    deflateEnd(&zs);
    for (pos = 0; pos < z.len;) {
        size_t n = s->idat_piece && z.len - pos > s->idat_piece ? s->idat_piece : z.len - pos;
        chunk(out, "IDAT", z.data + pos, n);
        if (s->empty_idats) chunk(out, "IDAT", NULL, 0);
        pos += n;
    }
    if (s->post) spim_buf_append(out, s->post->data, s->post->len);
    chunk(out, "IEND", NULL, 0);
    spim_buf_free(&z);
    free(prev);
    free(row);
    free(f);
}

static spim_stamp colour_stamp, grey_stamp;

static void make_stamps(void)
{
    int i;
    colour_stamp.width = grey_stamp.width = 21;
    colour_stamp.height = grey_stamp.height = 13;
    colour_stamp.rgba = (unsigned char *)malloc(21 * 13 * 4);
    grey_stamp.rgba = (unsigned char *)malloc(21 * 13 * 4);
    for (i = 0; i < 21 * 13; i++) {
        colour_stamp.rgba[i * 4] = (unsigned char)(i * 7);
        colour_stamp.rgba[i * 4 + 1] = (unsigned char)(255 - i);
        colour_stamp.rgba[i * 4 + 2] = (unsigned char)(i * 3);
        colour_stamp.rgba[i * 4 + 3] = (unsigned char)(i % 3 == 0 ? 255 : i * 11);
        memset(grey_stamp.rgba + i * 4, (unsigned char)(i * 5), 3);
        grey_stamp.rgba[i * 4 + 3] = colour_stamp.rgba[i * 4 + 3];
    }
}

/* The 16-bit blend documented in the header, written out independently. */
static void blend16_reference(uint16_t *px, int w, int h, int ch, const spim_stamp *st, int x0,
                              int y0, int grey)
{
    int x, y, c;
    for (y = 0; y < st->height; y++)
        for (x = 0; x < st->width; x++) {
            const unsigned char *s = st->rgba + (y * st->width + x) * 4;
            uint16_t *d;
            uint64_t A = (uint64_t)s[3] * 257, da, S[3];
            int nc = ch == 2 || ch == 4 ? ch - 1 : ch;
            if (x0 + x < 0 || y0 + y < 0 || x0 + x >= w || y0 + y >= h || !A) continue;
            d = px + ((size_t)(y0 + y) * (size_t)w + (size_t)(x0 + x)) * (size_t)ch;
            da = nc < ch ? d[ch - 1] : 65535;
            for (c = 0; c < 3; c++)
                S[c] = (grey ? (77u * s[0] + 150u * s[1] + 29u * s[2] + 128) >> 8 : s[c]) * 257u;
            for (c = 0; c < nc; c++) {
                if (da == 65535 || A == 65535) {
                    d[c] = (uint16_t)((S[c] * A + d[c] * (65535 - A) + 32767) / 65535);
                } else {
                    uint64_t ws = 65535 * A, wd = da * (65535 - A);
                    d[c] = (uint16_t)((2 * (S[c] * ws + d[c] * wd) + ws + wd) / (2 * (ws + wd)));
                }
            }
            if (nc < ch) d[ch - 1] = (uint16_t)(A + (da * (65535 - A) + 32767) / 65535);
        }
}

/* Stamp `in` and compare with the blend of its decoded pixels; returns the
   largest difference (-1 when something failed). */
static int stamp_and_compare(const spim_buf *in, const spim_stamp *st, const spim_stamp_options *o,
                             int want_ch, int want_depth, spim_image_info *info, spim_buf *out)
{
    spim_error err;
    int w, h, n, wo, ho, no, diff = 0;
    size_t i, count;
    if (spim_stamp_image(in->data, in->len, st, o, out, info, &err) != SPIM_OK) {
        printf("  stamp failed: %s\n", err.message);
        return -1;
    }
    if (want_depth == 16) {
        uint16_t *a = stbi_load_16_from_memory(in->data, (int)in->len, &w, &h, &n, want_ch);
        uint16_t *b = stbi_load_16_from_memory(out->data, (int)out->len, &wo, &ho, &no, want_ch);
        int x0, y0;
        spim__place(o->gravity, o->margin, w, h, st->width, st->height, &x0, &y0);
        if (!a || !b || !stbi_is_16_bit_from_memory(out->data, (int)out->len))
            diff = -1;
        else
            blend16_reference(a, w, h, want_ch, st, x0, y0, want_ch <= 2);
        for (i = 0, count = (size_t)w * (size_t)h * (size_t)want_ch; diff >= 0 && i < count; i++)
            if (abs((int)a[i] - (int)b[i]) > diff) diff = abs((int)a[i] - (int)b[i]);
        stbi_image_free(a);
        stbi_image_free(b);
    } else {
        unsigned char *a = stbi_load_from_memory(in->data, (int)in->len, &w, &h, &n, want_ch);
        unsigned char *b = stbi_load_from_memory(out->data, (int)out->len, &wo, &ho, &no, want_ch);
        if (!a || !b || stbi_is_16_bit_from_memory(out->data, (int)out->len) ||
            spim__stamp_draw(a, w, h, want_ch, 1, st, o, &err) != SPIM_OK)
            diff = -1;
        for (i = 0, count = (size_t)w * (size_t)h * (size_t)want_ch; diff >= 0 && i < count; i++)
            if (abs((int)a[i] - (int)b[i]) > diff) diff = abs((int)a[i] - (int)b[i]);
        stbi_image_free(a);
        stbi_image_free(b);
    }
    if (diff >= 0 && no != want_ch) {
        printf("  output has %d channels, expected %d\n", no, want_ch);
        diff = -1;
    }
    return diff;
}

/* IHDR colour type and depth of a PNG. */
static int out_ct(const spim_buf *b) { return b->len > 25 ? b->data[25] : -1; }
static int out_depth(const spim_buf *b) { return b->len > 24 ? b->data[24] : -1; }

typedef struct type_case {
    const char *name;
    int depth, ct, plte_n, trns_n, grey;
    int ch, out_depth, out_ct;
    const char *path, *conversion;
} type_case;

TEST(every_colour_type_is_the_exact_blend)
{
    static const type_case cases[] = {
        { "rgb8", 8, 2, 0, 0, 0, 3, 8, 2, "splice", "" },
        { "rgba8", 8, 6, 0, 0, 0, 4, 8, 6, "splice", "" },
        { "rgb16", 16, 2, 0, 0, 0, 3, 16, 2, "splice", "" },
        { "rgba16", 16, 6, 0, 0, 0, 4, 16, 6, "splice", "" },
        { "grey8, grey stamp", 8, 0, 0, 0, 1, 1, 8, 0, "splice", "" },
        { "grey16, grey stamp", 16, 0, 0, 0, 1, 1, 16, 0, "splice", "" },
        { "grey+alpha8, grey stamp", 8, 4, 0, 0, 1, 2, 8, 4, "splice", "" },
        { "grey8, colour stamp", 8, 0, 0, 0, 0, 3, 8, 2, "recode", "grey8 -> rgb8" },
        { "grey+alpha8, colour stamp", 8, 4, 0, 0, 0, 4, 8, 6, "recode", "grey+alpha8 -> rgba8" },
        { "grey16, colour stamp", 16, 0, 0, 0, 0, 3, 16, 2, "recode", "grey16 -> rgb16" },
        { "grey1, grey stamp", 1, 0, 0, 0, 1, 1, 8, 0, "recode", "grey1 -> grey8" },
        { "grey4, colour stamp", 4, 0, 0, 0, 0, 3, 8, 2, "recode", "grey4 -> rgb8" },
        { "palette8 + tRNS", 8, 3, 40, 17, 0, 4, 8, 6, "recode", "palette8+tRNS -> rgba8" },
        { "palette2", 2, 3, 4, 0, 0, 3, 8, 2, "recode", "palette2 -> rgb8" },
        { "rgb8 + tRNS", 8, 2, 0, 6, 0, 4, 8, 6, "recode", "rgb8+tRNS -> rgba8" },
    };
    size_t k;
    int g;
    for (k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (g = 0; g < 3; g++) {
            const type_case *c = &cases[k];
            png_spec s;
            spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
            spim_stamp_options o;
            spim_image_info info;
            int d;
            memset(&s, 0, sizeof s);
            memset(&o, 0, sizeof o);
            s.w = 61;
            s.h = 47;
            s.depth = c->depth;
            s.ct = c->ct;
            s.plte_n = c->plte_n;
            s.trns_n = c->trns_n;
            s.block_rows = 4;
            o.gravity = g == 0 ? SPIM_GRAVITY_SE : g == 1 ? SPIM_GRAVITY_NW : SPIM_GRAVITY_C;
            o.margin = g == 0 ? 3 : 0;
            make_png(&s, &in);
            d = stamp_and_compare(&in, c->grey ? &grey_stamp : &colour_stamp, &o, c->ch,
                                  c->out_depth, &info, &out);
            CHECKF(d == 0, "%s, gravity %d: max difference %d (expected 0)", c->name,
                   (int)o.gravity, d);
            CHECKF(out_ct(&out) == c->out_ct && out_depth(&out) == c->out_depth,
                   "%s: wrote type %d depth %d", c->name, out_ct(&out), out_depth(&out));
            CHECKF(info.path && !strcmp(info.path, c->path), "%s: path %s, expected %s", c->name,
                   info.path ? info.path : "(null)", c->path);
            CHECKF(!strcmp(info.conversion, c->conversion), "%s: conversion '%s', expected '%s'",
                   c->name, info.conversion, c->conversion);
            spim_buf_free(&in);
            spim_buf_free(&out);
        }
}

/* The IDAT chunks' data joined: the zlib stream. */
static void idat_stream(const spim_buf *png, spim_buf *z)
{
    size_t pos = 8;
    while (pos + 12 <= png->len) {
        uint32_t n = spim__rd32(png->data + pos, 0);
        if (!memcmp(png->data + pos + 4, "IDAT", 4)) spim_buf_append(z, png->data + pos + 8, n);
        pos += 12 + (size_t)n;
    }
}

/* Chunk types in order, as one string. */
static void chunk_list(const spim_buf *png, char *out, size_t cap)
{
    size_t pos = 8, k = 0;
    while (pos + 12 <= png->len && k + 6 < cap) {
        uint32_t n = spim__rd32(png->data + pos, 0);
        if (memcmp(png->data + pos + 4, "IDAT", 4) || k < 5 || memcmp(out + k - 5, "IDAT ", 5)) {
            memcpy(out + k, png->data + pos + 4, 4);
            out[k + 4] = ' ';
            k += 5;
        }
        pos += 12 + (size_t)n;
    }
    out[k ? k - 1 : 0] = '\0';
}

TEST(idat_prefix_is_copied_bit_for_bit)
{
    int k;
    for (k = 0; k < 3; k++) {
        png_spec s;
        spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT, zi = SPIM_BUF_INIT, zo = SPIM_BUF_INIT;
        spim_image_info info;
        spim_error err;
        uint64_t bits, above;
        int d;
        memset(&s, 0, sizeof s);
        s.w = 120;
        s.h = 300;
        s.depth = 8;
        s.ct = k == 1 ? 6 : 2;
        s.block_rows = k == 2 ? 0 : 7; /* k = 2: zlib's own block ends */
        s.idat_piece = k == 0 ? 1000 : 8192;
        make_png(&s, &in);
        d = stamp_and_compare(&in, &colour_stamp, &(spim_stamp_options){ 0 }, k == 1 ? 4 : 3, 8,
                              &info, &out);
        CHECKF(d == 0, "case %d: max difference %d", k, d);
        idat_stream(&in, &zi);
        idat_stream(&out, &zo);
        bits = info.bits_copied;
        above = (uint64_t)(s.h - colour_stamp.height) * (uint64_t)(s.w * (k == 1 ? 4 : 3) + 1);
        CHECKF(bits > 16, "case %d: copied %llu bits", k, (unsigned long long)bits);
        CHECKF(zo.len > bits / 8 && !memcmp(zi.data, zo.data, (size_t)(bits / 8)),
               "case %d: prefix differs", k);
        if (bits % 8 && zo.len > bits / 8) {
            unsigned m = (1u << (bits % 8)) - 1;
            CHECKF((zi.data[bits / 8] & m) == (zo.data[bits / 8] & m), "case %d: last bits differ",
                   k);
        }
        /* the rows above the stamp are most of the stream: the copy stops a block early at most */
        CHECKF(info.rows_recoded < colour_stamp.height + (k == 2 ? 150 : 8),
               "case %d: %d rows re-coded", k, info.rows_recoded);
        CHECKF(bits / 8 * 10 >= zi.len * 5 || k == 2, "case %d: copied %llu of %zu bytes", k,
               (unsigned long long)(bits / 8), zi.len);
        (void)above;
        (void)err;
        spim_buf_free(&in);
        spim_buf_free(&out);
        spim_buf_free(&zi);
        spim_buf_free(&zo);
    }
}

TEST(ancillary_chunks_stay_in_place)
{
    static const unsigned char exif[] =
        "MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x01\0\0\0\0\0\0";
    png_spec s;
    spim_buf pre = SPIM_BUF_INIT, post = SPIM_BUF_INIT, in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_image_info info;
    char got[400];
    int d;
    chunk(&pre, "gAMA", "\0\0\xb1\x8f", 4);
    chunk(&pre, "cHRM", "01234567890123456789012345678901", 32);
    chunk(&pre, "iCCP", "x\0\0x\x9c\x03\0\0\0\0\x01", 11);
    chunk(&pre, "sRGB", "\0", 1);
    chunk(&pre, "pHYs", "\0\0\x0b\x13\0\0\x0b\x13\x01", 9);
    chunk(&pre, "eXIf", exif, sizeof exif - 1);
    chunk(&pre, "tEXt", "Title\0A test", 12);
    chunk(&pre, "prVt", "safe to copy", 12);
    chunk(&pre, "prVT", "unsafe to copy", 14);
    chunk(&pre, "bKGD", "\0\x10\0\x20\0\x30", 6);
    chunk(&post, "tIME", "\x07\xea\x0c\x06\x07\x00\x00", 7);
    chunk(&post, "iTXt", "Comment\0\0\0\0\0hi", 15);
    chunk(&post, "zTXt", "Note\0\0x\x9c\x03\0\0\0\0\x01", 14);
    memset(&s, 0, sizeof s);
    s.w = 40;
    s.h = 40;
    s.depth = 8;
    s.ct = 2;
    s.pre = &pre;
    s.post = &post;
    make_png(&s, &in);
    d = stamp_and_compare(&in, &colour_stamp, &(spim_stamp_options){ 0 }, 3, 8, &info, &out);
    CHECK_INT(0, d);
    chunk_list(&out, got, sizeof got);
    CHECK_STR("IHDR gAMA cHRM iCCP sRGB pHYs eXIf tEXt prVt bKGD IDAT tIME iTXt zTXt IEND", got);
    /* a palette image that becomes RGB: PLTE and tRNS go, bKGD is converted */
    spim_buf_reset(&pre);
    chunk(&pre, "gAMA", "\0\0\xb1\x8f", 4);
    chunk(&pre, "bKGD", "\x02", 1);
    spim_buf_reset(&in);
    spim_buf_reset(&out);
    s.depth = 8;
    s.ct = 3;
    s.plte_n = 9;
    s.trns_n = 3;
    make_png(&s, &in);
    d = stamp_and_compare(&in, &colour_stamp, &(spim_stamp_options){ 0 }, 4, 8, &info, &out);
    CHECK_INT(0, d);
    chunk_list(&out, got, sizeof got);
    CHECK_STR("IHDR gAMA bKGD IDAT tIME iTXt zTXt IEND", got);
    spim_buf_free(&pre);
    spim_buf_free(&post);
    spim_buf_free(&in);
    spim_buf_free(&out);
}

TEST(idat_in_many_chunks_and_empty_ones)
{
    png_spec s;
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_image_info info;
    int d;
    memset(&s, 0, sizeof s);
    s.w = 50;
    s.h = 60;
    s.depth = 8;
    s.ct = 6;
    s.block_rows = 5;
    s.idat_piece = 1;
    s.empty_idats = 1;
    make_png(&s, &in);
    d = stamp_and_compare(&in, &colour_stamp, &(spim_stamp_options){ 0 }, 4, 8, &info, &out);
    CHECK_INT(0, d);
    CHECK_STR("splice", info.path);
    CHECK(info.bits_copied > 16);
    spim_buf_free(&in);
    spim_buf_free(&out);
}

TEST(a_block_of_megabytes_is_not_held)
{
    png_spec s;
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_image_info info;
    int d;
    memset(&s, 0, sizeof s);
    s.w = 1500; s.h = 1400; s.depth = 8; s.ct = 2; s.flat = 1;
    make_png(&s, &in);
    d = stamp_and_compare(&in, &colour_stamp, &(spim_stamp_options){ 0 }, 3, 8, &info, &out);
    CHECK_INT(0, d);
    CHECK_STR("splice", info.path);
    spim_buf_free(&in); spim_buf_free(&out);
}

TEST(tiles_are_the_exact_blend)
{
    static const int types[3][3] = { { 2, 8, 3 }, { 6, 8, 4 }, { 6, 16, 4 } };
    int k;
    for (k = 0; k < 3; k++) {
        png_spec s;
        spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
        spim_stamp_options o;
        spim_image_info info;
        int d;
        memset(&s, 0, sizeof s);
        memset(&o, 0, sizeof o);
        s.w = 90; s.h = 70; s.ct = types[k][0]; s.depth = types[k][1]; s.block_rows = 3;
        o.tile = 1;
        o.tile_gap = 4;
        make_png(&s, &in);
        if (types[k][1] == 16) { /* the 16-bit reference draws one stamp: compare the 8-bit part only */
            spim_error err;
            CHECK_INT(SPIM_OK, spim_stamp_image(in.data, in.len, &colour_stamp, &o, &out, &info, &err));
            CHECK_INT(16, out_depth(&out));
        } else {
            d = stamp_and_compare(&in, &colour_stamp, &o, types[k][2], 8, &info, &out);
            CHECKF(d == 0, "type %d: max difference %d", k, d);
        }
        CHECK_STR("splice", info.path);
        spim_buf_free(&in); spim_buf_free(&out);
    }
}

/* Stamp bytes that must fail with `status` and a message containing `what`. */
static void expect_error(const char *name, const spim_buf *in, spim_status status, const char *what)
{
    spim_buf out = SPIM_BUF_INIT;
    spim_error err;
    spim_status st = spim_stamp_image(in->data, in->len, &colour_stamp, NULL, &out, NULL, &err);
    CHECKF(st == status && strstr(err.message, what) && out.len == 0,
           "%s: status %d '%s' (%zu bytes out)", name, (int)st, st ? err.message : "", out.len);
    spim_buf_free(&out);
}

/* Offset of the first chunk of `type`. */
static size_t find_chunk(const spim_buf *b, const char *type)
{
    size_t pos = 8;
    while (pos + 12 <= b->len && memcmp(b->data + pos + 4, type, 4))
        pos += 12 + spim__rd32(b->data + pos, 0);
    return pos;
}

static void fix_crc(spim_buf *b, size_t pos)
{
    uint32_t n = spim__rd32(b->data + pos, 0);
    put32(b->data + pos + 8 + n, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b->data + pos + 4, n + 4));
}

TEST(hostile_pngs_fail_clearly)
{
    png_spec s;
    spim_buf good = SPIM_BUF_INIT, b = SPIM_BUF_INIT;
    size_t idat;
    memset(&s, 0, sizeof s);
    s.w = 64;
    s.h = 64;
    s.depth = 8;
    s.ct = 2;
    s.block_rows = 3;
    s.idat_piece = 900;
    make_png(&s, &good);
    idat = find_chunk(&good, "IDAT");
#define MUTATE(stmt)                                                                               \
    do {                                                                                           \
        spim_buf_reset(&b);                                                                        \
        spim_buf_append(&b, good.data, good.len);                                                  \
        stmt;                                                                                      \
    } while (0)
    MUTATE(b.len = idat + 500);
    expect_error("truncated in IDAT", &b, SPIM_ERR_IMAGE, "truncated PNG");
    MUTATE(b.data[idat + 100] ^= 1);
    expect_error("bad CRC", &b, SPIM_ERR_IMAGE, "CRC");
    MUTATE((b.data[idat + 300] ^= 0x55, fix_crc(&b, idat)));
    expect_error("bad zlib data", &b, SPIM_ERR_IMAGE, "corrupt PNG");
    MUTATE((b.data[idat + 8] = 0x79, fix_crc(&b, idat)));
    expect_error("bad zlib header", &b, SPIM_ERR_IMAGE, "corrupt PNG");
    MUTATE((put32(b.data + 16, 0x7FFFFFFFu), put32(b.data + 20, 0x7FFFFFFFu), fix_crc(&b, 8)));
    expect_error("huge dimensions", &b, SPIM_ERR_TOO_LARGE, "budget");
    MUTATE((put32(b.data + 16, 0x80000000u), fix_crc(&b, 8)));
    expect_error("width over 2^31", &b, SPIM_ERR_IMAGE, "dimensions");
    MUTATE((put32(b.data + 20, 65), fix_crc(&b, 8)));
    expect_error("a row more than the data", &b, SPIM_ERR_IMAGE, "ends early");
    MUTATE((put32(b.data + 20, 63), fix_crc(&b, 8)));
    expect_error("a row less than the data", &b, SPIM_ERR_IMAGE, "more image data");
    MUTATE((b.data[25] = 5, fix_crc(&b, 8)));
    expect_error("bad colour type", &b, SPIM_ERR_IMAGE, "IHDR");
    MUTATE(memcpy(b.data + find_chunk(&b, "IEND") + 4, "IEnD", 4));
    expect_error("no IEND", &b, SPIM_ERR_IMAGE, "CRC");
    MUTATE((memcpy(b.data + idat + 4, "ABCD", 4), fix_crc(&b, idat)));
    expect_error("unknown critical chunk", &b, SPIM_ERR_IMAGE, "critical");
    MUTATE((memcpy(b.data + idat + 12 + 900 + 4, "teXt", 4), fix_crc(&b, idat + 12 + 900)));
    expect_error("IDAT chunks apart", &b, SPIM_ERR_IMAGE, "IDAT");
    { /* a deflate bomb: 64x64 rows followed by megabytes of zeros */
        unsigned char *zeros = (unsigned char *)calloc(1, 8u << 20),
                      *z = (unsigned char *)malloc(1u << 20);
        uLongf zl = 1u << 20;
        unsigned char ihdr[13] = { 0, 0, 0, 64, 0, 0, 0, 64, 8, 2, 0, 0, 0 };
        compress2(z, &zl, zeros, 8u << 20, 9);
        spim_buf_reset(&b);
        spim_buf_append(&b, "\x89PNG\r\n\x1a\n", 8);
        chunk(&b, "IHDR", ihdr, 13);
        chunk(&b, "IDAT", z, zl);
        chunk(&b, "IEND", NULL, 0);
        expect_error("deflate bomb", &b, SPIM_ERR_IMAGE, "more image data");
        free(zeros);
        free(z);
    }
#undef MUTATE
    spim_buf_reset(&b);
    s.ct = 3;
    s.plte_n = 5;
    s.wild_index = 1;
    make_png(&s, &b);
    expect_error("palette index past PLTE", &b, SPIM_ERR_IMAGE, "palette index");
    spim_buf_free(&good);
    spim_buf_free(&b);
}

/* Adam7: decoded whole, stamped, written without interlacing, in the same
   type and depth (RGB 8-bit, RGBA 16-bit, grey 2-bit becoming RGB). */
TEST(interlaced_pngs_are_stamped_exactly)
{
    static const int xs[7] = { 0, 4, 0, 2, 0, 1, 0 }, ys[7] = { 0, 0, 4, 0, 2, 0, 1 };
    static const int dx[7] = { 8, 8, 4, 4, 2, 2, 1 }, dy[7] = { 8, 8, 8, 4, 4, 2, 2 };
    static const int kinds[3][5] = { { 2, 8, 3, 8, 2 }, { 6, 16, 4, 16, 6 }, { 0, 2, 3, 8, 2 } };
    int k;
    for (k = 0; k < 3; k++) {
        spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
        spim_image_info info;
        int ct = kinds[k][0], depth = kinds[k][1], w = 37, h = 29, pass, d;
        unsigned char ihdr[13] = { 0, 0, 0, 37, 0, 0, 0, 29, 0, 0, 0, 0, 1 },
                      *raw = (unsigned char *)malloc(65536);
        unsigned char *z = (unsigned char *)malloc(70000);
        uLongf zl = 70000;
        size_t n = 0, bits = (size_t)channels_of(ct) * (size_t)depth;
        ihdr[8] = (unsigned char)depth;
        ihdr[9] = (unsigned char)ct;
        for (pass = 0; pass < 7; pass++) {
            int pw = (w - xs[pass] + dx[pass] - 1) / dx[pass],
                ph = (h - ys[pass] + dy[pass] - 1) / dy[pass], r;
            size_t i;
            for (r = 0; r < ph && pw > 0; r++) {
                raw[n++] = 0;
                for (i = 0; i < ((size_t)pw * bits + 7) / 8; i++) raw[n++] = (unsigned char)rnd();
            }
        }
        compress2(z, &zl, raw, n, 6);
        spim_buf_append(&in, "\x89PNG\r\n\x1a\n", 8);
        chunk(&in, "IHDR", ihdr, 13);
        chunk(&in, "IDAT", z, zl);
        chunk(&in, "IEND", NULL, 0);
        d = stamp_and_compare(&in, &colour_stamp, &(spim_stamp_options){ 0 }, kinds[k][2],
                              kinds[k][3], &info, &out);
        CHECKF(d == 0, "kind %d: max difference %d", k, d);
        CHECK_STR("recode", info.path);
        CHECKF(strstr(info.conversion, "Adam7") != NULL, "conversion '%s'", info.conversion);
        CHECK_INT(0, out.data[28]);
        CHECK_INT(kinds[k][3], out_depth(&out));
        CHECK_INT(kinds[k][4], out_ct(&out));
        spim_buf_free(&in);
        spim_buf_free(&out);
        free(raw);
        free(z);
    }
}

int main(void)
{
    make_stamps();
    RUN(every_colour_type_is_the_exact_blend);
    RUN(idat_prefix_is_copied_bit_for_bit);
    RUN(ancillary_chunks_stay_in_place);
    RUN(idat_in_many_chunks_and_empty_ones);
    RUN(a_block_of_megabytes_is_not_held);
    RUN(tiles_are_the_exact_blend);
    RUN(hostile_pngs_fail_clearly);
    RUN(interlaced_pngs_are_stamped_exactly);
    free(colour_stamp.rgba);
    free(grey_stamp.rgba);
    return spim_test_finish();
}
