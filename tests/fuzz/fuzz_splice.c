/* fuzz_splice - the compressed-domain JPEG stamp (spim_stamp_image on a
   JPEG that stays a JPEG: the baseline splice and the progressive path).
   Input: two option bytes (gravity, margin, scale, opacity, restart of the
   check) then the JPEG. Invariants: no crash, hang or leak; a failure has a
   status and a message and leaves no output; a success is a JPEG that
   decodes to the source's size whenever the source decodes, and the same
   input gives the same bytes twice (no uninitialised memory reaches the
   output); the output stamps again whenever the source decodes. */
#include "fuzz_common.h"

#define STAMP_BYTES (9 * 7 * 4)

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
    stamp.rgba = px;
    stamp.width = 9;
    stamp.height = 7;
    memset(&opt, 0, sizeof opt);
    opt.gravity = (spim_gravity)(a % 9);
    opt.margin = (a & 0x80) ? 1000000 : (int)((a >> 4) & 7);
    opt.scale = (b & 1) ? 0.0 : (b & 2) ? 0.25 : 0.9;
    opt.opacity = (b & 4) ? 0.5 : 0.0;
    opt.max_pixels = 1u << 22;
    spim__force_simd = (b & 16) ? SPIM__SIMD_SCALAR : SPIM__SIMD_AUTO;
    opt.output_format = SPIM_FORMAT_JPEG;

    spim__error_clear(&err);
    memset(&info, 0, sizeof info);
    st = spim_stamp_image(data, size, &stamp, &opt, &out, &info, &err);
    if (st != SPIM_OK) {
        FUZZ_CHECK_ERROR(st, err);
        FUZZ_CHECK(out.len == 0, "a failed stamp left %zu bytes", out.len);
        spim_buf_free(&out);
        return 0;
    }
    FUZZ_CHECK(info.path && (!strcmp(info.path, "splice") || !strcmp(info.path, "progressive") ||
                             !strcmp(info.path, "recode")),
               "no path in info");
    FUZZ_CHECK(spim_format_detect(out.data, out.len) == SPIM_FORMAT_JPEG, "the output is not a JPEG");
    FUZZ_CHECK(!strcmp(info.path, "recode")
                   ? !info.huffman
                   : info.huffman &&
                         (!strcmp(info.huffman, "file") || !strcmp(info.huffman, "constrained") ||
                          !strcmp(info.huffman, "extended") || !strcmp(info.huffman, "optimal")),
               "huffman %s on the %s path", info.huffman ? info.huffman : "(null)", info.path);
    if (strcmp(info.path, "recode") != 0) {
        spim_image src, got;
        int decodes;
        /* the same bytes again: nothing uninitialised in the output */
        st = spim_stamp_image(data, size, &stamp, &opt, &again, NULL, &err);
        FUZZ_CHECK(st == SPIM_OK && again.len == out.len && memcmp(again.data, out.data, out.len) == 0,
                   "a second splice of the same input differs");
        if ((decodes = spim_image_decode(data, size, 1u << 22, &src, &err) == SPIM_OK)) {
            st = spim_image_decode(out.data, out.len, 1u << 24, &got, &err);
            FUZZ_CHECK(st == SPIM_OK, "the spliced output does not decode: %s", err.message);
            FUZZ_CHECK(got.width == src.width && got.height == src.height, "%dx%d became %dx%d", src.width,
                       src.height, got.width, got.height);
            spim_image_free(&got);
            spim_image_free(&src);
        }
        /* a stamped output is stamped again, unless damage the splice copied (intervals it did not
           decode) stops both the new-table re-encode and the decoder */
        spim_buf_reset(&again);
        st = spim_stamp_image(out.data, out.len, &stamp, &opt, &again, &info, &err);
        FUZZ_CHECK(st == SPIM_OK || !decodes, "stamping the spliced output again failed: %s", err.message);
    }
    spim_buf_free(&again);
    spim_buf_free(&out);
    return 0;
}
