/* mksamples DIR - write the sample photos the imager tests and the demo use.

     build/tools/mksamples DIR      creates DIR if needed, prints one line per file

   Every file is generated from code (deterministic, same bytes every run):

     small.jpg      320x240 JPEG, a synthetic "photo" (gradients and discs)
     photo.jpg      1280x960 JPEG
     large.jpg      3000x2000 JPEG (6 MP)
     rotated.jpg    640x480 JPEG stored sideways with EXIF orientation 6
                    (displayed 480x640; the stamp belongs in the stored top-right)
     alpha.png      400x300 RGBA PNG, alpha fading from opaque to transparent
     palette.gif    240x160 GIF89a, one frame, 256-colour palette
     photo.bmp      300x200 24-bit BMP
     notimage.txt   text, not an image
     truncated.jpg  photo.jpg cut in half (a corrupt upload)
     bomb.png       a PNG header claiming 60000x60000 pixels with a tiny body

   Exit status 0 on success, 1 when a file cannot be written, 2 for usage. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static const char *out_dir;

static int write_bytes(const char *name, const void *data, size_t len)
{
    char path[4096];
    FILE *f;
    int ok;
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    f = fopen(path, "wb");
    ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "mksamples: cannot write %s\n", path);
    else printf("%s %zu\n", path, len);
    return ok;
}

/* A photo-like test card: colour ramps, soft discs and a horizon line, so
   every corner differs from the others and JPEG has real texture to code. */
static unsigned char *draw(int w, int h, int channels)
{
    unsigned char *p = (unsigned char *)malloc((size_t)w * h * channels);
    int x, y, c;
    if (!p) return NULL;
    for (y = 0; y < h; y++) {
        for (x = 0; x < w; x++) {
            double u = (double)x / w, v = (double)y / h, px[4];
            double d1 = hypot(u - 0.3, v - 0.35), d2 = hypot(u - 0.7, v - 0.6);
            px[0] = 40 + 180 * u + 30 * sin(20 * v);
            px[1] = 60 + 150 * v + (d1 < 0.15 ? 40 : 0);
            px[2] = 120 + 80 * sin(6 * u + 3 * v) - (d2 < 0.1 ? 90 : 0);
            if (fabs(v - 0.5 - 0.1 * sin(8 * u)) < 0.01) px[0] = px[1] = px[2] = 250;
            px[3] = 255 * (1 - u * 0.9);
            for (c = 0; c < channels; c++) {
                double s = px[c] < 0 ? 0 : px[c] > 255 ? 255 : px[c];
                p[((size_t)y * w + x) * channels + c] = (unsigned char)(s + 0.5);
            }
        }
    }
    return p;
}

static int write_image(const char *name, int w, int h, int channels, spim_format format,
                       const unsigned char *exif, size_t exif_len, spim_buf *keep)
{
    spim_image img;
    spim_buf out = SPIM_BUF_INIT;
    spim_error err;
    int ok;
    memset(&img, 0, sizeof img);
    memset(&err, 0, sizeof err);
    img.width = w;
    img.height = h;
    img.channels = channels;
    img.meta.format = format;
    img.meta.exif = (unsigned char *)exif;
    img.meta.exif_len = exif_len;
    if (!(img.pixels = draw(w, h, channels))) return 0;
    ok = spim_image_encode(&img, format, 90, &out, &err) == SPIM_OK;
    if (!ok) fprintf(stderr, "mksamples: %s: %s\n", name, err.message);
    ok = ok && write_bytes(name, out.data, out.len);
    free(img.pixels);
    if (keep) *keep = out;
    else spim_buf_free(&out);
    return ok;
}

/* GIF89a with a 6x6x6 colour cube. LZW at 9 bits: a clear code every 254
   literals keeps the code table from ever needing a 10th bit. */
typedef struct bits { spim_buf *b; uint32_t acc; int n; unsigned char block[255]; int len; } bits;

static void gif_flush_block(bits *s)
{
    unsigned char n = (unsigned char)s->len;
    if (!s->len) return;
    spim_buf_append(s->b, &n, 1);
    spim_buf_append(s->b, s->block, (size_t)s->len);
    s->len = 0;
}

static void gif_code(bits *s, unsigned code)
{
    s->acc |= (uint32_t)code << s->n;
    s->n += 9;
    while (s->n >= 8) {
        s->block[s->len++] = (unsigned char)(s->acc & 0xff);
        s->acc >>= 8;
        s->n -= 8;
        if (s->len == 255) gif_flush_block(s);
    }
}

static int write_gif(const char *name, int w, int h)
{
    unsigned char *rgb = draw(w, h, 3), head[13 + 768 + 10 + 1], *q = head;
    spim_buf out = SPIM_BUF_INIT;
    bits s;
    int i, run = 0, ok;
    if (!rgb) return 0;
    memcpy(q, "GIF89a", 6);
    q[6] = (unsigned char)(w & 0xff); q[7] = (unsigned char)(w >> 8);
    q[8] = (unsigned char)(h & 0xff); q[9] = (unsigned char)(h >> 8);
    q[10] = 0xf7; q[11] = 0; q[12] = 0;
    q += 13;
    for (i = 0; i < 256; i++, q += 3) {
        int g = i < 216 ? 0 : (i - 216) * 255 / 39;
        q[0] = (unsigned char)(i < 216 ? (i / 36) * 51 : g);
        q[1] = (unsigned char)(i < 216 ? (i / 6 % 6) * 51 : g);
        q[2] = (unsigned char)(i < 216 ? (i % 6) * 51 : g);
    }
    memcpy(q, "\x2c\0\0\0\0", 5);
    q[5] = (unsigned char)(w & 0xff); q[6] = (unsigned char)(w >> 8);
    q[7] = (unsigned char)(h & 0xff); q[8] = (unsigned char)(h >> 8);
    q[9] = 0; q[10] = 8;  /* no local table; LZW minimum code size */
    spim_buf_append(&out, head, sizeof head);
    memset(&s, 0, sizeof s);
    s.b = &out;
    gif_code(&s, 256);
    for (i = 0; i < w * h; i++) {
        const unsigned char *p = rgb + (size_t)i * 3;
        if (run == 254) { gif_code(&s, 256); run = 0; }
        gif_code(&s, (unsigned)((p[0] * 6 / 256) * 36 + (p[1] * 6 / 256) * 6 + p[2] * 6 / 256));
        run++;
    }
    gif_code(&s, 257);
    if (s.n) gif_code(&s, 0); /* pad the last byte out */
    gif_flush_block(&s);
    spim_buf_append(&out, "\0\x3b", 2);
    ok = out.data && write_bytes(name, out.data, out.len);
    spim_buf_free(&out);
    free(rgb);
    return ok;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

/* Valid signature, IHDR and CRCs: only the pixel budget stops it. */
static int write_bomb(const char *name)
{
    unsigned char png[8 + 25 + 12 + 16 + 12], *q = png;
    static const unsigned char idat[16] = { 0x78, 0x9c, 0x63, 0x60, 0x18, 0x05, 0xa3, 0x60,
                                            0x14, 0x0c, 0x77, 0x00, 0x00, 0x00, 0x00, 0x00 };
    memcpy(q, "\x89PNG\r\n\x1a\n", 8);
    q += 8;
    put32(q, 13);
    memcpy(q + 4, "IHDR", 4);
    put32(q + 8, 60000);
    put32(q + 12, 60000);
    memcpy(q + 16, "\x08\x02\0\0\0", 5);
    put32(q + 21, (uint32_t)crc32(0, q + 4, 17));
    q += 25;
    put32(q, sizeof idat);
    memcpy(q + 4, "IDAT", 4);
    memcpy(q + 8, idat, sizeof idat);
    put32(q + 8 + sizeof idat, (uint32_t)crc32(0, q + 4, 4 + sizeof idat));
    q += 12 + sizeof idat;
    put32(q, 0);
    memcpy(q + 4, "IEND", 4);
    put32(q + 8, (uint32_t)crc32(0, q + 4, 4));
    return write_bytes(name, png, sizeof png);
}

int main(int argc, char **argv)
{
    /* big-endian TIFF, one IFD entry: Orientation (0x0112), SHORT, 1, value 6 */
    static const unsigned char exif6[] = { 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3,
                                           0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0 };
    static const char text[] = "This is not an image, whatever its name says.\n";
    spim_buf photo = SPIM_BUF_INIT;
    int ok = 1;
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: mksamples DIR\n");
        return 2;
    }
    out_dir = argv[1];
    mkdir(out_dir, 0777);
    ok &= write_image("small.jpg", 320, 240, 3, SPIM_FORMAT_JPEG, NULL, 0, NULL);
    ok &= write_image("photo.jpg", 1280, 960, 3, SPIM_FORMAT_JPEG, NULL, 0, &photo);
    ok &= write_image("large.jpg", 3000, 2000, 3, SPIM_FORMAT_JPEG, NULL, 0, NULL);
    ok &= write_image("rotated.jpg", 640, 480, 3, SPIM_FORMAT_JPEG, exif6, sizeof exif6, NULL);
    ok &= write_image("alpha.png", 400, 300, 4, SPIM_FORMAT_PNG, NULL, 0, NULL);
    ok &= write_gif("palette.gif", 240, 160);
    ok &= write_image("photo.bmp", 300, 200, 3, SPIM_FORMAT_BMP, NULL, 0, NULL);
    ok &= write_bytes("notimage.txt", text, sizeof text - 1);
    ok &= photo.data && write_bytes("truncated.jpg", photo.data, photo.len / 2);
    ok &= write_bomb("bomb.png");
    spim_buf_free(&photo);
    return ok ? 0 : 1;
}
