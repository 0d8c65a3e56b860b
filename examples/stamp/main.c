/* stamp - draw the stamp on one image, locally.

     build/stamp [--stamp FILE] [--gravity nw|n|ne|w|c|e|sw|s|se] [--margin PX]
                 [--scale F] [--opacity F] [--quality Q] INPUT OUTPUT

   The output format follows OUTPUT's extension (.jpg .jpeg .png .bmp .tga);
   without --stamp the embedded default stamp is drawn. SPARTA_MAX_PIXELS
   overrides the pixel budget. Exit status 0 on success, 2 for bad arguments,
   1 when an image cannot be read, stamped or written. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "build/assets/stamp_png.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(const char *why)
{
    if (why) fprintf(stderr, "stamp: %s\n", why);
    fprintf(stderr, "usage: stamp [--stamp FILE] [--gravity nw|n|ne|w|c|e|sw|s|se] [--margin PX]\n"
                    "             [--scale F] [--opacity F] [--quality Q] INPUT OUTPUT\n");
    return 2;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

typedef struct args {
    const char *stamp, *input, *output;
    spim_stamp_options opt;
} args;

/* 0 on success, else the exit status for a usage error. */
static int parse_args(int argc, char **argv, args *a)
{
    int i, g, npos = 0;
    const char *env = getenv("SPARTA_MAX_PIXELS");
    char msg[256];
    memset(a, 0, sizeof *a);
    if (env && *env) a->opt.max_pixels = strtoull(env, NULL, 10);
    for (i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strncmp(k, "--", 2) != 0 || strcmp(k, "--") == 0) {
            if (npos == 0) a->input = k;
            else if (npos == 1) a->output = k;
            else return usage("too many arguments");
            npos++;
            continue;
        }
        if (strcmp(k, "--help") == 0) return usage(NULL);
        if (!v) { snprintf(msg, sizeof msg, "%s needs a value", k); return usage(msg); }
        i++;
        if (strcmp(k, "--stamp") == 0) a->stamp = v;
        else if (strcmp(k, "--gravity") == 0) {
            if ((g = spim_gravity_parse(v)) < 0) return usage("--gravity must be one of nw n ne w c e sw s se");
            a->opt.gravity = (spim_gravity)g;
        } else if (strcmp(k, "--margin") == 0) {
            if (!parse_int(v, 0, 1000000, &a->opt.margin)) return usage("--margin must be 0..1000000 pixels");
        } else if (strcmp(k, "--scale") == 0) {
            if (!parse_double(v, 0, 1, &a->opt.scale)) return usage("--scale must be between 0 and 1 (0 = native size)");
        } else if (strcmp(k, "--opacity") == 0) {
            if (!parse_double(v, 0, 1, &a->opt.opacity) || a->opt.opacity <= 0)
                return usage("--opacity must be greater than 0 and at most 1");
        } else if (strcmp(k, "--quality") == 0) {
            if (!parse_int(v, 1, 100, &a->opt.quality)) return usage("--quality must be 1..100");
        } else {
            snprintf(msg, sizeof msg, "unknown option %s", k);
            return usage(msg);
        }
    }
    if (npos != 2) return usage("INPUT and OUTPUT are required");
    a->opt.output_format = spim_format_from_name(a->output);
    if (a->opt.output_format == SPIM_FORMAT_UNKNOWN)
        return usage("OUTPUT must end in .jpg, .jpeg, .png, .bmp or .tga");
    return 0;
}

static int write_file(const char *path, const spim_buf *b)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b->data, 1, b->len, f) == b->len;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "stamp: cannot write %s\n", path);
    return ok;
}

/* Decode, free the input, stamp, encode: the input never sits beside the output. */
static int run(const args *a, const spim_stamp *stamp)
{
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_image img;
    spim_error err;
    int ok = 0;
    memset(&err, 0, sizeof err);
    if (spim_read_file(a->input, 0, &in, &err) != SPIM_OK) {
        fprintf(stderr, "stamp: %s\n", err.message);
        return 0;
    }
    if (spim_image_decode(in.data, in.len, a->opt.max_pixels, &img, &err) != SPIM_OK) {
        fprintf(stderr, "stamp: %s: %s\n", a->input, err.message);
        spim_buf_free(&in);
        return 0;
    }
    spim_buf_free(&in);
    if (spim_image_stamp(&img, stamp, &a->opt, &err) == SPIM_OK &&
        spim_image_encode(&img, a->opt.output_format, a->opt.quality, &out, &err) == SPIM_OK) {
        spim_image_free(&img);
        ok = write_file(a->output, &out);
    } else {
        fprintf(stderr, "stamp: %s: %s\n", a->input, err.message);
        spim_image_free(&img);
    }
    spim_buf_free(&out);
    return ok;
}

int main(int argc, char **argv)
{
    args a;
    spim_stamp stamp;
    spim_error err;
    spim_buf file = SPIM_BUF_INIT;
    const void *png = spim_stamp_png;
    size_t png_len = sizeof spim_stamp_png;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    memset(&err, 0, sizeof err);
    if (a.stamp) {
        if (spim_read_file(a.stamp, 64u << 20, &file, &err) != SPIM_OK) {
            fprintf(stderr, "stamp: %s\n", err.message);
            return 1;
        }
        png = file.data;
        png_len = file.len;
    }
    if (spim_stamp_load(&stamp, png, png_len, &err) != SPIM_OK) {
        fprintf(stderr, "stamp: %s: %s\n", a.stamp ? a.stamp : "embedded stamp", err.message);
        spim_buf_free(&file);
        return 1;
    }
    spim_buf_free(&file);
    rc = run(&a, &stamp) ? 0 : 1;
    spim_stamp_free(&stamp);
    return rc;
}
