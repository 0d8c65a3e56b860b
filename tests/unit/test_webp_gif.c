/* WebP stays WebP and GIF stays GIF (SPIM_WEBP, SPIM_GIF): lossy, lossless,
   alpha and animated WebP made by cwebp, img2webp and Pillow; single and
   animated GIFs made by Pillow. Outputs are read back with libwebp, giflib
   and Pillow and compared with the exact blend of the decoded input.
   Built with -DSPIM_TEST_NO_FORMATS (make check-sections) the switches are
   off and every case says it is skipped. */
#ifndef SPIM_TEST_NO_FORMATS
#define SPIM_WEBP
#define SPIM_GIF
#endif
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "spim_test.h"

#include <math.h>
#include <unistd.h>

#define PY "/usr/bin/python3"

static char dir[256];

/* A file of the scratch directory. */
static const char *at(const char *name)
{
    static char path[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

/* Run a shell command in the scratch directory; 1 when it exits 0. */
static int sh(const char *fmt, ...) SPIM__PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    int n;
    va_list ap;
    n = snprintf(cmd, sizeof cmd, "cd '%s' && ", dir);
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    return system(cmd) == 0;
}

SPIM__PRIVATE int have_tools(void)
{
    return sh("command -v cwebp img2webp webpmux >/dev/null && " PY " -c 'import PIL' 2>/dev/null");
}

/* A 96x64 stamp: opaque core, soft edges, a transparent corner; or, while
   `flat` is set, four opaque colours and a transparent border (what fits a
   GIF palette exactly). */
static unsigned char stamp_px[96 * 64 * 4];
static int flat;
static spim_stamp make_stamp(void)
{
    spim_stamp s;
    int x, y;
    for (y = 0; y < 64; y++)
        for (x = 0; x < 96; x++) {
            unsigned char *p = stamp_px + (y * 96 + x) * 4;
            p[0] = (unsigned char)(200 + x / 2);
            p[1] = (unsigned char)(y * 3);
            p[2] = (unsigned char)(40 + x);
            p[3] = (unsigned char)(x < 8 || y < 8 ? 0 : x < 24 ? 120 : 255);
            if (flat) {
                p[0] = (unsigned char)(x / 24 * 80);
                p[1] = 250;
                p[2] = (unsigned char)(y < 32 ? 10 : 90);
                p[3] = (unsigned char)(x < 8 || y < 8 ? 0 : 255);
            }
        }
    s.rgba = stamp_px;
    s.width = 96;
    s.height = 64;
    return s;
}

SPIM__PRIVATE spim_status stamp_file(const char *in, const char *out, const spim_stamp_options *opt,
                              spim_image_info *info, spim_error *err)
{
    spim_buf a = SPIM_BUF_INIT, b = SPIM_BUF_INIT;
    spim_stamp s = make_stamp();
    FILE *f;
    spim_status st = spim_read_file(at(in), 0, &a, err);
    if (st == SPIM_OK) st = spim_stamp_image(a.data, a.len, &s, opt, &b, info, err);
    if (st == SPIM_OK && (f = fopen(at(out), "wb")) != NULL) {
        fwrite(b.data, 1, b.len, f);
        fclose(f);
    }
    spim_buf_free(&a);
    spim_buf_free(&b);
    return st;
}

#ifdef SPIM__WEBP
/* A still WebP decoded to RGBA; NULL on failure. */
static unsigned char *webp_rgba(const char *name, int *w, int *h)
{
    spim_buf b = SPIM_BUF_INIT;
    unsigned char *px = NULL;
    if (spim_read_file(at(name), 0, &b, NULL) == SPIM_OK) px = WebPDecodeRGBA(b.data, b.len, w, h);
    spim_buf_free(&b);
    return px;
}

/* PSNR of the colour premultiplied by alpha (what shows over black: the
   encoder may change colour where alpha is 0) over the pixels inside
   (inside = 1) or outside the rectangle. */
static double psnr(const unsigned char *a, const unsigned char *b, int w, int h,
                   const spim__layer *L, int inside)
{
    double se = 0;
    long n = 0;
    int x, y, c;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            int in = x >= L->x && x < L->x + L->w && y >= L->y && y < L->y + L->h;
            if (in != inside) continue;
            for (c = 0; c < 3; c++, n++) {
                const unsigned char *p = a + (y * w + x) * 4, *q = b + (y * w + x) * 4;
                double d = (double)p[c] * p[3] / 255.0 - (double)q[c] * q[3] / 255.0;
                se += d * d;
            }
        }
    return se == 0 ? 99.0 : 10.0 * log10(255.0 * 255.0 * (double)n / se);
}

static int max_diff(const unsigned char *a, const unsigned char *b, size_t n)
{
    int m = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        int d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
        if (d > m) m = d;
    }
    return m;
}

/* The stamp's rectangle on a w x h image with default options. */
SPIM__PRIVATE spim__layer placed_gif(int w, int h);
static spim__layer placed(int w, int h)
{
    return placed_gif(w, h);
}
#endif

SPIM__PRIVATE spim__layer placed_gif(int w, int h)
{
    spim__plan P;
    spim__layer L;
    spim_stamp s = make_stamp();
    spim_stamp_options o;
    memset(&o, 0, sizeof o);
    memset(&L, 0, sizeof L);
    if (spim__plan_make(&P, w, h, 4, 1, &s, &o, NULL) == SPIM_OK) {
        spim__plan_tile(&P, 0, 0, 0, &L);
        spim__plan_free(&P);
    }
    return L;
}
#ifdef SPIM__WEBP

/* Which chunk holds the (first) bitstream: "VP8 " or "VP8L". */
static int has_chunk(const char *name, const char *id)
{
    spim_buf b = SPIM_BUF_INIT;
    size_t i;
    int found = 0;
    if (spim_read_file(at(name), 0, &b, NULL) != SPIM_OK) return 0;
    for (i = 12; i + 4 <= b.len && !found; i++) found = memcmp(b.data + i, id, 4) == 0;
    spim_buf_free(&b);
    return found;
}

/* The quality a lossy WebP file was made with, as the library estimates it. */
static int quality_of(const char *name)
{
    spim_buf b = SPIM_BUF_INIT;
    size_t n = 0;
    const unsigned char *vp8;
    int q = -1;
    if (spim_read_file(at(name), 0, &b, NULL) == SPIM_OK &&
        (vp8 = spim__webp_find_vp8(b.data, b.len, &n)) != NULL)
        q = spim__vp8_quality(vp8, n);
    spim_buf_free(&b);
    return q;
}

/* Stamp `in`, then compare with the blend of its decoded pixels. */
static void check_still(const char *in, const char *kind, int lossless, double min_in,
                        double min_out)
{
    spim_image_info info;
    spim_error err;
    spim_stamp s = make_stamp();
    unsigned char *src, *got;
    int w, h, w2 = 0, h2 = 0;
    spim__layer L;
    memset(&info, 0, sizeof info);
    CHECK_INT(SPIM_OK, stamp_file(in, "out.webp", NULL, &info, &err));
    CHECK_STR(kind, info.path ? info.path : "(null)");
    CHECK_STR("image/webp", info.content_type ? info.content_type : "(null)");
    CHECK(has_chunk("out.webp", lossless ? "VP8L" : "VP8 "));
    src = webp_rgba(in, &w, &h);
    got = webp_rgba("out.webp", &w2, &h2);
    CHECK(src && got && w == w2 && h == h2);
    if (!src || !got) return;
    L = placed(w, h);
    CHECK_INT(SPIM_OK, spim__stamp_draw(src, w, h, 4, 1, &s, NULL, &err));
    if (lossless) {
        CHECK_INT(0, max_diff(src, got, (size_t)w * h * 4));
    } else {
        double pin = psnr(src, got, w, h, &L, 1), pout = psnr(src, got, w, h, &L, 0);
        printf("    %s: PSNR inside the stamp %.1f dB (min %.0f), outside %.1f dB (min %.0f)\n", in,
               pin, min_in, pout, min_out);
        CHECK(pin >= min_in);
        CHECK(pout >= min_out);
        CHECK(abs(quality_of(in) - quality_of("out.webp")) <= 2);
    }
    WebPFree(src);
    WebPFree(got);
}
#endif

/* A 320x240 photo-like picture for the generators. */
static int make_sources(void)
{
    return sh(PY " -c \"\n"
                 "from PIL import Image\n"
                 "w,h=320,240\n"
                 "im=Image.new('RGB',(w,h))\n"
                 "im.putdata([((x*3+y)%%256,(y*2+x//3)%%256,(x*y//64)%%256) for y in range(h) for "
                 "x in range(w)])\n"
                 "im.save('src.png')\n"
                 "a=im.convert('RGBA'); a.putalpha(Image.linear_gradient('L').resize((w,h)))\n"
                 "a.save('src_alpha.png')\n"
                 "\"");
}

TEST(webp_lossless_stays_lossless_and_exact)
{
#ifndef SPIM__WEBP
    SKIP("built without SPIM_WEBP");
#else
    if (!have_tools()) SKIP("cwebp/img2webp/webpmux or Pillow missing");
    CHECK(sh("cwebp -quiet -lossless src.png -o ll.webp"));
    check_still("ll.webp", "webp-lossless", 1, 0, 0);
    CHECK(sh("cwebp -quiet -lossless -exact src_alpha.png -o lla.webp"));
    check_still("lla.webp", "webp-lossless", 1, 0, 0);
    CHECK(sh(PY " -c \"from PIL import Image; Image.open('src_alpha.png').save('pil_ll.webp', "
                "lossless=True)\""));
    check_still("pil_ll.webp", "webp-lossless", 1, 0, 0);
#endif
}

TEST(webp_lossy_stays_lossy_at_the_source_quality)
{
#ifndef SPIM__WEBP
    SKIP("built without SPIM_WEBP");
#else
    spim_buf b = SPIM_BUF_INIT;
    size_t n = 0;
    const unsigned char *vp8;
    static const int qs[] = { 30, 60, 80, 95 };
    size_t i;
    if (!have_tools()) SKIP("cwebp/img2webp/webpmux or Pillow missing");
    for (i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        CHECK(sh("cwebp -quiet -q %d src.png -o q.webp", qs[i]));
        CHECK_INT(SPIM_OK, spim_read_file(at("q.webp"), 0, &b, NULL));
        vp8 = spim__webp_find_vp8(b.data, b.len, &n);
        CHECK(vp8 != NULL);
        if (vp8) {
            int q = spim__vp8_quality(vp8, n);
            if (q < qs[i] - 2 || q > qs[i] + 2) {
                CHECK(0);
                printf("    cwebp -q %d: estimated quality %d\n", qs[i], q);
            }
        }
        spim_buf_free(&b);
    }
    CHECK(sh("cwebp -quiet -q 85 src.png -o lossy.webp"));
    check_still("lossy.webp", "webp-lossy", 0, 28, 33);
    CHECK(sh("cwebp -quiet -q 85 -alpha_q 50 src_alpha.png -o lossy_a.webp"));
    check_still("lossy_a.webp", "webp-lossy", 0, 28, 33);
    CHECK(sh(
        PY " -c \"from PIL import Image; Image.open('src.png').save('pil_q.webp', quality=70)\""));
    check_still("pil_q.webp", "webp-lossy", 0, 26, 32);
#endif
}

TEST(webp_quality_option_is_used)
{
#ifndef SPIM__WEBP
    SKIP("built without SPIM_WEBP");
#else
    spim_stamp_options o;
    spim_error err;
    spim_buf b = SPIM_BUF_INIT;
    const unsigned char *vp8;
    size_t n = 0;
    if (!have_tools()) SKIP("cwebp/img2webp/webpmux or Pillow missing");
    memset(&o, 0, sizeof o);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "webp-quality", "40", &err));
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_option_set(&o, "webp-quality", "101", &err));
    CHECK_INT(40, o.webp_quality);
    CHECK(sh("cwebp -quiet -q 90 src.png -o q90.webp"));
    CHECK_INT(SPIM_OK, stamp_file("q90.webp", "q40.webp", &o, NULL, &err));
    CHECK_INT(SPIM_OK, spim_read_file(at("q40.webp"), 0, &b, NULL));
    vp8 = spim__webp_find_vp8(b.data, b.len, &n);
    CHECK(vp8 && abs(spim__vp8_quality(vp8, n) - 40) <= 2);
    spim_buf_free(&b);
#endif
}

#ifdef SPIM__WEBP
static int chunk_equal(const WebPDemuxer *a, const WebPDemuxer *b, const char *id)
{
    WebPChunkIterator x, y;
    int ok = WebPDemuxGetChunk(a, id, 1, &x) && WebPDemuxGetChunk(b, id, 1, &y) &&
             x.chunk.size == y.chunk.size &&
             memcmp(x.chunk.bytes, y.chunk.bytes, x.chunk.size) == 0;
    WebPDemuxReleaseChunkIterator(&x);
    WebPDemuxReleaseChunkIterator(&y);
    if (!ok) printf("    chunk %s differs or is missing\n", id);
    return ok;
}

static WebPDemuxer *demux_file(const char *name, spim_buf *b)
{
    WebPData d;
    if (spim_read_file(at(name), 0, b, NULL) != SPIM_OK) return NULL;
    d.bytes = b->data;
    d.size = b->len;
    return WebPDemux(&d);
}
#endif

/* webpmux adding the three chunks to A.webp, giving B.webp */
#define META(a, b)                                                                                 \
    "webpmux -set icc p.icc " a ".webp -o " a "1.webp 2>/dev/null && "                             \
    "webpmux -set exif x.exif " a "1.webp -o " a "2.webp 2>/dev/null && "                          \
    "webpmux -set xmp x.xmp " a "2.webp -o " b ".webp 2>/dev/null"

TEST(webp_iccp_exif_xmp_chunks_are_kept)
{
#ifndef SPIM__WEBP
    SKIP("built without SPIM_WEBP");
#else
    static const char *inputs[] = { "meta.webp", "meta_ll.webp" };
    spim_buf a = SPIM_BUF_INIT, b = SPIM_BUF_INIT;
    spim_error err;
    size_t i;
    if (!have_tools()) SKIP("cwebp/img2webp/webpmux or Pillow missing");
    /* an ICC profile of 600 bytes, EXIF (TIFF, no thumbnail), XMP */
    CHECK(sh(
        PY
        " -c \"\n"
        "open('p.icc','wb').write(bytes(range(256))*2+b'acsp'*22)\n"
        "open('x.exif','wb').write(b'II*"
        "\\\\x00\\\\x08\\\\x00\\\\x00\\\\x00\\\\x01\\\\x00\\\\x12\\\\x01\\\\x03\\\\x00"
        "\\\\x01\\\\x00\\\\x00\\\\x00\\\\x01\\\\x00\\\\x00\\\\x00\\\\x00\\\\x00\\\\x00\\\\x00')\n"
        "open('x.xmp','wb').write(b'<x:xmpmeta "
        "xmlns:x=\\\\'adobe:ns:meta/\\\\'>stamped</x:xmpmeta>')\n\""));
    CHECK(sh("cwebp -quiet -q 80 src.png -o m0.webp && " META("m0", "meta")));
    CHECK(sh("cwebp -quiet -lossless src_alpha.png -o l0.webp && " META("l0", "meta_ll")));
    for (i = 0; i < 2; i++) {
        WebPDemuxer *x, *y;
        CHECK_INT(SPIM_OK, stamp_file(inputs[i], "meta_out.webp", NULL, NULL, &err));
        x = demux_file(inputs[i], &a);
        y = demux_file("meta_out.webp", &b);
        CHECK(x && y);
        if (x && y) {
            CHECK(chunk_equal(x, y, "ICCP"));
            CHECK(chunk_equal(x, y, "EXIF"));
            CHECK(chunk_equal(x, y, "XMP "));
        }
        WebPDemuxDelete(x);
        WebPDemuxDelete(y);
        spim_buf_free(&a);
        spim_buf_free(&b);
    }
    check_still("meta_ll.webp", "webp-lossless", 1, 0, 0);
#endif
}

#ifdef SPIM__WEBP
/* Every frame of an animation: durations, loop count, and the composited
   canvas compared with the blend of the input's canvas. */
static void check_anim(const char *in, int lossless)
{
    spim_buf a = SPIM_BUF_INIT, b = SPIM_BUF_INIT;
    WebPAnimDecoder *da = NULL, *db = NULL;
    WebPAnimInfo ia, ib;
    WebPData x, y;
    spim_image_info info;
    spim_error err;
    spim_stamp s = make_stamp();
    int frames = 0;
    CHECK_INT(SPIM_OK, stamp_file(in, "anim_out.webp", NULL, &info, &err));
    CHECK_STR("webp-animated", info.path ? info.path : "(null)");
    CHECK(has_chunk("anim_out.webp", lossless ? "VP8L" : "VP8 "));
    CHECK_INT(SPIM_OK, spim_read_file(at(in), 0, &a, NULL));
    CHECK_INT(SPIM_OK, spim_read_file(at("anim_out.webp"), 0, &b, NULL));
    x.bytes = a.data;
    x.size = a.len;
    y.bytes = b.data;
    y.size = b.len;
    da = WebPAnimDecoderNew(&x, NULL);
    db = WebPAnimDecoderNew(&y, NULL);
    CHECK(da && db && WebPAnimDecoderGetInfo(da, &ia) && WebPAnimDecoderGetInfo(db, &ib));
    if (da && db) {
        CHECK_INT((int)ia.frame_count, (int)ib.frame_count);
        CHECK_INT((int)ia.loop_count, (int)ib.loop_count);
        CHECK_INT((int)ia.bgcolor, (int)ib.bgcolor);
        while (WebPAnimDecoderHasMoreFrames(da) && WebPAnimDecoderHasMoreFrames(db)) {
            uint8_t *ca, *cb;
            int ta = 0, tb = 0;
            size_t n = (size_t)ia.canvas_width * ia.canvas_height * 4;
            unsigned char *want = (unsigned char *)malloc(n);
            CHECK(WebPAnimDecoderGetNext(da, &ca, &ta) && WebPAnimDecoderGetNext(db, &cb, &tb));
            CHECK_INT(ta, tb); /* end times, so every duration */
            memcpy(want, ca, n);
            spim__stamp_draw(want, (int)ia.canvas_width, (int)ia.canvas_height, 4, 1, &s, NULL,
                             &err);
            if (lossless) {
                CHECK_INT(0, max_diff(want, cb, n));
            } else {
                spim__layer L = placed((int)ia.canvas_width, (int)ia.canvas_height);
                CHECK(psnr(want, cb, (int)ia.canvas_width, (int)ia.canvas_height, &L, 1) >= 25);
                CHECK(psnr(want, cb, (int)ia.canvas_width, (int)ia.canvas_height, &L, 0) >= 32);
            }
            free(want);
            frames++;
        }
        CHECK_INT((int)ia.frame_count, frames);
    }
    WebPAnimDecoderDelete(da);
    WebPAnimDecoderDelete(db);
    spim_buf_free(&a);
    spim_buf_free(&b);
}
#endif

TEST(webp_animations_keep_frames_timing_and_loop)
{
#ifndef SPIM__WEBP
    SKIP("built without SPIM_WEBP");
#else
    if (!have_tools()) SKIP("cwebp/img2webp/webpmux or Pillow missing");
    /* five different frames, each offset a little, with their own durations */
    CHECK(sh(
        PY
        " -c \"\n"
        "from PIL import Image, ImageChops\n"
        "im=Image.open('src.png')\n"
        "fr=[ImageChops.offset(im,k*7,k*3) for k in range(5)]\n"
        "fr[0].save('anim_ll.webp',save_all=True,append_images=fr[1:],duration=[100,120,140,60,200]"
        ","
        "loop=3,lossless=True)\n"
        "fr[0].save('anim_q.webp',save_all=True,append_images=fr[1:],duration=[80,90,100,110,120],"
        "loop=0,quality=85)\n"
        "for k,f in enumerate(fr): f.save('f%%d.png'%%k)\n\""));
    check_anim("anim_ll.webp", 1);
    check_anim("anim_q.webp", 0);
    CHECK(sh("img2webp -loop 7 -lossless -d 70 f0.png f1.png -d 150 f2.png f3.png -o img2.webp "
             ">/dev/null 2>&1"));
    check_anim("img2.webp", 1);
#endif
}

TEST(webp_bad_input_fails_cleanly)
{
#ifndef SPIM__WEBP
    SKIP("built without SPIM_WEBP");
#else
    spim_buf a = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_stamp s = make_stamp();
    spim_stamp_options o;
    spim_error err;
    size_t cut, i;
    if (!have_tools()) SKIP("cwebp/img2webp/webpmux or Pillow missing");
    CHECK(sh("cwebp -quiet -q 80 src.png -o bad.webp"));
    CHECK_INT(SPIM_OK, spim_read_file(at("bad.webp"), 0, &a, NULL));
    memset(&o, 0, sizeof o);
    for (cut = 0; cut < a.len; cut += a.len / 7 + 1) { /* truncated */
        CHECK_INT(SPIM_ERR_IMAGE,
                  spim_stamp_image(a.data, cut < 12 ? 12 : cut, &s, NULL, &out, NULL, &err));
        CHECK_INT(0, (int)out.len);
    }
    o.max_pixels = 320 * 240 - 1; /* over the budget */
    CHECK_INT(SPIM_ERR_TOO_LARGE, spim_stamp_image(a.data, a.len, &s, &o, &out, NULL, &err));
    for (i = 40; i < a.len; i += 97) { /* corrupt VP8 data: an error or a picture */
        spim_status st;
        a.data[i] ^= 0x5A;
        st = spim_stamp_image(a.data, a.len, &s, NULL, &out, NULL, &err);
        CHECK(st == SPIM_OK || st == SPIM_ERR_IMAGE);
        spim_buf_reset(&out);
    }
    spim_buf_free(&a);
    /* an animation: frames x canvas over the budget (its canvas weighs 300/45) */
    CHECK(sh(PY " -c \"\n"
                "from PIL import Image\n"
                "b=Image.open('src.png'); c=b.rotate(180)\n"
                "b.save('eight.webp',save_all=True,append_images=[c,b,c,b,c,b,c],duration=20,"
                "lossless=True)\n\""));
    CHECK_INT(SPIM_OK, spim_read_file(at("eight.webp"), 0, &a, NULL));
    o.max_pixels = 320 * 240 * 8 - 1; /* the canvas, weighted, fits: 8 frames do not */
    CHECK_INT(SPIM_ERR_TOO_LARGE, spim_stamp_image(a.data, a.len, &s, &o, &out, NULL, &err));
    CHECK(strstr(err.message, "8 frames") != NULL);
    o.max_pixels = 320 * 240 * 8;
    CHECK_INT(SPIM_OK, spim_stamp_image(a.data, a.len, &s, &o, &out, NULL, &err));
    spim_buf_reset(&out);
    spim_buf_free(&a);
    /* WebP is written only from a WebP */
    CHECK_INT(SPIM_OK, spim_read_file(at("src.png"), 0, &a, NULL));
    o.max_pixels = 0;
    o.output_format = SPIM_FORMAT_WEBP;
    CHECK_INT(SPIM_ERR_INVALID, spim_stamp_image(a.data, a.len, &s, &o, &out, NULL, &err));
    spim_buf_free(&a);
    spim_buf_free(&out);
#endif
}

/* Pillow's view of every frame of a GIF, composited: NAME.K.rgba files;
   returns the frame count (0 on failure). */
SPIM__PRIVATE int gif_frames_rgba(const char *name)
{
    char out[64];
    FILE *f;
    int n = 0;
    if (!sh(PY " -c \"\n"
               "from PIL import Image, ImageSequence\n"
               "im=Image.open('%s'); k=0\n"
               "for fr in ImageSequence.Iterator(im):\n"
               "    open('%s.%%d.rgba'%%k,'wb').write(fr.convert('RGBA').tobytes()); k+=1\n"
               "open('%s.count','w').write(str(k))\n\"",
            name, name, name))
        return 0;
    snprintf(out, sizeof out, "%s.count", name);
    if ((f = fopen(at(out), "r")) != NULL) {
        if (fscanf(f, "%d", &n) != 1) n = 0;
        fclose(f);
    }
    return n;
}

SPIM__PRIVATE unsigned char *read_rgba(const char *name, int k, size_t n)
{
    char p[64];
    spim_buf b = SPIM_BUF_INIT;
    snprintf(p, sizeof p, "%s.%d.rgba", name, k);
    if (spim_read_file(at(p), 0, &b, NULL) != SPIM_OK || b.len != n) {
        spim_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* Frame by frame: outside the stamp the output shows exactly the input;
   inside, the blend over the input's frame (alpha cut at 128, as GIF has
   one bit). exact = 0 allows the palette's nearest colour (mean error). */
SPIM__PRIVATE void check_gif_pixels(const char *in, const char *out, int w, int h, int exact)
{
    spim_stamp s = make_stamp();
    spim_error err;
    size_t n = (size_t)w * h * 4, i;
    int frames = gif_frames_rgba(in), k;
    spim__layer L = placed_gif(w, h);
    CHECK(frames > 0);
    CHECK_INT(frames, gif_frames_rgba(out));
    for (k = 0; k < frames; k++) {
        unsigned char *a = read_rgba(in, k, n), *b = read_rgba(out, k, n);
        long bad_out = 0, bad_in = 0, sum = 0, cnt = 0;
        CHECK(a && b);
        if (a && b) {
            unsigned char *want = (unsigned char *)malloc(n);
            memcpy(want, a, n);
            CHECK_INT(SPIM_OK, spim__stamp_draw(want, w, h, 4, 1, &s, NULL, &err));
            for (i = 0; i < n; i += 4) {
                int x = (int)(i / 4) % w, y = (int)(i / 4) / w, c;
                int inside = x >= L.x && x < L.x + L.w && y >= L.y && y < L.y + L.h;
                int wa = want[i + 3] >= 128 ? 255 : 0;
                if (!inside) {
                    bad_out += a[i + 3] != b[i + 3] || (a[i + 3] && memcmp(a + i, b + i, 3) != 0);
                    continue;
                }
                if (wa != b[i + 3]) {
                    bad_in++;
                    continue;
                }
                for (c = 0; wa && c < 3; c++, cnt++) {
                    int d = abs(want[i + c] - b[i + c]);
                    sum += d;
                    if (exact && d) bad_in++;
                }
            }
            free(want);
        }
        if (bad_out || bad_in || (cnt && sum / cnt > 16)) {
            CHECK(0);
            printf("    %s frame %d: %ld pixels differ outside the stamp, %ld inside, mean error "
                   "%ld\n",
                   out, k, bad_out, bad_in, cnt ? sum / cnt : 0);
        }
        free(a);
        free(b);
    }
}

#ifdef SPIM__GIF
/* Delay, disposal and transparent index of every frame, the loop count
   and the indices outside the stamp, compared between two GIFs. */
static void check_gif_structure(const char *in, const char *out, int *max_widened)
{
    int e = 0, k, loops[2] = { -1, -1 }, f;
    GifFileType *g[2];
    g[0] = DGifOpenFileName(at(in), &e);
    g[1] = DGifOpenFileName(at(out), &e);
    CHECK(g[0] && g[1] && DGifSlurp(g[0]) == GIF_OK && DGifSlurp(g[1]) == GIF_OK);
    if (!g[0] || !g[1]) return;
    CHECK_INT(g[0]->ImageCount, g[1]->ImageCount);
    CHECK(g[0]->SWidth == g[1]->SWidth && g[0]->SHeight == g[1]->SHeight);
    for (f = 0; f < 2; f++)
        for (k = 0; k < g[f]->SavedImages[0].ExtensionBlockCount; k++) {
            ExtensionBlock *x = &g[f]->SavedImages[0].ExtensionBlocks[k];
            if (x->Function == APPLICATION_EXT_FUNC_CODE && x->ByteCount == 11 &&
                memcmp(x->Bytes, "NETSCAPE2.0", 11) == 0 &&
                k + 1 < g[f]->SavedImages[0].ExtensionBlockCount)
                loops[f] = x[1].Bytes[1] | x[1].Bytes[2] << 8;
        }
    CHECK_INT(loops[0], loops[1]);
    *max_widened = 0;
    for (k = 0; k < g[0]->ImageCount && k < g[1]->ImageCount; k++) {
        GraphicsControlBlock a, b;
        const GifImageDesc *da = &g[0]->SavedImages[k].ImageDesc,
                           *db = &g[1]->SavedImages[k].ImageDesc;
        int has = DGifSavedExtensionToGCB(g[0], k, &a) == GIF_OK;
        CHECK(DGifSavedExtensionToGCB(g[1], k, &b) == GIF_OK || !has);
        if (has) {
            CHECK_INT(a.DelayTime, b.DelayTime);
            CHECK_INT(a.DisposalMode, b.DisposalMode);
            if (a.TransparentColor >= 0) CHECK_INT(a.TransparentColor, b.TransparentColor);
        }
        if (da->Left == db->Left && da->Top == db->Top && da->Width == db->Width &&
            da->Height == db->Height) {
            int x, y, diff = 0;
            spim__layer L = placed_gif(g[0]->SWidth, g[0]->SHeight);
            for (y = 0; y < da->Height; y++)
                for (x = 0; x < da->Width; x++) {
                    int cx = da->Left + x, cy = da->Top + y;
                    size_t i = (size_t)y * (size_t)da->Width + (size_t)x;
                    if (cx >= L.x && cx < L.x + L.w && cy >= L.y && cy < L.y + L.h) continue;
                    diff += g[0]->SavedImages[k].RasterBits[i] !=
                            g[1]->SavedImages[k].RasterBits[i];
                }
            if (diff)
                printf("    %s frame %d: %d indices differ outside the stamp\n", out, k, diff);
            CHECK_INT(0, diff);
        } else {
            (*max_widened)++;
        }
    }
    DGifCloseFile(g[0], &e);
    DGifCloseFile(g[1], &e);
}
#endif

TEST(gif_single_frame_stays_gif_with_exact_indices)
{
#ifndef SPIM__GIF
    SKIP("built without SPIM_GIF");
#else
    spim_image_info info;
    spim_error err;
    int widened = 0;
    if (!have_tools()) SKIP("cwebp/img2webp/webpmux or Pillow missing");
    CHECK(sh(
        PY " -c \"from PIL import Image; Image.open('src.png').quantize(16).save('pal16.gif')\""));
    CHECK(sh(
        PY
        " -c \"from PIL import Image; Image.open('src.png').quantize(256).save('pal256.gif')\""));
    memset(&info, 0, sizeof info);
    CHECK_INT(SPIM_OK, stamp_file("pal16.gif", "pal16_out.gif", NULL, &info, &err));
    CHECK_STR("gif", info.path ? info.path : "(null)");
    CHECK_STR("image/gif", info.content_type ? info.content_type : "(null)");
    CHECK_STR("gif", info.extension ? info.extension : "(null)");
    check_gif_structure("pal16.gif", "pal16_out.gif", &widened);
    CHECK_INT(0, widened);
    check_gif_pixels("pal16.gif", "pal16_out.gif", 320, 240,
                     0); /* too many colours: some nearest */
    flat = 1;
    CHECK_INT(SPIM_OK, stamp_file("pal16.gif", "pal16_out.gif", NULL, NULL, &err));
    check_gif_pixels("pal16.gif", "pal16_out.gif", 320, 240, 1); /* room in the palette: exact */
    flat = 0;
    CHECK_INT(SPIM_OK, stamp_file("pal256.gif", "pal256_out.gif", NULL, NULL, &err));
    check_gif_structure("pal256.gif", "pal256_out.gif", &widened);
    check_gif_pixels("pal256.gif", "pal256_out.gif", 320, 240,
                     0); /* full palette: nearest colours */
    CHECK(sh("cmp -s pal16.gif pal16_out.gif") == 0);
#endif
}

TEST(gif_animation_keeps_frames_delays_disposal_transparency_loop)
{
#ifndef SPIM__GIF
    SKIP("built without SPIM_GIF");
#else
    spim_error err;
    int widened = 0;
    if (!have_tools()) SKIP("cwebp/img2webp/webpmux or Pillow missing");
    /* partial frames (Pillow crops each to what changed), transparency,
       disposal 1, 2 and 3, and a first frame disposed to background that
       the next, partial frame must make up for */
    CHECK(sh(PY " -c \"\n"
                "from PIL import Image, ImageDraw\n"
                "base=Image.open('src.png').quantize(32)\n"
                "fr=[]\n"
                "for k in range(6):\n"
                "    f=base.copy(); d=ImageDraw.Draw(f); "
                "d.rectangle([20+k*30,20,40+k*30,60],fill=k+1); fr.append(f)\n"
                "fr[0].save('anim.gif',save_all=True,append_images=fr[1:],duration=[50,60,70,80,90,"
                "100],loop=2,"
                "disposal=[1,1,2,3,1,1],transparency=0,optimize=False)\n"
                "fr[0].save('anim2.gif',save_all=True,append_images=fr[1:],duration=40,loop=0,"
                "disposal=[2,1,1,1,1,1],transparency=0,optimize=False)\n\""));
    for (flat = 0; flat < 2; flat++) {
        CHECK_INT(SPIM_OK, stamp_file("anim.gif", "anim_out.gif", NULL, NULL, &err));
        check_gif_structure("anim.gif", "anim_out.gif", &widened);
        check_gif_pixels("anim.gif", "anim_out.gif", 320, 240, flat);
        CHECK_INT(SPIM_OK, stamp_file("anim2.gif", "anim2_out.gif", NULL, NULL, &err));
        check_gif_structure("anim2.gif", "anim2_out.gif", &widened);
        check_gif_pixels("anim2.gif", "anim2_out.gif", 320, 240, flat);
    }
    flat = 0;
#endif
}

TEST(gif_bad_input_fails_cleanly)
{
#ifndef SPIM__GIF
    SKIP("built without SPIM_GIF");
#else
    spim_buf a = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_stamp s = make_stamp();
    spim_stamp_options o;
    spim_error err;
    size_t cut, i;
    static const unsigned char huge[] =
        "GIF89a\xff\xff\xff\xff\x00\x00\x00,\x00\x00\x00\x00\xff\xff\xff\xff\x00\x02";
    if (!have_tools()) SKIP("cwebp/img2webp/webpmux or Pillow missing");
    CHECK(sh(PY " -c \"from PIL import Image; Image.open('src.png').quantize(64).save('b.gif')\""));
    CHECK_INT(SPIM_OK, spim_read_file(at("b.gif"), 0, &a, NULL));
    memset(&o, 0, sizeof o);
    for (cut = 6; cut < a.len; cut += a.len / 9 + 1) { /* truncated */
        CHECK_INT(SPIM_ERR_IMAGE, spim_stamp_image(a.data, cut, &s, NULL, &out, NULL, &err));
        CHECK_INT(0, (int)out.len);
    }
    for (i = 800; i < a.len; i += 131) { /* LZW garbage: an error or a picture */
        spim_status st;
        a.data[i] ^= 0xA5;
        st = spim_stamp_image(a.data, a.len, &s, NULL, &out, NULL, &err);
        CHECK(st == SPIM_OK || st == SPIM_ERR_IMAGE);
        spim_buf_reset(&out);
    }
    CHECK_INT(SPIM_ERR_TOO_LARGE,
              spim_stamp_image(huge, sizeof huge - 1, &s, NULL, &out, NULL, &err));
    spim_buf_free(&a);
    /* frames x canvas over the budget */
    CHECK(sh(
        PY
        " -c \"\n"
        "from PIL import Image\n"
        "b=Image.open('src.png').quantize(8); c=b.rotate(180)\n"
        "b.save('many.gif',save_all=True,append_images=[c,b,c,b],duration=20,optimize=False)\n\""));
    CHECK_INT(SPIM_OK, spim_read_file(at("many.gif"), 0, &a, NULL));
    o.max_pixels = 320 * 240 * 4;
    CHECK_INT(SPIM_ERR_TOO_LARGE, spim_stamp_image(a.data, a.len, &s, &o, &out, NULL, &err));
    CHECK(strstr(err.message, "5 frames") != NULL);
    o.max_pixels = 320 * 240 * 5;
    CHECK_INT(SPIM_OK, spim_stamp_image(a.data, a.len, &s, &o, &out, NULL, &err));
    spim_buf_free(&a);
    spim_buf_free(&out);
#endif
}

int main(void)
{
    char tmpl[] = "/tmp/spim_webp_gif.XXXXXX";
    int rc;
    if (!mkdtemp(tmpl)) {
        printf("cannot make a scratch directory\n");
        return 1;
    }
    snprintf(dir, sizeof dir, "%s", tmpl);
    if (!make_sources())
        printf("note: Pillow could not draw the sources; the cases will skip or fail\n");
    RUN(webp_lossless_stays_lossless_and_exact);
    RUN(webp_lossy_stays_lossy_at_the_source_quality);
    RUN(webp_quality_option_is_used);
    RUN(webp_iccp_exif_xmp_chunks_are_kept);
    RUN(webp_animations_keep_frames_timing_and_loop);
    RUN(webp_bad_input_fails_cleanly);
    RUN(gif_single_frame_stays_gif_with_exact_indices);
    RUN(gif_animation_keeps_frames_delays_disposal_transparency_loop);
    RUN(gif_bad_input_fails_cleanly);
    rc = spim_test_finish();
    if (!getenv("SPIM_KEEP")) sh("rm -rf '%s'", dir);
    return rc;
}
