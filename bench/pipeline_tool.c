/* pipeline_tool - images for bench/pipeline.sh and scripts/demo.sh.

     pipeline_tool jpeg W H QUALITY OUT
         a photo-like JPEG (gradients, soft shapes, sensor-like noise, so that
         it compresses like a camera picture rather than a flat test card),
         the same bytes for the same arguments
     pipeline_tool sidebyside BEFORE AFTER HEIGHT OUT
         both images scaled to HEIGHT pixels high, side by side on a white
         background with "before" / "after" labels; JPEG or PNG from OUT's
         extension

   Only stb (Debian libstb-dev); independent of sparta_imager.h on purpose,
   so that a bug in the library cannot hide in its own benchmark input. */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_write.h>
#include <stb_image_resize.h>
#include <stb_easy_font.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: pipeline_tool jpeg W H QUALITY OUT\n"
                    "       pipeline_tool sidebyside BEFORE AFTER HEIGHT OUT\n");
    return 2;
}

static unsigned char clamp255(double v)
{
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
}

static int make_jpeg(int w, int h, int quality, const char *out)
{
    unsigned char *p = (unsigned char *)malloc((size_t)w * (size_t)h * 3);
    uint32_t rng = 12345u;
    int x, y, ok;
    if (!p) return 1;
    for (y = 0; y < h; y++) {
        double v = (double)y / h;
        for (x = 0; x < w; x++) {
            double u = (double)x / w, n, r, g, b;
            double d = hypot(u - 0.62, v - 0.38);
            rng = rng * 1664525u + 1013904223u;
            n = (double)(rng >> 24) / 255.0 * 18 - 9;        /* sensor noise */
            r = 70 + 120 * v + 25 * sin(31 * u + 7 * v);      /* sky to ground */
            g = 110 + 60 * sin(9 * u) * cos(5 * v);
            b = 190 - 130 * v + 20 * sin(47 * u * v);
            if (d < 0.12) { r += 120 * (0.12 - d) / 0.12; g += 90 * (0.12 - d) / 0.12; }
            if (v > 0.6 + 0.05 * sin(13 * u)) { r *= 0.6; g *= 0.8; b *= 0.5; }
            p[((size_t)y * w + x) * 3 + 0] = clamp255(r + n);
            p[((size_t)y * w + x) * 3 + 1] = clamp255(g + n);
            p[((size_t)y * w + x) * 3 + 2] = clamp255(b + n);
        }
    }
    ok = stbi_write_jpg(out, w, h, 3, p, quality);
    free(p);
    if (!ok) fprintf(stderr, "pipeline_tool: cannot write %s\n", out);
    return ok ? 0 : 1;
}

/* Draw text with stb_easy_font's quads, scaled, into an RGB canvas. */
static void draw_text(unsigned char *img, int w, int h, int x0, int y0, int scale,
                      const char *text, unsigned char shade)
{
    static char buf[20000];
    int quads = stb_easy_font_print(0, 0, (char *)text, NULL, buf, sizeof buf), q;
    for (q = 0; q < quads; q++) {
        const float *v = (const float *)(buf + q * 4 * 16);   /* 4 vertices of 16 bytes */
        int xa = x0 + (int)v[0] * scale, ya = y0 + (int)v[1] * scale;
        int xb = x0 + (int)v[8] * scale, yb = y0 + (int)v[9] * scale, x, y;
        for (y = ya; y < yb; y++)
            for (x = xa; x < xb; x++)
                if (x >= 0 && y >= 0 && x < w && y < h)
                    memset(img + ((size_t)y * w + x) * 3, shade, 3);
    }
}

static void label(unsigned char *img, int w, int h, int x0, const char *text)
{
    int scale = h >= 300 ? 3 : 2, tw = stb_easy_font_width((char *)text) * scale;
    int th = 7 * scale, pad = 2 * scale, x, y;
    for (y = 0; y < th + 2 * pad; y++)
        for (x = 0; x < tw + 2 * pad; x++)
            if (x0 + x < w && y + pad < h)
                memset(img + ((size_t)(y + pad) * w + x0 + pad + x) * 3, 20, 3);
    draw_text(img, w, h, x0 + 2 * pad, 2 * pad, scale, text, 250);
}

static int side_by_side(const char *a, const char *b, int height, const char *out)
{
    int wa, ha, wb, hb, ca, cb, sa, sb, gap = 8, w, ok = 0, y;
    unsigned char *pa = stbi_load(a, &wa, &ha, &ca, 3), *pb = stbi_load(b, &wb, &hb, &cb, 3);
    unsigned char *ra = NULL, *rb = NULL, *img = NULL;
    size_t n = strlen(out);
    if (!pa || !pb) {
        fprintf(stderr, "pipeline_tool: cannot read %s\n", pa ? b : a);
        goto done;
    }
    sa = (int)((double)wa * height / ha + 0.5);
    sb = (int)((double)wb * height / hb + 0.5);
    w = gap + sa + gap + sb + gap;
    ra = (unsigned char *)malloc((size_t)sa * height * 3);
    rb = (unsigned char *)malloc((size_t)sb * height * 3);
    img = (unsigned char *)malloc((size_t)w * (height + 2 * gap) * 3);
    if (!ra || !rb || !img) goto done;
    stbir_resize_uint8_srgb(pa, wa, ha, 0, ra, sa, height, 0, 3, STBIR_ALPHA_CHANNEL_NONE, 0);
    stbir_resize_uint8_srgb(pb, wb, hb, 0, rb, sb, height, 0, 3, STBIR_ALPHA_CHANNEL_NONE, 0);
    memset(img, 255, (size_t)w * (height + 2 * gap) * 3);
    for (y = 0; y < height; y++) {
        memcpy(img + ((size_t)(y + gap) * w + gap) * 3, ra + (size_t)y * sa * 3, (size_t)sa * 3);
        memcpy(img + ((size_t)(y + gap) * w + 2 * gap + sa) * 3, rb + (size_t)y * sb * 3, (size_t)sb * 3);
    }
    label(img + (size_t)gap * w * 3, w, height, gap, "before");
    label(img + (size_t)gap * w * 3, w, height, 2 * gap + sa, "after");
    if (n > 4 && strcmp(out + n - 4, ".png") == 0)
        ok = stbi_write_png(out, w, height + 2 * gap, 3, img, w * 3);
    else
        ok = stbi_write_jpg(out, w, height + 2 * gap, 3, img, 85);
    if (!ok) fprintf(stderr, "pipeline_tool: cannot write %s\n", out);
done:
    stbi_image_free(pa);
    stbi_image_free(pb);
    free(ra);
    free(rb);
    free(img);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "jpeg") == 0) {
        int w = atoi(argv[2]), h = atoi(argv[3]), q = atoi(argv[4]);
        if (w < 1 || h < 1 || w > 20000 || h > 20000 || q < 1 || q > 100) return usage();
        return make_jpeg(w, h, q, argv[5]);
    }
    if (argc == 6 && strcmp(argv[1], "sidebyside") == 0) {
        int h = atoi(argv[4]);
        if (h < 16 || h > 4000) return usage();
        return side_by_side(argv[2], argv[3], h, argv[5]);
    }
    return usage();
}
