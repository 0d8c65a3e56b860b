/* Tiles and text stamps (issue 25): a tiled stamp decodes to the exact
   blend of every tile (PNG: max difference 0, against a blend written here
   from the design's formula); text renders glyph for glyph as
   stb_truetype draws them (a reference raster made here from the font's
   own metrics), accents and CJK included; placeholders expand from the
   event; every bad option, font or text is refused at start-up with a
   message naming it. Fonts come from Debian (fonts-dejavu-core,
   fonts-droid-fallback for CJK). */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "spim_test.h"

#define DEJAVU "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#define DROID "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"

static spim_buf dejavu;

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
            p[3] = (unsigned char)((x * 7 + y * 3) % 256);
        }
}

static unsigned char *make_image(int w, int h, int ch)
{
    unsigned char *p = (unsigned char *)malloc((size_t)w * (size_t)h * (size_t)ch);
    size_t i, n = (size_t)w * (size_t)h * (size_t)ch;
    for (i = 0; i < n; i++) p[i] = (unsigned char)((i * 37 + i / 97) & 255);
    if (ch == 4)
        for (i = 3; i < n; i += 4) p[i] = 255;
    return p;
}

/* The design's blend on an opaque pixel, for every tile of the grid
   anchored where gravity and margin put one stamp (display = stored). */
static void reference_tiles(unsigned char *px, int w, int h, int ch, const spim_stamp *s, const spim_stamp_options *o)
{
    int col = 2, row = 2, ax, ay, gx, gy, i, j, x, y, k;
    unsigned op = o->opacity > 0 ? (unsigned)(o->opacity * 255 + 0.5) : 255;
    switch (o->gravity) {
    case SPIM_GRAVITY_NW: col = 0; row = 0; break;
    case SPIM_GRAVITY_C: col = 1; row = 1; break;
    case SPIM_GRAVITY_SW: col = 0; row = 2; break;
    default: break;
    }
    ax = col == 0 ? o->margin : col == 1 ? (w - s->width) / 2 : w - s->width - o->margin;
    ay = row == 0 ? o->margin : row == 1 ? (h - s->height) / 2 : h - s->height - o->margin;
    gx = s->width + (o->tile_gap_rel > 0 ? (int)(o->tile_gap_rel * s->width + 0.5) : o->tile_gap);
    gy = s->height + (o->tile_gap_rel > 0 ? (int)(o->tile_gap_rel * s->height + 0.5) : o->tile_gap);
    while (ax > 0) ax -= gx;
    while (ay > 0) ay -= gy;
    for (j = ay; j < h; j += gy)
        for (i = ax; i < w; i += gx)
            for (y = 0; y < s->height; y++)
                for (x = 0; x < s->width; x++) {
                    const unsigned char *p = s->rgba + ((size_t)y * (size_t)s->width + (size_t)x) * 4;
                    unsigned a = (p[3] * op + 127) / 255;
                    unsigned char *d;
                    if (i + x < 0 || j + y < 0 || i + x >= w || j + y >= h) continue;
                    d = px + ((size_t)(j + y) * (size_t)w + (size_t)(i + x)) * (size_t)ch;
                    for (k = 0; k < 3; k++) d[k] = (unsigned char)((p[k] * a + d[k] * (255 - a) + 127) / 255);
                }
}

static int max_diff(const unsigned char *a, const unsigned char *b, size_t n, size_t *at)
{
    size_t i;
    int m = 0;
    for (i = 0; i < n; i++)
        if (abs(a[i] - b[i]) > m) { m = abs(a[i] - b[i]); *at = i; }
    return m;
}

TEST(tiled_png_is_the_exact_blend_of_every_tile)
{
    static const struct { spim_gravity g; int margin, gap; double rel, opacity; int ch; } cases[] = {
        { SPIM_GRAVITY_SE, 0, 0, 0, 0, 3 }, { SPIM_GRAVITY_NW, 7, 11, 0, 0.6, 3 },
        { SPIM_GRAVITY_C, 0, 0, 0.5, 0, 4 }, { SPIM_GRAVITY_SW, 300, 0, 1.25, 0.3, 3 },
    };
    spim_stamp st;
    size_t c;
    int w = 211, h = 157;
    make_stamp(&st, 23, 17);
    for (c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        spim_stamp_options o;
        spim_buf png = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
        spim_image img, got;
        spim_error err;
        size_t at = 0, n;
        int ch = cases[c].ch, d;
        unsigned char *ref;
        memset(&o, 0, sizeof o);
        o.tile = 1;
        o.gravity = cases[c].g;
        o.margin = cases[c].margin;
        o.tile_gap = cases[c].gap;
        o.tile_gap_rel = cases[c].rel;
        o.opacity = cases[c].opacity;
        memset(&img, 0, sizeof img);
        img.pixels = make_image(w, h, ch);
        img.width = w; img.height = h; img.channels = ch; img.meta.orientation = 1;
        img.meta.format = SPIM_FORMAT_PNG;
        n = (size_t)w * (size_t)h * (size_t)ch;
        ref = (unsigned char *)malloc(n);
        memcpy(ref, img.pixels, n);
        REQUIRE(spim_image_encode(&img, SPIM_FORMAT_PNG, 0, &png, &err) == SPIM_OK);
        CHECKF(spim_stamp_image(png.data, png.len, &st, &o, &out, NULL, &err) == SPIM_OK, "case %zu: %s", c,
               err.message);
        reference_tiles(ref, w, h, ch, &st, &o);
        REQUIRE(spim_image_decode(out.data, out.len, 0, &got, &err) == SPIM_OK && got.channels == ch);
        d = max_diff(ref, got.pixels, n, &at);
        CHECKF(d == 0, "case %zu: max difference %d at pixel (%zu, %zu) channel %zu", c, d,
               at / (size_t)ch % (size_t)w, at / (size_t)ch / (size_t)w, at % (size_t)ch);
        spim_image_free(&got);
        free(img.pixels);
        free(ref);
        spim_buf_free(&png);
        spim_buf_free(&out);
    }
    free(st.rgba);
}

TEST(tiles_refuse_nonsense)
{
    spim_stamp st;
    spim_stamp_options o;
    spim_error err;
    unsigned char *px = make_image(2000, 1000, 3);
    static const char *const bad[] = { "-1", "abc", "11.0", "1001%", "1e3", "100001", "0x10", "", "5px" };
    size_t i;
    unsigned char one[4] = { 1, 2, 3, 255 };
    memset(&o, 0, sizeof o);
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_option_set(&o, "tile", bad[i], &err));
        CHECKF(strstr(err.message, "fraction of the stamp") != NULL, "'%s': %s", bad[i], err.message);
    }
    CHECK_INT(0, o.tile);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "tile", "40", &err));
    CHECK(o.tile == 1 && o.tile_gap == 40 && o.tile_gap_rel == 0);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "tile", "0.5", &err));
    CHECK(o.tile_gap == 0 && o.tile_gap_rel == 0.5);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "tile", "150%", &err));
    CHECK(o.tile_gap_rel == 1.5);
    o.tile_gap_rel = -2;
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_check(&o, &err));
    CHECKF(strncmp(err.message, "tile: ", 6) == 0, "message: %s", err.message);
    /* a 1x1 stamp touching its neighbours: 2 million tiles, refused */
    memset(&o, 0, sizeof o);
    o.tile = 1;
    st.rgba = one; st.width = st.height = 1;
    CHECK_INT(SPIM_ERR_INVALID, spim__stamp_draw(px, 2000, 1000, 3, 1, &st, &o, &err));
    CHECKF(strstr(err.message, "2000000 tiles") != NULL, "message: %s", err.message);
    /* a margin past the image: a single stamp is refused, a grid still covers it */
    o.tile_gap = 3;
    o.margin = 5000;
    CHECK_INT(SPIM_OK, spim__stamp_draw(px, 2000, 1000, 3, 1, &st, &o, &err));
    o.tile = 0;
    CHECK_INT(SPIM_ERR_INVALID, spim__stamp_draw(px, 2000, 1000, 3, 1, &st, &o, &err));
    free(px);
}

/* The PNG path keeps the rows above the first one a stamp touches. */
TEST(first_covered_row)
{
    spim_stamp st;
    spim_stamp_options o;
    spim__plan P;
    spim_error err;
    make_stamp(&st, 20, 10);
    memset(&o, 0, sizeof o);
    o.gravity = SPIM_GRAVITY_S;
    o.margin = 4;
    REQUIRE(spim__plan_make(&P, 100, 80, 3, 1, &st, &o, &err) == SPIM_OK);
    CHECK_INT(80 - 10 - 4, spim__plan_first_row(&P));
    spim__plan_free(&P);
    o.tile = 1;
    o.tile_gap = 20;  /* rows 66..75, 36..45, 6..15 (and -24..-15, off the image) */
    REQUIRE(spim__plan_make(&P, 100, 80, 3, 1, &st, &o, &err) == SPIM_OK);
    CHECK_INT(6, spim__plan_first_row(&P));
    spim__plan_free(&P);
    /* orientation 6 shows the 100x80 image as 80x100: the stamp at the right
       edge, display columns 56..75, lies on stored rows 79 - 75 .. 79 - 56 */
    o.gravity = SPIM_GRAVITY_E;
    o.tile = 0;
    REQUIRE(spim__plan_make(&P, 100, 80, 3, 6, &st, &o, &err) == SPIM_OK);
    CHECK_INT(4, spim__plan_first_row(&P));
    spim__plan_free(&P);
    free(st.rgba);
}

/* ---- text ----------------------------------------------------------------- */

/* What stb_truetype draws for one line at px pixels, laid out from the
   font's metrics (pen rounded to whole pixels, kerning, glyph coverage
   combined by max) into a w x h canvas at (ox, oy). */
static void reference_text(const unsigned char *font, const char *s, int px, unsigned char *canvas, int w, int h,
                           int ox, int oy)
{
    stbtt_fontinfo f;
    float scale, pen = 0;
    int asc, desc, gap, base, prev = -1, pass, minx = 0, miny = 0;
    stbtt_InitFont(&f, font, stbtt_GetFontOffsetForIndex(font, 0));
    scale = stbtt_ScaleForPixelHeight(&f, (float)px);
    stbtt_GetFontVMetrics(&f, &asc, &desc, &gap);
    base = (int)floor(asc * scale + 0.5);
    for (pass = 0; pass < 2; pass++) {  /* the box starts at the leftmost / topmost ink */
        size_t i = 0, n = strlen(s);
        pen = 0;
        prev = -1;
        while (i < n) {
            long cp = spim__utf8_next(s, n, &i);
            int g = stbtt_FindGlyphIndex(&f, (int)cp), adv, lsb, x0, y0, x1, y1, x, y, ix;
            if (prev >= 0) pen += scale * (float)stbtt_GetGlyphKernAdvance(&f, prev, g);
            stbtt_GetGlyphHMetrics(&f, g, &adv, &lsb);
            stbtt_GetGlyphBitmapBox(&f, g, scale, scale, &x0, &y0, &x1, &y1);
            ix = (int)floor(pen + 0.5f);
            if (pass == 0 && x1 > x0 && y1 > y0) {
                if (ix + x0 < minx) minx = ix + x0;
                if (base + y0 < miny) miny = base + y0;
            } else if (pass == 1 && x1 > x0 && y1 > y0) {
                unsigned char *bm = (unsigned char *)calloc((size_t)(x1 - x0) * (size_t)(y1 - y0), 1);
                stbtt_MakeGlyphBitmap(&f, bm, x1 - x0, y1 - y0, x1 - x0, scale, scale, g);
                for (y = 0; y < y1 - y0; y++)
                    for (x = 0; x < x1 - x0; x++) {
                        int cx = ox + ix + x0 - minx + x, cy = oy + base + y0 - miny + y;
                        unsigned char v = bm[y * (x1 - x0) + x];
                        if (cx >= 0 && cy >= 0 && cx < w && cy < h && v > canvas[cy * w + cx]) canvas[cy * w + cx] = v;
                    }
                free(bm);
            }
            pen += scale * (float)adv;
            prev = g;
        }
    }
}

/* White text, no effect, on black: the output's red channel is the
   coverage itself ((255 a + 127) / 255 = a), so it must equal the raster. */
static void check_text_raster(const char *what, const spim_buf *font, const char *text, int w, int h, double size,
                              int margin)
{
    spim_stamp_options o;
    spim_image img, got;
    spim_buf png = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_error err;
    unsigned char *ref = (unsigned char *)calloc((size_t)w * (size_t)h, 1);
    int px = (int)(size * (w < h ? w : h) + 0.5), x, y, diff = 0, ink = 0, dx = 0, dy = 0;
    memset(&o, 0, sizeof o);
    o.text = text;
    o.font = font->data;
    o.font_len = font->len;
    o.text_size = size;
    o.text_gravity = SPIM_GRAVITY_NW;
    o.margin = margin;
    o.text_effect = SPIM_TEXT_PLAIN;
    CHECKF(spim_stamp_check(&o, &err) == SPIM_OK, "%s: %s", what, err.message);
    memset(&img, 0, sizeof img);
    img.pixels = (unsigned char *)calloc((size_t)w * (size_t)h, 3);
    img.width = w; img.height = h; img.channels = 3; img.meta.orientation = 1;
    REQUIRE(spim_image_encode(&img, SPIM_FORMAT_PNG, 0, &png, &err) == SPIM_OK);
    CHECKF(spim_stamp_image(png.data, png.len, NULL, &o, &out, NULL, &err) == SPIM_OK, "%s: %s", what, err.message);
    REQUIRE(spim_image_decode(out.data, out.len, 0, &got, &err) == SPIM_OK);
    reference_text((const unsigned char *)font->data, text, px, ref, w, h, margin, margin);
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            int v = got.pixels[((size_t)y * (size_t)w + (size_t)x) * 3], r = ref[y * w + x];
            ink += r > 0;
            if (v != r && !diff++) { dx = x; dy = y; }
        }
    CHECKF(diff == 0, "%s: %d pixels differ from stb_truetype's raster, first at (%d, %d)", what, diff, dx, dy);
    CHECKF(ink > px * 2, "%s: only %d pixels of ink at %d pixels a line", what, ink, px);
    printf("    %s: %d px a line, %d pixels of ink, identical to the reference raster\n", what, px, ink);
    spim_image_free(&got);
    free(img.pixels);
    free(ref);
    spim_buf_free(&png);
    spim_buf_free(&out);
}

TEST(text_is_drawn_as_stb_truetype_renders_it)
{
    if (!dejavu.len) SKIP("no " DEJAVU " (Debian fonts-dejavu-core)");
    check_text_raster("ASCII", &dejavu, "Hello, World AV To", 400, 200, 0.1, 6);
    check_text_raster("accents", &dejavu, "\xC3\x9Cn\xC3\xAF\x63\xC3\xB6" "d\xC3\xA9 \xC2\xA9 \xC3\x85ngstr\xC3\xB6m",
                      600, 300, 0.08, 3);
    check_text_raster("large", &dejavu, "Wjg|", 300, 300, 0.5, 0);
}

TEST(cjk_with_a_cjk_font)
{
    spim_buf droid = SPIM_BUF_INIT;
    spim_error err;
    if (spim_read_file(DROID, 0, &droid, &err) != SPIM_OK)
        SKIP("no " DROID " (Debian fonts-droid-fallback): CJK not checked");
    check_text_raster("CJK", &droid, "\xE4\xB8\xAD\xE6\x96\x87 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", 500, 200, 0.15, 4);
    spim_buf_free(&droid);
}

TEST(placeholders_expand_from_the_event)
{
    spim_text_vars v;
    spim_buf out = SPIM_BUF_INIT;
    spim_error err;
    v.key = "photos/2026/caf\xC3\xA9.jpg";
    v.bucket = "my-bucket";
    v.time = 1767225599;  /* 2025-12-31T23:59:59Z */
    CHECK_INT(SPIM_OK, spim__text_expand("\xC2\xA9 {year} {date} {key} {basename} {bucket} {{x}}", &v, 0, &out, &err));
    CHECK_STR("\xC2\xA9 2025 2025-12-31 photos/2026/caf\xC3\xA9.jpg caf\xC3\xA9.jpg my-bucket {x}", (const char *)out.data);
    CHECK_INT(SPIM_OK, spim__text_expand("a{key}b", &v, 1, &out, &err));
    CHECK_STR("ab", (const char *)out.data);
    CHECK_INT(SPIM_OK, spim__text_expand("{key}", NULL, 0, &out, &err));
    CHECK_STR("", (const char *)out.data);
    CHECK_INT(SPIM_ERR_CONFIG, spim__text_expand("x {month}", &v, 0, &out, &err));
    CHECKF(strstr(err.message, "{month}") != NULL, "message: %s", err.message);
    CHECK_INT(SPIM_ERR_CONFIG, spim__text_expand("x {year", &v, 0, &out, &err));
    spim_buf_free(&out);
}

TEST(bad_font_text_or_colour_is_refused_by_name)
{
    spim_stamp_options o;
    spim_error err;
    unsigned char png[16] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
    memset(&o, 0, sizeof o);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "text", "\xC2\xA9 {year} Caf\xC3\xA9", &err));
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_check(&o, &err));
    CHECKF(strncmp(err.message, "font: ", 6) == 0, "no font: %s", err.message);
    o.font = png;
    o.font_len = sizeof png;
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_check(&o, &err));
    CHECKF(strncmp(err.message, "font: not a TrueType", 20) == 0, "a PNG: %s", err.message);
    if (!dejavu.len) SKIP("no " DEJAVU);
    o.font = dejavu.data;
    o.font_len = dejavu.len - 1000;  /* cut: tables past the end */
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_check(&o, &err));
    CHECKF(strstr(err.message, "past the end") != NULL, "cut font: %s", err.message);
    o.font_len = dejavu.len;
    CHECK_INT(SPIM_OK, spim_stamp_check(&o, &err));
    o.text = "Stamped \xE4\xB8\xAD";  /* DejaVu has no Han */
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_check(&o, &err));
    CHECK_STR("text: the font has no glyph for U+4E2D '\xE4\xB8\xAD'", err.message);
    o.text = "bad \xFF byte";
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_check(&o, &err));
    CHECK_STR("text: not valid UTF-8", err.message);
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_option_set(&o, "text-color", "red", &err));
    CHECKF(strstr(err.message, "#rrggbb") != NULL, "message: %s", err.message);
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_option_set(&o, "text-color", "#00000000", &err));
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_option_set(&o, "text-color", "#12345", &err));
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "text-color", "#FF8000", &err));
    CHECK(o.text_color == 0xff8000ffu);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "text-color", "#ff800080", &err));
    CHECK(o.text_color == 0xff800080u);
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_option_set(&o, "text-size", "0", &err));
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_option_set(&o, "text-effect", "glow", &err));
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "text-effect", "shadow", &err));
    CHECK_INT(SPIM_TEXT_SHADOW, o.text_effect);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "text-gravity", "NE", &err));
    CHECK_INT(SPIM_GRAVITY_NE, o.text_gravity);
}

/* A character the font lacks in a placeholder's value does not fail the
   image: it is drawn as the font's missing-glyph box. */
TEST(missing_glyph_in_a_value_draws_the_box)
{
    spim_stamp_options o;
    spim_text_vars v;
    spim_error err;
    unsigned char *a = (unsigned char *)calloc(300 * 100, 3), *b = (unsigned char *)calloc(300 * 100, 3);
    if (!dejavu.len) { free(a); free(b); SKIP("no " DEJAVU); }
    memset(&o, 0, sizeof o);
    memset(&v, 0, sizeof v);
    o.text = "{key}";
    o.font = dejavu.data;
    o.font_len = dejavu.len;
    o.text_effect = SPIM_TEXT_PLAIN;
    o.text_size = 0.4;
    o.vars = &v;
    CHECK_INT(SPIM_OK, spim_stamp_check(&o, &err));
    v.key = "\xE4\xB8\xAD";
    CHECKF(spim__stamp_draw(a, 300, 100, 3, 1, NULL, &o, &err) == SPIM_OK, "%s", err.message);
    v.key = " ";
    CHECKF(spim__stamp_draw(b, 300, 100, 3, 1, NULL, &o, &err) == SPIM_OK, "%s", err.message);
    CHECKF(memcmp(a, b, 300 * 100 * 3) != 0, "the missing-glyph box was not drawn");
    free(a);
    free(b);
}

/* Text and image stamp together, each at its own gravity; text alone tiles. */
TEST(text_and_stamp_together)
{
    spim_stamp_options o;
    spim_stamp st;
    spim_error err;
    int w = 300, h = 200, x, y, nw = 0, se = 0, tiled = 0;
    unsigned char *px = (unsigned char *)calloc((size_t)w * (size_t)h, 3);
    if (!dejavu.len) { free(px); SKIP("no " DEJAVU); }
    make_stamp(&st, 30, 20);
    memset(&o, 0, sizeof o);
    o.text = "Sparta";
    o.font = dejavu.data;
    o.font_len = dejavu.len;
    o.text_gravity = SPIM_GRAVITY_NW;
    CHECKF(spim__stamp_draw(px, w, h, 3, 1, &st, &o, &err) == SPIM_OK, "%s", err.message);
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            int lit = px[((size_t)y * (size_t)w + (size_t)x) * 3 + 1] != 0;
            nw += lit && x < w / 2 && y < h / 2;
            se += lit && x >= w - 30 && y >= h - 20;
        }
    CHECKF(nw > 50 && se > 50, "text at nw lit %d pixels, stamp at se %d", nw, se);
    memset(px, 0, (size_t)w * (size_t)h * 3);
    o.tile = 1;
    o.tile_gap = 10;
    CHECKF(spim__stamp_draw(px, w, h, 3, 1, NULL, &o, &err) == SPIM_OK, "%s", err.message);
    for (y = 0; y < h; y += 10)
        for (x = 0; x < w; x++) tiled += px[((size_t)y * (size_t)w + (size_t)x) * 3] != 0;
    CHECKF(tiled > 300, "tiled text lit only %d pixels on every 10th row", tiled);
    free(st.rgba);
    free(px);
}

int main(void)
{
    spim_error err;
    if (spim_read_file(DEJAVU, 0, &dejavu, &err) != SPIM_OK) dejavu.len = 0;
    RUN(tiled_png_is_the_exact_blend_of_every_tile);
    RUN(tiles_refuse_nonsense);
    RUN(first_covered_row);
    RUN(text_is_drawn_as_stb_truetype_renders_it);
    RUN(cjk_with_a_cjk_font);
    RUN(placeholders_expand_from_the_event);
    RUN(bad_font_text_or_colour_is_refused_by_name);
    RUN(missing_glyph_in_a_value_draws_the_box);
    RUN(text_and_stamp_together);
    spim_buf_free(&dejavu);
    return spim_test_finish();
}
