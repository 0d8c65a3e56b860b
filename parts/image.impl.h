/* ==========================================================================
   image
   stb_image, stb_image_write and stb_image_resize compiled here as static
   (unless SPIM_NO_STB_IMPLEMENTATION), so they allocate through SPIM_MALLOC
   and stb_image_write deflates PNGs with zlib.
   ========================================================================== */

#include <math.h>
#include <zlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SPIM__X86 1
#include <immintrin.h>
#elif defined(__aarch64__) && defined(__ARM_NEON)
#define SPIM__NEON 1
#include <arm_neon.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif
static unsigned char *spim__zlib_compress(unsigned char *data, int len, int *out_len, int quality);
#ifdef __cplusplus
}
#endif

#ifndef SPIM_NO_STB_IMPLEMENTATION
/* stb_image 2.27 reads memory it never wrote on some corrupt input (a JPEG
   scan using a Huffman table no DHT defined, say): zeroed allocations keep
   the decoded pixels from carrying old heap contents into the output. */
static void *spim__stbi_malloc(size_t n)
{
    void *p = SPIM_MALLOC(n);
    if (p) memset(p, 0, n);
    return p;
}

/* stb_image 2.27 declares stbi_set_unpremultiply_on_load_thread but defines
   it under a misspelt name, which gcc reports for a static build; later
   versions fix the name and ignore this macro. */
#define stbi__unpremultiply_on_load_thread stbi_set_unpremultiply_on_load_thread
#define STB_IMAGE_STATIC
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_RESIZE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_MALLOC(n) spim__stbi_malloc(n)
#define STBI_REALLOC(p, n) SPIM_REALLOC(p, n)
#define STBI_FREE(p) SPIM_FREE(p)
#define STBIW_MALLOC(n) SPIM_MALLOC(n)
#define STBIW_REALLOC(p, n) SPIM_REALLOC(p, n)
#define STBIW_FREE(p) SPIM_FREE(p)
#define STBIW_ZLIB_COMPRESS spim__zlib_compress
#define STBIR_MALLOC(n, c) ((void)(c), SPIM_MALLOC(n))
#define STBIR_FREE(p, c) ((void)(c), SPIM_FREE(p))
#endif

/* stb is not warning-clean under -Wall -Wextra -Wpedantic or as C++. */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wunknown-warning-option"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wuseless-cast"
#pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#pragma GCC diagnostic ignored "-Wmisleading-indentation"
#pragma GCC diagnostic ignored "-Wunused-value"
#endif
/* stb shifts signed ints into the sign bit (JPEG writer, decoders); benign
   on every target, but -fsanitize=shift would stop on it. */
#if defined(__clang__)
#pragma clang attribute push (__attribute__((no_sanitize("shift"))), apply_to = function)
#endif
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <stb/stb_image_resize.h>
#if defined(__clang__)
#pragma clang attribute pop
#endif
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define SPIM__ICC_MAX (16u << 20)          /* 255 JPEG APP2 chunks hold ~16 MiB */
#define SPIM__STAMP_MAX_PIXELS (16u << 20)
#define SPIM__MARGIN_MAX (1 << 24)

/* ---- zlib glue ------------------------------------------------------------ */

static voidpf spim__zalloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    if (size && items > (uInt)-1 / size) return Z_NULL;
    return SPIM_MALLOC((size_t)items * size);
}

static void spim__zfree(voidpf opaque, voidpf p)
{
    (void)opaque;
    SPIM_FREE(p);
}

/* STBIW_ZLIB_COMPRESS: level 6 compresses nearly as well as 8 at half the time. */
static unsigned char *spim__zlib_compress(unsigned char *data, int len, int *out_len, int quality)
{
    z_stream zs;
    uLong bound = compressBound((uLong)len);
    unsigned char *out = (unsigned char *)SPIM_MALLOC(bound);
    (void)quality;
    if (!out) return NULL;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = spim__zalloc;
    zs.zfree = spim__zfree;
    if (deflateInit(&zs, 6) != Z_OK) { SPIM_FREE(out); return NULL; }
    zs.next_in = data;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)bound;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END || zs.total_out > INT_MAX) {
        deflateEnd(&zs);
        SPIM_FREE(out);
        return NULL;
    }
    *out_len = (int)zs.total_out;
    deflateEnd(&zs);
    return out;
}

/* Inflate a zlib stream of at most `max` bytes; NULL when invalid or larger. */
static unsigned char *spim__zlib_inflate(const unsigned char *in, size_t len, size_t max, size_t *out_len)
{
    z_stream zs;
    size_t cap = 4096;
    unsigned char *out = (unsigned char *)SPIM_MALLOC(cap), *grown;
    int rc = Z_OK;
    if (!out || len > (uInt)-1) { SPIM_FREE(out); return NULL; }
    memset(&zs, 0, sizeof zs);
    zs.zalloc = spim__zalloc;
    zs.zfree = spim__zfree;
    if (inflateInit(&zs) != Z_OK) { SPIM_FREE(out); return NULL; }
    zs.next_in = (unsigned char *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    while (rc == Z_OK) {
        if (zs.total_out == cap) {
            if (cap >= max) break;
            cap = cap * 2 > max ? max : cap * 2;
            grown = (unsigned char *)SPIM_REALLOC(out, cap);
            if (!grown) break;
            out = grown;
        }
        zs.next_out = out + zs.total_out;
        zs.avail_out = (uInt)(cap - zs.total_out);
        rc = inflate(&zs, Z_NO_FLUSH);
    }
    inflateEnd(&zs);
    if (rc != Z_STREAM_END) { SPIM_FREE(out); return NULL; }
    *out_len = zs.total_out;
    return out;
}

/* ---- formats ---------------------------------------------------------------- */

/* Bytes up to and including a JPEG's SOI, 0 when there is none. stb_image
   skips any number of FF fill bytes before D8, so we must call that a JPEG
   too: every check on JPEG structure has to see what stb will decode. */
static size_t spim__jpeg_soi(const unsigned char *p, size_t len)
{
    size_t i = 0;
    if (len < 2 || p[0] != 0xFF) return 0;
    while (i < len && p[i] == 0xFF) i++;
    return i < len && p[i] == 0xD8 ? i + 1 : 0;
}

SPIMDEF spim_format spim_format_detect(const void *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    if (!p) return SPIM_FORMAT_UNKNOWN;
    if (spim__jpeg_soi(p, len)) return SPIM_FORMAT_JPEG;
    if (len >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return SPIM_FORMAT_PNG;
    if (len >= 2 && p[0] == 'B' && p[1] == 'M') return SPIM_FORMAT_BMP;
    if (len >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0)) return SPIM_FORMAT_GIF;
    if (len >= 4 && memcmp(p, "8BPS", 4) == 0) return SPIM_FORMAT_PSD;
    if (len >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return SPIM_FORMAT_PNM;
    if ((len >= 10 && memcmp(p, "#?RADIANCE", 10) == 0) || (len >= 6 && memcmp(p, "#?RGBE", 6) == 0))
        return SPIM_FORMAT_HDR;
    if (len >= 4 && memcmp(p, "\x53\x80\xF6\x34", 4) == 0) return SPIM_FORMAT_PIC;
    return SPIM_FORMAT_UNKNOWN;
}

SPIMDEF const char *spim_format_name(spim_format format)
{
    static const char *const names[] = { "unknown", "JPEG", "PNG", "BMP", "TGA", "GIF", "PSD", "PNM", "HDR", "PIC" };
    if ((int)format < 0 || (int)format >= (int)(sizeof names / sizeof names[0])) return "unknown";
    return names[format];
}

static int spim__format_writable(spim_format f)
{
    return f == SPIM_FORMAT_JPEG || f == SPIM_FORMAT_PNG || f == SPIM_FORMAT_BMP || f == SPIM_FORMAT_TGA;
}

/* The format actually written for a source `src` when `want` is requested. */
static spim_format spim__out_format(spim_format src, spim_format want)
{
    if (spim__format_writable(want)) return want;
    return spim__format_writable(src) ? src : SPIM_FORMAT_PNG;
}

SPIMDEF const char *spim_format_content_type(spim_format format)
{
    switch (spim__out_format(format, format)) {
    case SPIM_FORMAT_JPEG: return "image/jpeg";
    case SPIM_FORMAT_BMP: return "image/bmp";
    case SPIM_FORMAT_TGA: return "image/x-tga";
    default: return "image/png";
    }
}

SPIMDEF const char *spim_format_extension(spim_format format)
{
    switch (spim__out_format(format, format)) {
    case SPIM_FORMAT_JPEG: return "jpg";
    case SPIM_FORMAT_BMP: return "bmp";
    case SPIM_FORMAT_TGA: return "tga";
    default: return "png";
    }
}

SPIMDEF spim_format spim_format_from_name(const char *name)
{
    const char *dot = name ? strrchr(name, '.') : NULL;
    if (!dot) return SPIM_FORMAT_UNKNOWN;
    if (spim__strieq(dot, ".jpg") || spim__strieq(dot, ".jpeg")) return SPIM_FORMAT_JPEG;
    if (spim__strieq(dot, ".png")) return SPIM_FORMAT_PNG;
    if (spim__strieq(dot, ".bmp")) return SPIM_FORMAT_BMP;
    if (spim__strieq(dot, ".tga")) return SPIM_FORMAT_TGA;
    return SPIM_FORMAT_UNKNOWN;
}

SPIMDEF uint64_t spim_default_max_pixels(void)
{
    const char *env = getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
    char *end = NULL;
    unsigned long long mb = 1024;
    if (env && *env) {
        unsigned long long v = strtoull(env, &end, 10);
        if (end && *end == 0 && v > 0 && v <= (1ull << 30)) mb = v;
    }
    mb = mb > 40 ? mb - 24 : 16;
    return (uint64_t)(mb << 20) / 5;
}

SPIMDEF int spim_gravity_parse(const char *s)
{
    static const char *const names[] = { "se", "nw", "n", "ne", "w", "c", "e", "sw", "s" };
    int i;
    for (i = 0; s && i < 9; i++)
        if (spim__strieq(s, names[i])) return i;
    return -1;
}

/* ---- metadata: EXIF, ICC -------------------------------------------------- */

static unsigned spim__rd16(const unsigned char *p, int le)
{
    return le ? (unsigned)(p[0] | p[1] << 8) : (unsigned)(p[0] << 8 | p[1]);
}

static uint32_t spim__rd32(const unsigned char *p, int le)
{
    return le ? ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24)
              : ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3]);
}

/* Orientation (tag 0x0112) from IFD0 of a TIFF structure; 1 when absent. */
static int spim__tiff_orientation(const unsigned char *t, size_t n)
{
    int le;
    uint32_t ifd, i, count;
    if (n < 8) return 1;
    if (memcmp(t, "II*\0", 4) == 0) le = 1;
    else if (memcmp(t, "MM\0*", 4) == 0) le = 0;
    else return 1;
    ifd = spim__rd32(t + 4, le);
    if (ifd < 8 || ifd > n - 2) return 1;
    count = spim__rd16(t + ifd, le);
    for (i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)12 * i;
        unsigned type, v;
        if (e + 12 > n) break;
        if (spim__rd16(t + e, le) != 0x0112) continue;
        type = spim__rd16(t + e + 2, le);
        if (spim__rd32(t + e + 4, le) != 1) return 1;
        if (type == 3) v = spim__rd16(t + e + 8, le);
        else if (type == 4) v = (unsigned)spim__rd32(t + e + 8, le);
        else return 1;
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

static spim_status spim__meta_set_exif(spim_meta *m, const unsigned char *tiff, size_t n, spim_error *err)
{
    if (m->exif || n < 8) return SPIM_OK;
    m->exif = (unsigned char *)SPIM_MALLOC(n);
    if (!m->exif) return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory copying EXIF");
    memcpy(m->exif, tiff, n);
    m->exif_len = n;
    m->orientation = spim__tiff_orientation(tiff, n);
    return SPIM_OK;
}

/* ICC_PROFILE APP2 chunks, numbered 1..count; kept only when complete. */
typedef struct spim__icc_parts {
    const unsigned char *data[256];
    size_t len[256];
    int count;       /* 0 = none seen, -1 = inconsistent */
} spim__icc_parts;

static void spim__icc_add(spim__icc_parts *ip, const unsigned char *p, size_t n)
{
    int seq = p[12], count = p[13];
    if (ip->count < 0) return;
    if (count == 0 || seq == 0 || seq > count || (ip->count && ip->count != count) || ip->data[seq]) {
        ip->count = -1;
        return;
    }
    ip->count = count;
    ip->data[seq] = p + 14;
    ip->len[seq] = n - 14;
}

static spim_status spim__icc_join(spim_meta *m, const spim__icc_parts *ip, spim_error *err)
{
    size_t total = 0, off = 0;
    int i;
    if (ip->count <= 0) return SPIM_OK;
    for (i = 1; i <= ip->count; i++) {
        if (!ip->data[i]) return SPIM_OK;
        total += ip->len[i];
    }
    if (total < 128 || total > SPIM__ICC_MAX) return SPIM_OK;
    m->icc = (unsigned char *)SPIM_MALLOC(total);
    if (!m->icc) return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory copying the ICC profile");
    for (i = 1; i <= ip->count; i++) {
        memcpy(m->icc + off, ip->data[i], ip->len[i]);
        off += ip->len[i];
    }
    m->icc_len = total;
    return SPIM_OK;
}

/* The next marker after entropy-coded data at pos (stuffed FF00, restart
   markers and fill bytes are part of the scan); len when there is none. */
static size_t spim__jpeg_skip_scan(const unsigned char *p, size_t pos, size_t len)
{
    while (pos + 1 < len) {
        const unsigned char *f = (const unsigned char *)memchr(p + pos, 0xFF, len - pos - 1);
        unsigned next;
        if (!f) return len;
        pos = (size_t)(f - p);
        next = p[pos + 1];
        if (next == 0x00 || next == 0xFF || (next >= 0xD0 && next <= 0xD7)) { pos++; continue; }
        return pos;
    }
    return len;
}

/* stb_image 2.27 trusts the Huffman counts of a DHT segment and overruns its
   tables when they add up to more than 256: check every table first. */
static int spim__jpeg_dht_ok(const unsigned char *d, size_t n)
{
    while (n > 0) {
        size_t i, total = 0;
        if (n < 17 || (d[0] >> 4) > 1 || (d[0] & 15) > 3) return 0;
        for (i = 1; i <= 16; i++) total += d[i];
        if (total > 256 || 17 + total > n) return 0;
        d += 17 + total;
        n -= 17 + total;
    }
    return 1;
}

/* Decoding memory per pixel in tenths of a byte from a SOF segment: RGB or
   grey out, the component planes at their sampling, and for progressive
   JPEGs the 16-bit coefficients of every plane kept until the last scan. */
static unsigned spim__jpeg_cost(const unsigned char *d, size_t n, int progressive)
{
    unsigned nc = n >= 6 ? d[5] : 0, i, hmax = 1, vmax = 1, sum = 0;
    if (nc == 0 || n < 6 + 3 * (size_t)nc) return 0;
    for (i = 0; i < nc; i++) {
        unsigned h = d[7 + 3 * i] >> 4, v = d[7 + 3 * i] & 15;
        if (h > hmax) hmax = h;
        if (v > vmax) vmax = v;
        sum += h * v;
    }
    return (nc == 1 ? 10 : 30) + 10 * sum * (progressive ? 3 : 1) / (hmax * vmax);
}

/* One marker segment (payload d, n bytes) of a JPEG. */
static spim_status spim__jpeg_segment(spim_meta *m, spim__icc_parts *ip, int marker,
                                      const unsigned char *d, size_t n, spim_error *err)
{
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC && n >= 5) {
        m->height = spim__rd16(d + 1, 0);
        m->width = spim__rd16(d + 3, 0);
        m->decode_cost = spim__jpeg_cost(d, n, (marker & 3) == 2);
    } else if (marker == 0xC4 && !spim__jpeg_dht_ok(d, n)) {
        return spim_error_set(err, SPIM_ERR_IMAGE, "corrupt JPEG: bad Huffman table");
    } else if (marker == 0xE1 && n >= 14 && memcmp(d, "Exif\0\0", 6) == 0) {
        return spim__meta_set_exif(m, d + 6, n - 6, err);
    } else if (marker == 0xE2 && n > 14 && memcmp(d, "ICC_PROFILE\0", 12) == 0) {
        spim__icc_add(ip, d, n);
    }
    return SPIM_OK;
}

/* Walk every segment up to EOI, scans included (stb_image pads a truncated
   JPEG with grey instead of failing, so a missing EOI is our only sign). */
static spim_status spim__jpeg_meta(const unsigned char *p, size_t len, spim_meta *m, spim_error *err)
{
    spim__icc_parts *ip = (spim__icc_parts *)SPIM_MALLOC(sizeof *ip);
    size_t pos = spim__jpeg_soi(p, len), seg;
    int marker, scans = 0;
    spim_status st = SPIM_OK;
    if (!ip) return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory reading JPEG metadata");
    memset(ip, 0, sizeof *ip);
    while (st == SPIM_OK) {
        if (pos >= len || p[pos] != 0xFF) {
            st = spim_error_set(err, SPIM_ERR_IMAGE, scans ? "truncated JPEG: no end-of-image marker"
                                                            : "corrupt or truncated JPEG: no marker at byte %zu", pos);
            break;
        }
        while (pos < len && p[pos] == 0xFF) pos++;
        if (pos >= len) continue;
        marker = p[pos++];
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;
        if (marker == 0xD9) {
            if (!scans) st = spim_error_set(err, SPIM_ERR_IMAGE, "JPEG ends before its image data");
            else st = spim__icc_join(m, ip, err);
            break;
        }
        if (len - pos < 2 || (seg = spim__rd16(p + pos, 0)) < 2 || seg > len - pos) {
            st = spim_error_set(err, SPIM_ERR_IMAGE, "truncated JPEG: segment at byte %zu runs past the end", pos);
            break;
        }
        st = spim__jpeg_segment(m, ip, marker, p + pos + 2, seg - 2, err);
        pos += seg;
        if (marker == 0xDA) {
            scans++;
            pos = spim__jpeg_skip_scan(p, pos, len);
        }
    }
    SPIM_FREE(ip);
    return st;
}

static spim_status spim__png_iccp(spim_meta *m, const unsigned char *d, size_t n, spim_error *err)
{
    size_t name = 0, len = 0;
    unsigned char *icc;
    while (name < n && name < 80 && d[name]) name++;
    if (m->icc || name == 0 || name >= 80 || name + 2 > n || d[name + 1] != 0) return SPIM_OK;
    icc = spim__zlib_inflate(d + name + 2, n - name - 2, SPIM__ICC_MAX, &len);
    if (!icc) return SPIM_OK; /* a broken profile is dropped, the image is still fine */
    if (len < 128) { SPIM_FREE(icc); return SPIM_OK; }
    (void)err;
    m->icc = icc;
    m->icc_len = len;
    return SPIM_OK;
}

static spim_status spim__png_meta(const unsigned char *p, size_t len, spim_meta *m, spim_error *err)
{
    size_t pos = 8;
    spim_status st = SPIM_OK;
    while (st == SPIM_OK) {
        uint32_t n;
        const unsigned char *type;
        if (len - pos < 12)
            return spim_error_set(err, SPIM_ERR_IMAGE, "truncated PNG: no IEND chunk");
        n = spim__rd32(p + pos, 0);
        type = p + pos + 4;
        if (n > 0x7FFFFFFFu || n > len - pos - 12)
            return spim_error_set(err, SPIM_ERR_IMAGE,
                                  "corrupt PNG: chunk at byte %zu claims %lu bytes, past the end of the data",
                                  pos, (unsigned long)n);
        if (memcmp(type, "IHDR", 4) == 0 && n >= 10) {
            /* stb holds the inflated rows and the output at once; palettes become RGBA */
            static const unsigned chans[7] = { 1, 0, 3, 4, 2, 0, 4 };
            m->width = spim__rd32(p + pos + 8, 0);
            m->height = spim__rd32(p + pos + 12, 0);
            m->decode_cost = 20 * (p[pos + 17] <= 6 ? chans[p[pos + 17]] : 4) * (p[pos + 16] == 16 ? 2 : 1);
        } else if (memcmp(type, "iCCP", 4) == 0) st = spim__png_iccp(m, p + pos + 8, n, err);
        else if (memcmp(type, "eXIf", 4) == 0) st = spim__meta_set_exif(m, p + pos + 8, n, err);
        else if (memcmp(type, "IEND", 4) == 0) return SPIM_OK;
        pos += 12 + (size_t)n;
    }
    return st;
}

SPIMDEF spim_status spim_meta_read(const void *data, size_t len, spim_meta *meta, spim_error *err)
{
    const unsigned char *p = (const unsigned char *)data;
    spim_status st = SPIM_OK;
    memset(meta, 0, sizeof *meta);
    meta->orientation = 1;
    meta->format = spim_format_detect(data, len);
    if (meta->format == SPIM_FORMAT_JPEG) st = spim__jpeg_meta(p, len, meta, err);
    else if (meta->format == SPIM_FORMAT_PNG) st = spim__png_meta(p, len, meta, err);
    /* stb's GIF reader keeps RGBA, background and history (9 bytes a pixel);
       its HDR reader floats (12) before the 8-bit copy (3) */
    else if (meta->format == SPIM_FORMAT_GIF) meta->decode_cost = 90;
    else if (meta->format == SPIM_FORMAT_HDR) meta->decode_cost = 150;
    if (st != SPIM_OK) spim_meta_free(meta);
    return st;
}

SPIMDEF void spim_meta_free(spim_meta *meta)
{
    spim_format f = meta->format;
    SPIM_FREE(meta->exif);
    SPIM_FREE(meta->icc);
    memset(meta, 0, sizeof *meta);
    meta->format = f;
    meta->orientation = 1;
}

/* ---- the blend kernel ----------------------------------------------------- */

/* Exact source-over for one pixel of a destination with alpha (2 or 4
   channels, alpha last), a in 1..255 (see the formulas in the declarations). */
static void spim__blend_px_alpha(unsigned char *d, const unsigned char *s, unsigned a, int ch)
{
    unsigned da = d[ch - 1];
    int c;
    if (da == 255 || a == 255) {
        for (c = 0; c < ch - 1; c++) d[c] = (unsigned char)((s[c] * a + d[c] * (255 - a) + 127) / 255);
        d[ch - 1] = 255;
        return;
    }
    {
        unsigned ws = 255 * a, wd = da * (255 - a), den = ws + wd;
        for (c = 0; c < ch - 1; c++)
            d[c] = (unsigned char)((2 * (s[c] * ws + d[c] * wd) + den) / (2 * den));
        d[ch - 1] = (unsigned char)(a + (da * (255 - a) + 127) / 255);
    }
}

/* Opaque destinations are a byte stream: colour and alpha are laid out like
   the destination, so every byte blends alone. Eight-byte words of alpha
   that are all 0 or all 255 are skipped or copied. */
static void spim__bytes_scalar(unsigned char *d, const unsigned char *s, const unsigned char *a, size_t n)
{
    size_t i = 0;
    uint64_t w;
    while (i < n) {
        if (n - i >= 8) {
            memcpy(&w, a + i, 8);
            if (w == 0) { i += 8; continue; }
            if (w == ~(uint64_t)0) { memcpy(d + i, s + i, 8); i += 8; continue; }
        }
        if (a[i]) d[i] = (unsigned char)((s[i] * a[i] + d[i] * (255u - a[i]) + 127) / 255);
        i++;
    }
}

/* Rows take n bytes (whole pixels for 2 and 4 channels) of a layer: colour
   with 255 in any alpha slot, alpha repeated for each byte of a pixel. */
static void spim__row_scalar(unsigned char *d, const unsigned char *s, const unsigned char *a, size_t n, int ch)
{
    size_t i;
    if (ch == 1 || ch == 3) {
        spim__bytes_scalar(d, s, a, n);
        return;
    }
    for (i = 0; i < n; i += (size_t)ch)
        if (a[i]) spim__blend_px_alpha(d + i, s + i, a[i], ch);
}

#ifdef SPIM__X86
/* Which alpha bytes of a 16-byte block belong to the destination's alpha. */
static int spim__alpha_mask16(int ch)
{
    return ch == 4 ? 0x8888 : ch == 2 ? 0xAAAA : 0;
}

/* x = s*a + d*(255-a) = 255*d + (s-d)*a lies in 0..65025, so 16-bit
   arithmetic modulo 2^16 gives it exactly with one multiply; then
   (x + 127) / 255 = ((x + 128) * 257) >> 16 on that range (checked by the tests). */
static __m128i spim__blend8_sse2(__m128i d, __m128i s, __m128i a)
{
    __m128i x = _mm_add_epi16(_mm_sub_epi16(_mm_slli_epi16(d, 8), d), _mm_mullo_epi16(_mm_sub_epi16(s, d), a));
    return _mm_mulhi_epu16(_mm_add_epi16(x, _mm_set1_epi16(128)), _mm_set1_epi16(257));
}

static void spim__row_sse2(unsigned char *d, const unsigned char *s, const unsigned char *a, size_t n, int ch)
{
    const __m128i zero = _mm_setzero_si128(), ones = _mm_set1_epi8(-1);
    const int amask = spim__alpha_mask16(ch);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i va = _mm_loadu_si128((const __m128i *)(const void *)(a + i)), vs, vd, lo, hi;
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(va, zero)) == 0xFFFF) continue;
        vs = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        if (_mm_movemask_epi8(_mm_cmpeq_epi8(va, ones)) == 0xFFFF) {
            _mm_storeu_si128((__m128i *)(void *)(d + i), vs);
            continue;
        }
        vd = _mm_loadu_si128((const __m128i *)(const void *)(d + i));
        if ((_mm_movemask_epi8(_mm_cmpeq_epi8(vd, ones)) & amask) != amask) {
            spim__row_scalar(d + i, s + i, a + i, 16, ch);
            continue;
        }
        lo = spim__blend8_sse2(_mm_unpacklo_epi8(vd, zero), _mm_unpacklo_epi8(vs, zero), _mm_unpacklo_epi8(va, zero));
        hi = spim__blend8_sse2(_mm_unpackhi_epi8(vd, zero), _mm_unpackhi_epi8(vs, zero), _mm_unpackhi_epi8(va, zero));
        _mm_storeu_si128((__m128i *)(void *)(d + i), _mm_packus_epi16(lo, hi));
    }
    if (i < n) spim__row_scalar(d + i, s + i, a + i, n - i, ch);
}

__attribute__((target("avx2")))
static __m256i spim__blend16_avx2(__m256i d, __m256i s, __m256i a)
{
    __m256i x = _mm256_add_epi16(_mm256_sub_epi16(_mm256_slli_epi16(d, 8), d),
                                 _mm256_mullo_epi16(_mm256_sub_epi16(s, d), a));
    return _mm256_mulhi_epu16(_mm256_add_epi16(x, _mm256_set1_epi16(128)), _mm256_set1_epi16(257));
}

__attribute__((target("avx2")))
static void spim__row_avx2(unsigned char *d, const unsigned char *s, const unsigned char *a, size_t n, int ch)
{
    const __m256i zero = _mm256_setzero_si256(), ones = _mm256_set1_epi8(-1);
    const int amask = spim__alpha_mask16(ch);
    const unsigned amask32 = (unsigned)amask | (unsigned)amask << 16;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i va = _mm256_loadu_si256((const __m256i *)(const void *)(a + i)), vs, vd, lo, hi;
        if ((unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(va, zero)) == 0xFFFFFFFFu) continue;
        vs = _mm256_loadu_si256((const __m256i *)(const void *)(s + i));
        if ((unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(va, ones)) == 0xFFFFFFFFu) {
            _mm256_storeu_si256((__m256i *)(void *)(d + i), vs);
            continue;
        }
        vd = _mm256_loadu_si256((const __m256i *)(const void *)(d + i));
        if (((unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(vd, ones)) & amask32) != amask32) {
            spim__row_scalar(d + i, s + i, a + i, 32, ch);
            continue;
        }
        lo = spim__blend16_avx2(_mm256_unpacklo_epi8(vd, zero), _mm256_unpacklo_epi8(vs, zero),
                                _mm256_unpacklo_epi8(va, zero));
        hi = spim__blend16_avx2(_mm256_unpackhi_epi8(vd, zero), _mm256_unpackhi_epi8(vs, zero),
                                _mm256_unpackhi_epi8(va, zero));
        _mm256_storeu_si256((__m256i *)(void *)(d + i), _mm256_packus_epi16(lo, hi));
    }
    if (i < n) spim__row_sse2(d + i, s + i, a + i, n - i, ch);
}
#endif

#ifdef SPIM__NEON
/* x = s*a + d*(255-a); round(x/255) = (x + 128 + ((x + 128) >> 8)) >> 8. */
static uint8x8_t spim__blend8_neon(uint8x8_t d, uint8x8_t s, uint8x8_t a)
{
    uint16x8_t x = vmlal_u8(vmull_u8(s, a), d, vmvn_u8(a));
    return vrshrn_n_u16(vrsraq_n_u16(x, x, 8), 8);
}

static void spim__row_neon(unsigned char *d, const unsigned char *s, const unsigned char *a, size_t n, int ch)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint8x16_t va = vld1q_u8(a + i), vs, vd;
        if (vmaxvq_u8(va) == 0) continue;
        vs = vld1q_u8(s + i);
        if (vminvq_u8(va) == 255) { vst1q_u8(d + i, vs); continue; }
        vd = vld1q_u8(d + i);
        if (ch == 2 || ch == 4) {
            uint8x16_t da = vorrq_u8(vd, ch == 4 ? vreinterpretq_u8_u32(vdupq_n_u32(0x00FFFFFFu))
                                                 : vreinterpretq_u8_u16(vdupq_n_u16(0x00FFu)));
            if (vminvq_u8(da) != 255) { spim__row_scalar(d + i, s + i, a + i, 16, ch); continue; }
        }
        vst1q_u8(d + i, vcombine_u8(spim__blend8_neon(vget_low_u8(vd), vget_low_u8(vs), vget_low_u8(va)),
                                    spim__blend8_neon(vget_high_u8(vd), vget_high_u8(vs), vget_high_u8(va))));
    }
    if (i < n) spim__row_scalar(d + i, s + i, a + i, n - i, ch);
}
#endif

typedef void (*spim__row_fn)(unsigned char *d, const unsigned char *s, const unsigned char *a, size_t n, int ch);

SPIMDEF int spim_simd_available(spim_simd simd)
{
    switch (simd) {
    case SPIM_SIMD_AUTO: case SPIM_SIMD_SCALAR: return 1;
#ifdef SPIM__X86
    case SPIM_SIMD_SSE2: return 1;
    case SPIM_SIMD_AVX2: return __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
#ifdef SPIM__NEON
    case SPIM_SIMD_NEON: return 1;
#endif
    default: return 0;
    }
}

SPIMDEF const char *spim_simd_name(spim_simd simd)
{
    static const char *const names[] = { "auto", "scalar", "sse2", "avx2", "neon" };
    if ((int)simd < 0 || (int)simd > (int)SPIM_SIMD_NEON) return "unknown";
    return names[simd];
}

static spim__row_fn spim__row_for(spim_simd simd)
{
    if (simd == SPIM_SIMD_AUTO) {
        if (spim_simd_available(SPIM_SIMD_AVX2)) simd = SPIM_SIMD_AVX2;
        else if (spim_simd_available(SPIM_SIMD_SSE2)) simd = SPIM_SIMD_SSE2;
        else if (spim_simd_available(SPIM_SIMD_NEON)) simd = SPIM_SIMD_NEON;
    }
    switch (simd) {
#ifdef SPIM__X86
    case SPIM_SIMD_SSE2: return spim__row_sse2;
    case SPIM_SIMD_AVX2: return spim__row_avx2;
#endif
#ifdef SPIM__NEON
    case SPIM_SIMD_NEON: return spim__row_neon;
#endif
    default: return spim__row_scalar;
    }
}

/* ---- placement ------------------------------------------------------------ */

/* The stamp as placed on one image: the visible rectangle in stored
   coordinates (x, y, w, h) and how to fetch it. Rows are prepared one at a
   time, laid out like the destination's pixels (colour with 255 in an alpha
   slot, the blend alpha repeated for every byte), so a large stamp costs two
   rows of memory rather than two copies of itself. */
typedef struct spim__layer {
    int x, y, w, h, ch;
    int o, ws, hs, px, py;    /* orientation, stored size, stamp's screen position */
    unsigned op;
    const spim_stamp *st;
} spim__layer;

/* Where stored pixel (x, y) appears on screen under EXIF orientation o. */
static void spim__to_display(int o, int ws, int hs, int x, int y, int *dx, int *dy)
{
    switch (o) {
    case 2: *dx = ws - 1 - x; *dy = y; break;
    case 3: *dx = ws - 1 - x; *dy = hs - 1 - y; break;
    case 4: *dx = x; *dy = hs - 1 - y; break;
    case 5: *dx = y; *dy = x; break;
    case 6: *dx = hs - 1 - y; *dy = x; break;
    case 7: *dx = hs - 1 - y; *dy = ws - 1 - x; break;
    case 8: *dx = y; *dy = ws - 1 - x; break;
    default: *dx = x; *dy = y; break;
    }
}

/* The inverse: the stored pixel shown at screen position (x, y). */
static void spim__to_stored(int o, int ws, int hs, int x, int y, int *sx, int *sy)
{
    switch (o) {
    case 2: *sx = ws - 1 - x; *sy = y; break;
    case 3: *sx = ws - 1 - x; *sy = hs - 1 - y; break;
    case 4: *sx = x; *sy = hs - 1 - y; break;
    case 5: *sx = y; *sy = x; break;
    case 6: *sx = y; *sy = hs - 1 - x; break;
    case 7: *sx = ws - 1 - y; *sy = hs - 1 - x; break;
    case 8: *sx = ws - 1 - y; *sy = x; break;
    default: *sx = x; *sy = y; break;
    }
}

static int spim__floor_half(int v) { return v >= 0 ? v / 2 : -((1 - v) / 2); }

/* Top-left corner of a sw x sh stamp on a dw x dh screen. */
static void spim__place(spim_gravity g, int margin, int dw, int dh, int sw, int sh, int *x, int *y)
{
    int col = 2, row = 2; /* 0 = left/top, 1 = centre, 2 = right/bottom */
    switch (g) {
    case SPIM_GRAVITY_NW: col = 0; row = 0; break;
    case SPIM_GRAVITY_N: col = 1; row = 0; break;
    case SPIM_GRAVITY_NE: col = 2; row = 0; break;
    case SPIM_GRAVITY_W: col = 0; row = 1; break;
    case SPIM_GRAVITY_C: col = 1; row = 1; break;
    case SPIM_GRAVITY_E: col = 2; row = 1; break;
    case SPIM_GRAVITY_SW: col = 0; row = 2; break;
    case SPIM_GRAVITY_S: col = 1; row = 2; break;
    default: break;
    }
    *x = col == 0 ? margin : col == 1 ? spim__floor_half(dw - sw) : dw - sw - margin;
    *y = row == 0 ? margin : row == 1 ? spim__floor_half(dh - sh) : dh - sh - margin;
}

/* Fill one layer pixel from stamp pixel p (RGBA) with opacity op (0..255). */
static void spim__layer_px(unsigned char *c, unsigned char *al, const unsigned char *p, unsigned op, int ch)
{
    unsigned a = (p[3] * op + 127) / 255;
    int k;
    if (ch <= 2) c[0] = (unsigned char)((77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8);
    else memcpy(c, p, 3);
    if (ch == 2 || ch == 4) c[ch - 1] = 255;
    for (k = 0; k < ch; k++) al[k] = (unsigned char)a;
}

/* Place a stamp shown at screen (px, py) on a stored ws x hs image; 0 when
   none of it is visible. */
static int spim__layer_place(spim__layer *L, const spim_stamp *st, int px, int py, int o, int ws, int hs,
                             int ch, unsigned op)
{
    int ax, ay, bx, by, x0, y0, x1, y1;
    memset(L, 0, sizeof *L);
    spim__to_stored(o, ws, hs, px, py, &ax, &ay);
    spim__to_stored(o, ws, hs, px + st->width - 1, py + st->height - 1, &bx, &by);
    x0 = ax < bx ? ax : bx; x1 = (ax < bx ? bx : ax) + 1;
    y0 = ay < by ? ay : by; y1 = (ay < by ? by : ay) + 1;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > ws) x1 = ws;
    if (y1 > hs) y1 = hs;
    if (x0 >= x1 || y0 >= y1) return 0;
    L->x = x0; L->y = y0; L->w = x1 - x0; L->h = y1 - y0; L->ch = ch;
    L->o = o; L->ws = ws; L->hs = hs; L->px = px; L->py = py; L->op = op; L->st = st;
    return 1;
}

/* Row r (0..h-1) of the placed stamp, w * ch bytes of colour and of alpha. */
static void spim__layer_row(const spim__layer *L, int r, unsigned char *color, unsigned char *alpha)
{
    int x, u, v, y = L->y + r;
    size_t i = 0;
    for (x = L->x; x < L->x + L->w; x++, i += (size_t)L->ch) {
        spim__to_display(L->o, L->ws, L->hs, x, y, &u, &v);
        u -= L->px;
        v -= L->py;
        spim__layer_px(color + i, alpha + i, L->st->rgba + ((size_t)v * (size_t)L->st->width + (size_t)u) * 4,
                       L->op, L->ch);
    }
}

/* Resample the stamp so its longer side is `side` pixels, in premultiplied
   alpha (stb_image_resize weights colour by alpha unless told the input is
   already premultiplied), in sRGB so edges do not darken. */
static spim_status spim__stamp_resize(const spim_stamp *in, int side, spim_stamp *out, spim_error *err)
{
    int w = in->width, h = in->height;
    if (w >= h) { h = (int)((double)h * side / w + 0.5); w = side; }
    else { w = (int)((double)w * side / h + 0.5); h = side; }
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    out->width = w;
    out->height = h;
    out->rgba = (unsigned char *)SPIM_MALLOC((size_t)w * (size_t)h * 4);
    if (!out->rgba) return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory scaling the stamp");
    if (!stbir_resize_uint8_generic(in->rgba, in->width, in->height, 0, out->rgba, w, h, 0, 4, 3, 0,
                                    STBIR_EDGE_CLAMP, STBIR_FILTER_DEFAULT, STBIR_COLORSPACE_SRGB, NULL)) {
        spim_stamp_free(out);
        return spim_error_set(err, SPIM_ERR_NOMEM, "could not scale the stamp to %dx%d", w, h);
    }
    return SPIM_OK;
}

static spim_status spim__draw_check(const unsigned char *pixels, int width, int height, int channels,
                                    const spim_stamp *stamp, const spim_stamp_options *o, spim_error *err)
{
    if (!pixels || width <= 0 || height <= 0 || channels < 1 || channels > 4)
        return spim_error_set(err, SPIM_ERR_INVALID, "bad image for stamping (%dx%d, %d channels)", width, height, channels);
    if (!stamp || !stamp->rgba || stamp->width <= 0 || stamp->height <= 0)
        return spim_error_set(err, SPIM_ERR_INVALID, "no stamp loaded");
    if (!(o->scale >= 0 && o->scale <= 1))
        return spim_error_set(err, SPIM_ERR_CONFIG, "stamp scale %g is not between 0 and 1", o->scale);
    if (!(o->opacity >= 0 && o->opacity <= 1))
        return spim_error_set(err, SPIM_ERR_CONFIG, "stamp opacity %g is not between 0 and 1", o->opacity);
    if (o->margin < 0 || o->margin > SPIM__MARGIN_MAX)
        return spim_error_set(err, SPIM_ERR_CONFIG, "stamp margin %d is out of range", o->margin);
    if ((int)o->gravity < 0 || (int)o->gravity > (int)SPIM_GRAVITY_S)
        return spim_error_set(err, SPIM_ERR_CONFIG, "unknown gravity %d", (int)o->gravity);
    if (!spim_simd_available(o->simd))
        return spim_error_set(err, SPIM_ERR_CONFIG, "kernel %s is not available on this CPU", spim_simd_name(o->simd));
    return SPIM_OK;
}

SPIMDEF spim_status spim_stamp_draw(unsigned char *pixels, int width, int height, int channels,
                                    int orientation, const spim_stamp *stamp,
                                    const spim_stamp_options *opt, spim_error *err)
{
    spim_stamp_options o;
    spim_stamp scaled;
    const spim_stamp *use = stamp;
    spim__layer L;
    spim_status st;
    int dw, dh, px, py, r;
    unsigned op;
    if (opt) o = *opt;
    else memset(&o, 0, sizeof o);
    if ((st = spim__draw_check(pixels, width, height, channels, stamp, &o, err)) != SPIM_OK) return st;
    if (orientation < 1 || orientation > 8) orientation = 1;
    dw = orientation >= 5 ? height : width;
    dh = orientation >= 5 ? width : height;
    memset(&scaled, 0, sizeof scaled);
    if (o.scale > 0) {
        int side = (int)(o.scale * (dw < dh ? dw : dh) + 0.5);
        if (side < 1) side = 1;
        if (side != (stamp->width > stamp->height ? stamp->width : stamp->height)) {
            if ((st = spim__stamp_resize(stamp, side, &scaled, err)) != SPIM_OK) return st;
            use = &scaled;
        }
    }
    op = o.opacity > 0 ? (unsigned)(o.opacity * 255 + 0.5) : 255;
    spim__place(o.gravity, o.margin, dw, dh, use->width, use->height, &px, &py);
    if (spim__layer_place(&L, use, px, py, orientation, width, height, channels, op)) {
        size_t n = (size_t)L.w * (size_t)channels;
        unsigned char *color = (unsigned char *)SPIM_MALLOC(2 * n);
        spim__row_fn row = spim__row_for(o.simd);
        if (!color) st = spim_error_set(err, SPIM_ERR_NOMEM, "out of memory preparing the stamp");
        for (r = 0; color && r < L.h; r++) {
            spim__layer_row(&L, r, color, color + n);
            row(pixels + ((size_t)(L.y + r) * (size_t)width + (size_t)L.x) * (size_t)channels, color, color + n, n,
                channels);
        }
        SPIM_FREE(color);
    }
    spim_stamp_free(&scaled);
    return st;
}

/* ---- decode, encode, pipeline --------------------------------------------- */

/* stb_image inflates a PNG into a buffer that grows as long as the stream
   goes on, so a small image with a deflate bomb in its IDAT would take
   gigabytes. Inflate it once into a scratch buffer first and refuse a
   stream that runs past what the IHDR dimensions can hold. */
static spim_status spim__png_inflate_check(const unsigned char *p, size_t len, spim_error *err)
{
    static const int chans[7] = { 1, 0, 3, 1, 2, 0, 4 };
    unsigned char scratch[16384];
    uint64_t row, bound = 0;
    size_t pos = 8;
    z_stream zs;
    int rc = Z_OK;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = spim__zalloc;
    zs.zfree = spim__zfree;
    if (inflateInit(&zs) != Z_OK) return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory checking PNG data");
    while (rc == Z_OK && len - pos >= 12) {  /* spim_meta_read has checked every chunk length */
        uint32_t n = spim__rd32(p + pos, 0);
        const unsigned char *type = p + pos + 4, *d = p + pos + 8;
        /* spim_meta_read stops at IEND: chunks after it are unchecked */
        if (n > len - pos - 12 || memcmp(type, "IEND", 4) == 0) break;
        if (memcmp(type, "IHDR", 4) == 0 && n >= 13 && d[9] <= 6 && chans[d[9]]) {
            row = ((uint64_t)spim__rd32(d, 0) * d[8] * (uint64_t)chans[d[9]] + 7) / 8;
            bound = (uint64_t)spim__rd32(d + 4, 0) * (row + 8) + (1u << 20); /* + Adam7 filter bytes */
        } else if (memcmp(type, "IDAT", 4) == 0) {
            zs.next_in = (unsigned char *)(uintptr_t)d;
            zs.avail_in = n;
            while (rc == Z_OK && zs.avail_in > 0 && zs.total_out <= bound) {
                zs.next_out = scratch;
                zs.avail_out = sizeof scratch;
                rc = inflate(&zs, Z_NO_FLUSH);
                if (rc == Z_BUF_ERROR) rc = Z_OK;
            }
            if (zs.total_out > bound) break;
        }
        pos += 12 + (size_t)n;
    }
    inflateEnd(&zs);
    if (bound && zs.total_out > bound)
        return spim_error_set(err, SPIM_ERR_IMAGE, "corrupt PNG: image data inflates past %llu bytes",
                              (unsigned long long)bound);
    return SPIM_OK;  /* other damage is left for stb_image to report */
}

/* Pixels weighted by decoding memory (see the budget in the declarations). */
static uint64_t spim__weighted_pixels(const spim_meta *m, uint64_t w, uint64_t h)
{
    uint64_t px = w * h; /* both below 2^32 */
    if (m->decode_cost <= 45) return px;
    return px > UINT64_MAX / m->decode_cost ? UINT64_MAX : px * m->decode_cost / 45;
}

static spim_status spim__over_budget(const spim_meta *m, uint64_t w, uint64_t h, uint64_t max, spim_error *err)
{
    return spim_error_set(err, SPIM_ERR_TOO_LARGE, "%s of %llux%llu is %llu pixels (%llu counting decoder memory), "
                          "over the budget of %llu", spim_format_name(m->format), (unsigned long long)w,
                          (unsigned long long)h, (unsigned long long)w * (unsigned long long)h,
                          (unsigned long long)spim__weighted_pixels(m, w, h), (unsigned long long)max);
}

/* stb_image 2.27 reads the numbers of a PNM header into an int with no limit
   (signed overflow), and leaves the pixels it could not read uninitialised
   (heap contents would end up in the output); 2.28 checks both. Parse the
   header the way stb does and refuse either case: NULL when fine. */
static const char *spim__pnm_check(const unsigned char *p, size_t len)
{
    size_t pos = 2, digits;
    uint64_t v[3] = { 0, 0, 0 };
    int k;
    for (k = 0; k < 3; k++) {
        for (;;) {
            while (pos < len && isspace(p[pos])) pos++;
            if (pos >= len || p[pos] != '#') break;
            while (pos < len && p[pos] != '\n' && p[pos] != '\r') pos++;
        }
        for (digits = 0; pos < len && p[pos] >= '0' && p[pos] <= '9'; pos++) {
            if (++digits > 9) return "corrupt PNM: a header number has 10 digits or more";
            v[k] = v[k] * 10 + (uint64_t)(p[pos] - '0');
        }
    }
    /* the pixels start after the one character that ended the max value */
    if ((uint64_t)(len - (pos < len ? pos + 1 : len)) <
        v[0] * v[1] * (p[1] == '6' ? 3u : 1u) * (v[2] > 255 ? 2u : 1u))
        return "truncated PNM: fewer pixel bytes than the header declares";
    return NULL;
}

/* Everything refused before stb_image allocates: the budget (from our own
   header parse first, since stb reports some huge claims as "unknown type")
   and the inputs this stb version mishandles. */
static spim_status spim__decode_check(const unsigned char *p, size_t len, uint64_t max_pixels, spim_meta *m,
                                      spim_error *err)
{
    int w = 0, h = 0, n = 0;
    const char *why;
    if (m->format == SPIM_FORMAT_PNM && (why = spim__pnm_check(p, len)) != NULL)
        return spim_error_set(err, SPIM_ERR_IMAGE, "%s", why);
    if (spim__weighted_pixels(m, m->width, m->height) > max_pixels)
        return spim__over_budget(m, m->width, m->height, max_pixels, err);
    if (!stbi_info_from_memory(p, (int)len, &w, &h, &n))
        return spim_error_set(err, SPIM_ERR_IMAGE, "not a readable image (%s): %s", spim_format_name(m->format),
                              stbi_failure_reason());
    if (m->format == SPIM_FORMAT_UNKNOWN) m->format = SPIM_FORMAT_TGA; /* the one without magic */
    if (w <= 0 || h <= 0) /* stb's PNM reader accepts a 3x0 header and "decodes" it */
        return spim_error_set(err, SPIM_ERR_IMAGE, "not an image: %s of %dx%d pixels", spim_format_name(m->format), w, h);
    if (spim__weighted_pixels(m, (uint64_t)w, (uint64_t)h) > max_pixels)
        return spim__over_budget(m, (uint64_t)w, (uint64_t)h, max_pixels, err);
    if (m->format == SPIM_FORMAT_PNG) return spim__png_inflate_check(p, len, err);
    return SPIM_OK;
}

SPIMDEF spim_status spim_image_decode(const void *data, size_t len, uint64_t max_pixels,
                                      spim_image *img, spim_error *err)
{
    spim_status st;
    memset(img, 0, sizeof *img);
    img->meta.orientation = 1;
    if (!data || len == 0) return spim_error_set(err, SPIM_ERR_IMAGE, "empty input: not an image");
    if (len > INT_MAX) return spim_error_set(err, SPIM_ERR_TOO_LARGE, "input of %zu bytes is too large", len);
    if ((st = spim_meta_read(data, len, &img->meta, err)) != SPIM_OK) return st;
    if (!max_pixels) max_pixels = spim_default_max_pixels();
    st = spim__decode_check((const unsigned char *)data, len, max_pixels, &img->meta, err);
    if (st == SPIM_OK) {
        img->pixels = stbi_load_from_memory((const stbi_uc *)data, (int)len, &img->width, &img->height,
                                            &img->channels, 0);
        if (!img->pixels)
            st = spim_error_set(err, SPIM_ERR_IMAGE, "cannot decode %s: %s", spim_format_name(img->meta.format),
                                stbi_failure_reason());
    }
    if (st != SPIM_OK) spim_meta_free(&img->meta);
    return st;
}

SPIMDEF spim_status spim_image_stamp(spim_image *img, const spim_stamp *stamp,
                                     const spim_stamp_options *opt, spim_error *err)
{
    spim_format out = spim__out_format(img->meta.format, opt ? opt->output_format : SPIM_FORMAT_UNKNOWN);
    /* BMP and TGA carry no EXIF: their viewers show the stored pixels as they are */
    int orientation = (out == SPIM_FORMAT_JPEG || out == SPIM_FORMAT_PNG) ? img->meta.orientation : 1;
    return spim_stamp_draw(img->pixels, img->width, img->height, img->channels, orientation, stamp, opt, err);
}

SPIMDEF void spim_image_free(spim_image *img)
{
    SPIM_FREE(img->pixels);
    img->pixels = NULL;
    spim_meta_free(&img->meta);
}

/* Output goes straight into the caller's buffer; metadata (JPEG segments,
   PNG chunks) is slipped in once the leading part has passed: SOI and stb's
   JFIF APP0 for JPEG, the signature and IHDR (33 bytes) for PNG. */
typedef struct spim__sink {
    spim_buf *out;
    size_t start, png_head;
    const spim_buf *meta;
    int inserted, failed;
} spim__sink;

static void spim__sink_write(void *ctx, void *data, int size)
{
    spim__sink *k = (spim__sink *)ctx;
    size_t have, head;
    unsigned char *p;
    if (k->failed || spim_buf_append(k->out, data, (size_t)size) != SPIM_OK) { k->failed = 1; return; }
    if (k->inserted || !k->meta->len) return;
    have = k->out->len - k->start;
    p = k->out->data + k->start;
    if (have < (k->png_head ? k->png_head : 6)) return;
    head = k->png_head ? k->png_head : (p[2] == 0xFF && p[3] == 0xE0) ? 4 + spim__rd16(p + 4, 0) : 2;
    if (have < head) return;
    k->inserted = 1;
    if (spim_buf_reserve(k->out, k->meta->len) != SPIM_OK) { k->failed = 1; return; }
    p = k->out->data + k->start;
    memmove(p + head + k->meta->len, p + head, have - head);
    memcpy(p + head, k->meta->data, k->meta->len);
    k->out->len += k->meta->len;
    k->out->data[k->out->len] = 0;
}

/* Unlink IFD1 from a TIFF structure (zero IFD0's next-IFD offset): IFD1 is
   the embedded thumbnail, which would still show the photo without the
   stamp. Its bytes stay where they are; everything else is untouched. */
static void spim__exif_drop_thumbnail(unsigned char *t, size_t n)
{
    int le;
    uint32_t ifd;
    size_t next;
    if (n < 8) return;
    if (memcmp(t, "II*\0", 4) == 0) le = 1;
    else if (memcmp(t, "MM\0*", 4) == 0) le = 0;
    else return;
    ifd = spim__rd32(t + 4, le);
    if (ifd < 8 || ifd > n - 2) return;
    next = (size_t)ifd + 2 + (size_t)12 * spim__rd16(t + ifd, le);
    if (next <= n - 4) memset(t + next, 0, 4);
}

/* APP1 Exif and APP2 ICC_PROFILE segments for a JPEG. */
static spim_status spim__jpeg_meta_segments(const spim_meta *m, spim_buf *b)
{
    unsigned char hdr[18];
    size_t off = 0, n;
    int seq, count;
    if (m->exif && m->exif_len <= 65535 - 8) {
        hdr[0] = 0xFF; hdr[1] = 0xE1;
        hdr[2] = (unsigned char)((m->exif_len + 8) >> 8); hdr[3] = (unsigned char)(m->exif_len + 8);
        memcpy(hdr + 4, "Exif\0\0", 6);
        if (spim_buf_append(b, hdr, 10) || spim_buf_append(b, m->exif, m->exif_len)) return SPIM_ERR_NOMEM;
        spim__exif_drop_thumbnail(b->data + b->len - m->exif_len, m->exif_len);
    }
    if (!m->icc) return SPIM_OK;
    count = (int)((m->icc_len + 65518) / 65519);
    if (count > 255) return SPIM_OK;
    for (seq = 1; seq <= count; seq++, off += n) {
        n = m->icc_len - off < 65519 ? m->icc_len - off : 65519;
        hdr[0] = 0xFF; hdr[1] = 0xE2;
        hdr[2] = (unsigned char)((n + 16) >> 8); hdr[3] = (unsigned char)(n + 16);
        memcpy(hdr + 4, "ICC_PROFILE\0", 12);
        hdr[16] = (unsigned char)seq; hdr[17] = (unsigned char)count;
        if (spim_buf_append(b, hdr, 18) || spim_buf_append(b, m->icc + off, n)) return SPIM_ERR_NOMEM;
    }
    return SPIM_OK;
}

static spim_status spim__png_chunk(spim_buf *b, const char *type, const unsigned char *d1, size_t n1,
                                   const unsigned char *d2, size_t n2)
{
    unsigned char hdr[8], crc[4];
    uLong c = crc32(0L, Z_NULL, 0);
    size_t n = n1 + n2;
    if (n > 0x7FFFFFFFu) return SPIM_ERR_TOO_LARGE;
    hdr[0] = (unsigned char)(n >> 24); hdr[1] = (unsigned char)(n >> 16);
    hdr[2] = (unsigned char)(n >> 8); hdr[3] = (unsigned char)n;
    memcpy(hdr + 4, type, 4);
    c = crc32(c, hdr + 4, 4);
    if (n1) c = crc32(c, d1, (uInt)n1);
    if (n2) c = crc32(c, d2, (uInt)n2);
    crc[0] = (unsigned char)(c >> 24); crc[1] = (unsigned char)(c >> 16);
    crc[2] = (unsigned char)(c >> 8); crc[3] = (unsigned char)c;
    if (spim_buf_append(b, hdr, 8) || spim_buf_append(b, d1, n1) || spim_buf_append(b, d2, n2) ||
        spim_buf_append(b, crc, 4))
        return SPIM_ERR_NOMEM;
    return SPIM_OK;
}

/* iCCP (zlib-compressed profile) and eXIf chunks for a PNG. */
static spim_status spim__png_meta_chunks(const spim_meta *m, spim_buf *b)
{
    static const unsigned char name[] = "ICC profile\0"; /* name, NUL, method 0 (the terminator) */
    if (m->icc) {
        int zlen = 0;
        unsigned char *z = m->icc_len <= INT_MAX ? spim__zlib_compress(m->icc, (int)m->icc_len, &zlen, 6) : NULL;
        spim_status st;
        if (!z) return SPIM_ERR_NOMEM;
        st = spim__png_chunk(b, "iCCP", name, sizeof name, z, (size_t)zlen);
        SPIM_FREE(z);
        if (st != SPIM_OK) return st;
    }
    if (m->exif) {
        unsigned char *t = (unsigned char *)SPIM_MALLOC(m->exif_len);
        spim_status st;
        if (!t) return SPIM_ERR_NOMEM;
        memcpy(t, m->exif, m->exif_len);
        spim__exif_drop_thumbnail(t, m->exif_len);
        st = spim__png_chunk(b, "eXIf", t, m->exif_len, NULL, 0);
        SPIM_FREE(t);
        return st;
    }
    return SPIM_OK;
}

SPIMDEF spim_status spim_image_encode(const spim_image *img, spim_format format, int quality,
                                      spim_buf *out, spim_error *err)
{
    spim_buf meta = SPIM_BUF_INIT;
    spim__sink k;
    int ok = 0, w = img->width, h = img->height, n = img->channels;
    format = spim__out_format(img->meta.format, format);
    if (!img->pixels) return spim_error_set(err, SPIM_ERR_INVALID, "no pixels to encode");
    memset(&k, 0, sizeof k);
    k.out = out;
    k.start = out->len;
    k.meta = &meta;
    if (format == SPIM_FORMAT_JPEG) {
        if (quality <= 0) quality = 90;
        if (quality > 100) quality = 100;
        if (spim__jpeg_meta_segments(&img->meta, &meta) != SPIM_OK) k.failed = 1;
        else ok = stbi_write_jpg_to_func(spim__sink_write, &k, w, h, n, img->pixels, quality);
    } else if (format == SPIM_FORMAT_PNG) {
        k.png_head = 33;
        if (spim__png_meta_chunks(&img->meta, &meta) != SPIM_OK) k.failed = 1;
        else ok = stbi_write_png_to_func(spim__sink_write, &k, w, h, n, img->pixels, 0);
    } else if (format == SPIM_FORMAT_BMP) {
        ok = stbi_write_bmp_to_func(spim__sink_write, &k, w, h, n, img->pixels);
    } else {
        ok = stbi_write_tga_to_func(spim__sink_write, &k, w, h, n, img->pixels);
    }
    spim_buf_free(&meta);
    if (!ok || k.failed) {
        out->len = k.start;
        return spim_error_set(err, SPIM_ERR_NOMEM, "%s encoding failed (out of memory)", spim_format_name(format));
    }
    return SPIM_OK;
}

SPIMDEF spim_status spim_stamp_image(const void *in, size_t in_len, const spim_stamp *stamp,
                                     const spim_stamp_options *opt, spim_buf *out,
                                     spim_image_info *info, spim_error *err)
{
    spim_stamp_options o;
    spim_image img;
    spim_status st;
    if (opt) o = *opt;
    else memset(&o, 0, sizeof o);
    if ((st = spim_image_decode(in, in_len, o.max_pixels, &img, err)) != SPIM_OK) return st;
    st = spim_image_stamp(&img, stamp, &o, err);
    if (st == SPIM_OK) st = spim_image_encode(&img, o.output_format, o.quality, out, err);
    if (info) {
        info->format = img.meta.format;
        info->out_format = spim__out_format(img.meta.format, o.output_format);
        info->content_type = spim_format_content_type(info->out_format);
        info->extension = spim_format_extension(info->out_format);
        info->width = img.width;
        info->height = img.height;
        info->orientation = img.meta.orientation;
    }
    spim_image_free(&img);
    return st;
}

SPIMDEF spim_status spim_stamp_load(spim_stamp *stamp, const void *data, size_t len, spim_error *err)
{
    int w = 0, h = 0, n = 0, ok;
    spim_meta m;
    spim_status st;
    memset(stamp, 0, sizeof *stamp);
    if (!data || len == 0 || len > INT_MAX) return spim_error_set(err, SPIM_ERR_IMAGE, "stamp: empty or too large");
    /* the same checks as spim_image_decode before stb sees the bytes */
    if ((st = spim_meta_read(data, len, &m, err)) != SPIM_OK) return st;
    spim_meta_free(&m);
    if (m.format == SPIM_FORMAT_PNM && spim__pnm_check((const unsigned char *)data, len))
        return spim_error_set(err, SPIM_ERR_IMAGE, "stamp: %s", spim__pnm_check((const unsigned char *)data, len));
    /* stb_image 2.27 converts a 16-bit PNM to RGBA with its 8-bit routine and
       then reads twice the buffer (2.28 fixed it): no such stamps */
    if (m.format == SPIM_FORMAT_PNM && stbi_is_16_bit_from_memory((const stbi_uc *)data, (int)len))
        return spim_error_set(err, SPIM_ERR_IMAGE, "stamp: 16-bit PNM is not supported");
    ok = stbi_info_from_memory((const stbi_uc *)data, (int)len, &w, &h, &n);
    if (!ok || w <= 0 || h <= 0)
        return spim_error_set(err, SPIM_ERR_IMAGE, "stamp is not a readable image: %s",
                              ok ? "no pixels" : stbi_failure_reason());
    if ((uint64_t)w * (uint64_t)h > SPIM__STAMP_MAX_PIXELS)
        return spim_error_set(err, SPIM_ERR_TOO_LARGE, "stamp of %dx%d is over %u pixels", w, h, SPIM__STAMP_MAX_PIXELS);
    stamp->rgba = stbi_load_from_memory((const stbi_uc *)data, (int)len, &stamp->width, &stamp->height, &n, 4);
    if (!stamp->rgba)
        return spim_error_set(err, SPIM_ERR_IMAGE, "cannot decode the stamp: %s", stbi_failure_reason());
    return SPIM_OK;
}

SPIMDEF void spim_stamp_free(spim_stamp *stamp)
{
    SPIM_FREE(stamp->rgba);
    memset(stamp, 0, sizeof *stamp);
}

#ifdef __cplusplus
}
#endif
