/* mkjpeg WIDTH HEIGHT QUALITY OUTPUT - a photo-like test image: smooth
   gradients, a few soft shapes and mild grain, so JPEG compresses it about
   as well as a camera picture (stb writes 4:2:0 at quality <= 90). The output
   format follows OUTPUT's extension. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

#include <math.h>
#include <stdio.h>

static uint32_t seed = 2463534242u;
static int grain(void)
{
    seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5;
    return (int)(seed % 25) - 12;
}

static double sq(double v) { return v * v; }

static unsigned char clamp(double v)
{
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

int main(int argc, char **argv)
{
    spim_image img;
    spim_buf out = SPIM_BUF_INIT;
    spim_error err;
    spim_format fmt;
    long w, h, x, y;
    int q;
    FILE *f;
    if (argc != 5 || (w = atol(argv[1])) <= 0 || (h = atol(argv[2])) <= 0 || w * h > 400000000L ||
        (q = atoi(argv[3])) < 1 || q > 100 || (fmt = spim_format_from_name(argv[4])) == SPIM_FORMAT_UNKNOWN) {
        fprintf(stderr, "usage: mkjpeg WIDTH HEIGHT QUALITY OUTPUT.{jpg,png,bmp,tga}\n");
        return 2;
    }
    memset(&img, 0, sizeof img);
    img.width = (int)w; img.height = (int)h; img.channels = 3;
    img.meta.format = fmt;
    img.pixels = (unsigned char *)malloc((size_t)w * (size_t)h * 3);
    if (!img.pixels) return 1;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            double u = (double)x / w, v = (double)y / h;
            double sky = 1 - v, blob = exp(-(sq(u - 0.3) + sq(v - 0.6)) * 18), wave = sin(u * 40 + v * 9) * 0.5 + 0.5;
            unsigned char *p = img.pixels + ((size_t)y * (size_t)w + (size_t)x) * 3;
            p[0] = clamp(60 + 120 * sky * u + 90 * blob + 20 * wave + grain());
            p[1] = clamp(80 + 100 * sky + 40 * blob * wave + grain());
            p[2] = clamp(140 + 100 * sky * (1 - u) - 80 * blob + 15 * wave + grain());
        }
    memset(&err, 0, sizeof err);
    if (spim_image_encode(&img, fmt, q, &out, &err) != SPIM_OK) {
        fprintf(stderr, "mkjpeg: %s\n", err.message);
        return 1;
    }
    free(img.pixels);
    if (!(f = fopen(argv[4], "wb")) || fwrite(out.data, 1, out.len, f) != out.len || fclose(f) != 0) {
        fprintf(stderr, "mkjpeg: cannot write %s\n", argv[4]);
        return 1;
    }
    spim_buf_free(&out);
    return 0;
}
