/* stamp - draw the stamp on one image, locally.

     build/stamp [--stamp FILE] [--gravity nw|n|ne|w|c|e|sw|s|se] [--margin PX]
                 [--scale F] [--opacity F] [--quality Q] [--recode] INPUT OUTPUT

   The output format follows OUTPUT's extension (.jpg .jpeg .png .bmp .tga,
   and .webp/.gif for a WebP/GIF input, which stays itself);
   without --stamp the embedded default stamp is drawn. A baseline JPEG that
   stays a JPEG is stamped in the compressed domain (only the MCUs under the
   stamp are re-coded); --recode or SPARTA_JPEG_MODE=recode decodes and
   re-encodes it instead. SPARTA_MAX_PIXELS overrides the pixel budget; every
   value follows spim_stamp_option_set's rules.
   Exit status 0 on success, 1 when an image cannot be read, stamped or
   written (a stamp entirely outside the image included), 2 for bad arguments. */
#define SPARTA_IMAGER_IMPLEMENTATION
#define SPIM_NO_S3     /* a local tool: the image section only, so the process
                          start pays for no libcurl or cJSON */
#define SPIM_NO_EVENTS
#define SPIM_NO_LAMBDA
#define SPIM_WEBP      /* WebP stays WebP (libwebp), GIF stays GIF (giflib) */
#define SPIM_GIF
#include "sparta_imager.h"
#include "build/assets/stamp_png.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_usage(FILE *f)
{
    fprintf(f, "usage: stamp [--stamp FILE] [--gravity nw|n|ne|w|c|e|sw|s|se] [--margin PX]\n"
               "             [--scale F] [--opacity F] [--quality Q] [--recode] INPUT OUTPUT\n"
               "  --stamp FILE   stamp image (PNG with alpha); default: the embedded stamp\n"
               "  --gravity G    where the stamp goes as the viewer sees the photo (default se)\n"
               "  --margin PX    pixels between the stamp and the edges, 0 to 1000000 (default 0)\n"
               "  --scale F      stamp's longer side / image's shorter side, 0 to 1; 0 = native size\n"
               "  --opacity F    above 0, at most 1: multiplied into the stamp's alpha (default 1)\n"
               "  --quality Q    JPEG quality 1 to 100 when re-encoding (default 90)\n"
               "  --recode       decode and re-encode a JPEG instead of stamping it in the\n"
               "                 compressed domain (also SPARTA_JPEG_MODE=recode)\n"
               "  -h, --help     this text\n"
               "OUTPUT's extension (.jpg .jpeg .png .bmp .tga .webp .gif) picks the format;\n"
               "WebP and GIF are written only from the same format\n"
               "(SPARTA_WEBP_QUALITY: the quality of a lossy WebP).\n"
               "Exit status: 0 written; 1 the image could not be read, stamped or written\n"
               "(a stamp entirely outside the image included); 2 bad arguments.\n");
}

static int usage(const char *why)
{
    fprintf(stderr, "stamp: %s\n", why);
    print_usage(stderr);
    return 2;
}

/* A usage error naming the argument, the rule and what was given. */
static int bad_value(const char *arg, const char *rule, const char *got)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s: must be %s, got '%s'", arg, rule, got);
    return usage(msg);
}

typedef struct args {
    const char *stamp, *input, *output;
    spim_stamp_options opt;
} args;

/* A stamp option from a flag or a variable; 0, or the usage error's status. */
static int set_option(spim_stamp_options *opt, const char *label, const char *name, const char *value)
{
    spim_error err;
    if (spim_stamp_option_set(opt, name, value, &err) == SPIM_OK) return 0;
    spim_error_set(&err, err.status, "%s: %s", label, err.message);
    return usage(err.message);
}

/* 0 on success, -1 for --help, else the exit status for a usage error. */
static int parse_args(int argc, char **argv, args *a)
{
    static const char *const ENV[][2] = {{"SPARTA_MAX_PIXELS", "max-pixels"},
                                         {"SPARTA_JPEG_MODE", "jpeg-mode"},
                                         {"SPARTA_WEBP_QUALITY", "webp-quality"}};
    int i, rc, npos = 0;
    const char *v;
    char msg[256];
    memset(a, 0, sizeof *a);
    for (i = 0; i < 3; i++)
        if ((v = getenv(ENV[i][0])) != NULL && *v && (rc = set_option(&a->opt, ENV[i][0], ENV[i][1], v)) != 0)
            return rc;
    for (i = 1; i < argc; i++) {
        const char *k = argv[i];
        v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "-h") == 0 || strcmp(k, "--help") == 0) return -1;
        if (strncmp(k, "--", 2) != 0 || strcmp(k, "--") == 0) {
            if (npos == 0) a->input = k;
            else if (npos == 1) a->output = k;
            else { snprintf(msg, sizeof msg, "%s: one INPUT and one OUTPUT only", k); return usage(msg); }
            npos++;
            continue;
        }
        if (strcmp(k, "--recode") == 0) { a->opt.jpeg_mode = SPIM_JPEG_RECODE; continue; }
        if (!v) { snprintf(msg, sizeof msg, "%s: needs a value", k); return usage(msg); }
        i++;
        if (strcmp(k, "--stamp") == 0) { a->stamp = v; continue; }
        if (strcmp(k, "--gravity") != 0 && strcmp(k, "--margin") != 0 && strcmp(k, "--scale") != 0 &&
            strcmp(k, "--opacity") != 0 && strcmp(k, "--quality") != 0) {
            snprintf(msg, sizeof msg, "%s: unknown option", k);
            return usage(msg);
        }
        if ((rc = set_option(&a->opt, k, k + 2, v)) != 0) return rc;
    }
    if (npos != 2) return usage("INPUT and OUTPUT are required");
    a->opt.output_format = spim_format_from_name(a->output);
    if (a->opt.output_format == SPIM_FORMAT_UNKNOWN)
        return bad_value("OUTPUT", "a name ending in .jpg, .jpeg, .png, .bmp, .tga, .webp or .gif",
                         a->output);
    return 0;
}

/* Written in 64 KiB pieces: one multi-megabyte write into the page cache
   measured ~4x slower here (13 vs 3 ms for 4.7 MB on ext4). */
static int write_file(const char *path, const spim_buf *b)
{
    FILE *f = fopen(path, "wb");
    size_t off = 0, piece;
    int ok = f != NULL && setvbuf(f, NULL, _IONBF, 0) == 0;
    for (; ok && off < b->len; off += piece) {
        piece = b->len - off < 65536 ? b->len - off : 65536;
        ok = fwrite(b->data + off, 1, piece, f) == piece;
    }
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "stamp: cannot write %s\n", path);
    return ok;
}

/* A JPEG that stays a JPEG (compressed domain when it can), a WebP and a
   GIF (which stay themselves) go through spim_stamp_image; otherwise
   decode, free the input, stamp, encode, so the input never sits beside
   the pixels and the output. */
static int run(const args *a, const spim_stamp *stamp)
{
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_image img;
    spim_error err;
    spim_format f, to = a->opt.output_format;
    int ok = 0, kept;
    memset(&err, 0, sizeof err);
    if (spim_read_file(a->input, 0, &in, &err) != SPIM_OK) {
        fprintf(stderr, "stamp: %s\n", err.message);
        return 0;
    }
    f = spim__format_detect(in.data, in.len);
    kept = f == SPIM_FORMAT_WEBP || f == SPIM_FORMAT_GIF || to == SPIM_FORMAT_WEBP ||
           to == SPIM_FORMAT_GIF;
    if ((a->opt.jpeg_mode == SPIM_JPEG_AUTO && f == SPIM_FORMAT_JPEG && to == SPIM_FORMAT_JPEG) ||
        kept) {
        if (spim_stamp_image(in.data, in.len, stamp, &a->opt, &out, NULL, &err) == SPIM_OK) ok = 1;
        spim_buf_free(&in);
    } else if (spim_image_decode(in.data, in.len, a->opt.max_pixels, &img, &err) == SPIM_OK) {
        spim_buf_free(&in);
        if (spim_image_stamp(&img, stamp, &a->opt, &err) == SPIM_OK &&
            spim_image_encode(&img, a->opt.output_format, a->opt.quality, &out, &err) == SPIM_OK)
            ok = 1;
        spim_image_free(&img);
    }
    spim_buf_free(&in);
    if (ok) ok = write_file(a->output, &out);
    else fprintf(stderr, "stamp: %s: %s\n", a->input, err.message);
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
    if (rc < 0) {
        print_usage(stdout);
        return 0;
    }
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
