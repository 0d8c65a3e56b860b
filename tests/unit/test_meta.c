/* The metadata policy (issue 25): EXIF without its GPS IFD in both byte
   orders, the minimal EXIF of `strip`, XMP without exif:GPS*, the JPEG
   header segments each policy keeps, and hostile EXIF that must never
   crash. tests/it/it_metadata.sh checks the same on real files with Pillow. */
#define SPARTA_IMAGER_IMPLEMENTATION
#define SPIM_NO_S3
#define SPIM_NO_LAMBDA
#include "sparta_imager.h"
#include "spim_test.h"

/* ---- a TIFF structure with IFD0, an EXIF IFD, a GPS IFD and IFD1 ---- */

typedef struct tiff {
    unsigned char b[512];
    int le;
} tiff;

static void w16(tiff *t, size_t at, unsigned v)
{
    spim__wr16(t->b + at, v, t->le);
}
static void w32(tiff *t, size_t at, uint32_t v)
{
    spim__wr32(t->b + at, v, t->le);
}

static void entry(tiff *t, size_t at, unsigned tag, unsigned type, uint32_t count, uint32_t value)
{
    w16(t, at, tag);
    w16(t, at + 2, type);
    w32(t, at + 4, count);
    if (type == 3 && count == 1) w16(t, at + 8, value);
    else w32(t, at + 8, value);
}

static const unsigned char LATITUDE[24] = { 0, 0, 0, 47, 0, 0, 0,    1,    0, 0, 0, 11,
                                            0, 0, 0, 1,  0, 0, 0x12, 0x34, 0, 0, 0, 100 };

/* Layout: IFD0 at 8 (7 entries), EXIF IFD at 100, GPS IFD at 140, IFD1 at
   200, values from 300: Make, Copyright, latitude. */
static size_t make_tiff(tiff *t, int le)
{
    memset(t->b, 0, sizeof t->b);
    t->le = le;
    memcpy(t->b, le ? "II*\0" : "MM\0*", 4);
    w32(t, 4, 8);
    w16(t, 8, 7);
    entry(t, 10, 0x010F, 2, 6, 300); /* Make "Canon" */
    entry(t, 22, 0x0112, 3, 1, 6); /* Orientation 6 */
    entry(t, 34, 0x013B, 2, 4, 0); /* Artist "Ann" inline */
    memcpy(t->b + 34 + 8, "Ann", 4);
    entry(t, 46, 0x8298, 2, 14, 310); /* Copyright */
    entry(t, 58, 0x8769, 4, 1, 100); /* EXIF IFD */
    entry(t, 70, 0x8825, 4, 1, 140); /* GPS IFD */
    entry(t, 82, 0xA000, 7, 4, 0); /* a tag after the GPS pointer (not in order: fine) */
    memcpy(t->b + 82 + 8, "0230", 4);
    w32(t, 94, 200); /* next IFD: IFD1 */
    w16(t, 100, 1);
    entry(t, 102, 0x9003, 2, 4, 0);
    w16(t, 140, 2);
    entry(t, 142, 0x0001, 2, 2, 0); /* GPSLatitudeRef "N" */
    t->b[142 + 8] = 'N';
    entry(t, 154, 0x0002, 5, 3, 330); /* GPSLatitude, 3 rationals */
    w16(t, 200, 0);
    memcpy(t->b + 300, "Canon", 6);
    memcpy(t->b + 310, "(c) Ann 2026", 13);
    memcpy(t->b + 330, LATITUDE, sizeof LATITUDE);
    return 360;
}

/* IFD0's tags, in order, as the project reads them; -1 when IFD0 is unsound. */
static int ifd0_tags(const unsigned char *t, size_t n, unsigned *tags, int max)
{
    int le = spim__tiff_order(t, n);
    uint32_t ifd, count, i;
    if (le < 0 || !spim__tiff_ifd0(t, n, le, &ifd, &count) || (int)count > max) return -1;
    for (i = 0; i < count; i++) tags[i] = spim__rd16(t + ifd + 2 + 12 * (size_t)i, le);
    return (int)count;
}

static int has(const unsigned char *t, size_t n, const void *needle, size_t k)
{
    size_t i;
    for (i = 0; i + k <= n; i++)
        if (memcmp(t + i, needle, k) == 0) return 1;
    return 0;
}

static void check_strip_gps(int le)
{
    tiff t;
    size_t n = make_tiff(&t, le);
    unsigned tags[16];
    int count;
    CHECK_INT(1, spim__exif_strip_gps(t.b, n));
    count = ifd0_tags(t.b, n, tags, 16);
    CHECK_INT(6, count);
    if (count == 6) {
        CHECK_INT(0x8769, tags[4]);
        CHECK_INT(0xA000, tags[5]); /* the entry after the pointer moved up */
    }
    CHECK_INT(200, spim__rd32(t.b + 8 + 2 + 12 * 6, le)); /* the next-IFD offset moved with them */
    CHECK_INT(6, spim__tiff_orientation(t.b, n));
    CHECK(memcmp(t.b + 300, "Canon", 6) == 0);
    CHECK(!has(t.b, n, LATITUDE, sizeof LATITUDE));
    CHECK_INT(0, spim__rd16(t.b + 140, le)); /* the GPS IFD is zeroed */
    CHECK_INT(1, spim__exif_strip_gps(t.b, n)); /* idempotent */
    CHECK_INT(6, ifd0_tags(t.b, n, tags, 16));
}

TEST(strip_gps_little_endian)
{
    check_strip_gps(1);
}
TEST(strip_gps_big_endian)
{
    check_strip_gps(0);
}

static void check_minimal(int le)
{
    tiff t;
    size_t n = make_tiff(&t, le);
    spim_buf out = SPIM_BUF_INIT;
    unsigned tags[16];
    spim_meta m;
    int count;
    REQUIRE(spim__exif_policy(t.b, n, SPIM_METADATA_STRIP, &out) == SPIM_OK);
    count = ifd0_tags(out.data, out.len, tags, 16);
    CHECK_INT(3, count);
    if (count == 3) {
        CHECK_INT(0x0112, tags[0]);
        CHECK_INT(0x013B, tags[1]);
        CHECK_INT(0x8298, tags[2]);
    }
    CHECK_INT(le, spim__tiff_order(out.data, out.len));
    CHECK_INT(6, spim__tiff_orientation(out.data, out.len));
    CHECK(has(out.data, out.len, "Ann", 4));
    CHECK(has(out.data, out.len, "(c) Ann 2026", 13));
    CHECK(!has(out.data, out.len, "Canon", 5));
    CHECK(!has(out.data, out.len, LATITUDE, sizeof LATITUDE));
    /* the copyright's offset points at it */
    if (count == 3) {
        uint32_t at = spim__rd32(out.data + 8 + 2 + 24 + 8, le);
        CHECK(at + 13 <= out.len && memcmp(out.data + at, "(c) Ann 2026", 13) == 0);
    }
    memset(&m, 0, sizeof m);
    CHECK_INT(SPIM_OK, spim__meta_set_exif(&m, out.data, out.len, NULL));
    CHECK_INT(6, m.orientation);
    spim__meta_free(&m);
    spim_buf_free(&out);
}

TEST(strip_keeps_orientation_artist_copyright_little_endian)
{
    check_minimal(1);
}
TEST(strip_keeps_orientation_artist_copyright_big_endian)
{
    check_minimal(0);
}

TEST(keep_and_default_policies)
{
    tiff t;
    size_t n = make_tiff(&t, 1);
    spim_buf out = SPIM_BUF_INIT;
    unsigned tags[16];
    REQUIRE(spim__exif_policy(t.b, n, SPIM_METADATA_KEEP, &out) == SPIM_OK);
    CHECK_MEM(t.b, n, out.data, out.len);
    REQUIRE(spim__exif_policy(t.b, n, SPIM_METADATA_STRIP_GPS, &out) == SPIM_OK);
    CHECK_INT(6, ifd0_tags(out.data, out.len, tags, 16));
    spim_buf_free(&out);
}

/* Hostile structures: results are either the input unchanged, a sound
   IFD0 without 0x8825, or nothing; never a read or write out of bounds
   (ASan watches the copies, each in a buffer of exactly its length). */
static void check_hostile(const unsigned char *src, size_t n)
{
    unsigned char *t = (unsigned char *)malloc(n ? n : 1);
    spim_buf out = SPIM_BUF_INIT;
    unsigned tags[70000 / 12 + 1];
    int count, i;
    memcpy(t, src, n);
    if (spim__exif_strip_gps(t, n)) {
        count = ifd0_tags(t, n, tags, (int)(sizeof tags / sizeof tags[0]));
        for (i = 0; i < count; i++) CHECKF(tags[i] != 0x8825, "GPS pointer left at entry %d", i);
    }
    CHECK_INT(SPIM_OK, spim__exif_policy(t, n, SPIM_METADATA_STRIP, &out));
    CHECK_INT(SPIM_OK, spim__exif_policy(t, n, SPIM_METADATA_STRIP_GPS, &out));
    spim_buf_free(&out);
    free(t);
}

TEST(hostile_exif_never_crashes)
{
    tiff t;
    size_t n = make_tiff(&t, 1), cut, i;
    uint32_t seed = 25;
    spim_buf out = SPIM_BUF_INIT;
    w32(&t, 4, 4000); /* IFD0 past the end: dropped whole */
    REQUIRE(spim__exif_policy(t.b, n, SPIM_METADATA_STRIP_GPS, &out) == SPIM_OK);
    CHECK_INT(0, out.len);
    make_tiff(&t, 1);
    CHECK_INT(6, spim__tiff_orientation(t.b, n));
    w16(&t, 8, 60000); /* IFD0 entries past the end: dropped whole, so not turned for either */
    CHECK_INT(0, spim__exif_strip_gps(t.b, n));
    CHECK_INT(1, spim__tiff_orientation(t.b, n));
    make_tiff(&t, 1);
    w32(&t, 70 + 8, 0xFFFFFFF0u); /* GPS IFD past the end: pointer still removed */
    check_hostile(t.b, n);
    make_tiff(&t, 1);
    w32(&t, 70 + 8, 8); /* GPS IFD is IFD0 itself */
    check_hostile(t.b, n);
    make_tiff(&t, 1);
    w16(&t, 140, 65535); /* GPS IFD count past the end */
    w32(&t, 154 + 8, 0xFFFFFFFFu); /* and a value offset past it */
    check_hostile(t.b, n);
    make_tiff(&t, 0);
    for (cut = 0; cut <= n; cut += 7) check_hostile(t.b, cut); /* truncated anywhere */
    for (i = 0; i < 3000; i++) { /* random damage */
        int k;
        make_tiff(&t, (int)(i & 1));
        for (k = 0; k < 4; k++) {
            seed = seed * 1664525u + 1013904223u;
            t.b[(seed >> 8) % n] = (unsigned char)(seed >> 24);
        }
        check_hostile(t.b, n);
    }
    spim_buf_free(&out);
}

/* ---- XMP ---- */

static void xmp_case(const char *in, spim_metadata policy, const char *want)
{
    spim_buf out = SPIM_BUF_INIT;
    REQUIRE(spim__xmp_policy((const unsigned char *)in, strlen(in), policy, &out) == SPIM_OK);
    CHECK_STR(want, out.len ? (const char *)out.data : "");
    spim_buf_free(&out);
}

#define XMP_HEAD                                                                                   \
    "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF><rdf:Description rdf:about=\"\" "              \
    "xmlns:exif=\"http://ns.adobe.com/exif/1.0/\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\""

TEST(xmp_gps_attributes_go)
{
    xmp_case(
        XMP_HEAD
        " exif:GPSLatitude=\"47,11.5N\" exif:ExposureTime=\"1/60\"\n   exif:GPSLongitude='8,32E'/>"
        "</rdf:RDF></x:xmpmeta>",
        SPIM_METADATA_STRIP_GPS, XMP_HEAD " exif:ExposureTime=\"1/60\"/></rdf:RDF></x:xmpmeta>");
}

TEST(xmp_gps_elements_go)
{
    xmp_case(XMP_HEAD "><exif:GPSLatitude>47,11.5N</exif:GPSLatitude><dc:creator>Ann</dc:creator>"
                      "<exif:GPSAltitudeRef/><exif:GPSVersionID><rdf:Seq><rdf:li>2</rdf:li></"
                      "rdf:Seq></exif:GPSVersionID >"
                      "</rdf:Description></rdf:RDF></x:xmpmeta>",
             SPIM_METADATA_STRIP_GPS,
             XMP_HEAD "><dc:creator>Ann</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>");
}

TEST(xmp_without_gps_is_unchanged_and_text_is_not_a_property)
{
    const char *x =
        XMP_HEAD "><dc:description>see exif:GPSLatitude</dc:description></rdf:Description>"
                 "</rdf:RDF></x:xmpmeta>";
    xmp_case(x, SPIM_METADATA_STRIP_GPS, x);
    xmp_case(x, SPIM_METADATA_KEEP, x);
    xmp_case(x, SPIM_METADATA_STRIP, "");
}

TEST(xmp_that_cannot_be_vouched_for_is_dropped)
{
    /* the EXIF namespace under another prefix */
    xmp_case("<rdf:Description xmlns:e=\"http://ns.adobe.com/exif/1.0/\" e:GPSLatitude=\"47N\"/>",
             SPIM_METADATA_STRIP_GPS, "");
    xmp_case(XMP_HEAD "><exif:GPSLatitude>47N</rdf:Description>", SPIM_METADATA_STRIP_GPS,
             ""); /* unclosed */
    xmp_case(XMP_HEAD " exif:GPSLatitude=\"47N/>", SPIM_METADATA_STRIP_GPS, ""); /* open quote */
    xmp_case(XMP_HEAD "></exif:GPSLatitude>", SPIM_METADATA_STRIP_GPS, ""); /* stray end tag */
}

/* ---- JPEG header segments ---- */

static size_t segment(unsigned char *out, int marker, const char *sig, size_t sig_len,
                      const void *body, size_t n)
{
    out[0] = 0xFF;
    out[1] = (unsigned char)marker;
    out[2] = (unsigned char)((n + sig_len + 2) >> 8);
    out[3] = (unsigned char)(n + sig_len + 2);
    memcpy(out + 4, sig, sig_len);
    memcpy(out + 4 + sig_len, body, n);
    return 4 + sig_len + n;
}

TEST(jpeg_segments_per_policy)
{
    static const char *const names[3] = { "strip-gps", "keep", "strip" };
    unsigned char exif[600], app13[40], com[20], icc[40], jfif[20];
    size_t ne, n13, ncom, nicc, njfif;
    tiff t;
    int p;
    ne = segment(exif, 0xE1, "Exif\0", 6, t.b, make_tiff(&t, 0));
    n13 = segment(app13, 0xED, "Photoshop 3.0", 14, "8BIM", 4);
    ncom = segment(com, 0xFE, "", 0, "hello", 5);
    nicc = segment(icc, 0xE2, "ICC_PROFILE\0\1\1", 14, "profile", 7);
    njfif = segment(jfif, 0xE0, "JFIF\0", 5, "\1\1\0\0\1\0\1\0\0", 9);
    for (p = 0; p < 3; p++) {
        spim_buf out = SPIM_BUF_INIT;
        spim_meta m;
        unsigned tags[16];
        int count;
        REQUIRE(spim__jpeg_copy_segment(exif, ne, (spim_metadata)p, &out) == SPIM_OK);
        REQUIRE(out.len > 10 && out.data[1] == 0xE1);
        CHECK_INT(out.len - 2, spim__rd16(out.data + 2, 0));
        count = ifd0_tags(out.data + 10, out.len - 10, tags, 16);
        CHECKF(count == (p == 1 ? 7 : p == 0 ? 6 : 3), "%s: %d IFD0 tags", names[p], count);
        memset(&m, 0, sizeof m);
        spim__meta_set_exif(&m, out.data + 10, out.len - 10, NULL);
        CHECK_INT(6, m.orientation);
        spim__meta_free(&m);
        CHECKF(count < 0 || spim__rd32(out.data + 10 + 8 + 2 + 12 * (size_t)count, 0) == 0,
               "%s: the thumbnail (IFD1) is unlinked", names[p]);
        spim_buf_reset(&out);
        spim__jpeg_copy_segment(app13, n13, (spim_metadata)p, &out);
        spim__jpeg_copy_segment(com, ncom, (spim_metadata)p, &out);
        CHECKF(out.len == (p == 2 ? 0 : n13 + ncom), "%s: APP13 and COM: %zu bytes", names[p],
               out.len);
        spim_buf_reset(&out);
        spim__jpeg_copy_segment(icc, nicc, (spim_metadata)p, &out);
        spim__jpeg_copy_segment(jfif, njfif, (spim_metadata)p, &out);
        CHECK_MEM(icc, nicc, out.data, out.len < nicc ? out.len : nicc);
        CHECK_INT(nicc + njfif, out.len);
        spim_buf_free(&out);
    }
}

/* The chunks of out (length, type, data, CRC checked) as "TYPE:len " text. */
static void chunk_list(const spim_buf *out, char *list, size_t size)
{
    size_t pos = 0;
    list[0] = 0;
    while (pos + 12 <= out->len) {
        uint32_t n = spim__rd32(out->data + pos, 0);
        uLong crc;
        if (n > out->len - pos - 12) {
            snprintf(list + strlen(list), size - strlen(list), "BAD");
            return;
        }
        crc = crc32(crc32(0L, Z_NULL, 0), out->data + pos + 4, (uInt)n + 4);
        snprintf(list + strlen(list), size - strlen(list), "%.4s:%s ",
                 (const char *)out->data + pos + 4,
                 crc == spim__rd32(out->data + pos + 8 + n, 0) ? "crc" : "BADCRC");
        pos += 12 + n;
    }
}

TEST(png_chunks_per_policy)
{
    static const char xmp[] =
        XMP_HEAD " exif:GPSLatitude=\"47N\"><dc:creator>Ann</dc:creator></rdf:Description>";
    static const char *const want[3] = { "eXIf:crc iTXt:crc iTXt:crc tEXt:crc IDAT:crc ",
                                         "eXIf:crc iTXt:crc iTXt:crc tEXt:crc IDAT:crc ",
                                         "eXIf:crc IDAT:crc " };
    unsigned char itxt[600], zitxt[600], z[500];
    uLongf zn = sizeof z;
    size_t ni, nz, ne;
    char list[200];
    tiff t;
    int p;
    ne = make_tiff(&t, 1);
    memcpy(itxt, "XML:com.adobe.xmp\0\0\0en\0\0", 24); /* keyword, flag, method, language, "" */
    memcpy(itxt + 24, xmp, sizeof xmp - 1);
    ni = 24 + sizeof xmp - 1;
    memcpy(zitxt, "XML:com.adobe.xmp\0\1\0\0\0", 22);
    REQUIRE(compress(z, &zn, (const unsigned char *)xmp, sizeof xmp - 1) == Z_OK);
    memcpy(zitxt + 22, z, zn);
    nz = 22 + zn;
    for (p = 0; p < 3; p++) {
        spim_buf out = SPIM_BUF_INIT;
        int k = (int)(p == 2 ? 0 : 1);
        CHECK_INT(SPIM_OK, spim__png_copy_chunk((const unsigned char *)"eXIf", t.b, ne,
                                                (spim_metadata)p, &out));
        CHECK_INT(SPIM_OK, spim__png_copy_chunk((const unsigned char *)"iTXt", itxt, ni,
                                                (spim_metadata)p, &out));
        CHECK_INT(SPIM_OK, spim__png_copy_chunk((const unsigned char *)"iTXt", zitxt, nz,
                                                (spim_metadata)p, &out));
        CHECK_INT(SPIM_OK,
                  spim__png_copy_chunk((const unsigned char *)"tEXt", (const unsigned char *)"a\0b",
                                       3, (spim_metadata)p, &out));
        CHECK_INT(SPIM_OK, spim__png_copy_chunk((const unsigned char *)"IDAT", z, 10,
                                                (spim_metadata)p, &out));
        chunk_list(&out, list, sizeof list);
        CHECK_STR(want[p], list);
        CHECKF(has(out.data, out.len, "exif:GPS", 8) == (p == 1), "policy %d: exif:GPS present %d",
               p, has(out.data, out.len, "exif:GPS", 8));
        CHECKF(has(out.data, out.len, "<dc:creator>Ann", 15) == k, "policy %d: XMP kept %d", p, k);
        CHECK(p == 2 ||
              has(out.data, out.len, "en\0\0" XMP_HEAD, 4 + 10)); /* language fields kept */
        spim_buf_free(&out);
    }
}

TEST(option_names_the_policy)
{
    spim_stamp_options o;
    spim_error err;
    memset(&o, 0, sizeof o);
    CHECK_INT(SPIM_METADATA_STRIP_GPS, o.metadata);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "metadata", "strip", &err));
    CHECK_INT(SPIM_METADATA_STRIP, o.metadata);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "metadata", "keep", &err));
    CHECK_INT(SPIM_METADATA_KEEP, o.metadata);
    CHECK_INT(SPIM_OK, spim_stamp_option_set(&o, "metadata", "strip-gps", &err));
    CHECK_INT(SPIM_METADATA_STRIP_GPS, o.metadata);
    CHECK_INT(SPIM_ERR_CONFIG, spim_stamp_option_set(&o, "metadata", "none", &err));
    CHECK_STR("must be keep, strip-gps or strip, got 'none'", err.message);
}

int main(void)
{
    RUN(strip_gps_little_endian);
    RUN(strip_gps_big_endian);
    RUN(strip_keeps_orientation_artist_copyright_little_endian);
    RUN(strip_keeps_orientation_artist_copyright_big_endian);
    RUN(keep_and_default_policies);
    RUN(hostile_exif_never_crashes);
    RUN(xmp_gps_attributes_go);
    RUN(xmp_gps_elements_go);
    RUN(xmp_without_gps_is_unchanged_and_text_is_not_a_property);
    RUN(xmp_that_cannot_be_vouched_for_is_dropped);
    RUN(jpeg_segments_per_policy);
    RUN(png_chunks_per_policy);
    RUN(option_names_the_policy);
    return spim_test_finish();
}
