/* JPEG segments and PNG chunks: spim__meta_read (EXIF orientation, EXIF and
   ICC copies) and the metadata policy's rewrites of what it read. Never reads outside the input; what it keeps is consistent;
   the EXIF of a JPEG is a copy of bytes of the input. */
#include "fuzz_common.h"

static int contains(const uint8_t *h, size_t hn, const uint8_t *n, size_t nn)
{
    size_t i;
    if (nn > hn) return 0;
    for (i = 0; i + nn <= hn; i++)
        if (memcmp(h + i, n, nn) == 0) return 1;
    return 0;
}

/* The metadata policy on what was read (EXIF) and on the raw bytes (XMP):
   strip-gps keeps the length and leaves no GPS pointer in IFD0, strip keeps
   the orientation; nothing is read or written outside the buffers. */
static void policy_checks(const spim_meta *m, const uint8_t *data, size_t size)
{
    spim_buf out = SPIM_BUF_INIT;
    uint32_t ifd, count, i;
    int le;
    FUZZ_CHECK(spim__xmp_policy(data, size, SPIM_METADATA_STRIP_GPS, &out) == SPIM_OK, "xmp");
    FUZZ_CHECK(out.len <= size, "xmp grew from %zu to %zu bytes", size, out.len);
    if (!m->exif) {
        spim_buf_free(&out);
        return;
    }
    FUZZ_CHECK(spim__exif_policy(m->exif, m->exif_len, SPIM_METADATA_STRIP_GPS, &out) == SPIM_OK, "strip-gps");
    FUZZ_CHECK(!out.len || out.len == m->exif_len, "strip-gps made %zu bytes of %zu", out.len, m->exif_len);
    le = out.len ? spim__tiff_order(out.data, out.len) : -1;
    if (le >= 0 && spim__tiff_ifd0(out.data, out.len, le, &ifd, &count))
        for (i = 0; i < count; i++)
            FUZZ_CHECK(spim__rd16(out.data + ifd + 2 + 12 * (size_t)i, le) != 0x8825, "GPS pointer left");
    FUZZ_CHECK(spim__exif_policy(m->exif, m->exif_len, SPIM_METADATA_STRIP, &out) == SPIM_OK, "strip");
    if (out.len)
        FUZZ_CHECK(spim__tiff_orientation(out.data, out.len) == m->orientation, "strip: orientation %d, was %d",
                   spim__tiff_orientation(out.data, out.len), m->orientation);
    spim_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    spim_meta m;
    spim_error err;
    spim_status st;
    spim__error_clear(&err);
    st = spim__meta_read(data, size, &m, &err);
    FUZZ_CHECK(m.format == spim_format_detect(data, size), "format %s, detect says %s", spim__format_name(m.format),
               spim__format_name(spim_format_detect(data, size)));
    FUZZ_CHECK(m.orientation >= 1 && m.orientation <= 8, "orientation %d", m.orientation);
    FUZZ_CHECK((m.exif == NULL) == (m.exif_len == 0), "exif %p with length %zu", (void *)m.exif, m.exif_len);
    FUZZ_CHECK((m.icc == NULL) == (m.icc_len == 0), "icc %p with length %zu", (void *)m.icc, m.icc_len);
    if (st != SPIM_OK) {
        FUZZ_CHECK_ERROR(st, err);
        FUZZ_CHECK(st == SPIM_ERR_IMAGE || st == SPIM_ERR_NOMEM, "status %s", spim_status_str(st));
        FUZZ_CHECK(!m.exif && !m.icc && m.orientation == 1, "a failure kept metadata");
        return 0;
    }
    if (m.format != SPIM_FORMAT_JPEG && m.format != SPIM_FORMAT_PNG)
        FUZZ_CHECK(!m.exif && !m.icc && !m.width && !m.height, "metadata from a %s", spim__format_name(m.format));
    if (m.exif) {
        FUZZ_CHECK(m.exif_len >= 8 && m.exif_len <= size, "exif of %zu bytes from %zu", m.exif_len, size);
        FUZZ_CHECK(contains(data, size, m.exif, m.exif_len), "exif is not a slice of the input");
    } else {
        FUZZ_CHECK(m.orientation == 1, "orientation %d without EXIF", m.orientation);
    }
    if (m.icc) FUZZ_CHECK(m.icc_len >= 128 && m.icc_len <= SPIM__ICC_MAX, "icc of %zu bytes", m.icc_len);
    if (m.format == SPIM_FORMAT_JPEG && m.icc)
        FUZZ_CHECK(m.icc_len <= size, "JPEG ICC of %zu bytes from %zu", m.icc_len, size);
    policy_checks(&m, data, size);
    spim__meta_free(&m);
    FUZZ_CHECK(!m.exif && !m.icc && m.orientation == 1, "spim__meta_free left state");
    return 0;
}
