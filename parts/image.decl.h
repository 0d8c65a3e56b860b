/* ==========================================================================
   image
   Decoding (stb_image, format from the bytes, pixel budget checked first),
   metadata (EXIF orientation, EXIF and ICC kept), the exact source-over stamp
   kernel (scalar, SSE2, AVX2, NEON) with placement, and encoding (stb_image_write).
   ========================================================================== */

/* Pipeline:  spim_stamp_image(in, len, stamp, opt, out, info, err)  does it
   all; or, to free the input before encoding (less memory):
       spim_image_decode -> (free input) -> spim_image_stamp -> spim_image_encode

   stb_image, stb_image_write and stb_image_resize are compiled into the
   implementation as static functions; define SPIM_NO_STB_IMPLEMENTATION when
   your program compiles them itself. Orientation: the stamp, not the photo,
   is rotated/flipped so that it shows upright at the chosen corner once a
   viewer applies the EXIF orientation. Scaling resamples the stamp in
   premultiplied alpha (no dark fringes), in sRGB.

   Pixel budget: a decode is refused (SPIM_ERR_TOO_LARGE, before anything is
   allocated) when width*height, weighted by decoding memory, exceeds
   max_pixels. The default is
       (AWS_LAMBDA_FUNCTION_MEMORY_SIZE MiB - 24 MiB) / 5 bytes per pixel
   (1024 MiB when the variable is unset): a baseline 4:2:0 JPEG peaks at about
   4.5 bytes per pixel while decoding (3 for RGB out, 1.5 for the decoder's
   planes) plus the compressed input, so 128 MiB allows a 21.8 MP photo.
   Files that need more per pixel count for more: pixels * cost / 4.5 with
   cost = out + planes (+ 2 * planes for a progressive JPEG's coefficients)
   for JPEG (4:4:4 baseline 6, progressive 4:2:0 7.5), 2 * channels (x2 at
   16 bits) for PNG, 9 for GIF, 15 for HDR; never less than the pixels.

   Blend, per channel, with straight alpha (source-over, correctly rounded):
       op = round(opacity * 255);  a = (stamp_alpha * op + 127) / 255
     opaque destination (1 or 3 channels, or destination alpha 255):
       out = (s*a + d*(255-a) + 127) / 255
     destination alpha da < 255 (2 or 4 channels), with a > 0:
       ws = 255*a, wd = da*(255-a)
       out = (2*(s*ws + d*wd) + ws + wd) / (2*(ws + wd))     (round half up)
       out_alpha = a + (da*(255-a) + 127) / 255
     a == 0 leaves the destination untouched. Grey destinations use the stamp
     converted to grey as (77*R + 150*G + 29*B + 128) >> 8. */

typedef enum spim_format {
    SPIM_FORMAT_UNKNOWN = 0,
    SPIM_FORMAT_JPEG, SPIM_FORMAT_PNG, SPIM_FORMAT_BMP, SPIM_FORMAT_TGA,
    SPIM_FORMAT_GIF, SPIM_FORMAT_PSD, SPIM_FORMAT_PNM, SPIM_FORMAT_HDR, SPIM_FORMAT_PIC
} spim_format;

/* Where the stamp goes, as a viewer sees the photo (EXIF orientation applied).
   The zero value is the bottom-right corner. */
typedef enum spim_gravity {
    SPIM_GRAVITY_SE = 0, SPIM_GRAVITY_NW, SPIM_GRAVITY_N, SPIM_GRAVITY_NE,
    SPIM_GRAVITY_W, SPIM_GRAVITY_C, SPIM_GRAVITY_E, SPIM_GRAVITY_SW, SPIM_GRAVITY_S
} spim_gravity;

/* Kernel implementations; AUTO picks the best the CPU has. */
typedef enum spim_simd {
    SPIM_SIMD_AUTO = 0, SPIM_SIMD_SCALAR, SPIM_SIMD_SSE2, SPIM_SIMD_AVX2, SPIM_SIMD_NEON
} spim_simd;

/* Zero-initialised = defaults. */
typedef struct spim_stamp_options {
    spim_gravity gravity;
    int margin;               /* pixels between the stamp and the edges */
    double scale;             /* stamp's longer side / image's shorter side, 0..1; 0 = native size */
    double opacity;           /* 0..1 multiplied into the stamp's alpha; 0 = 1 (as drawn) */
    int quality;              /* JPEG quality 1..100; 0 = 90 */
    uint64_t max_pixels;      /* decode budget; 0 = from AWS_LAMBDA_FUNCTION_MEMORY_SIZE */
    spim_format output_format; /* 0 = the source format, or PNG when stb cannot write it */
    spim_simd simd;           /* force a kernel (tests, benchmarks); an unavailable one fails */
} spim_stamp_options;

/* A stamp: straight-alpha RGBA, rows top-down, 4*width bytes per row. */
typedef struct spim_stamp {
    unsigned char *rgba;
    int width, height;
} spim_stamp;

/* What the metadata parser found. `exif` is the TIFF structure (from "II*\0"
   or "MM\0*" on, without JPEG's "Exif\0\0"), `icc` the whole ICC profile;
   both are copies owned by the struct (NULL when absent). */
typedef struct spim_meta {
    spim_format format;
    uint32_t width, height;   /* from JPEG SOF or PNG IHDR; 0 when not seen */
    unsigned decode_cost;     /* bytes per pixel stb_image holds while decoding it, in
                                 tenths (45 = baseline 4:2:0 JPEG); 0 when unknown */
    int orientation;          /* EXIF Orientation 1..8; 1 when absent or invalid */
    unsigned char *exif;
    size_t exif_len;
    unsigned char *icc;
    size_t icc_len;
} spim_meta;

/* A decoded image in stored orientation: rows top-down, width*channels bytes
   per row, channels 1 (grey), 2 (grey+alpha), 3 (RGB) or 4 (RGBA). */
typedef struct spim_image {
    unsigned char *pixels;
    int width, height, channels;
    spim_meta meta;           /* format, orientation, EXIF and ICC of the source */
} spim_image;

typedef struct spim_image_info {
    spim_format format;       /* of the input */
    spim_format out_format;
    const char *content_type; /* of the output: "image/jpeg", ... */
    const char *extension;    /* of the output, without dot: "jpg", "png", "bmp", "tga" */
    int width, height;        /* stored pixel size */
    int orientation;          /* EXIF orientation of the input, 1..8 */
} spim_image_info;

/* Detect the format from the first bytes (magic numbers; TGA has none and is
   reported only by spim_image_decode). */
SPIMDEF spim_format spim_format_detect(const void *data, size_t len);
SPIMDEF const char *spim_format_name(spim_format format);
/* Content type and extension of a writable format (PNG for the others). */
SPIMDEF const char *spim_format_content_type(spim_format format);
SPIMDEF const char *spim_format_extension(spim_format format);
/* Format from a file name's extension (.jpg .jpeg .png .bmp .tga); UNKNOWN otherwise. */
SPIMDEF spim_format spim_format_from_name(const char *name);

/* Default pixel budget from AWS_LAMBDA_FUNCTION_MEMORY_SIZE (see above). */
SPIMDEF uint64_t spim_default_max_pixels(void);

/* Parse JPEG segments or PNG chunks for EXIF orientation, EXIF and ICC. Never
   reads outside data[0..len); malformed metadata is ignored, but a JPEG/PNG
   whose structure runs past the end fails with SPIM_ERR_IMAGE. */
SPIMDEF spim_status spim_meta_read(const void *data, size_t len, spim_meta *meta, spim_error *err);
SPIMDEF void spim_meta_free(spim_meta *meta);

/* Decode (any format stb_image reads; GIF: first frame) after checking the
   budget; keeps the metadata. max_pixels 0 = spim_default_max_pixels(). */
SPIMDEF spim_status spim_image_decode(const void *data, size_t len, uint64_t max_pixels,
                                      spim_image *img, spim_error *err);
/* Draw the stamp on the pixels, placed and oriented as the viewer sees them. */
SPIMDEF spim_status spim_image_stamp(spim_image *img, const spim_stamp *stamp,
                                     const spim_stamp_options *opt, spim_error *err);
/* Encode as `format` (UNKNOWN = source format or PNG), keeping EXIF and ICC in
   JPEG and PNG output (the EXIF thumbnail, which would show the photo without
   the stamp, is unlinked); appends to `out`. quality 0 = 90. */
SPIMDEF spim_status spim_image_encode(const spim_image *img, spim_format format, int quality,
                                      spim_buf *out, spim_error *err);
SPIMDEF void spim_image_free(spim_image *img);

/* Decode, stamp, encode in one call; `out` receives the encoded image and
   `info` (may be NULL) what was done. */
SPIMDEF spim_status spim_stamp_image(const void *in, size_t in_len, const spim_stamp *stamp,
                                     const spim_stamp_options *opt, spim_buf *out,
                                     spim_image_info *info, spim_error *err);

/* Load a stamp from image bytes (PNG with alpha, normally); at most 16 MP. */
SPIMDEF spim_status spim_stamp_load(spim_stamp *stamp, const void *data, size_t len, spim_error *err);
SPIMDEF void spim_stamp_free(spim_stamp *stamp);

/* Stamp raw pixels (stored orientation; EXIF `orientation` 1..8 says how they
   are displayed). The building block of spim_image_stamp. */
SPIMDEF spim_status spim_stamp_draw(unsigned char *pixels, int width, int height, int channels,
                                    int orientation, const spim_stamp *stamp,
                                    const spim_stamp_options *opt, spim_error *err);

/* 1 when the kernel `simd` can run on this CPU (AUTO and SCALAR always can). */
SPIMDEF int spim_simd_available(spim_simd simd);
SPIMDEF const char *spim_simd_name(spim_simd simd);
/* Parse "nw", "n", ..., "se" (case-insensitive); -1 when unknown. */
SPIMDEF int spim_gravity_parse(const char *s);
