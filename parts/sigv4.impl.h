/* ==========================================================================
   sigv4
   Canonical request -> string to sign -> HMAC chain, for header and query
   (presigned URL) authentication. Everything is computed from the request,
   the credentials and the signing time passed in: no clock, no globals.
   ========================================================================== */

#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPIM__SIGV4_ALGORITHM "AWS4-HMAC-SHA256"

SPIMDEF void spim_amz_date(int64_t time, char out[17])
{
    /* civil-from-days (proleptic Gregorian), so no dependency on gmtime_r or
       on the width of time_t; clamped to years 0000..9999, which keeps the
       fixed width and the arithmetic from overflowing */
    int64_t t = time < INT64_C(-62167219200) ? INT64_C(-62167219200)
              : time > INT64_C(253402300799) ? INT64_C(253402300799) : time;
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t secs = t - days * 86400;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    int64_t y = yoe + era * 400 + (m <= 2);
    int fields[6], i;
    fields[0] = (int)(y / 100); fields[1] = (int)(y % 100); fields[2] = m; fields[3] = d;
    fields[4] = (int)(secs / 3600); fields[5] = (int)(secs / 60 % 60);
    for (i = 0; i < 6; i++) {
        out[2 * i + (i >= 4)] = (char)('0' + fields[i] / 10);
        out[2 * i + 1 + (i >= 4)] = (char)('0' + fields[i] % 10);
    }
    out[8] = 'T';
    out[13] = (char)('0' + secs % 60 / 10);
    out[14] = (char)('0' + secs % 10);
    out[15] = 'Z';
    out[16] = 0;
}

static int spim__is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

SPIMDEF spim_status spim_uri_encode(spim_buf *out, const char *s, size_t len, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    if (spim_buf_reserve(out, len) != SPIM_OK) return SPIM_ERR_NOMEM;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[3];
        spim_status st;
        if (spim__is_unreserved(c) || (keep_slash && c == '/')) {
            st = spim_buf_append(out, &c, 1);
        } else {
            esc[0] = '%';
            esc[1] = hex[c >> 4];
            esc[2] = hex[c & 15];
            st = spim_buf_append(out, esc, 3);
        }
        if (st != SPIM_OK) return st;
    }
    return spim_buf_append(out, "", 0); /* a NUL even when empty */
}

static int spim__hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* %XX -> byte; a '%' not followed by two hex digits stays literal, and '+'
   is literal too (RFC 3986, not form encoding). */
static spim_status spim__uri_decode(spim_buf *out, const char *s, size_t len)
{
    size_t i;
    spim_buf_reset(out);
    if (spim_buf_reserve(out, len) != SPIM_OK) return SPIM_ERR_NOMEM;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && i + 2 < len && spim__hexval(s[i + 1]) >= 0 && spim__hexval(s[i + 2]) >= 0) {
            c = (unsigned char)(spim__hexval(s[i + 1]) * 16 + spim__hexval(s[i + 2]));
            i += 2;
        }
        out->data[out->len++] = c;
    }
    out->data[out->len] = 0;
    return SPIM_OK;
}

/* ---- URL pieces ---------------------------------------------------------- */

typedef struct spim__url {
    const char *scheme, *authority, *path, *query;
    size_t scheme_len, authority_len, path_len, query_len;
    size_t base_len;                 /* scheme://authority/path: what precedes '?' */
} spim__url;

static spim_status spim__url_split(const char *url, spim__url *u, spim_error *err)
{
    const char *p = strstr(url, "://");
    if (!p || p == url) return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: URL without a scheme");
    memset(u, 0, sizeof *u);
    u->scheme = url;
    u->scheme_len = (size_t)(p - url);
    u->authority = p + 3;
    u->authority_len = strcspn(u->authority, "/?#");
    if (!u->authority_len) return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: URL without a host");
    u->path = u->authority + u->authority_len;
    u->path_len = strcspn(u->path, "?#");
    u->base_len = (size_t)(u->path + u->path_len - url);
    if (u->path[u->path_len] == '?') {
        u->query = u->path + u->path_len + 1;
        u->query_len = strcspn(u->query, "#");
    }
    return SPIM_OK;
}

static int spim__ieq_n(const char *a, size_t an, const char *b)
{
    size_t i;
    if (an != strlen(b)) return 0;
    for (i = 0; i < an; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) return 0;
    return 1;
}

/* The Host value: lower-cased, without userinfo, without the scheme's
   default port (what HTTP clients send, and what botocore signs). */
static spim_status spim__url_host(const spim__url *u, spim_buf *out, spim_error *err)
{
    const char *a = u->authority, *end = u->authority + u->authority_len, *at, *colon = NULL, *q;
    size_t i, host_len;
    long port = -1;
    for (at = end; at > a; at--)
        if (at[-1] == '@') { a = at; break; }
    if (*a == '[') {
        q = (const char *)memchr(a, ']', (size_t)(end - a));
        if (!q) return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: bad IPv6 host in URL");
        if (q + 1 < end && q[1] == ':') colon = q + 1;
    } else {
        for (q = a; q < end; q++)
            if (*q == ':') colon = q;
    }
    host_len = (size_t)((colon ? colon : end) - a);
    if (colon && colon + 1 < end) {
        port = 0;
        for (q = colon + 1; q < end; q++) {
            if (*q < '0' || *q > '9' || port > 65535)
                return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: bad port in URL");
            port = port * 10 + (*q - '0');
        }
        if (port > 65535) return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: bad port in URL");
    }
    if (!host_len) return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: URL without a host");
    if ((port == 80 && spim__ieq_n(u->scheme, u->scheme_len, "http")) ||
        (port == 443 && spim__ieq_n(u->scheme, u->scheme_len, "https")))
        port = -1;
    spim_buf_reset(out);
    for (i = 0; i < host_len; i++) {
        char c = (char)tolower((unsigned char)a[i]);
        if (spim_buf_append(out, &c, 1) != SPIM_OK) return SPIM_ERR_NOMEM;
    }
    if (port >= 0 && spim_buf_appendf(out, ":%ld", port) != SPIM_OK) return SPIM_ERR_NOMEM;
    return SPIM_OK;
}

/* RFC 3986 5.2.4 dot-segment removal plus collapsing of empty segments, the
   way AWS services other than S3 canonicalise: "/a/./b/../c//" -> "/a/c/". */
static spim_status spim__normalize_path(spim_buf *out, const char *p, size_t len)
{
    size_t i = 0, seg, seg_len, trailing = len && p[len - 1] == '/';
    spim_buf_reset(out);
    if (spim_buf_append(out, "/", 1) != SPIM_OK) return SPIM_ERR_NOMEM;
    while (i < len) {
        while (i < len && p[i] == '/') i++;
        seg = i;
        while (i < len && p[i] != '/') i++;
        seg_len = i - seg;
        if (seg_len == 0 || (seg_len == 1 && p[seg] == '.')) continue;
        if (seg_len == 2 && p[seg] == '.' && p[seg + 1] == '.') {
            /* drop the last segment and its leading slash, keep the root */
            if (out->len > 1) {
                while (out->len > 1 && out->data[out->len - 1] != '/') out->len--;
                if (out->len > 1) out->len--;
            }
            out->data[out->len] = 0;
            continue;
        }
        if (out->len > 1 && spim_buf_append(out, "/", 1) != SPIM_OK) return SPIM_ERR_NOMEM;
        if (spim_buf_append(out, p + seg, seg_len) != SPIM_OK) return SPIM_ERR_NOMEM;
    }
    if (trailing && out->len > 1 && spim_buf_append(out, "/", 1) != SPIM_OK) return SPIM_ERR_NOMEM;
    return SPIM_OK;
}

static spim_status spim__canonical_path(spim_buf *out, const spim__url *u, const spim_sigv4_params *params)
{
    spim_buf norm = SPIM_BUF_INIT;
    spim_status st;
    if (u->path_len == 0) return spim_buf_append_str(out, "/");
    if (params->mode == SPIM_SIGV4_S3) return spim_buf_append(out, u->path, u->path_len);
    if (params->flags & SPIM_SIGV4_NO_NORMALIZE) return spim_uri_encode(out, u->path, u->path_len, 1);
    st = spim__normalize_path(&norm, u->path, u->path_len);
    if (st == SPIM_OK) st = spim_uri_encode(out, (const char *)norm.data, norm.len, 1);
    spim_buf_free(&norm);
    return st;
}

/* ---- query --------------------------------------------------------------- */

typedef struct spim__qparam {
    size_t key_off, key_len, val_off, val_len; /* into spim__query.text */
    const char *key, *val;                     /* set by spim__query_bind */
} spim__qparam;

typedef struct spim__query {
    spim_buf text;                             /* encoded names and values */
    spim__qparam *items;
    size_t count, cap;
} spim__query;

static void spim__query_free(spim__query *q)
{
    spim_buf_free(&q->text);
    SPIM_FREE(q->items);
    memset(q, 0, sizeof *q);
}

/* One pair, already encoded. */
static spim_status spim__query_add(spim__query *q, const char *k, size_t kl, const char *v, size_t vl)
{
    spim__qparam *it;
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        it = (spim__qparam *)SPIM_REALLOC(q->items, cap * sizeof *it);
        if (!it) return SPIM_ERR_NOMEM;
        q->items = it;
        q->cap = cap;
    }
    it = &q->items[q->count];
    memset(it, 0, sizeof *it);
    it->key_off = q->text.len;
    it->key_len = kl;
    if (spim_buf_append(&q->text, k, kl) != SPIM_OK) return SPIM_ERR_NOMEM;
    it->val_off = q->text.len;
    it->val_len = vl;
    if (spim_buf_append(&q->text, v, vl) != SPIM_OK) return SPIM_ERR_NOMEM;
    q->count++;
    return SPIM_OK;
}

/* Split a wire query on '&'; decode each name and value, re-encode them the
   RFC 3986 way, so "a=%7e", "a=~" and "a=%7E" all sign as "a=~". */
static spim_status spim__query_parse(spim__query *q, const char *s, size_t len)
{
    spim_buf raw = SPIM_BUF_INIT, k = SPIM_BUF_INIT, v = SPIM_BUF_INIT;
    spim_status st = SPIM_OK;
    size_t i = 0, end, eq;
    while (st == SPIM_OK && i < len) {
        const char *amp = (const char *)memchr(s + i, '&', len - i);
        const char *e;
        end = amp ? (size_t)(amp - s) : len;
        if (end == i) { i++; continue; }       /* "a=1&&b=2": nothing between */
        e = (const char *)memchr(s + i, '=', end - i);
        eq = e ? (size_t)(e - s) : end;
        spim_buf_reset(&k);
        spim_buf_reset(&v);
        st = spim__uri_decode(&raw, s + i, eq - i);
        if (st == SPIM_OK) st = spim_uri_encode(&k, (const char *)raw.data, raw.len, 0);
        if (st == SPIM_OK) st = spim__uri_decode(&raw, s + eq + (e ? 1 : 0), end - eq - (e ? 1 : 0));
        if (st == SPIM_OK) st = spim_uri_encode(&v, (const char *)raw.data, raw.len, 0);
        if (st == SPIM_OK) st = spim__query_add(q, (const char *)k.data, k.len, (const char *)v.data, v.len);
        i = end + 1;
    }
    spim_buf_free(&raw);
    spim_buf_free(&k);
    spim_buf_free(&v);
    return st;
}

static void spim__query_bind(spim__query *q)
{
    size_t i;
    for (i = 0; i < q->count; i++) {
        q->items[i].key = (const char *)q->text.data + q->items[i].key_off;
        q->items[i].val = (const char *)q->text.data + q->items[i].val_off;
    }
}

static int spim__bytes_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl;
}

static int spim__qparam_cmp(const void *pa, const void *pb)
{
    const spim__qparam *a = (const spim__qparam *)pa, *b = (const spim__qparam *)pb;
    int c = spim__bytes_cmp(a->key, a->key_len, b->key, b->key_len);
    return c ? c : spim__bytes_cmp(a->val, a->val_len, b->val, b->val_len);
}

static spim_status spim__query_join(const spim__query *q, spim_buf *out)
{
    size_t i;
    for (i = 0; i < q->count; i++) {
        const spim__qparam *it = &q->items[i];
        if ((i && spim_buf_append(out, "&", 1) != SPIM_OK) ||
            spim_buf_append(out, it->key, it->key_len) != SPIM_OK ||
            spim_buf_append(out, "=", 1) != SPIM_OK ||
            spim_buf_append(out, it->val, it->val_len) != SPIM_OK)
            return SPIM_ERR_NOMEM;
    }
    return SPIM_OK;
}

static spim_status spim__query_canonical(spim__query *q, spim_buf *out)
{
    spim__query_bind(q);
    if (q->count > 1) qsort(q->items, q->count, sizeof *q->items, spim__qparam_cmp);
    return spim__query_join(q, out);
}

SPIMDEF spim_status spim_sigv4_canonical_query(spim_buf *out, const char *query, size_t len)
{
    spim__query q;
    spim_status st;
    memset(&q, 0, sizeof q);
    st = spim__query_parse(&q, query, len);
    if (st == SPIM_OK) st = spim__query_canonical(&q, out);
    if (st == SPIM_OK) st = spim_buf_append(out, "", 0); /* a NUL even when empty */
    spim__query_free(&q);
    return st;
}

/* ---- headers ------------------------------------------------------------- */

typedef struct spim__hdr {
    const char *name, *value;
    size_t name_len, order;   /* order keeps duplicates in the order sent */
} spim__hdr;

typedef struct spim__hset {
    spim__hdr *items;
    size_t count, cap;
} spim__hset;

/* Hop-by-hop or rewritten by proxies and clients: signing them would make
   the signature fail for reasons the caller cannot see. */
static int spim__header_ignored(const char *name, size_t len)
{
    static const char *const names[] = {
        "authorization", "connection", "expect", "transfer-encoding", "user-agent", "x-amzn-trace-id"
    };
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (spim__ieq_n(name, len, names[i])) return 1;
    return 0;
}

static spim_status spim__hset_add(spim__hset *hs, const char *name, const char *value)
{
    if (hs->count == hs->cap) {
        size_t cap = hs->cap ? hs->cap * 2 : 16;
        spim__hdr *p = (spim__hdr *)SPIM_REALLOC(hs->items, cap * sizeof *p);
        if (!p) return SPIM_ERR_NOMEM;
        hs->items = p;
        hs->cap = cap;
    }
    hs->items[hs->count].name = name;
    hs->items[hs->count].name_len = strlen(name);
    hs->items[hs->count].value = value;
    hs->items[hs->count].order = hs->count;
    hs->count++;
    return SPIM_OK;
}

static int spim__hdr_name_cmp(const spim__hdr *a, const spim__hdr *b)
{
    size_t i, n = a->name_len < b->name_len ? a->name_len : b->name_len;
    for (i = 0; i < n; i++) {
        int ca = tolower((unsigned char)a->name[i]), cb = tolower((unsigned char)b->name[i]);
        if (ca != cb) return ca - cb;
    }
    return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

static int spim__hdr_cmp(const void *pa, const void *pb)
{
    const spim__hdr *a = (const spim__hdr *)pa, *b = (const spim__hdr *)pb;
    int c = spim__hdr_name_cmp(a, b);
    if (c) return c;
    return a->order < b->order ? -1 : a->order > b->order;
}

static int spim__is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trimall: no leading/trailing white space, inner runs (including the line
   breaks of a folded multi-line value) become one space. */
static spim_status spim__append_trimall(spim_buf *out, const char *v)
{
    int pending = 0, any = 0;
    for (; *v; v++) {
        if (spim__is_space(*v)) { pending = any; continue; }
        if (pending && spim_buf_append(out, " ", 1) != SPIM_OK) return SPIM_ERR_NOMEM;
        if (spim_buf_append(out, v, 1) != SPIM_OK) return SPIM_ERR_NOMEM;
        pending = 0;
        any = 1;
    }
    return SPIM_OK;
}

/* Sorted "name:value\n" lines (duplicates comma-joined) and "a;b;c". */
static spim_status spim__hset_canonical(spim__hset *hs, spim_buf *canon, spim_buf *names)
{
    size_t i, j;
    if (hs->count > 1) qsort(hs->items, hs->count, sizeof *hs->items, spim__hdr_cmp);
    for (i = 0; i < hs->count; i = j) {
        size_t k;
        if (i && spim_buf_append(names, ";", 1) != SPIM_OK) return SPIM_ERR_NOMEM;
        for (k = 0; k < hs->items[i].name_len; k++) {
            char c = (char)tolower((unsigned char)hs->items[i].name[k]);
            if (spim_buf_append(canon, &c, 1) != SPIM_OK || spim_buf_append(names, &c, 1) != SPIM_OK)
                return SPIM_ERR_NOMEM;
        }
        if (spim_buf_append(canon, ":", 1) != SPIM_OK) return SPIM_ERR_NOMEM;
        for (j = i; j < hs->count && spim__hdr_name_cmp(&hs->items[i], &hs->items[j]) == 0; j++) {
            if (j > i && spim_buf_append(canon, ",", 1) != SPIM_OK) return SPIM_ERR_NOMEM;
            if (spim__append_trimall(canon, hs->items[j].value) != SPIM_OK) return SPIM_ERR_NOMEM;
        }
        if (spim_buf_append(canon, "\n", 1) != SPIM_OK) return SPIM_ERR_NOMEM;
    }
    return SPIM_OK;
}

static int spim__find_header(const spim_sigv4_request *req, const char *lname)
{
    size_t i;
    for (i = 0; i < req->header_count; i++)
        if (spim__ieq_n(req->headers[i].name, strlen(req->headers[i].name), lname)) return (int)i;
    return -1;
}

/* A name is an HTTP token; a value may hold line breaks only as folding
   (followed by a space or tab), so nothing can smuggle in another header. */
static spim_status spim__check_header(const spim_header *h, spim_error *err)
{
    const char *p;
    if (!h->name || !h->value || !h->name[0])
        return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: header without a name or value");
    for (p = h->name; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *p))
            return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: bad character in header name");
    for (p = h->value; *p; p++) {
        if (*p == '\r' && p[1] != '\n')
            return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: bare CR in header %s", h->name);
        if (*p == '\n' && p[1] != ' ' && p[1] != '\t')
            return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: line break in header %s", h->name);
    }
    return SPIM_OK;
}

/* ---- signing ------------------------------------------------------------- */

SPIMDEF void spim_sigv4_signing_key(const char *secret_access_key, const char *date8,
                                    const char *region, const char *service,
                                    unsigned char out[SPIM_SHA256_SIZE])
{
    unsigned char k[64];
    size_t n = strlen(secret_access_key), k_len;
    if (4 + n <= sizeof k) {
        memcpy(k, "AWS4", 4);
        memcpy(k + 4, secret_access_key, n);
        k_len = 4 + n;
    } else {
        /* HMAC hashes a key longer than its block: do it here without a copy */
        spim_sha256_ctx ctx;
        spim_sha256_init(&ctx);
        spim_sha256_update(&ctx, "AWS4", 4);
        spim_sha256_update(&ctx, secret_access_key, n);
        spim_sha256_final(&ctx, k);
        k_len = SPIM_SHA256_SIZE;
    }
    spim_hmac_sha256(k, k_len, date8, strlen(date8), out);
    spim_hmac_sha256(out, SPIM_SHA256_SIZE, region, strlen(region), out);
    spim_hmac_sha256(out, SPIM_SHA256_SIZE, service, strlen(service), out);
    spim_hmac_sha256(out, SPIM_SHA256_SIZE, "aws4_request", 12, out);
    memset(k, 0, sizeof k);
}

static int spim__scope_part_ok(const char *s)
{
    return s && s[0] && !strpbrk(s, "/\r\n ");
}

static spim_status spim__validate(const spim_sigv4_request *req, const spim_sigv4_params *params,
                                  spim_error *err)
{
    const spim_credentials *c = params ? params->credentials : NULL;
    const char *m;
    if (!req || !params || !req->method || !req->method[0] || !req->url)
        return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: request needs a method and a URL");
    for (m = req->method; *m; m++)
        if (!isalpha((unsigned char)*m))
            return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: bad HTTP method");
    if ((req->header_count && !req->headers) || (req->body_len && !req->body))
        return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: headers or body missing for their count");
    if (!c || !memchr(c->access_key_id, 0, sizeof c->access_key_id) ||
        !memchr(c->secret_access_key, 0, sizeof c->secret_access_key) ||
        !memchr(c->session_token, 0, sizeof c->session_token) ||
        !spim__scope_part_ok(c->access_key_id) || !c->secret_access_key[0])
        return spim_error_set(err, SPIM_ERR_AUTH, "sigv4: no usable credentials");
    if (!spim__scope_part_ok(params->region) || !spim__scope_part_ok(params->service))
        return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: region and service must be set (no '/' or spaces)");
    return SPIM_OK;
}

/* The payload line: the caller's hash, else an x-amz-content-sha256 header
   sent with the request, else UNSIGNED-PAYLOAD for an S3 presigned URL,
   else the SHA-256 of the body. */
static spim_status spim__payload_hash(const spim_sigv4_request *req, const spim_sigv4_params *params,
                                      int presign, spim_sigv4_result *out, spim_error *err)
{
    int h = spim__find_header(req, "x-amz-content-sha256");
    spim_buf hv = SPIM_BUF_INIT;
    const char *v = req->payload_hash;
    spim_status st = SPIM_OK;
    if (h >= 0) {
        if (spim__append_trimall(&hv, req->headers[h].value) != SPIM_OK || spim_buf_append(&hv, "", 0) != SPIM_OK)
            return spim_error_set(err, SPIM_ERR_NOMEM, "sigv4: out of memory");
        if (v && strcmp(v, (const char *)hv.data) != 0)
            st = spim_error_set(err, SPIM_ERR_INVALID, "sigv4: payload_hash differs from the x-amz-content-sha256 header");
        v = (const char *)hv.data;
    }
    if (st == SPIM_OK && v) {
        if (!v[0] || strlen(v) >= sizeof out->payload_hash || strpbrk(v, " \t\r\n"))
            st = spim_error_set(err, SPIM_ERR_INVALID, "sigv4: bad payload hash");
        else
            memcpy(out->payload_hash, v, strlen(v) + 1);
    } else if (st == SPIM_OK && presign && params->mode == SPIM_SIGV4_S3) {
        memcpy(out->payload_hash, SPIM_UNSIGNED_PAYLOAD, sizeof SPIM_UNSIGNED_PAYLOAD);
    } else if (st == SPIM_OK) {
        spim_sha256_hex(req->body, req->body_len, out->payload_hash);
    }
    spim_buf_free(&hv);
    return st;
}

/* Canonical request, string to sign and signature, from the pieces. */
static spim_status spim__finish(const spim_sigv4_request *req, const spim_sigv4_params *params,
                                const spim__url *u, const spim_buf *query, const spim_buf *headers,
                                spim_sigv4_result *out)
{
    spim_buf *cr = &out->canonical_request;
    unsigned char key[SPIM_SHA256_SIZE], mac[SPIM_SHA256_SIZE];
    char hash[SPIM_SHA256_HEX_SIZE], date8[9];
    const char *m;
    for (m = req->method; *m; m++) {
        char c = (char)toupper((unsigned char)*m);
        if (spim_buf_append(cr, &c, 1) != SPIM_OK) return SPIM_ERR_NOMEM;
    }
    if (spim_buf_append(cr, "\n", 1) != SPIM_OK || spim__canonical_path(cr, u, params) != SPIM_OK ||
        spim_buf_appendf(cr, "\n%s\n%s\n%s\n%s", query->data ? (const char *)query->data : "",
                         headers->data ? (const char *)headers->data : "",
                         (const char *)out->signed_headers.data, out->payload_hash) != SPIM_OK)
        return SPIM_ERR_NOMEM;
    spim_sha256_hex(cr->data, cr->len, hash);
    memcpy(date8, out->amz_date, 8);
    date8[8] = 0;
    if (spim_buf_appendf(&out->string_to_sign, SPIM__SIGV4_ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s",
                         out->amz_date, date8, params->region, params->service, hash) != SPIM_OK)
        return SPIM_ERR_NOMEM;
    spim_sigv4_signing_key(params->credentials->secret_access_key, date8, params->region,
                           params->service, key);
    spim_hmac_sha256(key, sizeof key, out->string_to_sign.data, out->string_to_sign.len, mac);
    spim_hex(mac, sizeof mac, out->signature);
    memset(key, 0, sizeof key);
    return SPIM_OK;
}

/* The request's own headers that get signed, plus Host when not given. */
static spim_status spim__collect_headers(const spim_sigv4_request *req, const spim_buf *host,
                                         spim__hset *hs, spim_error *err)
{
    size_t i;
    for (i = 0; i < req->header_count; i++) {
        const spim_header *h = &req->headers[i];
        spim_status st = spim__check_header(h, err);
        if (st != SPIM_OK) return st;
        if (spim__header_ignored(h->name, strlen(h->name))) continue;
        if (spim__hset_add(hs, h->name, h->value) != SPIM_OK) return SPIM_ERR_NOMEM;
    }
    if (spim__find_header(req, "host") < 0 && spim__hset_add(hs, "host", (const char *)host->data) != SPIM_OK)
        return SPIM_ERR_NOMEM;
    return SPIM_OK;
}

/* The values of the headers the caller must add, copied into out->storage
   so that the result owns everything it points to. */
static spim_status spim__set_add_headers(const spim_sigv4_request *req, const spim_sigv4_params *params,
                                         int content_sha, spim_sigv4_result *out)
{
    const char *names[4], *values[4];
    size_t offs[4], n = 0, i;
    const char *token = params->credentials->session_token;
    if (spim__find_header(req, "x-amz-date") < 0) {
        names[n] = "X-Amz-Date";
        values[n++] = out->amz_date;
    }
    if (content_sha && spim__find_header(req, "x-amz-content-sha256") < 0) {
        names[n] = "X-Amz-Content-SHA256";
        values[n++] = out->payload_hash;
    }
    if (token[0] && spim__find_header(req, "x-amz-security-token") < 0) {
        names[n] = "X-Amz-Security-Token";
        values[n++] = token;
    }
    names[n] = "Authorization";
    values[n++] = (const char *)out->authorization.data;
    for (i = 0; i < n; i++) {
        offs[i] = out->storage.len;
        if (spim_buf_append(&out->storage, values[i], strlen(values[i]) + 1) != SPIM_OK) return SPIM_ERR_NOMEM;
    }
    for (i = 0; i < n; i++) {
        out->add_headers[i].name = names[i];
        out->add_headers[i].value = (const char *)out->storage.data + offs[i];
    }
    out->add_header_count = n;
    return SPIM_OK;
}

/* Headers that sign() adds itself and signs: X-Amz-Date, the content hash
   (S3), the session token (unless it goes in unsigned, after signing). */
static spim_status spim__auto_headers(const spim_sigv4_request *req, const spim_sigv4_params *params,
                                      int content_sha, spim_sigv4_result *out, spim__hset *hs,
                                      spim_error *err)
{
    const char *token = params->credentials->session_token;
    int d = spim__find_header(req, "x-amz-date");
    if (d >= 0) {
        spim_buf v = SPIM_BUF_INIT;
        int same = spim__append_trimall(&v, req->headers[d].value) == SPIM_OK && v.data &&
                   strcmp((const char *)v.data, out->amz_date) == 0;
        spim_buf_free(&v);
        if (!same) return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: X-Amz-Date header differs from the signing time");
    } else if (spim__hset_add(hs, "x-amz-date", out->amz_date) != SPIM_OK) {
        return SPIM_ERR_NOMEM;
    }
    if (content_sha && spim__find_header(req, "x-amz-content-sha256") < 0 &&
        spim__hset_add(hs, "x-amz-content-sha256", out->payload_hash) != SPIM_OK)
        return SPIM_ERR_NOMEM;
    if (token[0] && !(params->flags & SPIM_SIGV4_OMIT_SESSION_TOKEN) &&
        spim__find_header(req, "x-amz-security-token") < 0 &&
        spim__hset_add(hs, "x-amz-security-token", token) != SPIM_OK)
        return SPIM_ERR_NOMEM;
    return SPIM_OK;
}

static spim_status spim__sign_steps(const spim_sigv4_request *req, const spim_sigv4_params *params,
                                    spim_sigv4_result *out, spim__hset *hs, spim_buf *host,
                                    spim_buf *canon, spim_error *err)
{
    int content_sha = params->mode == SPIM_SIGV4_S3 || (params->flags & SPIM_SIGV4_SIGN_CONTENT_SHA256);
    spim__url u;
    spim_buf query = SPIM_BUF_INIT;
    spim_status st = spim__url_split(req->url, &u, err);
    if (st == SPIM_OK) st = spim__url_host(&u, host, err);
    if (st == SPIM_OK) st = spim__payload_hash(req, params, 0, out, err);
    if (st == SPIM_OK) st = spim__collect_headers(req, host, hs, err);
    if (st == SPIM_OK) st = spim__auto_headers(req, params, content_sha, out, hs, err);
    if (st != SPIM_OK) return st;
    if (spim__hset_canonical(hs, canon, &out->signed_headers) != SPIM_OK ||
        spim_sigv4_canonical_query(&query, u.query ? u.query : "", u.query_len) != SPIM_OK ||
        spim__finish(req, params, &u, &query, canon, out) != SPIM_OK ||
        spim_buf_appendf(&out->authorization, SPIM__SIGV4_ALGORITHM " Credential=%s/%.8s/%s/%s/aws4_request, "
                         "SignedHeaders=%s, Signature=%s", params->credentials->access_key_id,
                         out->amz_date, params->region, params->service,
                         (const char *)out->signed_headers.data, out->signature) != SPIM_OK ||
        spim__set_add_headers(req, params, content_sha, out) != SPIM_OK)
        st = SPIM_ERR_NOMEM;
    spim_buf_free(&query);
    return st;
}

SPIMDEF spim_status spim_sigv4_sign(const spim_sigv4_request *req, const spim_sigv4_params *params,
                                    spim_sigv4_result *out, spim_error *err)
{
    spim__hset hs;
    spim_buf host = SPIM_BUF_INIT, canon = SPIM_BUF_INIT;
    spim_status st;
    memset(&hs, 0, sizeof hs);
    memset(out, 0, sizeof *out);
    st = spim__validate(req, params, err);
    if (st != SPIM_OK) return st;
    spim_amz_date(params->time, out->amz_date);
    st = spim__sign_steps(req, params, out, &hs, &host, &canon, err);
    if (st == SPIM_ERR_NOMEM) spim_error_set(err, st, "sigv4: out of memory");
    SPIM_FREE(hs.items);
    spim_buf_free(&host);
    spim_buf_free(&canon);
    return st;
}

SPIMDEF void spim_sigv4_result_free(spim_sigv4_result *out)
{
    if (!out) return;
    spim_buf_free(&out->canonical_request);
    spim_buf_free(&out->string_to_sign);
    spim_buf_free(&out->authorization);
    spim_buf_free(&out->signed_headers);
    spim_buf_free(&out->storage);
    memset(out, 0, sizeof *out);
}

/* ---- presigned URLs ------------------------------------------------------ */

/* One X-Amz-* parameter: onto the URL always, into the signed query when
   `sign`. */
static spim_status spim__presign_param(spim__query *q, spim_buf *url, const char *name,
                                       const char *value, int sign)
{
    spim_buf enc = SPIM_BUF_INIT;
    spim_status st = spim_uri_encode(&enc, value, strlen(value), 0);
    if (st == SPIM_OK && url->data[url->len - 1] != '?') st = spim_buf_append(url, "&", 1);
    if (st == SPIM_OK) st = spim_buf_appendf(url, "%s=%s", name, (const char *)enc.data);
    if (st == SPIM_OK && sign) st = spim__query_add(q, name, strlen(name), (const char *)enc.data, enc.len);
    spim_buf_free(&enc);
    return st;
}

/* The URL up to X-Amz-Signature, and the signed query parameters, in the
   order botocore writes them: the request's own parameters first. */
static spim_status spim__presign_query(const spim__url *u, const spim_sigv4_params *params,
                                       const spim_sigv4_result *out, spim__query *q, spim_buf *url)
{
    const spim_credentials *c = params->credentials;
    char expires[24], scope[512];
    int omit = (params->flags & SPIM_SIGV4_OMIT_SESSION_TOKEN) != 0;
    spim_status st;
    snprintf(expires, sizeof expires, "%ld", params->expires);
    snprintf(scope, sizeof scope, "%s/%.8s/%s/%s/aws4_request", c->access_key_id, out->amz_date,
             params->region, params->service);
    st = spim__query_parse(q, u->query ? u->query : "", u->query_len);
    if (st == SPIM_OK) st = spim_buf_append(url, u->scheme, u->base_len);
    if (st == SPIM_OK) st = spim_buf_append(url, "?", 1);
    if (st == SPIM_OK) {
        spim__query_bind(q);
        st = spim__query_join(q, url);
    }
    if (st == SPIM_OK) st = spim__presign_param(q, url, "X-Amz-Algorithm", SPIM__SIGV4_ALGORITHM, 1);
    if (st == SPIM_OK) st = spim__presign_param(q, url, "X-Amz-Credential", scope, 1);
    if (st == SPIM_OK) st = spim__presign_param(q, url, "X-Amz-Date", out->amz_date, 1);
    if (st == SPIM_OK) st = spim__presign_param(q, url, "X-Amz-Expires", expires, 1);
    if (st == SPIM_OK)
        st = spim__presign_param(q, url, "X-Amz-SignedHeaders", (const char *)out->signed_headers.data, 1);
    if (st == SPIM_OK && c->session_token[0])
        st = spim__presign_param(q, url, "X-Amz-Security-Token", c->session_token, !omit);
    return st;
}

static spim_status spim__presign_steps(const spim_sigv4_request *req, const spim_sigv4_params *params,
                                       spim_buf *url_out, spim_sigv4_result *out, spim__hset *hs,
                                       spim__query *q, spim_error *err)
{
    spim__url u;
    spim_buf host = SPIM_BUF_INIT, canon = SPIM_BUF_INIT, query = SPIM_BUF_INIT;
    spim_status st = spim__url_split(req->url, &u, err);
    if (st == SPIM_OK) st = spim__url_host(&u, &host, err);
    if (st == SPIM_OK) st = spim__payload_hash(req, params, 1, out, err);
    if (st == SPIM_OK) st = spim__collect_headers(req, &host, hs, err);
    if (st == SPIM_OK) {
        spim_buf_reset(url_out);
        if (spim__hset_canonical(hs, &canon, &out->signed_headers) != SPIM_OK ||
            spim__presign_query(&u, params, out, q, url_out) != SPIM_OK ||
            spim__query_canonical(q, &query) != SPIM_OK ||
            spim__finish(req, params, &u, &query, &canon, out) != SPIM_OK ||
            spim_buf_appendf(url_out, "&X-Amz-Signature=%s", out->signature) != SPIM_OK)
            st = SPIM_ERR_NOMEM;
    }
    spim_buf_free(&host);
    spim_buf_free(&canon);
    spim_buf_free(&query);
    return st;
}

SPIMDEF spim_status spim_sigv4_presign(const spim_sigv4_request *req, const spim_sigv4_params *params,
                                       spim_buf *url_out, spim_sigv4_result *out, spim_error *err)
{
    spim_sigv4_result local;
    spim_sigv4_result *r = out ? out : &local;
    spim__hset hs;
    spim__query q;
    spim_status st;
    memset(&hs, 0, sizeof hs);
    memset(&q, 0, sizeof q);
    memset(r, 0, sizeof *r);
    st = spim__validate(req, params, err);
    if (st != SPIM_OK) return st;
    if (!url_out) return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: presign needs an output buffer");
    if (params->expires < 1 || params->expires > SPIM_PRESIGN_MAX_EXPIRES)
        return spim_error_set(err, SPIM_ERR_INVALID, "sigv4: X-Amz-Expires must be 1..%d seconds, got %ld",
                              SPIM_PRESIGN_MAX_EXPIRES, params->expires);
    spim_amz_date(params->time, r->amz_date);
    st = spim__presign_steps(req, params, url_out, r, &hs, &q, err);
    if (st == SPIM_ERR_NOMEM) spim_error_set(err, st, "sigv4: out of memory");
    SPIM_FREE(hs.items);
    spim__query_free(&q);
    if (!out) spim_sigv4_result_free(&local);
    return st;
}

#undef SPIM__SIGV4_ALGORITHM

#ifdef __cplusplus
}
#endif
