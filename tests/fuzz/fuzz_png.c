/* fuzz_png - the compressed-domain PNG stamp (spim_stamp_image on a PNG that
   stays a PNG). Input: two option bytes (gravity, margin, scale, opacity,
   kernel) then the PNG. Invariants: no crash, hang or leak; a failure has a
   status and a message and leaves no output; the same input gives the same
   bytes twice (nothing uninitialised reaches the output); a success decodes
   with stb_image to the source's size whenever the source decodes, and an
   8-bit output is exactly the pixel path's blend of the decoded source. */
#include "fuzz_common.h"

#define STAMP_BYTES (9 * 7 * 4)
#define BUDGET      ((uint64_t)1 << 18) /* 512x512: several deflate blocks, and fast */

/* stb's pixels of the source, stamped as the pixel path does, against ours. */
static void check_pixels(const uint8_t *data, size_t size, const spim_buf *out,
                         const spim_stamp *stamp, const spim_stamp_options *opt,
                         const spim_image_info *info)
{
    int w, h, n, wo, ho, no, ch;
    unsigned char *a, *b;
    spim_error err;
    if (!stbi_info_from_memory(data, (int)size, &w, &h, &n)) return;
    FUZZ_CHECK(stbi_info_from_memory(out->data, (int)out->len, &wo, &ho, &no),
               "our PNG does not decode: %s", stbi_failure_reason());
    FUZZ_CHECK(wo == w && ho == h, "%dx%d became %dx%d", w, h, wo, ho);
    if (stbi_is_16_bit_from_memory(out->data, (int)out->len)) return;
    ch = no;
    a = stbi_load_from_memory(data, (int)size, &w, &h, &n, ch);
    b = stbi_load_from_memory(out->data, (int)out->len, &wo, &ho, &no, ch);
    if (a && b && spim__stamp_draw(a, w, h, ch, info->orientation, stamp, opt, &err) == SPIM_OK)
        FUZZ_CHECK(memcmp(a, b, (size_t)w * (size_t)h * (size_t)ch) == 0,
                   "pixels differ from the pixel path");
    stbi_image_free(a);
    stbi_image_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char px[STAMP_BYTES];
    spim_stamp stamp;
    spim_stamp_options opt;
    spim_image_info info;
    spim_buf out = SPIM_BUF_INIT, again = SPIM_BUF_INIT;
    spim_error err;
    spim_status st;
    unsigned a, b;
    size_t i;
    if (size < 2) return 0;
    a = data[0];
    b = data[1];
    data += 2;
    size -= 2;
    for (i = 0; i < sizeof px; i++) px[i] = (unsigned char)(i * 37 + (i & 3) * 60);
    if (b & 8)
        for (i = 0; i < sizeof px; i += 4) px[i + 1] = px[i + 2] = px[i]; /* a grey stamp */
    stamp.rgba = px;
    stamp.width = 9;
    stamp.height = 7;
    memset(&opt, 0, sizeof opt);
    opt.gravity = (spim_gravity)(a % 9);
    opt.margin = (a & 0x80) ? 1000000 : (int)((a >> 4) & 7);
    opt.scale = (b & 1) ? 0.0 : (b & 2) ? 0.25 : 0.9;
    opt.opacity = (b & 4) ? 0.5 : 0.0;
    opt.max_pixels = BUDGET;
    spim__force_simd = (b & 16) ? SPIM__SIMD_SCALAR : SPIM__SIMD_AUTO;
    opt.output_format = SPIM_FORMAT_PNG;
    spim__error_clear(&err);
    st = spim_stamp_image(data, size, &stamp, &opt, &out, &info, &err);
    if (st != SPIM_OK) {
        FUZZ_CHECK_ERROR(st, err);
        FUZZ_CHECK(out.len == 0, "a failure left %zu bytes of output", out.len);
        spim_buf_free(&out);
        return 0;
    }
    FUZZ_CHECK(spim_format_detect(out.data, out.len) == SPIM_FORMAT_PNG,
               "the output is not a PNG");
    st = spim_stamp_image(data, size, &stamp, &opt, &again, NULL, &err);
    FUZZ_CHECK(st == SPIM_OK && again.len == out.len && memcmp(again.data, out.data, out.len) == 0,
               "the same input gave other bytes");
    if (size <= INT_MAX && out.len <= INT_MAX) check_pixels(data, size, &out, &stamp, &opt, &info);
    spim_buf_free(&out);
    spim_buf_free(&again);
    return 0;
}
