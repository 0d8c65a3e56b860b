/* mkstamp OUTPUT.png - draw the project's default stamp: a round seal with a
   stylised Corinthian helmet under a fanned crest, 256x256 RGBA.

   Every shape is a predicate on a point; each pixel averages 8x8 samples of
   the layers composited at that point (premultiplied), which gives the
   anti-aliased edges, and the seal's face is deliberately semi-transparent
   so the photo shows through. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

#include <math.h>
#include <stdio.h>

#define SIZE 256
#define SS 8

typedef struct rgba { double r, g, b, a; } rgba;

static const rgba GOLD = { 226, 182, 80, 1.0 };
static const rgba GOLD_DARK = { 168, 122, 40, 1.0 };
static const rgba FACE = { 18, 26, 46, 0.62 };
static const rgba CREST = { 196, 40, 36, 1.0 };
static const rgba CREST_DARK = { 140, 24, 24, 1.0 };
static const rgba SHADOW = { 0, 0, 0, 0.35 };

static double sq(double v) { return v * v; }

static int in_ellipse(double x, double y, double cx, double cy, double rx, double ry)
{
    return sq((x - cx) / rx) + sq((y - cy) / ry) <= 1.0;
}

/* The helmet: a dome with cheek guards, an eye slit joined to a nose guard
   and an open mouth slit, in coordinates where the seal has radius 1. */
static int helmet(double x, double y)
{
    double ax = fabs(x);
    if (!in_ellipse(x, y, 0, 0.02, 0.40, 0.52) || y > 0.50) return 0;
    if (y > 0.02 && y < 0.50 && ax < 0.07) return 0;                     /* mouth slit */
    if (ax > 0.05 && ax < 0.31 && in_ellipse(ax, y, 0.18, 0.04, 0.14, 0.075)) return 0; /* eyes */
    if (y > 0.30 && ax > 0.26) return 0;                                 /* cheek guards taper */
    return 1;
}

/* A band across the dome, darker, to give it volume. */
static int brow(double x, double y)
{
    return helmet(x, y) && y > -0.16 && y < -0.08;
}

/* The crest: a half annulus above the dome, striped radially. */
static int crest(double x, double y, int *dark)
{
    double cx = 0, cy = -0.14, r = sqrt(sq(x - cx) + sq(y - cy)), t;
    if (y > cy - 0.04 || r < 0.40 || r > 0.64) return 0;
    t = atan2(cy - y, x - cx) / 3.14159265358979 * 18;
    *dark = ((int)floor(t)) % 2 == 0;
    return 1;
}

/* Gold lit from the top left: lighter there, deeper towards the bottom right. */
static rgba gold(double x, double y)
{
    double t = (x + y + 2) / 4, k = 1.12 - 0.3 * t;
    rgba g = { GOLD.r * k, GOLD.g * k, GOLD.b * k, 1.0 };
    if (g.r > 255) g.r = 255;
    if (g.g > 255) g.g = 255;
    return g;
}

static void over(rgba *dst, rgba src)
{
    double a = src.a + dst->a * (1 - src.a);
    if (a <= 0) return;
    dst->r = (src.r * src.a + dst->r * dst->a * (1 - src.a)) / a;
    dst->g = (src.g * src.a + dst->g * dst->a * (1 - src.a)) / a;
    dst->b = (src.b * src.a + dst->b * dst->a * (1 - src.a)) / a;
    dst->a = a;
}

/* The seal at one point (x, y in -1..1). */
static rgba sample(double x, double y)
{
    rgba c = { 0, 0, 0, 0 };
    double r = sqrt(x * x + y * y), ang = atan2(y, x);
    int dark = 0, k;
    if (sqrt(sq(x - 0.025) + sq(y - 0.035)) <= 0.985 && r > 0.95) over(&c, SHADOW);
    if (r <= 0.90) over(&c, FACE);
    if (r >= 0.90 && r <= 0.975) over(&c, gold(x, y));
    if (r >= 0.79 && r <= 0.815) over(&c, gold(-x, -y));   /* the inner ring catches the light below */
    for (k = 0; k < 24; k++) {              /* studs between the rings */
        double a = k * 3.14159265358979 / 12;
        if (sq(x - 0.855 * cos(a)) + sq(y - 0.855 * sin(a)) <= sq(0.018)) over(&c, gold(x, y));
    }
    (void)ang;
    if (crest(x, y, &dark)) over(&c, dark ? CREST_DARK : CREST);
    if (helmet(x + 0.02, y + 0.025)) over(&c, SHADOW);
    if (helmet(x, y)) over(&c, brow(x, y) ? GOLD_DARK : gold(x * 2, y * 2));
    return c;
}

int main(int argc, char **argv)
{
    spim_image img;
    spim_buf png = SPIM_BUF_INIT;
    spim_error err;
    FILE *f;
    int px, py, sx, sy;
    if (argc != 2) {
        fprintf(stderr, "usage: mkstamp OUTPUT.png\n");
        return 2;
    }
    memset(&img, 0, sizeof img);
    img.width = img.height = SIZE;
    img.channels = 4;
    img.meta.format = SPIM_FORMAT_PNG;
    img.pixels = (unsigned char *)malloc(SIZE * SIZE * 4);
    if (!img.pixels) return 1;
    for (py = 0; py < SIZE; py++)
        for (px = 0; px < SIZE; px++) {
            double r = 0, g = 0, b = 0, a = 0;
            unsigned char *o = img.pixels + (py * SIZE + px) * 4;
            for (sy = 0; sy < SS; sy++)
                for (sx = 0; sx < SS; sx++) {
                    double x = ((px + (sx + 0.5) / SS) / SIZE) * 2 - 1;
                    double y = ((py + (sy + 0.5) / SS) / SIZE) * 2 - 1;
                    rgba c = sample(x, y);
                    r += c.r * c.a; g += c.g * c.a; b += c.b * c.a; a += c.a;
                }
            o[3] = (unsigned char)floor(a / (SS * SS) * 255 + 0.5);
            o[0] = (unsigned char)(a > 0 ? floor(r / a + 0.5) : 0);
            o[1] = (unsigned char)(a > 0 ? floor(g / a + 0.5) : 0);
            o[2] = (unsigned char)(a > 0 ? floor(b / a + 0.5) : 0);
        }
    memset(&err, 0, sizeof err);
    if (spim_image_encode(&img, SPIM_FORMAT_PNG, 0, &png, &err) != SPIM_OK) {
        fprintf(stderr, "mkstamp: %s\n", err.message);
        return 1;
    }
    free(img.pixels);
    if (!(f = fopen(argv[1], "wb")) || fwrite(png.data, 1, png.len, f) != png.len || fclose(f) != 0) {
        fprintf(stderr, "mkstamp: cannot write %s\n", argv[1]);
        return 1;
    }
    spim_buf_free(&png);
    return 0;
}
