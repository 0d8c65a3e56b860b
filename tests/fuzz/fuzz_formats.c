/* Untrusted WebP and GIF bytes through spim_stamp_image with SPIM_WEBP and
   SPIM_GIF under a 1 MP budget: a failure leaves no output and says why; a
   success writes the same format, which stamps again, and the same input
   gives the same bytes twice. The first byte chooses gravity and scale. */
#define SPIM_WEBP
#define SPIM_GIF
#include "fuzz_common.h"

#define BUDGET ((uint64_t)1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char px[5 * 4 * 4];
    spim_stamp stamp;
    spim_stamp_options opt;
    spim_image_info info;
    spim_buf out = SPIM_BUF_INIT, out2 = SPIM_BUF_INIT, again = SPIM_BUF_INIT;
    spim_error err;
    spim_status st;
    size_t i;
    if (size < 1) return 0;
    for (i = 0; i < sizeof px; i++) px[i] = (unsigned char)(i * 29 + (i % 4 == 3 ? 128 : 0));
    stamp.rgba = px;
    stamp.width = 5;
    stamp.height = 4;
    memset(&opt, 0, sizeof opt);
    opt.gravity = (spim_gravity)(data[0] % 9);
    opt.scale = (data[0] & 0x80) ? 0.3 : 0.0;
    opt.max_pixels = BUDGET;
    data++;
    size--;
    spim__error_clear(&err);
    st = spim_stamp_image(data, size, &stamp, &opt, &out, &info, &err);
    if (st != SPIM_OK) {
        FUZZ_CHECK_ERROR(st, err);
        FUZZ_CHECK(out.len == 0, "a failure (%s) left %zu bytes of output", err.message, out.len);
        spim_buf_free(&out);   /* the buffer may have grown before the failure */
        return 0;
    }
    if (info.format == SPIM_FORMAT_WEBP || info.format == SPIM_FORMAT_GIF) {
        FUZZ_CHECK(spim_format_detect(out.data, out.len) == info.format, "%s came out as %s",
                   spim__format_name(info.format),
                   spim__format_name(spim_format_detect(out.data, out.len)));
        st = spim_stamp_image(out.data, out.len, &stamp, &opt, &again, NULL, &err);
        FUZZ_CHECK(st == SPIM_OK, "our own %s output does not stamp again: %s",
                   spim__format_name(info.format), err.message);
    }
    st = spim_stamp_image(data, size, &stamp, &opt, &out2, NULL, &err);
    FUZZ_CHECK(st == SPIM_OK && out2.len == out.len && memcmp(out.data, out2.data, out.len) == 0,
               "the same input gave other bytes the second time");
    spim_buf_free(&out);
    spim_buf_free(&out2);
    spim_buf_free(&again);
    return 0;
}
