/* Untrusted image bytes through the whole pipeline under a 1 MP budget:
   spim_image_decode -> spim_image_stamp -> spim_image_encode, then the
   output decoded again (same size; PNG: same pixels), and spim_stamp_image
   on the same input gives the same bytes. The first two bytes choose the
   stamp options and the output format; the rest is the image. */
#include "fuzz_common.h"

#define BUDGET ((uint64_t)1 << 20)

static const spim_format outputs[] = {
    SPIM_FORMAT_UNKNOWN, SPIM_FORMAT_JPEG, SPIM_FORMAT_PNG, SPIM_FORMAT_BMP, SPIM_FORMAT_TGA
};

static void make_stamp(spim_stamp *s, unsigned char *px, int w, int h)
{
    int x, y;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            unsigned char *p = px + 4 * (y * w + x);
            p[0] = (unsigned char)(x * 37); p[1] = (unsigned char)(y * 71); p[2] = (unsigned char)(x ^ y);
            p[3] = (unsigned char)((x + y) * 29);
        }
    s->rgba = px;
    s->width = w;
    s->height = h;
}

/* The same bytes as a stamp (SPARTA_STAMP may name any file or object). */
static void check_stamp_load(const uint8_t *data, size_t size)
{
    spim_stamp s;
    spim_error err;
    spim_status st;
    spim__error_clear(&err);
    st = spim_stamp_load(&s, data, size, &err);
    if (st != SPIM_OK) {
        FUZZ_CHECK_ERROR(st, err);
        FUZZ_CHECK(s.rgba == NULL, "failed stamp load kept pixels");
        return;
    }
    FUZZ_CHECK(s.rgba && s.width > 0 && s.height > 0 && (uint64_t)s.width * (uint64_t)s.height <= (16u << 20),
               "stamp %dx%d", s.width, s.height);
    spim_stamp_free(&s);
}

static void check_decoded(const spim_image *img)
{
    FUZZ_CHECK(img->pixels != NULL, "decoded without pixels");
    FUZZ_CHECK(img->width > 0 && img->height > 0, "decoded %dx%d", img->width, img->height);
    FUZZ_CHECK((uint64_t)img->width * (uint64_t)img->height <= BUDGET, "decoded %dx%d over the budget",
               img->width, img->height);
    FUZZ_CHECK(img->channels >= 1 && img->channels <= 4, "%d channels", img->channels);
    FUZZ_CHECK(img->meta.orientation >= 1 && img->meta.orientation <= 8, "orientation %d", img->meta.orientation);
    FUZZ_CHECK(img->meta.format != SPIM_FORMAT_UNKNOWN, "decoded an unknown format");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char stamp_px[9 * 7 * 4];
    spim_stamp stamp;
    spim_stamp_options opt;
    spim_image img, again;
    spim_image_info info;
    spim_buf out = SPIM_BUF_INIT, out2 = SPIM_BUF_INIT;
    spim_error err;
    spim_status st;
    spim_format fmt;
    unsigned a, b;
    if (size < 2) return 0;
    a = data[0];
    b = data[1];
    data += 2;
    size -= 2;
    make_stamp(&stamp, stamp_px, 9, 7);
    memset(&opt, 0, sizeof opt);
    opt.gravity = (spim_gravity)(a % 9);
    opt.margin = (a & 0x80) ? 1000000 : (int)(a >> 4);
    opt.scale = (b & 1) ? 0.0 : (b & 2) ? 0.25 : 1.0;
    opt.opacity = (b & 4) ? 0.5 : 0.0;
    opt.quality = (b & 8) ? 1 : 0;
    opt.max_pixels = BUDGET;
    spim__force_simd = (b & 16) ? SPIM__SIMD_SCALAR : SPIM__SIMD_AUTO;
    opt.output_format = outputs[(b >> 5) % 5];
    opt.jpeg_mode = SPIM_JPEG_RECODE; /* the steps below are the recode path; fuzz_splice checks the other */

    spim__error_clear(&err);
    st = spim_image_decode(data, size, BUDGET, &img, &err);
    if (st != SPIM_OK) {
        FUZZ_CHECK_ERROR(st, err);
        FUZZ_CHECK(st == SPIM_ERR_IMAGE || st == SPIM_ERR_TOO_LARGE, "decode: %s", spim_status_str(st));
        FUZZ_CHECK(!img.pixels && !img.meta.exif && !img.meta.icc, "failed decode kept memory");
        /* the pipeline agrees */
        st = spim_stamp_image(data, size, &stamp, &opt, &out, NULL, &err);
        FUZZ_CHECK(st != SPIM_OK && out.len == 0, "spim_stamp_image accepted what spim_image_decode refused");
        spim_buf_free(&out);
        if (err.status == SPIM_ERR_IMAGE) check_stamp_load(data, size);
        return 0;
    }
    check_decoded(&img);
    check_stamp_load(data, size);
    /* nothing uninitialised: a second decode (other heap contents) agrees */
    st = spim_image_decode(data, size, BUDGET, &again, &err);
    FUZZ_CHECK(st == SPIM_OK && again.width == img.width && again.height == img.height &&
               again.channels == img.channels &&
               memcmp(again.pixels, img.pixels, (size_t)img.width * img.height * img.channels) == 0,
               "a second decode of the same bytes gave other pixels");
    spim_image_free(&again);
    st = spim_image_stamp(&img, &stamp, &opt, &err);
    /* centred, the margin does not move the stamp */
    FUZZ_CHECK(opt.margin != 1000000 || opt.gravity == SPIM_GRAVITY_C || st == SPIM_ERR_INVALID,
               "a stamp far outside the image gave %s", spim_status_str(st));
    if (st == SPIM_ERR_INVALID && strstr(err.message, "stamp falls outside the image")) {
        /* entirely outside: an error on the one-call path too */
        st = spim_stamp_image(data, size, &stamp, &opt, &out, NULL, &err);
        FUZZ_CHECK(st == SPIM_ERR_INVALID && out.len == 0, "spim_stamp_image drew a stamp outside the image");
        spim_image_free(&img);
        spim_buf_free(&out);
        return 0;
    }
    FUZZ_CHECK(st == SPIM_OK, "stamping a decoded %dx%dx%d image failed: %s", img.width, img.height,
               img.channels, err.message);
    fmt = spim__out_format(img.meta.format, opt.output_format);
    st = spim_image_encode(&img, opt.output_format, opt.quality, &out, &err);
    FUZZ_CHECK(st == SPIM_OK && out.len > 0, "encoding as %s failed: %s", spim__format_name(fmt), err.message);

    /* what we wrote decodes again, to the same size (another format may
       weigh its pixels differently against the budget: allow for that) */
    st = spim_image_decode(out.data, out.len, 4 * BUDGET, &again, &err);
    FUZZ_CHECK(st == SPIM_OK, "our %s output does not decode: %s", spim__format_name(fmt), err.message);
    FUZZ_CHECK(again.width == img.width && again.height == img.height, "%dx%d became %dx%d", img.width,
               img.height, again.width, again.height);
    FUZZ_CHECK(again.meta.format == fmt, "wrote %s, detected %s", spim__format_name(fmt),
               spim__format_name(again.meta.format));
    if (fmt == SPIM_FORMAT_PNG) {
        FUZZ_CHECK(again.channels == img.channels &&
                   memcmp(again.pixels, img.pixels, (size_t)img.width * img.height * img.channels) == 0,
                   "PNG round trip changed the pixels");
    }
    if (fmt == SPIM_FORMAT_JPEG || fmt == SPIM_FORMAT_PNG) {
        FUZZ_CHECK(again.meta.orientation == img.meta.orientation, "orientation %d became %d",
                   img.meta.orientation, again.meta.orientation);
        if (img.meta.icc && (fmt == SPIM_FORMAT_PNG || img.meta.icc_len <= 255u * 65519u))
            FUZZ_CHECK(again.meta.icc_len == img.meta.icc_len &&
                       memcmp(again.meta.icc, img.meta.icc, img.meta.icc_len) == 0, "ICC profile not kept");
    }
    spim_image_free(&again);

    /* the one-call pipeline is the same three steps */
    memset(&info, 0, sizeof info);
    st = spim_stamp_image(data, size, &stamp, &opt, &out2, &info, &err);
    FUZZ_CHECK(st == SPIM_OK, "spim_stamp_image failed where the steps worked: %s", err.message);
    FUZZ_CHECK(out2.len == out.len && memcmp(out2.data, out.data, out.len) == 0,
               "spim_stamp_image output differs from decode+stamp+encode");
    FUZZ_CHECK(info.width == img.width && info.height == img.height && info.out_format == fmt &&
               info.format == img.meta.format && info.content_type && info.extension,
               "info does not describe the work");
    spim_image_free(&img);
    spim_buf_free(&out);
    spim_buf_free(&out2);
    return 0;
}
