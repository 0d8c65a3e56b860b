/* Keys as S3 notifications encode them: spim__url_decode_key against a
   reference decoder written here, plus the round trip through
   spim_uri_encode (decode(encode(k)) == k for any key without NUL). */
#include "fuzz_common.h"

static int ref_hex(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Returns the decoded length, or -1 when the key is invalid. */
static long ref_decode(const uint8_t *s, size_t n, uint8_t *out)
{
    size_t i, o = 0;
    for (i = 0; i < n; i++) {
        int c = s[i];
        if (c == '+') c = ' ';
        else if (c == '%') {
            if (n - i < 3 || ref_hex(s[i + 1]) < 0 || ref_hex(s[i + 2]) < 0) return -1;
            c = ref_hex(s[i + 1]) * 16 + ref_hex(s[i + 2]);
            i += 2;
        }
        if (c == 0) return -1;
        out[o++] = (uint8_t)c;
    }
    return (long)o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    spim_buf out = SPIM_BUF_INIT, enc = SPIM_BUF_INIT, back = SPIM_BUF_INIT;
    spim_error err;
    spim_status st;
    uint8_t *ref = (uint8_t *)malloc(size + 1);
    long want;
    if (!ref) abort();
    spim__error_clear(&err);
    st = spim__url_decode_key((const char *)data, size, &out, &err);
    want = ref_decode(data, size, ref);
    if (want < 0) {
        FUZZ_CHECK(st == SPIM_ERR_INVALID, "reference rejects, library says %s", spim_status_str(st));
        FUZZ_CHECK_ERROR(st, err);
        FUZZ_CHECK(out.len == 0, "failed decode left %zu bytes", out.len);
    } else {
        FUZZ_CHECK(st == SPIM_OK, "reference accepts, library says %s: %s", spim_status_str(st), err.message);
        FUZZ_CHECK(out.len <= size, "decoded %zu bytes from %zu", out.len, size);
        FUZZ_CHECK(out.len == (size_t)want && (want == 0 || memcmp(out.data, ref, out.len) == 0),
                   "decoded %zu bytes, reference %ld, or different bytes", out.len, want);
        FUZZ_CHECK(out.data && out.data[out.len] == 0, "decoded key not NUL-terminated");
        FUZZ_CHECK(memchr(out.data, 0, out.len) == NULL, "decoded key contains a NUL");

        /* what the S3 client sends decodes back to the same key */
        FUZZ_CHECK(spim_uri_encode(&enc, (const char *)out.data, out.len, 0) == SPIM_OK, "encode failed");
        FUZZ_CHECK(spim__url_decode_key(enc.len ? (const char *)enc.data : "", enc.len, &back, &err) == SPIM_OK,
                   "re-decode failed: %s", err.message);
        FUZZ_CHECK(back.len == out.len && (out.len == 0 || memcmp(back.data, out.data, out.len) == 0),
                   "decode(encode(key)) != key (%zu vs %zu bytes)", back.len, out.len);
    }
    free(ref);
    spim_buf_free(&out);
    spim_buf_free(&enc);
    spim_buf_free(&back);
    return 0;
}
