/* The stamp kernel: the exact blend formulas, every SIMD path against the
   scalar reference bit for bit, opacity, grey, placement and clipping. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "spim_test.h"

static const spim__simd all_simd[] = { SPIM__SIMD_SCALAR, SPIM__SIMD_SSE2, SPIM__SIMD_AVX2, SPIM__SIMD_NEON };
#define NSIMD ((int)(sizeof all_simd / sizeof all_simd[0]))

static uint32_t rng_state = 12345;
static unsigned rnd(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 16;
}

/* Reference for an opaque destination, written as rounding to nearest. */
static unsigned ref_opaque(unsigned s, unsigned d, unsigned a)
{
    unsigned num = s * a + d * (255 - a); /* round(num/255): ties cannot happen, 255 is odd */
    unsigned q = num / 255;
    return (num % 255) * 2 >= 255 ? q + 1 : q;
}

TEST(div255_identity_exhaustive)
{
    unsigned x, bad = 0, bad_neon = 0, bad_mulhi = 0, s, d, a;
    for (x = 0; x <= 255 * 255 + 127; x++)
        if (((x + 1 + (x >> 8)) >> 8) != x / 255) bad++;
    /* the SSE2/AVX2 form: one multiply modulo 2^16, then a high multiply */
    for (s = 0; s < 256; s++)
        for (d = 0; d < 256; d++)
            for (a = 0; a < 256; a++) {
                unsigned v = ((d << 8) - d + (unsigned)(uint16_t)((int)(s - d) * (int)a)) & 0xFFFF;
                if ((((v + 128) * 257) >> 16) != (s * a + d * (255 - a) + 127) / 255) bad_mulhi++;
            }
    CHECK_INT(0, bad_mulhi);
    /* the NEON form, on v = s*a + d*(255-a) without the +127 */
    for (x = 0; x <= 255 * 255; x++)
        if (((x + ((x + 128) >> 8) + 128) >> 8) != (x + 127) / 255) bad_neon++;
    CHECK_INT(0, bad);
    CHECK_INT(0, bad_neon);
}

TEST(opaque_formula_exhaustive_every_path)
{
    unsigned char d[256], s[256], a[256];
    int k;
    for (k = 0; k < NSIMD; k++) {
        spim__row_fn row = spim__row_for(all_simd[k]);
        unsigned sv, av, i, bad = 0;
        if (!spim__simd_available(all_simd[k])) continue;
        for (av = 0; av < 256; av++)
            for (sv = 0; sv < 256; sv++) {
                for (i = 0; i < 256; i++) { d[i] = (unsigned char)i; s[i] = (unsigned char)sv; a[i] = (unsigned char)av; }
                row(d, s, a, 256, 1);
                for (i = 0; i < 256; i++)
                    if (d[i] != (av == 0 ? i : ref_opaque(sv, i, av))) {
                        if (bad++ < 3) printf("    %s: s=%u d=%u a=%u got %u\n", spim__simd_name(all_simd[k]), sv, i, av, d[i]);
                    }
            }
        CHECKF(bad == 0, "%s: %u wrong bytes of 16777216", spim__simd_name(all_simd[k]), bad);
    }
}

/* With destination alpha: colour is the weighted mean of s and d (weights
   255a and da(255-a)) rounded half up; check it as an inequality. */
TEST(alpha_destination_formula)
{
    static const unsigned vals[] = { 0, 1, 2, 77, 127, 128, 200, 254, 255 };
    unsigned a, da, si, di, bad = 0;
    for (a = 1; a < 256; a++)
        for (da = 0; da < 256; da++)
            for (si = 0; si < 9; si++)
                for (di = 0; di < 9; di++) {
                    unsigned char px[4] = { 0, 0, 0, 0 }, st[4] = { 0, 0, 0, 255 };
                    unsigned long long num, den, q, oa_num;
                    px[0] = (unsigned char)vals[di]; px[3] = (unsigned char)da;
                    st[0] = (unsigned char)vals[si];
                    spim__blend_px_alpha(px, st, a, 4);
                    den = 255ull * a + (unsigned long long)da * (255 - a);
                    num = (unsigned long long)vals[si] * 255 * a + (unsigned long long)vals[di] * da * (255 - a);
                    q = px[0];
                    if (!((2 * q + 1) * den > 2 * num && (q == 0 || (2 * q - 1) * den <= 2 * num))) bad++;
                    oa_num = 255ull * a + (unsigned long long)da * (255 - a); /* out alpha * 255 */
                    if (px[3] != (oa_num + 127) / 255) bad++;
                }
    CHECK_INT(0, bad);
}

/* Fill a row's alpha so that every value 0..255 appears, with runs of 0 and
   255 long enough for the fast paths, at an odd phase. */
static void fill_alpha(unsigned char *a, size_t n, int ch, unsigned phase)
{
    size_t i;
    for (i = 0; i < n; i += (size_t)ch) {
        unsigned v, blk = (unsigned)((i / (size_t)ch + phase) / 40) % 4, c;
        if (blk == 1) v = 0;
        else if (blk == 3) v = 255;
        else v = (unsigned)(i / (size_t)ch * 7 + phase) & 255;
        for (c = 0; c < (unsigned)ch && i + c < n; c++) a[i + c] = (unsigned char)v;
    }
}

TEST(simd_paths_match_scalar)
{
    enum { MAXW = 300, MAXOFF = 33 };
    static unsigned char d0[(MAXW + MAXOFF) * 4], d1[(MAXW + MAXOFF) * 4], d2[(MAXW + MAXOFF) * 4];
    static unsigned char s[(MAXW + MAXOFF) * 4], a[(MAXW + MAXOFF) * 4];
    int k, ch, w, off, runs = 0;
    for (k = 1; k < NSIMD; k++) {
        spim__row_fn row = spim__row_for(all_simd[k]);
        long bad = 0;
        if (!spim__simd_available(all_simd[k])) {
            printf("    (%s not available here)\n", spim__simd_name(all_simd[k]));
            continue;
        }
        for (ch = 1; ch <= 4; ch++)
            for (w = 1; w <= MAXW; w += (w < 70 ? 1 : 23))
                for (off = 0; off < MAXOFF; off += (w < 70 ? 5 : 1)) {
                    size_t n = (size_t)w * (size_t)ch, i, base = (size_t)off * (size_t)ch;
                    for (i = 0; i < sizeof d0; i++) d0[i] = (unsigned char)rnd();
                    for (i = 0; i < sizeof s; i++) s[i] = (unsigned char)rnd();
                    /* destination alpha: opaque in most blocks, translucent in some;
                       the layer's colour has 255 in its alpha slot */
                    if (ch == 2 || ch == 4)
                        for (i = (size_t)ch - 1; i < sizeof d0; i += (size_t)ch) {
                            if ((i / 64) % 3 != 1) d0[i] = 255;
                            s[i] = 255;
                        }
                    fill_alpha(a + base, n, ch, (unsigned)(w * 3 + off));
                    memcpy(d1, d0, sizeof d0);
                    memcpy(d2, d0, sizeof d0);
                    spim__row_scalar(d1 + base, s + base, a + base, n, ch);
                    row(d2 + base, s + base, a + base, n, ch);
                    if (memcmp(d1, d2, sizeof d1) != 0) {
                        if (bad++ < 3) printf("    %s differs: ch=%d w=%d off=%d\n", spim__simd_name(all_simd[k]), ch, w, off);
                    }
                    runs++;
                }
        CHECKF(bad == 0, "%s: %ld rows differ from scalar", spim__simd_name(all_simd[k]), bad);
    }
    CHECK(runs > 1000);
}

/* Every alpha on every channel count through spim__stamp_draw, per path. */
TEST(draw_every_alpha_every_channel_count)
{
    spim_stamp st;
    unsigned char *img0 = (unsigned char *)malloc(256 * 3 * 4), *ref = (unsigned char *)malloc(256 * 3 * 4);
    unsigned char *img = (unsigned char *)malloc(256 * 3 * 4);
    int i, ch, k;
    REQUIRE(img0 && img && ref);
    st.width = 256; st.height = 2;
    st.rgba = (unsigned char *)malloc(256 * 2 * 4);
    REQUIRE(st.rgba);
    for (i = 0; i < 512; i++) {
        st.rgba[i * 4 + 0] = (unsigned char)rnd();
        st.rgba[i * 4 + 1] = (unsigned char)rnd();
        st.rgba[i * 4 + 2] = (unsigned char)rnd();
        st.rgba[i * 4 + 3] = (unsigned char)(i % 256);
    }
    for (ch = 1; ch <= 4; ch++) {
        for (i = 0; i < 256 * 3 * ch; i++) img0[i] = (unsigned char)rnd();
        /* reference: the blend written out per pixel, stamp at rows 1..2 (se) */
        memcpy(ref, img0, (size_t)(256 * 3 * ch));
        for (i = 0; i < 512; i++) {
            const unsigned char *p = st.rgba + i * 4;
            unsigned char *q = ref + (256 + i) * ch;
            unsigned a = p[3], c;
            unsigned char col[4];
            if (!a) continue;
            if (ch <= 2) col[0] = (unsigned char)((77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8);
            else memcpy(col, p, 3);
            if (ch == 2 || ch == 4) { spim__blend_px_alpha(q, col, a, ch); continue; }
            for (c = 0; c < (unsigned)ch; c++) q[c] = (unsigned char)ref_opaque(col[c], q[c], a);
        }
        for (k = 0; k < NSIMD; k++) {
            spim_stamp_options o;
            spim_error err;
            if (!spim__simd_available(all_simd[k])) continue;
            memset(&o, 0, sizeof o);
            spim__force_simd = all_simd[k];
            memcpy(img, img0, (size_t)(256 * 3 * ch));
            CHECK_INT(SPIM_OK, spim__stamp_draw(img, 256, 3, ch, 1, &st, &o, &err));
            spim__force_simd = SPIM__SIMD_AUTO;
            CHECKF(memcmp(img, ref, (size_t)(256 * 3 * ch)) == 0, "%s, %d channels", spim__simd_name(all_simd[k]), ch);
        }
    }
    free(st.rgba); free(img0); free(img); free(ref);
}

TEST(opacity_is_applied_to_alpha_then_rounded)
{
    unsigned char px[3] = { 0, 0, 0 };
    unsigned char rgba[4] = { 255, 255, 255, 200 };
    spim_stamp st;
    spim_stamp_options o;
    spim_error err;
    unsigned a;
    st.rgba = rgba; st.width = 1; st.height = 1;
    memset(&o, 0, sizeof o);
    o.opacity = 0.5;                     /* op = round(127.5) = 128 */
    CHECK_INT(SPIM_OK, spim__stamp_draw(px, 1, 1, 3, 1, &st, &o, &err));
    a = (200 * 128 + 127) / 255;         /* = 100 */
    CHECK_INT(100, a);
    CHECK_INT((255 * a + 127) / 255, px[0]);
    o.opacity = 1.0;
    px[0] = px[1] = px[2] = 10;
    CHECK_INT(SPIM_OK, spim__stamp_draw(px, 1, 1, 3, 1, &st, &o, &err));
    CHECK_INT((255 * 200 + 10 * 55 + 127) / 255, px[1]);
    o.opacity = 1.5;
    CHECK_INT(SPIM_ERR_CONFIG, spim__stamp_draw(px, 1, 1, 3, 1, &st, &o, &err));
}

TEST(grey_destination_uses_integer_luma)
{
    unsigned char px[2] = { 0, 255 };
    unsigned char rgba[4] = { 200, 100, 50, 255 };
    spim_stamp st;
    spim_error err;
    st.rgba = rgba; st.width = 1; st.height = 1;
    CHECK_INT(SPIM_OK, spim__stamp_draw(px, 1, 1, 1, 1, &st, NULL, &err));
    CHECK_INT((77 * 200 + 150 * 100 + 29 * 50 + 128) >> 8, px[0]);
    px[0] = 0; px[1] = 0;                /* grey + alpha, transparent destination */
    CHECK_INT(SPIM_OK, spim__stamp_draw(px, 1, 1, 2, 1, &st, NULL, &err));
    CHECK_INT((77 * 200 + 150 * 100 + 29 * 50 + 128) >> 8, px[0]);
    CHECK_INT(255, px[1]);
}

/* A solid stamp of size sw x sh; fills a test image and returns the box of
   changed pixels. */
static void changed_box(int w, int h, int sw, int sh, spim_gravity g, int margin, double scale,
                        int *x0, int *y0, int *x1, int *y1)
{
    unsigned char *img = (unsigned char *)calloc((size_t)w * (size_t)h, 3);
    spim_stamp st;
    spim_stamp_options o;
    spim_error err;
    int x, y, i;
    st.width = sw; st.height = sh;
    st.rgba = (unsigned char *)malloc((size_t)sw * (size_t)sh * 4);
    for (i = 0; i < sw * sh * 4; i++) st.rgba[i] = 255;
    memset(&o, 0, sizeof o);
    o.gravity = g; o.margin = margin; o.scale = scale;
    *x0 = *y0 = 1 << 30; *x1 = *y1 = -1;
    if (spim__stamp_draw(img, w, h, 3, 1, &st, &o, &err) == SPIM_OK)
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++)
                if (img[(y * w + x) * 3]) {
                    if (x < *x0) *x0 = x;
                    if (y < *y0) *y0 = y;
                    if (x > *x1) *x1 = x;
                    if (y > *y1) *y1 = y;
                }
    free(st.rgba);
    free(img);
}

TEST(nine_gravities_with_margin)
{
    /* 40x30 image, 10x6 stamp, margin 3: columns 3 / 15 / 27, rows 3 / 12 / 21 */
    static const struct { const char *name; int x, y; } want[] = {
        { "se", 27, 21 }, { "nw", 3, 3 }, { "n", 15, 3 }, { "ne", 27, 3 }, { "w", 3, 12 },
        { "c", 15, 12 }, { "e", 27, 12 }, { "sw", 3, 21 }, { "s", 15, 21 } };
    int i, x0, y0, x1, y1;
    for (i = 0; i < 9; i++) {
        spim_stamp_options o;
        spim_error err;
        int g;
        memset(&o, 0, sizeof o);
        o.gravity = SPIM_GRAVITY_C;
        CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "gravity", want[i].name, &err));
        g = (int)o.gravity;
        CHECK_INT(i, g);
        changed_box(40, 30, 10, 6, (spim_gravity)g, 3, 0, &x0, &y0, &x1, &y1);
        CHECKF(x0 == want[i].x && y0 == want[i].y && x1 == want[i].x + 9 && y1 == want[i].y + 5,
               "%s: box (%d,%d)-(%d,%d), expected (%d,%d)-(%d,%d)", want[i].name, x0, y0, x1, y1,
               want[i].x, want[i].y, want[i].x + 9, want[i].y + 5);
    }
}

/* One rule per option for every program: the flag or variable text is set
   when it is valid, and otherwise leaves the options as they were, with a
   message that names the rule and the value. */
TEST(stamp_options_from_text)
{
    static const struct { const char *name, *value, *error; } bad[] = {
        { "gravity", "middle", "must be one of nw n ne w c e sw s se, got 'middle'" },
        { "gravity", "", "must be one of nw n ne w c e sw s se, got ''" },
        { "margin", "-3", "must be an integer from 0 to 1000000, got '-3'" },
        { "margin", "1000001", "must be an integer from 0 to 1000000, got '1000001'" },
        { "margin", "2.5", "must be an integer from 0 to 1000000, got '2.5'" },
        { "scale", "1.5", "must be a number from 0 (native size) to 1, got '1.5'" },
        { "scale", "abc", "must be a number from 0 (native size) to 1, got 'abc'" },
        { "scale", "0.5x", "must be a number from 0 (native size) to 1, got '0.5x'" },
        { "scale", "nan", "must be a number from 0 (native size) to 1, got 'nan'" },
        { "opacity", "0", "must be a number above 0, at most 1, got '0'" },
        { "opacity", "-0.2", "must be a number above 0, at most 1, got '-0.2'" },
        { "quality", "0", "must be an integer from 1 to 100, got '0'" },
        { "quality", "101", "must be an integer from 1 to 100, got '101'" },
        { "jpeg-mode", "fast", "must be auto or recode, got 'fast'" },
        { "max-pixels", "0", "must be a pixel count from 1 to 10^12, got '0'" },
        { "max-pixels", "1e13", "must be a pixel count from 1 to 10^12, got '1e13'" },
    };
    spim_stamp_options o, before;
    spim_error err;
    size_t i;
    memset(&o, 0, sizeof o);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "gravity", "NE", &err));
    CHECK_INT(SPIM_GRAVITY_NE, o.gravity);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "margin", "100000", &err));
    CHECK_INT(100000, o.margin);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "scale", "0", &err));
    CHECK(o.scale == 0);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "scale", "0.25", &err));
    CHECK(o.scale == 0.25);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "opacity", "1", &err));
    CHECK(o.opacity == 1);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "quality", "75", &err));
    CHECK_INT(75, o.quality);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "jpeg-mode", "recode", &err));
    CHECK_INT(SPIM_JPEG_RECODE, o.jpeg_mode);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "jpeg-mode", "auto", &err));
    CHECK_INT(SPIM_JPEG_AUTO, o.jpeg_mode);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "max-pixels", "1000000000000", &err));
    CHECK(o.max_pixels == 1000000000000ull);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        before = o;
        CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_option_set(&o, bad[i].name, bad[i].value, &err));
        CHECK_STR(bad[i].error, err.message);
        CHECKF(before.gravity == o.gravity && before.margin == o.margin && before.scale == o.scale &&
                   before.opacity == o.opacity && before.quality == o.quality && before.max_pixels == o.max_pixels &&
                   before.jpeg_mode == o.jpeg_mode,
               "%s=%s changed the options", bad[i].name, bad[i].value);
    }
    CHECK_INT(SPIM_ERR_INVALID, spim_stamp_option_set(&o, "colour", "red", &err));
    CHECK_STR("unknown stamp option \"colour\"", err.message);
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_option_set(&o, "scale", NULL, &err));
}

TEST(clipping_at_every_edge)
{
    int i, x0, y0, x1, y1;
    /* 50x40 stamp on a 20x10 image: clipped to the whole image wherever it goes */
    for (i = 0; i < 9; i++) {
        changed_box(20, 10, 50, 40, (spim_gravity)i, 0, 0, &x0, &y0, &x1, &y1);
        CHECKF(x0 == 0 && y0 == 0 && x1 == 19 && y1 == 9, "gravity %d: (%d,%d)-(%d,%d)", i, x0, y0, x1, y1);
    }
    /* a margin pushing the stamp partly out on the far side (20x30 image, 8x8 stamp) */
    changed_box(20, 30, 8, 8, SPIM_GRAVITY_NW, 15, 0, &x0, &y0, &x1, &y1);
    CHECKF(x0 == 15 && y0 == 15 && x1 == 19 && y1 == 22, "nw margin 15: (%d,%d)-(%d,%d)", x0, y0, x1, y1);
    changed_box(20, 30, 8, 8, SPIM_GRAVITY_SE, 15, 0, &x0, &y0, &x1, &y1);
    CHECKF(x0 == 0 && y0 == 7 && x1 == 4 && y1 == 14, "se margin 15: (%d,%d)-(%d,%d)", x0, y0, x1, y1);
    /* entirely outside: nothing drawn */
    changed_box(20, 10, 4, 4, SPIM_GRAVITY_NW, 30, 0, &x0, &y0, &x1, &y1);
    CHECK_INT(-1, x1);
}

TEST(scale_is_a_fraction_of_the_shorter_edge)
{
    int x0, y0, x1, y1;
    /* 64x32 stamp, image 200x100, scale 0.5: longer side 50, so 50x25 at se */
    changed_box(200, 100, 64, 32, SPIM_GRAVITY_SE, 0, 0.5, &x0, &y0, &x1, &y1);
    CHECKF(x0 == 150 && y0 == 75 && x1 == 199 && y1 == 99, "box (%d,%d)-(%d,%d)", x0, y0, x1, y1);
    changed_box(200, 100, 64, 32, SPIM_GRAVITY_SE, 0, 0, &x0, &y0, &x1, &y1);
    CHECKF(x0 == 136 && y0 == 68, "native: (%d,%d)", x0, y0);
}

/* Orientation: what a viewer shows, computed from the EXIF definitions
   ("row 0 is the visual ..., column 0 is the visual ...") as the stored
   position of displayed (0,0) and the stored steps for right and down. */
static void exif_axes(int o, int ws, int hs, int *ox, int *oy, int *rx, int *ry, int *dx, int *dy)
{
    static const int t[9][6] = { { 0 },
        { 0, 0, 1, 0, 0, 1 }, { 1, 0, -1, 0, 0, 1 }, { 1, 1, -1, 0, 0, -1 }, { 0, 1, 1, 0, 0, -1 },
        { 0, 0, 0, 1, 1, 0 }, { 0, 1, 0, -1, 1, 0 }, { 1, 1, 0, -1, -1, 0 }, { 1, 0, 0, 1, -1, 0 } };
    *ox = t[o][0] ? ws - 1 : 0; *oy = t[o][1] ? hs - 1 : 0;
    *rx = t[o][2]; *ry = t[o][3]; *dx = t[o][4]; *dy = t[o][5];
}

TEST(orientation_places_an_upright_stamp_at_the_displayed_corner)
{
    /* 3x2 stamp, each pixel a distinct colour; stored image 9x5 */
    unsigned char rgba[3 * 2 * 4];
    spim_stamp st;
    int o, g, i;
    for (i = 0; i < 6; i++) {
        rgba[i * 4] = (unsigned char)(40 * (i + 1)); rgba[i * 4 + 1] = 7; rgba[i * 4 + 2] = 9; rgba[i * 4 + 3] = 255;
    }
    st.rgba = rgba; st.width = 3; st.height = 2;
    for (o = 1; o <= 8; o++)
        for (g = 0; g < 9; g++) {
            unsigned char img[9 * 5 * 3];
            int ws = 9, hs = 5, wd = o >= 5 ? hs : ws, hd = o >= 5 ? ws : hs, px, py, u, v, bad = 0;
            int ox, oy, rx, ry, dx, dy;
            spim_stamp_options opt;
            spim_error err;
            memset(img, 0, sizeof img);
            memset(&opt, 0, sizeof opt);
            opt.gravity = (spim_gravity)g;
            opt.margin = 1;
            CHECK_INT(SPIM_OK, spim__stamp_draw(img, ws, hs, 3, o, &st, &opt, &err));
            spim__place(opt.gravity, 1, wd, hd, 3, 2, &px, &py);
            exif_axes(o, ws, hs, &ox, &oy, &rx, &ry, &dx, &dy);
            for (v = 0; v < 2; v++)
                for (u = 0; u < 3; u++) {
                    int X = px + u, Y = py + v, sx = ox + X * rx + Y * dx, sy = oy + X * ry + Y * dy;
                    if (img[(sy * ws + sx) * 3] != 40 * (v * 3 + u + 1)) bad++;
                }
            CHECKF(bad == 0, "orientation %d gravity %d: %d stamp pixels misplaced", o, g, bad);
        }
}

/* Scaling resamples in premultiplied alpha: transparent black next to opaque
   white must not leave a grey fringe (straight-alpha filtering would). */
TEST(scaling_keeps_colour_at_soft_edges)
{
    enum { W = 64 };
    unsigned char rgba[W * W * 4];
    spim_stamp in, out;
    spim_error err;
    int x, y, fringe = 0, grey = 0;
    for (y = 0; y < W; y++)
        for (x = 0; x < W; x++) {
            unsigned char *p = rgba + (y * W + x) * 4;
            int on = (x / 5 + y / 7) % 2;   /* edges that do not fall on the sampling grid */
            p[0] = p[1] = p[2] = (unsigned char)(on ? 255 : 0);
            p[3] = (unsigned char)(on ? 255 : 0);
        }
    in.rgba = rgba; in.width = W; in.height = W;
    REQUIRE(spim__stamp_resize(&in, 23, &out, &err) == SPIM_OK);
    CHECK_INT(23, out.width);
    CHECK_INT(23, out.height);
    for (x = 0; x < 23 * 23; x++) {
        const unsigned char *p = out.rgba + x * 4;
        if (p[3] > 8 && p[3] < 247) {
            fringe++;
            if (p[0] < 235) grey++;
        }
    }
    CHECKF(fringe > 20, "only %d partly transparent pixels: the test image does not test edges", fringe);
    CHECKF(grey == 0, "%d of %d edge pixels went grey", grey, fringe);
    spim_stamp_free(&out);
}

TEST(placement_on_screen)
{
    int x, y;
    spim__place(SPIM_GRAVITY_C, 0, 11, 11, 4, 4, &x, &y);
    CHECK_INT(3, x);
    spim__place(SPIM_GRAVITY_C, 0, 3, 3, 8, 8, &x, &y);   /* floor(-5/2) = -3 */
    CHECK_INT(-3, x);
    spim__place(SPIM_GRAVITY_SE, 2, 100, 50, 10, 10, &x, &y);
    CHECK_INT(88, x);
    CHECK_INT(38, y);
}

TEST(bad_arguments)
{
    unsigned char px[3], rgba[4] = { 1, 2, 3, 4 };
    spim_stamp st, none;
    spim_stamp_options o;
    spim_error err;
    st.rgba = rgba; st.width = 1; st.height = 1;
    memset(&none, 0, sizeof none);
    memset(&o, 0, sizeof o);
    CHECK_INT(SPIM_ERR_INVALID, spim__stamp_draw(px, 1, 1, 5, 1, &st, NULL, &err));
    CHECK_INT(SPIM_ERR_INVALID, spim__stamp_draw(px, 0, 1, 3, 1, &st, NULL, &err));
    CHECK_INT(SPIM_ERR_INVALID, spim__stamp_draw(px, 1, 1, 3, 1, &none, NULL, &err));
    o.scale = -0.1;
    CHECK_INT(SPIM_ERR_CONFIG, spim__stamp_draw(px, 1, 1, 3, 1, &st, &o, &err));
    o.scale = 0; o.margin = -1;
    CHECK_INT(SPIM_ERR_CONFIG, spim__stamp_draw(px, 1, 1, 3, 1, &st, &o, &err));
    o.margin = 0; spim__force_simd = (spim__simd)42;
    CHECK_INT(SPIM_ERR_CONFIG, spim__stamp_draw(px, 1, 1, 3, 1, &st, &o, &err));
    spim__force_simd = SPIM__SIMD_AUTO;
    CHECK(spim__simd_available(SPIM__SIMD_SCALAR));
    CHECK_STR("avx2", spim__simd_name(SPIM__SIMD_AVX2));
    CHECK_STR("unknown", spim__simd_name((spim__simd)42));
}

int main(void)
{
    int k;
    printf("kernels:");
    for (k = 0; k < NSIMD; k++)
        if (spim__simd_available(all_simd[k])) printf(" %s", spim__simd_name(all_simd[k]));
    printf("\n");
    RUN(div255_identity_exhaustive);
    RUN(opaque_formula_exhaustive_every_path);
    RUN(alpha_destination_formula);
    RUN(simd_paths_match_scalar);
    RUN(draw_every_alpha_every_channel_count);
    RUN(opacity_is_applied_to_alpha_then_rounded);
    RUN(grey_destination_uses_integer_luma);
    RUN(nine_gravities_with_margin);
    RUN(stamp_options_from_text);
    RUN(clipping_at_every_edge);
    RUN(scale_is_a_fraction_of_the_shorter_edge);
    RUN(orientation_places_an_upright_stamp_at_the_displayed_corner);
    RUN(scaling_keeps_colour_at_soft_edges);
    RUN(placement_on_screen);
    RUN(bad_arguments);
    return spim_test_finish();
}
