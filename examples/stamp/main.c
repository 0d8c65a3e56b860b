/* stamp - draw the stamp on one image, locally.

     build/stamp [--stamp FILE] [--gravity nw|n|ne|w|c|e|sw|s|se] [--margin PX]
                 [--scale F] [--opacity F] [--quality Q] [--recode] [--tile GAP]
                 [--text TEXT] [--font FILE] [--text-gravity G] [--text-size F]
                 [--text-color #rrggbb[aa]] [--text-effect outline|shadow|plain]
                 [--metadata keep|strip-gps|strip] [-v] INPUT OUTPUT

   The output format follows OUTPUT's extension (.jpg .jpeg .png .bmp .tga,
   and .webp/.gif for a WebP/GIF input, which stays itself; SPARTA_WEBP_QUALITY
   sets a lossy WebP's quality); without --stamp the embedded default stamp
   is drawn; --stamp none draws the --text alone (with a --text, both are
   drawn, each at its gravity). The
   text's {key} and {basename} are INPUT's name, {bucket} is empty, {year}
   and {date} are today's; the default font is the embedded DejaVu Sans. A
   baseline JPEG that stays a JPEG is stamped in the compressed domain (only
   the MCUs under the stamp are re-coded); --recode or SPARTA_JPEG_MODE=recode
   decodes and re-encodes it instead, with its own tables, sampling and
   progression (--quality applies only to a JPEG made from another
   format). SPARTA_MAX_PIXELS overrides the pixel budget and
   SPARTA_METADATA the metadata policy (--metadata wins); every value
   follows spim_stamp_option_set's rules. -v prints one line to stderr: the
   path taken (splice, progressive or recode), the Huffman tables, the MCUs
   re-coded and the milliseconds.
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
#include "build/assets/font_ttf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void print_usage(FILE *f)
{
    fprintf(f, "usage: stamp [--stamp FILE] [--gravity nw|n|ne|w|c|e|sw|s|se] [--margin PX]\n"
               "             [--scale F] [--opacity F] [--quality Q] [--recode] [--tile GAP]\n"
               "             [--text TEXT] [--font FILE] [--text-gravity G] [--text-size F]\n"
               "             [--text-color #rrggbb[aa]] [--text-effect outline|shadow|plain]\n"
               "             [--metadata keep|strip-gps|strip] [-v] INPUT OUTPUT\n"
               "  --stamp FILE   stamp image (PNG with alpha); default: the embedded stamp;\n"
               "                 none: no image stamp (a --text alone)\n"
               "  --gravity G    where the stamp goes as the viewer sees the photo (default se)\n"
               "  --margin PX    pixels between the stamp and the edges, 0 to 1000000\n"
               "                 (default 0)\n"
               "  --scale F      stamp's longer side / image's shorter side, 0 to 1;\n"
               "                 0 = native size\n"
               "  --opacity F    above 0, at most 1: multiplied into the stamp's alpha\n"
               "                 (default 1)\n"
               "  --quality Q    JPEG quality 1 to 100 for a JPEG written from another\n"
               "                 format (default 90; a JPEG source keeps its own tables)\n"
               "  --recode       decode and re-encode a JPEG or PNG instead of stamping it in the\n"
               "                 compressed domain (also SPARTA_JPEG_MODE=recode)\n"
               "  --tile GAP     repeat the stamp over the image, GAP apart: whole pixels (40)\n"
               "                 or a fraction of the stamp's size (0.5, 50%%); grid anchored\n"
               "                 by --gravity and --margin\n"
               "  --text TEXT    draw a line of text (UTF-8) with {year} {date} {key} {basename}\n"
               "                 {bucket}, beside the stamp (each at its gravity)\n"
               "  --font FILE    TrueType font for --text (default: embedded DejaVu Sans,\n"
               "                 Latin-1)\n"
               "  --text-gravity G, --text-size F (line height / shorter side, default 0.05),\n"
               "  --text-color #rrggbb[aa] (default white), --text-effect outline|shadow|plain\n"
               "  --metadata M   what the output keeps of EXIF/XMP: strip-gps (default: all but\n"
               "                 the GPS position), keep, or strip (ICC profile, orientation,\n"
               "                 artist and copyright only)\n"
               "  -v             one line to stderr: path, Huffman tables, MCUs re-coded, ms\n"
               "  -h, --help     this text\n"
               "OUTPUT's extension (.jpg .jpeg .png .bmp .tga .webp .gif) picks the format;\n"
               "WebP and GIF are written only from the same format.\n"
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
    const char *stamp, *font, *input, *output;
    spim_stamp_options opt;
    spim_text_vars vars;
    int verbose;
} args;

/* A stamp option from a flag or a variable; 0, or the usage error's status. */
static int set_option(spim_stamp_options *opt, const char *label, const char *name,
                      const char *value)
{
    spim_error err;
    if (spim_stamp_option_set(opt, name, value, &err) == SPIM_OK) return 0;
    spim_error_set(&err, err.status, "%s: %s", label, err.message);
    return usage(err.message);
}

static int known_flag(const char *k)
{
    static const char *const flags[] = {"--gravity",   "--margin",     "--scale",
                                        "--opacity",   "--quality",    "--tile",
                                        "--text",      "--text-gravity", "--text-size",
                                        "--text-color", "--text-effect", "--metadata"};
    size_t i;
    for (i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (strcmp(k, flags[i]) == 0) return 1;
    return 0;
}

/* 0 on success, -1 for --help, else the exit status for a usage error. */
static int parse_args(int argc, char **argv, args *a)
{
    static const char *const ENV[][2] = {{"SPARTA_MAX_PIXELS", "max-pixels"},
                                         {"SPARTA_JPEG_MODE", "jpeg-mode"},
                                         {"SPARTA_METADATA", "metadata"},
                                         {"SPARTA_WEBP_QUALITY", "webp-quality"}};
    int i, rc, npos = 0;
    const char *v;
    char msg[256];
    memset(a, 0, sizeof *a);
    for (i = 0; i < (int)(sizeof ENV / sizeof ENV[0]); i++) {
        v = getenv(ENV[i][0]);
        if (v && *v && (rc = set_option(&a->opt, ENV[i][0], ENV[i][1], v)) != 0) return rc;
    }
    for (i = 1; i < argc; i++) {
        const char *k = argv[i];
        v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(k, "-h") == 0 || strcmp(k, "--help") == 0) return -1;
        if ((strncmp(k, "--", 2) != 0 && strcmp(k, "-v") != 0) || strcmp(k, "--") == 0) {
            if (npos == 0) a->input = k;
            else if (npos == 1) a->output = k;
            else {
                snprintf(msg, sizeof msg, "%s: one INPUT and one OUTPUT only", k);
                return usage(msg);
            }
            npos++;
            continue;
        }
        if (strcmp(k, "--recode") == 0) { a->opt.jpeg_mode = SPIM_JPEG_RECODE; continue; }
        if (strcmp(k, "-v") == 0) { a->verbose = 1; continue; }
        if (!v) { snprintf(msg, sizeof msg, "%s: needs a value", k); return usage(msg); }
        i++;
        if (strcmp(k, "--stamp") == 0) { a->stamp = v; continue; }
        if (strcmp(k, "--font") == 0) { a->font = v; continue; }
        if (!known_flag(k)) {
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

/* A JPEG or PNG that keeps its format goes through spim_stamp_image (compressed
   domain when it can), and so do WebP and GIF (which stay themselves);
   otherwise decode, free the input, stamp, encode, so the input never sits
   beside the pixels and the output. */
static int run(const args *a, const spim_stamp *stamp)
{
    spim_buf in = SPIM_BUF_INIT, out = SPIM_BUF_INIT;
    spim_image img;
    spim_image_info info;
    spim_error err;
    struct timespec t0, t1;
    double ms;
    spim_format f, to = a->opt.output_format;
    int ok = 0, kept;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(&err, 0, sizeof err);
    memset(&info, 0, sizeof info);
    info.path = "recode";
    if (spim_read_file(a->input, 0, &in, &err) != SPIM_OK) {
        fprintf(stderr, "stamp: %s\n", err.message);
        return 0;
    }
    f = spim_format_detect(in.data, in.len);
    kept = f == SPIM_FORMAT_WEBP || f == SPIM_FORMAT_GIF || to == SPIM_FORMAT_WEBP ||
           to == SPIM_FORMAT_GIF;
    if ((a->opt.jpeg_mode == SPIM_JPEG_AUTO && (f == SPIM_FORMAT_JPEG || f == SPIM_FORMAT_PNG) &&
         to == f) || kept) {
        if (spim_stamp_image(in.data, in.len, stamp, &a->opt, &out, &info, &err) == SPIM_OK) ok = 1;
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
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (a->verbose && ok && info.format == SPIM_FORMAT_PNG && info.out_format == SPIM_FORMAT_PNG)
        fprintf(stderr, "stamp: %s: path=%s rows=%d bits_copied=%llu%s%s ms=%.1f\n", a->input,
                info.path, info.rows_recoded, (unsigned long long)info.bits_copied,
                *info.conversion ? " type=" : "", info.conversion, ms);
    else if (a->verbose && ok)
        fprintf(stderr, "stamp: %s: path=%s huffman=%s mcus=%llu ms=%.1f\n", a->input, info.path,
                info.huffman ? info.huffman : "-", (unsigned long long)info.mcus_recoded, ms);
    return ok;
}

/* The text's font (--font or the embedded one), its placeholders and the
   check of every option together; 0, or the exit status. */
static int prepare_text(args *a, spim_buf *font)
{
    spim_error err;
    const char *slash;
    memset(&err, 0, sizeof err);
    a->opt.font = spim_font_ttf;
    a->opt.font_len = sizeof spim_font_ttf;
    if (a->font) {
        if (spim_read_file(a->font, 64u << 20, font, &err) != SPIM_OK) {
            fprintf(stderr, "stamp: --font: %s\n", err.message);
            return 2;
        }
        a->opt.font = font->data;
        a->opt.font_len = font->len;
    }
    slash = strrchr(a->input, '/');
    a->vars.key = slash ? slash + 1 : a->input;
    a->opt.vars = &a->vars;
    if (spim_stamp_check(&a->opt, &err) != SPIM_OK) {
        /* the message starts with the option's name */
        spim_error_set(&err, err.status, "--%s", err.message);
        return usage(err.message);
    }
    return 0;
}

int main(int argc, char **argv)
{
    args a;
    spim_stamp stamp;
    spim_error err;
    spim_buf file = SPIM_BUF_INIT, font = SPIM_BUF_INIT;
    const void *png = spim_stamp_png;
    size_t png_len = sizeof spim_stamp_png;
    int rc = parse_args(argc, argv, &a), text_only;
    if (rc < 0) {
        print_usage(stdout);
        return 0;
    }
    if (rc || (rc = prepare_text(&a, &font)) != 0) {
        spim_buf_free(&font);
        return rc;
    }
    text_only = a.stamp && strcmp(a.stamp, "none") == 0;
    memset(&err, 0, sizeof err);
    memset(&stamp, 0, sizeof stamp);
    if (a.stamp && !text_only) {
        if (spim_read_file(a.stamp, 64u << 20, &file, &err) != SPIM_OK) {
            fprintf(stderr, "stamp: %s\n", err.message);
            spim_buf_free(&font);
            return 1;
        }
        png = file.data;
        png_len = file.len;
    }
    if (!text_only && spim_stamp_load(&stamp, png, png_len, &err) != SPIM_OK) {
        fprintf(stderr, "stamp: %s: %s\n", a.stamp ? a.stamp : "embedded stamp", err.message);
        spim_buf_free(&file);
        spim_buf_free(&font);
        return 1;
    }
    spim_buf_free(&file);
    rc = run(&a, text_only ? NULL : &stamp) ? 0 : 1;
    spim_stamp_free(&stamp);
    spim_buf_free(&font);
    return rc;
}
