/* ==========================================================================
   s3
   Credentials and endpoint resolution, the pure helpers (error XML, retry
   classification, HTTP dates), then the libcurl transfer and the operations.
   ========================================================================== */

#include <curl/curl.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPIM__S3_MAX_BACKOFF_MS 20000   /* AWS standard mode cap */
#define SPIM__S3_ERROR_BODY_MAX 65536   /* error documents are small; keep no more */
#define SPIM__S3_SKEW_SECONDS 240       /* "more than 4 minutes" from the server */

struct spim_s3_client {
    CURL *curl;
    spim_credentials credentials;
    char region[64];
    char endpoint[512];           /* custom "scheme://host[:port]"; empty for AWS */
    int path_style;
    int max_attempts;
    long backoff_base_ms;
    long connect_timeout_ms;
    long low_speed_time_s;
    long timeout_ms;
    int64_t clock_offset_s;
    char ca_file[512];            /* "" = libcurl's built-in CA bundle */
    uint64_t rng;
    char curl_error[CURL_ERROR_SIZE];
};

/* ---- small string helpers ------------------------------------------------ */

static int spim__s3_ieq_n(const char *a, size_t alen, const char *b)
{
    size_t i;
    for (i = 0; i < alen; i++)
        if (!b[i] || tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) return 0;
    return b[alen] == 0;
}

static int spim__s3_iprefix(const char *s, size_t slen, const char *prefix)
{
    size_t i;
    for (i = 0; prefix[i]; i++)
        if (i >= slen || tolower((unsigned char)s[i]) != tolower((unsigned char)prefix[i])) return 0;
    return 1;
}

static void spim__s3_trim(const char **b, const char **e)
{
    while (*b < *e && isspace((unsigned char)**b)) (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1])) (*e)--;
}

/* Copy a slice into a fixed field, control characters replaced by '?':
   everything copied may end up in a one-line message. */
static void spim__s3_copy_clean(char *dst, size_t cap, const char *s, size_t n)
{
    size_t i;
    if (n >= cap) n = cap - 1;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (char)((c < 0x20 || c == 0x7f) ? '?' : c);
    }
    dst[n] = 0;
}

static const char *spim__s3_memstr(const char *h, size_t hlen, const char *needle)
{
    size_t n = strlen(needle), i;
    if (n == 0 || n > hlen) return NULL;
    for (i = 0; i + n <= hlen; i++)
        if (h[i] == needle[0] && memcmp(h + i, needle, n) == 0) return h + i;
    return NULL;
}

/* ---- credentials --------------------------------------------------------- */

/* Store one credentials value; keys, secrets and tokens never hold spaces or
   control characters, so anything else is a malformed file. */
static spim_status spim__s3_cred_field(char *dst, size_t cap, const char *v, size_t n,
                                       const char *key, const char *profile, int line,
                                       spim_error *err)
{
    size_t i;
    if (n == 0 || n >= cap)
        return spim_error_set(err, SPIM_ERR_CONFIG, "credentials: %s in profile [%s] (line %d) is %s",
                              key, profile, line, n ? "too long" : "empty");
    for (i = 0; i < n; i++)
        if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] == 0x7f)
            return spim_error_set(err, SPIM_ERR_CONFIG,
                                  "credentials: %s in profile [%s] (line %d) has a space or control character",
                                  key, profile, line);
    memcpy(dst, v, n);
    dst[n] = 0;
    return SPIM_OK;
}

/* One "key = value" line inside the wanted profile. */
static spim_status spim__s3_cred_line(const char *b, const char *e, const char *profile, int line,
                                      spim_credentials *out, spim_error *err)
{
    const char *kb = b, *ke, *vb, *ve, *p;
    for (ke = b; ke < e && *ke != '=' && *ke != ':'; ke++) {}
    if (ke == e) return SPIM_OK; /* a stray line costs nothing; refusing the file would */
    vb = ke + 1;
    ve = e;
    spim__s3_trim(&kb, &ke);
    for (p = vb; p < ve; p++) /* inline comment: '#' or ';' after whitespace */
        if ((*p == '#' || *p == ';') && p > vb && isspace((unsigned char)p[-1])) { ve = p; break; }
    spim__s3_trim(&vb, &ve);
    if (spim__s3_ieq_n(kb, (size_t)(ke - kb), "aws_access_key_id"))
        return spim__s3_cred_field(out->access_key_id, sizeof out->access_key_id, vb,
                                   (size_t)(ve - vb), "aws_access_key_id", profile, line, err);
    if (spim__s3_ieq_n(kb, (size_t)(ke - kb), "aws_secret_access_key"))
        return spim__s3_cred_field(out->secret_access_key, sizeof out->secret_access_key, vb,
                                   (size_t)(ve - vb), "aws_secret_access_key", profile, line, err);
    if (spim__s3_ieq_n(kb, (size_t)(ke - kb), "aws_session_token"))
        return spim__s3_cred_field(out->session_token, sizeof out->session_token, vb,
                                   (size_t)(ve - vb), "aws_session_token", profile, line, err);
    return SPIM_OK;
}

SPIMDEF spim_status spim_s3_parse_credentials(const char *data, size_t len, const char *profile,
                                              spim_credentials *out, spim_error *err)
{
    const char *p = data, *end = data ? data + len : data; /* NULL + len is undefined */
    int line = 0, in_profile = 0, found = 0;
    spim_status st;
    memset(out, 0, sizeof *out);
    if (!profile || !*profile) profile = "default";
    if (len > SPIM_S3_CREDENTIALS_FILE_MAX)
        return spim_error_set(err, SPIM_ERR_TOO_LARGE, "credentials: file larger than %u bytes",
                              SPIM_S3_CREDENTIALS_FILE_MAX);
    while (data && p < end) {
        const char *nl = (const char *)memchr(p, '\n', (size_t)(end - p));
        const char *b = p, *e = nl ? nl : end;
        p = nl ? nl + 1 : end;
        line++;
        spim__s3_trim(&b, &e);
        if (b == e || *b == '#' || *b == ';') continue;
        if (*b == '[') {
            const char *nb = b + 1, *ne = e;
            while (ne > nb && ne[-1] != ']') ne--;
            in_profile = 0;
            if (ne == nb) continue; /* "[name" without ']': a broken header matches nothing */
            ne--;
            spim__s3_trim(&nb, &ne);
            in_profile = (size_t)(ne - nb) == strlen(profile) && memcmp(nb, profile, (size_t)(ne - nb)) == 0;
            found |= in_profile;
            continue;
        }
        if (!in_profile) continue;
        st = spim__s3_cred_line(b, e, profile, line, out, err);
        if (st != SPIM_OK) { memset(out, 0, sizeof *out); return st; }
    }
    if (!found) return spim_error_set(err, SPIM_ERR_NOT_FOUND, "credentials: no profile [%s]", profile);
    if (!out->access_key_id[0] || !out->secret_access_key[0]) {
        st = spim_error_set(err, SPIM_ERR_CONFIG, "credentials: profile [%s] has no %s", profile,
                            out->access_key_id[0] ? "aws_secret_access_key" : "aws_access_key_id");
        memset(out, 0, sizeof *out);
        return st;
    }
    return SPIM_OK;
}

static spim_status spim__s3_creds_from_vars(spim_credentials *out, spim_error *err, int *found)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");
    int have_id = id && *id, have_secret = secret && *secret;
    *found = 0;
    if (!have_id && !have_secret) return SPIM_OK;
    if (!have_id || !have_secret)
        return spim_error_set(err, SPIM_ERR_AUTH, "credentials: %s is set but %s is not",
                              have_id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                              have_id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    if (strlen(id) >= sizeof out->access_key_id || strlen(secret) >= sizeof out->secret_access_key ||
        (token && strlen(token) >= sizeof out->session_token))
        return spim_error_set(err, SPIM_ERR_CONFIG, "credentials: an AWS_* credential variable is too long");
    memset(out, 0, sizeof *out);
    strcpy(out->access_key_id, id);
    strcpy(out->secret_access_key, secret);
    if (token) strcpy(out->session_token, token);
    *found = 1;
    return SPIM_OK;
}

SPIMDEF spim_status spim_s3_credentials_from_env(spim_credentials *out, spim_error *err)
{
    const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE"), *home = getenv("HOME");
    const char *profile = getenv("AWS_PROFILE");
    char path[1024];
    spim_buf text = SPIM_BUF_INIT;
    spim_error ferr;
    spim_status st;
    int found;
    memset(out, 0, sizeof *out);
    st = spim__s3_creds_from_vars(out, err, &found);
    if (st != SPIM_OK || found) return st;
    if (!profile || !*profile) profile = "default";
    if (file && *file) snprintf(path, sizeof path, "%s", file);
    else snprintf(path, sizeof path, "%s/.aws/credentials", home ? home : "");
    spim_error_clear(&ferr);
    st = spim_read_file(path, SPIM_S3_CREDENTIALS_FILE_MAX, &text, &ferr);
    if (st == SPIM_OK) st = spim_s3_parse_credentials((const char *)text.data, text.len, profile, out, &ferr);
    spim_buf_free(&text);
    if (st == SPIM_ERR_NOT_FOUND)
        return spim_error_set(err, SPIM_ERR_AUTH,
                              "no AWS credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set "
                              "and %s has no profile [%s] (%s)", path, profile, ferr.message);
    if (st != SPIM_OK) return spim_error_set(err, st, "%s: %s", path, ferr.message);
    return SPIM_OK;
}

/* ---- region, endpoint, addressing ----------------------------------------- */

static int spim__s3_region_ok(const char *r)
{
    size_t n = strlen(r), i;
    if (n == 0 || n > 63) return 0;
    for (i = 0; i < n; i++)
        if (!(islower((unsigned char)r[i]) || isdigit((unsigned char)r[i]) || r[i] == '-')) return 0;
    return 1;
}

/* Accept "http[s]://host[:port]" with optional trailing slashes and keep it
   without them; a path, query, user info or space would end up unsigned or
   misplaced in every URL, so they are refused. */
static spim_status spim__s3_set_endpoint(spim_s3_client *c, const char *ep, spim_error *err)
{
    const char *host;
    size_t n = strlen(ep), i;
    while (n > 0 && ep[n - 1] == '/') n--;
    if (strncmp(ep, "http://", 7) == 0) host = ep + 7;
    else if (strncmp(ep, "https://", 8) == 0) host = ep + 8;
    else return spim_error_set(err, SPIM_ERR_CONFIG, "s3: endpoint must start with http:// or https://");
    if ((size_t)(host - ep) >= n || n >= sizeof c->endpoint)
        return spim_error_set(err, SPIM_ERR_CONFIG, "s3: endpoint has no host or is too long");
    for (i = (size_t)(host - ep); i < n; i++) {
        unsigned char ch = (unsigned char)ep[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("/?#@\\", ch))
            return spim_error_set(err, SPIM_ERR_CONFIG,
                                  "s3: endpoint must be scheme://host[:port] (found '%c')", ch > 0x20 && ch < 0x7f ? ch : '?');
    }
    memcpy(c->endpoint, ep, n);
    c->endpoint[n] = 0;
    return SPIM_OK;
}

SPIMDEF int spim_s3_bucket_is_virtual_host_ok(const char *b)
{
    size_t n = strlen(b), i;
    if (n < 3 || n > 63) return 0;
    for (i = 0; i < n; i++)
        if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '-')) return 0;
    return b[0] != '-' && b[n - 1] != '-';
}

SPIMDEF spim_status spim_s3_object_url(const spim_s3_client *c, const char *bucket, const char *key,
                                       spim_buf *out, spim_error *err)
{
    spim_status st;
    size_t blen = bucket ? strlen(bucket) : 0;
    spim_buf_reset(out);
    if (blen == 0 || blen > 255 || memchr(bucket, '/', blen))
        return spim_error_set(err, SPIM_ERR_INVALID, "s3: bad bucket name \"%.64s\"", bucket ? bucket : "");
    if (!c->path_style && !c->endpoint[0] && spim_s3_bucket_is_virtual_host_ok(bucket)) {
        st = spim_buf_appendf(out, "https://%s.s3.%s.amazonaws.com/", bucket, c->region);
    } else {
        if (c->endpoint[0]) st = spim_buf_appendf(out, "%s/", c->endpoint);
        else st = spim_buf_appendf(out, "https://s3.%s.amazonaws.com/", c->region);
        if (st == SPIM_OK) st = spim_uri_encode(out, bucket, blen, 0);
        if (st == SPIM_OK && key && *key) st = spim_buf_append_str(out, "/");
    }
    if (st == SPIM_OK && key && *key) st = spim_uri_encode(out, key, strlen(key), 1);
    if (st != SPIM_OK) return spim_error_set(err, SPIM_ERR_NOMEM, "s3: out of memory building a URL");
    return SPIM_OK;
}

/* ---- client ---------------------------------------------------------------- */

/* libcurl looks for its CA bundle where the distribution that built it keeps
   one (Debian: /etc/ssl/certs/ca-certificates.crt), which the Lambda image
   (Amazon Linux 2023) does not have: a bootstrap built on Debian would fail
   every TLS handshake. Use the caller's, $SSL_CERT_FILE, libcurl's own when
   it exists, else the first bundle found in the usual places. */
static spim_status spim__s3_find_ca_file(spim_s3_client *c, const char *given, spim_error *err)
{
    static const char *const usual[] = {
        "/etc/pki/tls/certs/ca-bundle.crt",               /* Amazon Linux, Fedora, RHEL */
        "/etc/ssl/certs/ca-certificates.crt",             /* Debian, Ubuntu, Alpine */
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/ssl/ca-bundle.pem",                         /* SUSE */
        "/etc/ssl/cert.pem", NULL
    };
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    size_t i;
    if (!given || !*given) given = getenv("SSL_CERT_FILE");
    if (given && *given) {
        if (strlen(given) >= sizeof c->ca_file)
            return spim_error_set(err, SPIM_ERR_CONFIG, "s3: CA bundle path too long");
        strcpy(c->ca_file, given);
        return SPIM_OK;
    }
    if (info && info->cainfo && access(info->cainfo, R_OK) == 0) return SPIM_OK;
    for (i = 0; usual[i]; i++)
        if (access(usual[i], R_OK) == 0) {
            strcpy(c->ca_file, usual[i]);
            break;
        }
    return SPIM_OK; /* none found: plain-http endpoints still work; TLS will say why it failed */
}

static spim_status spim__s3_configure(spim_s3_client *c, const spim_s3_options *o, spim_error *err)
{
    const char *region = o->region, *ep = o->endpoint;
    if (!region || !*region) region = getenv("AWS_REGION");
    if (!region || !*region) region = getenv("AWS_DEFAULT_REGION");
    if (!region || !*region) region = SPIM_S3_DEFAULT_REGION;
    if (!spim__s3_region_ok(region))
        return spim_error_set(err, SPIM_ERR_CONFIG, "s3: malformed region \"%.64s\"", region);
    strcpy(c->region, region);
    if (!ep || !*ep) ep = getenv("AWS_ENDPOINT_URL_S3");
    if (!ep || !*ep) ep = getenv("AWS_ENDPOINT_URL");
    if (ep && *ep && spim__s3_set_endpoint(c, ep, err) != SPIM_OK) return SPIM_ERR_CONFIG;
    c->path_style = o->force_path_style || c->endpoint[0];
    c->max_attempts = o->max_attempts > 0 ? o->max_attempts : 3;
    c->backoff_base_ms = o->backoff_base_ms ? o->backoff_base_ms : 1000;
    c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
    c->low_speed_time_s = o->low_speed_time_s > 0 ? o->low_speed_time_s : 30;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 0;
    c->clock_offset_s = o->clock_offset_s;
    if (spim__s3_find_ca_file(c, o->ca_file, err) != SPIM_OK) return SPIM_ERR_CONFIG;
    c->rng = (uint64_t)spim_wall_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
    if (!c->rng) c->rng = 0x9e3779b97f4a7c15ull;
    if (o->credentials) {
        c->credentials = *o->credentials;
        if (!c->credentials.access_key_id[0] || !c->credentials.secret_access_key[0])
            return spim_error_set(err, SPIM_ERR_AUTH, "s3: the credentials given have an empty key id or secret");
        return SPIM_OK;
    }
    return spim_s3_credentials_from_env(&c->credentials, err);
}

SPIMDEF spim_status spim_s3_client_create(const spim_s3_options *opts, spim_s3_client **out,
                                          spim_error *err)
{
    spim_s3_options none;
    spim_s3_client *c;
    spim_status st;
    *out = NULL;
    memset(&none, 0, sizeof none);
    c = (spim_s3_client *)SPIM_MALLOC(sizeof *c);
    if (!c) return spim_error_set(err, SPIM_ERR_NOMEM, "s3: out of memory");
    memset(c, 0, sizeof *c);
    st = spim__s3_configure(c, opts ? opts : &none, err);
    if (st != SPIM_OK) {
        memset(c, 0, sizeof *c);
        SPIM_FREE(c);
        return st;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        memset(c, 0, sizeof *c);
        SPIM_FREE(c);
        return spim_error_set(err, SPIM_ERR_NETWORK, "s3: curl_global_init failed");
    }
    c->curl = curl_easy_init();
    if (!c->curl) {
        curl_global_cleanup();
        memset(c, 0, sizeof *c);
        SPIM_FREE(c);
        return spim_error_set(err, SPIM_ERR_NOMEM, "s3: curl_easy_init failed");
    }
    *out = c;
    return SPIM_OK;
}

SPIMDEF spim_status spim_s3_client_create_from_env(spim_s3_client **out, spim_error *err)
{
    return spim_s3_client_create(NULL, out, err);
}

SPIMDEF void spim_s3_client_free(spim_s3_client *c)
{
    if (!c) return;
    curl_easy_cleanup(c->curl);
    curl_global_cleanup();
    memset(&c->credentials, 0, sizeof c->credentials); /* no secret left in freed memory */
    SPIM_FREE(c);
}

SPIMDEF const char *spim_s3_client_region(const spim_s3_client *c) { return c->region; }
SPIMDEF int64_t spim_s3_client_clock_offset(const spim_s3_client *c) { return c->clock_offset_s; }
SPIMDEF const char *spim_s3_client_ca_file(const spim_s3_client *c) { return c->ca_file; }

/* ---- error documents and classification ----------------------------------- */

/* Decode the text of one element, entities resolved, control characters
   made spaces (it ends up in a one-line message). */
static void spim__s3_xml_text(const char *s, size_t n, char *out, size_t cap)
{
    static const char *const ents[][2] = {
        { "&amp;", "&" }, { "&lt;", "<" }, { "&gt;", ">" }, { "&quot;", "\"" }, { "&apos;", "'" }
    };
    size_t i = 0, o = 0, k;
    while (i < n && o + 1 < cap) {
        unsigned char c = (unsigned char)s[i];
        int done = 0;
        if (c == '&')
            for (k = 0; k < sizeof ents / sizeof ents[0] && !done; k++) {
                size_t el = strlen(ents[k][0]);
                if (i + el <= n && memcmp(s + i, ents[k][0], el) == 0) {
                    out[o++] = ents[k][1][0];
                    i += el;
                    done = 1;
                }
            }
        if (done) continue;
        out[o++] = (char)((c < 0x20 || c == 0x7f) ? ' ' : c);
        i++;
    }
    out[o] = 0;
}

static int spim__s3_xml_tag(const char *xml, size_t len, const char *tag, char *out, size_t cap)
{
    char open[32], close[32];
    const char *b, *e;
    out[0] = 0;
    snprintf(open, sizeof open, "<%s>", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    b = spim__s3_memstr(xml, len, open);
    if (!b) return 0;
    b += strlen(open);
    e = spim__s3_memstr(b, len - (size_t)(b - xml), close);
    if (!e) return 0;
    spim__s3_xml_text(b, (size_t)(e - b), out, cap);
    return 1;
}

SPIMDEF int spim_s3_parse_error(const char *xml, size_t len, spim_s3_error_info *out)
{
    memset(out, 0, sizeof *out);
    if (!xml) return 0;
    spim__s3_xml_tag(xml, len, "Message", out->message, sizeof out->message);
    spim__s3_xml_tag(xml, len, "RequestId", out->request_id, sizeof out->request_id);
    return spim__s3_xml_tag(xml, len, "Code", out->code, sizeof out->code) && out->code[0];
}

static int spim__s3_code_in(const char *code, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(code, *list) == 0) return 1;
    return 0;
}

SPIMDEF spim_status spim_s3_status_for(int http_status, const char *code)
{
    static const char *const not_found[] = { "NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchVersion", NULL };
    static const char *const auth[] = { "SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied",
                                        "InvalidToken", "ExpiredToken", "RequestTimeTooSkewed",
                                        "RequestExpired", NULL };
    if (!code) code = "";
    if (http_status == 0) return SPIM_ERR_NETWORK;
    if (http_status == 404 || spim__s3_code_in(code, not_found)) return SPIM_ERR_NOT_FOUND;
    if (http_status == 403 || spim__s3_code_in(code, auth)) return SPIM_ERR_AUTH;
    return SPIM_ERR_HTTP;
}

SPIMDEF int spim_s3_is_retryable(int http_status, const char *code)
{
    /* the transient and throttling codes of the AWS SDKs' standard mode */
    static const char *const codes[] = {
        "SlowDown", "InternalError", "RequestTimeout", "RequestTimeoutException", "Throttling",
        "ThrottlingException", "ThrottledException", "RequestThrottledException", "RequestThrottled",
        "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
        "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "PriorRequestNotComplete",
        "EC2ThrottledException", "ServiceUnavailable", "IDPCommunicationError", NULL
    };
    if (http_status == 0) return 1;
    if (http_status == 500 || http_status == 502 || http_status == 503 || http_status == 504 ||
        http_status == 429)
        return 1;
    return code && spim__s3_code_in(code, codes);
}

SPIMDEF int spim_s3_is_clock_skew(const char *code, int64_t server_time, int64_t our_time)
{
    int64_t d = server_time - our_time;
    if (!code) return 0;
    if (strcmp(code, "RequestTimeTooSkewed") == 0 || strcmp(code, "RequestExpired") == 0) return 1;
    return strcmp(code, "SignatureDoesNotMatch") == 0 && server_time > 0 &&
           (d > SPIM__S3_SKEW_SECONDS || d < -SPIM__S3_SKEW_SECONDS);
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t spim__s3_days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

SPIMDEF int64_t spim_s3_parse_http_date(const char *s)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char mon[4];
    int d, y, hh, mm, ss, n = 0, m;
    const char *comma, *hit;
    if (!s) return 0;
    comma = strchr(s, ',');
    if (!comma) return 0;
    if (sscanf(comma + 1, " %2d %3s %4d %2d:%2d:%2d GMT%n", &d, mon, &y, &hh, &mm, &ss, &n) != 6 || n == 0)
        return 0;
    mon[3] = 0;
    hit = strlen(mon) == 3 ? strstr(months, mon) : NULL;
    if (!hit || (hit - months) % 3 != 0) return 0;
    m = (int)((hit - months) / 3) + 1;
    if (d < 1 || d > 31 || y < 1970 || hh > 23 || mm > 59 || ss > 60 || hh < 0 || mm < 0 || ss < 0) return 0;
    return spim__s3_days_from_civil(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss;
}


/* ---- one request over libcurl ---------------------------------------------- */

typedef struct spim__s3_call {
    const char *method;
    const char *bucket, *key;       /* key "" for bucket operations */
    const spim_header *headers;     /* sent and signed */
    size_t header_count;
    const unsigned char *body;
    size_t body_len;
    int upload;                     /* send body with a known Content-Length */
    int want_body;                  /* keep a 2xx body in out->body */
    size_t max_bytes;               /* 0: no limit */
    spim_s3_object *out;
    char payload_hash[SPIM_SHA256_HEX_SIZE];
    /* the state of the current attempt */
    size_t sent;
    int too_large, nomem;
    int64_t server_date, signed_at;
    CURLcode cc;
    spim_buf error_body;
    spim_s3_error_info error;
} spim__s3_call;

static void spim__s3_meta_clear(spim_s3_object *o)
{
    size_t i;
    for (i = 0; i < o->metadata_count; i++) {
        SPIM_FREE((void *)o->metadata[i].name);
        SPIM_FREE((void *)o->metadata[i].value);
    }
    o->metadata_count = 0;
}

static void spim__s3_object_reset_headers(spim_s3_object *o)
{
    spim__s3_meta_clear(o);
    o->http_status = 0;
    o->content_type[0] = o->etag[0] = o->request_id[0] = 0;
    o->content_length = -1;
}

SPIMDEF void spim_s3_object_free(spim_s3_object *o)
{
    if (!o) return;
    spim__s3_meta_clear(o);
    spim_buf_free(&o->body);
    memset(o, 0, sizeof *o);
}

SPIMDEF const char *spim_s3_object_meta(const spim_s3_object *o, const char *name)
{
    size_t i;
    for (i = 0; i < o->metadata_count; i++)
        if (spim__s3_ieq_n(name, strlen(name), o->metadata[i].name)) return o->metadata[i].value;
    return NULL;
}

static char *spim__s3_strndup(const char *s, size_t n, int lower)
{
    char *d = (char *)SPIM_MALLOC(n + 1);
    size_t i;
    if (!d) return NULL;
    for (i = 0; i < n; i++) d[i] = lower ? (char)tolower((unsigned char)s[i]) : s[i];
    d[n] = 0;
    return d;
}

static int spim__s3_add_meta(spim_s3_object *o, const char *name, size_t nlen, const char *v, size_t vlen)
{
    spim_header *h;
    if (o->metadata_count >= SPIM_S3_MAX_METADATA) return 1;
    /* a NUL would silently cut the name or value short: not something S3 sends */
    if (memchr(name, 0, nlen) || memchr(v, 0, vlen)) return 1;
    h = &o->metadata[o->metadata_count];
    h->name = spim__s3_strndup(name, nlen, 1);
    h->value = spim__s3_strndup(v, vlen, 0);
    if (!h->name || !h->value) {
        SPIM_FREE((void *)h->name);
        SPIM_FREE((void *)h->value);
        return 0;
    }
    o->metadata_count++;
    return 1;
}

static int64_t spim__s3_parse_length(const char *b, const char *e)
{
    int64_t v = 0;
    if (b == e) return -1;
    for (; b < e; b++) {
        if (!isdigit((unsigned char)*b) || v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*b - '0');
    }
    return v;
}

/* One header line per call, status lines included (a new status line
   starts a new response: interim 1xx answers leave nothing behind). */
static size_t spim__s3_on_header(char *line, size_t size, size_t n, void *user)
{
    spim__s3_call *call = (spim__s3_call *)user;
    spim_s3_object *o = call->out;
    size_t len = size * n;
    const char *nb = line, *ne, *vb, *ve = line + len;
    char date[64];
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        const char *sp = (const char *)memchr(line, ' ', len);
        spim__s3_object_reset_headers(o);
        /* the line is not NUL-terminated: read exactly three digits, not atoi */
        if (sp && sp + 4 <= line + len && isdigit((unsigned char)sp[1]) && isdigit((unsigned char)sp[2]) &&
            isdigit((unsigned char)sp[3]))
            o->http_status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
        return len;
    }
    if (len <= 2) { /* the blank line: refuse a body we would reject anyway */
        if (o->http_status >= 200 && o->http_status < 300 && call->want_body && call->max_bytes &&
            o->content_length > (int64_t)call->max_bytes) {
            call->too_large = 1;
            return 0;
        }
        return len;
    }
    ne = (const char *)memchr(line, ':', len);
    if (!ne) return len;
    vb = ne + 1;
    spim__s3_trim(&nb, &ne);
    spim__s3_trim(&vb, &ve);
    if (spim__s3_ieq_n(nb, (size_t)(ne - nb), "content-type"))
        spim__s3_copy_clean(o->content_type, sizeof o->content_type, vb, (size_t)(ve - vb));
    else if (spim__s3_ieq_n(nb, (size_t)(ne - nb), "etag"))
        spim__s3_copy_clean(o->etag, sizeof o->etag, vb, (size_t)(ve - vb));
    else if (spim__s3_ieq_n(nb, (size_t)(ne - nb), "x-amz-request-id"))
        spim__s3_copy_clean(o->request_id, sizeof o->request_id, vb, (size_t)(ve - vb));
    else if (spim__s3_ieq_n(nb, (size_t)(ne - nb), "content-length"))
        o->content_length = spim__s3_parse_length(vb, ve);
    else if (spim__s3_ieq_n(nb, (size_t)(ne - nb), "date")) {
        spim__s3_copy_clean(date, sizeof date, vb, (size_t)(ve - vb));
        call->server_date = spim_s3_parse_http_date(date);
    } else if (ne - nb > 11 && spim__s3_iprefix(nb, (size_t)(ne - nb), "x-amz-meta-")) {
        if (!spim__s3_add_meta(o, nb + 11, (size_t)(ne - nb - 11), vb, (size_t)(ve - vb))) {
            call->nomem = 1;
            return 0;
        }
    }
    return len;
}

static size_t spim__s3_on_body(char *data, size_t size, size_t n, void *user)
{
    spim__s3_call *call = (spim__s3_call *)user;
    spim_s3_object *o = call->out;
    size_t len = size * n;
    if (o->http_status < 200 || o->http_status >= 300) {
        size_t room = SPIM__S3_ERROR_BODY_MAX - call->error_body.len;
        if (len < room) room = len;
        if (spim_buf_append(&call->error_body, data, room) != SPIM_OK) { call->nomem = 1; return 0; }
        return len;
    }
    if (!call->want_body) return len;
    if (call->max_bytes && len > call->max_bytes - o->body.len) {
        call->too_large = 1;
        return 0;
    }
    if (o->body.len == 0 && o->content_length > 0 && (uint64_t)o->content_length < (uint64_t)SIZE_MAX &&
        spim_buf_reserve(&o->body, (size_t)o->content_length) != SPIM_OK) {
        call->nomem = 1;
        return 0;
    }
    if (spim_buf_append(&o->body, data, len) != SPIM_OK) { call->nomem = 1; return 0; }
    return len;
}

static size_t spim__s3_on_read(char *buf, size_t size, size_t n, void *user)
{
    spim__s3_call *call = (spim__s3_call *)user;
    size_t room = size * n, left = call->body_len - call->sent;
    if (room > left) room = left;
    if (room) memcpy(buf, call->body + call->sent, room);
    call->sent += room;
    return room;
}

/* curl rewinds the upload when it resends on a connection that turned out
   to be dead. */
static int spim__s3_on_seek(void *user, curl_off_t offset, int origin)
{
    spim__s3_call *call = (spim__s3_call *)user;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > (uint64_t)call->body_len)
        return CURL_SEEKFUNC_CANTSEEK;
    call->sent = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static struct curl_slist *spim__s3_slist_add(struct curl_slist *list, const char *name, const char *value,
                                             int *ok)
{
    spim_buf line = SPIM_BUF_INIT;
    struct curl_slist *next = NULL;
    if (spim_buf_appendf(&line, "%s: %s", name, value) == SPIM_OK)
        next = curl_slist_append(list, (const char *)line.data);
    spim_buf_free(&line);
    if (!next) { *ok = 0; return list; }
    return next;
}

/* Sign the request at `now` and turn our headers plus the signer's into a
   curl list. "Expect:" stops curl's 100-continue round trip on uploads. */
static spim_status spim__s3_sign_headers(spim_s3_client *c, spim__s3_call *call, const char *url,
                                         struct curl_slist **out, spim_error *err)
{
    spim_sigv4_request req;
    spim_sigv4_params prm;
    spim_sigv4_result sig;
    struct curl_slist *list = NULL, *next;
    spim_status st;
    size_t i;
    int ok = 1;
    memset(&req, 0, sizeof req);
    memset(&prm, 0, sizeof prm);
    req.method = call->method;
    req.url = url;
    req.headers = call->headers;
    req.header_count = call->header_count;
    req.payload_hash = call->payload_hash;
    prm.credentials = &c->credentials;
    prm.region = c->region;
    prm.service = "s3";
    prm.time = call->signed_at;
    prm.mode = SPIM_SIGV4_S3;
    st = spim_sigv4_sign(&req, &prm, &sig, err);
    for (i = 0; st == SPIM_OK && i < call->header_count; i++)
        list = spim__s3_slist_add(list, call->headers[i].name, call->headers[i].value, &ok);
    for (i = 0; st == SPIM_OK && i < sig.add_header_count; i++)
        list = spim__s3_slist_add(list, sig.add_headers[i].name, sig.add_headers[i].value, &ok);
    spim_sigv4_result_free(&sig);
    if (st != SPIM_OK) return st;
    next = ok ? curl_slist_append(list, "Expect:") : NULL;
    if (!next) {
        curl_slist_free_all(list);
        return spim_error_set(err, SPIM_ERR_NOMEM, "s3: out of memory building headers");
    }
    *out = next;
    return SPIM_OK;
}

static CURLcode spim__s3_perform(spim_s3_client *c, spim__s3_call *call, const char *url,
                                 struct curl_slist *headers)
{
    CURL *h = c->curl;
    curl_easy_reset(h); /* options only: kept-alive connections survive */
    c->curl_error[0] = 0;
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_error);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file[0]) curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->low_speed_time_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, spim__s3_on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, (void *)call);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, spim__s3_on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, (void *)call);
    if (strcmp(call->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (call->upload) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, spim__s3_on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, (void *)call);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, spim__s3_on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, (void *)call);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)call->body_len);
        if (strcmp(call->method, "PUT") != 0) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, call->method);
    } else if (strcmp(call->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, call->method);
    }
    return curl_easy_perform(h);
}

static int spim__s3_curl_transient(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_CONNECT: case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR: case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR: case CURLE_HTTP2: case CURLE_HTTP2_STREAM: case CURLE_WEIRD_SERVER_REPLY:
        return 1;
    default:
        return 0;
    }
}

static int spim__s3_call_retryable(const spim__s3_call *call)
{
    if (call->nomem || call->too_large) return 0;
    if (call->cc != CURLE_OK) return spim__s3_curl_transient(call->cc);
    return spim_s3_is_retryable(call->out->http_status, call->error.code);
}

/* A body-less error (HEAD, or a proxy that said nothing) still gets a code. */
static void spim__s3_fill_error(spim__s3_call *call)
{
    spim_s3_object *o = call->out;
    spim_s3_parse_error((const char *)call->error_body.data, call->error_body.len, &call->error);
    if (!call->error.code[0]) {
        const char *code = o->http_status == 404 ? (call->key[0] ? "NoSuchKey" : "NoSuchBucket")
                         : o->http_status == 403 ? "Forbidden"
                         : o->http_status == 503 ? "ServiceUnavailable"
                         : o->http_status >= 500 ? "InternalError" : "HttpError";
        strcpy(call->error.code, code);
    }
    if (!call->error.request_id[0]) strcpy(call->error.request_id, o->request_id);
}

/* One signed attempt. SPIM_OK on a 2xx; otherwise the call records why. */
static spim_status spim__s3_attempt(spim_s3_client *c, spim__s3_call *call, const char *url, spim_error *err)
{
    struct curl_slist *headers = NULL;
    long code = 0;
    spim_status st;
    call->sent = 0;
    call->too_large = call->nomem = 0;
    call->server_date = 0;
    spim_buf_reset(&call->error_body);
    memset(&call->error, 0, sizeof call->error);
    spim__s3_object_reset_headers(call->out);
    spim_buf_reset(&call->out->body);
    call->signed_at = spim_wall_ms() / 1000 + c->clock_offset_s;
    st = spim__s3_sign_headers(c, call, url, &headers, err);
    if (st != SPIM_OK) return st;
    call->cc = spim__s3_perform(c, call, url, headers);
    curl_slist_free_all(headers);
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
    call->out->http_status = (int)code;
    if (call->cc == CURLE_OK && code >= 200 && code < 300) {
        /* an empty object still gets a (NUL-terminated) body buffer */
        if (call->want_body && spim_buf_reserve(&call->out->body, 0) != SPIM_OK) {
            call->nomem = 1;
            return SPIM_ERR_HTTP;
        }
        return SPIM_OK;
    }
    if (call->cc == CURLE_OK) spim__s3_fill_error(call);
    return SPIM_ERR_HTTP;
}

/* "GET s3://bucket/key" for messages: the key cut short and made printable. */
static void spim__s3_where(const spim__s3_call *call, char *out, size_t cap)
{
    char key[160];
    size_t klen = strlen(call->key);
    spim__s3_copy_clean(key, sizeof key, call->key, klen);
    snprintf(out, cap, "%s s3://%.64s/%s%s", call->method, call->bucket, key,
             klen >= sizeof key ? "..." : "");
}

static spim_status spim__s3_fail(spim_s3_client *c, spim__s3_call *call, int attempts, spim_error *err)
{
    char where[256];
    const spim_s3_object *o = call->out;
    spim_status st;
    spim__s3_where(call, where, sizeof where);
    if (call->nomem) return spim_error_set(err, SPIM_ERR_NOMEM, "s3: %s: out of memory", where);
    if (call->too_large) {
        st = spim_error_set(err, SPIM_ERR_TOO_LARGE, "s3: %s: object is over the limit of %zu bytes%s",
                            where, call->max_bytes, o->content_length >= 0 ? " (Content-Length)" : "");
    } else if (call->cc != CURLE_OK) {
        st = spim_error_set(err, SPIM_ERR_NETWORK, "s3: %s: %s (%d attempt%s)", where,
                            c->curl_error[0] ? c->curl_error : curl_easy_strerror(call->cc), attempts,
                            attempts == 1 ? "" : "s");
    } else {
        st = spim_error_set(err, spim_s3_status_for(o->http_status, call->error.code),
                            "s3: %s: %s%s%s (HTTP %d, request id %s, %d attempt%s)", where,
                            call->error.code, call->error.message[0] ? ": " : "", call->error.message,
                            o->http_status, call->error.request_id[0] ? call->error.request_id : "none",
                            attempts, attempts == 1 ? "" : "s");
    }
    if (err) {
        err->http_status = call->cc == CURLE_OK ? o->http_status : 0;
        err->transient = spim__s3_call_retryable(call);
    }
    return st;
}

static double spim__s3_random01(spim_s3_client *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (double)((c->rng * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

/* Full jitter: a uniform wait in [0, min(base * 2^retry, 20 s)). */
static void spim__s3_backoff(spim_s3_client *c, int retry)
{
    double cap;
    long ms;
    struct timespec ts;
    if (c->backoff_base_ms < 0) return;
    cap = (double)c->backoff_base_ms * (double)(1L << (retry < 20 ? retry : 20));
    if (cap > SPIM__S3_MAX_BACKOFF_MS) cap = SPIM__S3_MAX_BACKOFF_MS;
    ms = (long)(cap * spim__s3_random01(c));
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void spim__s3_log_attempt(const spim__s3_call *call, int attempt, int64_t ms, const char *what)
{
    char status[16], n[16], dur[24];
    if (!spim_log_enabled(SPIM_LOG_DEBUG)) return;
    snprintf(status, sizeof status, "%d", call->out->http_status);
    snprintf(n, sizeof n, "%d", attempt);
    snprintf(dur, sizeof dur, "%lld", (long long)ms);
    spim_log_fields(SPIM_LOG_DEBUG, "s3 request", "method", call->method, "bucket", call->bucket,
                    "key", call->key, "status", status, "attempt", n, "ms", dur,
                    "result", what, (const char *)NULL);
}

/* Attempts with standard-mode retries; a clock-skew error resets the
   client's clock offset from the server's Date and retries once for free. */
static spim_status spim__s3_execute(spim_s3_client *c, spim__s3_call *call, spim_error *err)
{
    spim_buf url = SPIM_BUF_INIT;
    int attempt = 0, skew_fixed = 0;
    spim_status st = spim_s3_object_url(c, call->bucket, call->key, &url, err);
    while (st == SPIM_OK) {
        int64_t t0 = spim_now_ms();
        attempt++;
        st = spim__s3_attempt(c, call, (const char *)url.data, err);
        spim__s3_log_attempt(call, attempt, spim_now_ms() - t0, st == SPIM_OK ? "ok"
                             : call->cc != CURLE_OK ? curl_easy_strerror(call->cc) : call->error.code);
        if (st != SPIM_ERR_HTTP) break; /* success, or a failure before sending */
        if (!skew_fixed && call->cc == CURLE_OK && call->server_date > 0 &&
            spim_s3_is_clock_skew(call->error.code, call->server_date, call->signed_at)) {
            skew_fixed = 1;
            c->clock_offset_s = call->server_date - spim_wall_ms() / 1000;
            spim_log(SPIM_LOG_WARN, "s3: %s: clock offset now %lld s from the server's Date",
                     call->error.code, (long long)c->clock_offset_s);
            attempt--;
            st = SPIM_OK;
            continue;
        }
        if (!spim__s3_call_retryable(call) || attempt >= c->max_attempts) {
            st = spim__s3_fail(c, call, attempt, err);
            break;
        }
        spim_log(SPIM_LOG_WARN, "s3: %s s3://%s: attempt %d failed (%s), retrying", call->method, call->bucket,
                 attempt, call->cc != CURLE_OK ? curl_easy_strerror(call->cc) : call->error.code);
        spim__s3_backoff(c, attempt - 1);
        st = SPIM_OK;
    }
    spim_buf_free(&url);
    return st;
}

/* ---- operations --------------------------------------------------------------- */

static void spim__s3_call_init(spim__s3_call *call, const char *method, const char *bucket, const char *key,
                               spim_s3_object *out)
{
    memset(call, 0, sizeof *call);
    call->method = method;
    call->bucket = bucket ? bucket : "";
    call->key = key ? key : "";
    call->out = out;
    spim_sha256_hex("", 0, call->payload_hash);
}

static spim_status spim__s3_run(spim_s3_client *c, spim__s3_call *call, spim_error *err)
{
    spim_s3_object scratch;
    spim_status st;
    int own = call->out == NULL;
    if (own) {
        memset(&scratch, 0, sizeof scratch);
        call->out = &scratch;
    }
    st = spim__s3_execute(c, call, err);
    spim_buf_free(&call->error_body);
    if (own) {
        spim_s3_object_free(&scratch);
        call->out = NULL;
    }
    return st;
}

static spim_status spim__s3_need_key(const char *bucket, const char *key, spim_error *err)
{
    if (!bucket || !*bucket) return spim_error_set(err, SPIM_ERR_INVALID, "s3: empty bucket name");
    if (!key || !*key) return spim_error_set(err, SPIM_ERR_INVALID, "s3: empty object key");
    return SPIM_OK;
}

SPIMDEF spim_status spim_s3_get(spim_s3_client *c, const char *bucket, const char *key, size_t max_bytes,
                                spim_s3_object *out, spim_error *err)
{
    spim__s3_call call;
    spim_status st = spim__s3_need_key(bucket, key, err);
    if (st != SPIM_OK) return st;
    spim__s3_call_init(&call, "GET", bucket, key, out);
    call.want_body = 1;
    call.max_bytes = max_bytes;
    return spim__s3_run(c, &call, err);
}

SPIMDEF spim_status spim_s3_head(spim_s3_client *c, const char *bucket, const char *key,
                                 spim_s3_object *out, spim_error *err)
{
    spim__s3_call call;
    spim_status st = spim__s3_need_key(bucket, key, err);
    if (st != SPIM_OK) return st;
    spim__s3_call_init(&call, "HEAD", bucket, key, out);
    return spim__s3_run(c, &call, err);
}

SPIMDEF spim_status spim_s3_delete(spim_s3_client *c, const char *bucket, const char *key, spim_error *err)
{
    spim__s3_call call;
    spim_status st = spim__s3_need_key(bucket, key, err);
    if (st != SPIM_OK) return st;
    spim__s3_call_init(&call, "DELETE", bucket, key, NULL);
    return spim__s3_run(c, &call, err);
}

static int spim__s3_header_value_ok(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e) return 0;
    return 1;
}

/* Content-Type plus x-amz-meta-NAME headers; the names live in one block
   so that a single free releases them. */
static spim_status spim__s3_put_headers(const spim_s3_put_options *o, spim_header **out, char **names,
                                        spim_error *err)
{
    size_t n = o ? o->metadata_count : 0, need = 1, i, at = 0;
    const char *type = o && o->content_type ? o->content_type : "application/octet-stream";
    spim_header *h;
    if (!spim__s3_header_value_ok(type) || !*type)
        return spim_error_set(err, SPIM_ERR_INVALID, "s3: Content-Type must be printable ASCII");
    for (i = 0; i < n; i++) {
        const char *k = o->metadata[i].name, *v = o->metadata[i].value, *p;
        if (!k || !*k || !v || !spim__s3_header_value_ok(v))
            return spim_error_set(err, SPIM_ERR_INVALID, "s3: metadata %zu needs a name and a printable ASCII value", i);
        for (p = k; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
                return spim_error_set(err, SPIM_ERR_INVALID, "s3: metadata name \"%.64s\" must be [A-Za-z0-9_-]", k);
        need += 11 + strlen(k) + 1;
    }
    h = (spim_header *)SPIM_MALLOC((n + 1) * sizeof *h);
    *names = (char *)SPIM_MALLOC(need);
    if (!h || !*names) {
        SPIM_FREE(h);
        SPIM_FREE(*names);
        *names = NULL;
        return spim_error_set(err, SPIM_ERR_NOMEM, "s3: out of memory");
    }
    h[0].name = "Content-Type";
    h[0].value = type;
    for (i = 0; i < n; i++) {
        size_t kl = strlen(o->metadata[i].name);
        memcpy(*names + at, "x-amz-meta-", 11);
        memcpy(*names + at + 11, o->metadata[i].name, kl + 1);
        h[i + 1].name = *names + at;
        h[i + 1].value = o->metadata[i].value;
        at += 11 + kl + 1;
    }
    *out = h;
    return SPIM_OK;
}

SPIMDEF spim_status spim_s3_put(spim_s3_client *c, const char *bucket, const char *key, const void *data,
                                size_t len, const spim_s3_put_options *opts, spim_s3_object *out,
                                spim_error *err)
{
    spim__s3_call call;
    spim_header *headers = NULL;
    char *names = NULL;
    spim_status st = spim__s3_need_key(bucket, key, err);
    if (st == SPIM_OK && !data && len) st = spim_error_set(err, SPIM_ERR_INVALID, "s3: PUT without data");
    if (st == SPIM_OK) st = spim__s3_put_headers(opts, &headers, &names, err);
    if (st != SPIM_OK) return st;
    spim__s3_call_init(&call, "PUT", bucket, key, out);
    call.headers = headers;
    call.header_count = 1 + (opts ? opts->metadata_count : 0);
    call.body = (const unsigned char *)data;
    call.body_len = len;
    call.upload = 1;
    spim_sha256_hex(data ? data : "", len, call.payload_hash);
    st = spim__s3_run(c, &call, err);
    SPIM_FREE(headers);
    SPIM_FREE(names);
    return st;
}

SPIMDEF spim_status spim_s3_create_bucket(spim_s3_client *c, const char *bucket, spim_error *err)
{
    spim__s3_call call;
    spim_buf body = SPIM_BUF_INIT;
    spim_status st;
    if (!bucket || !*bucket) return spim_error_set(err, SPIM_ERR_INVALID, "s3: empty bucket name");
    /* us-east-1 is the one region that takes no LocationConstraint */
    if (strcmp(c->region, "us-east-1") != 0 &&
        spim_buf_appendf(&body, "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                         "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
                         c->region) != SPIM_OK)
        return spim_error_set(err, SPIM_ERR_NOMEM, "s3: out of memory");
    spim__s3_call_init(&call, "PUT", bucket, "", NULL);
    call.body = body.data;
    call.body_len = body.len;
    call.upload = 1;
    spim_sha256_hex(body.data ? (const void *)body.data : "", body.len, call.payload_hash);
    st = spim__s3_run(c, &call, err);
    spim_buf_free(&body);
    if (st != SPIM_OK && strcmp(call.error.code, "BucketAlreadyOwnedByYou") == 0) {
        spim_error_clear(err);
        st = SPIM_OK;
    }
    return st;
}

SPIMDEF spim_status spim_s3_presign_get(spim_s3_client *c, const char *bucket, const char *key, long expires_s,
                                        spim_buf *url_out, spim_error *err)
{
    spim_buf url = SPIM_BUF_INIT;
    spim_sigv4_request req;
    spim_sigv4_params prm;
    spim_status st = spim__s3_need_key(bucket, key, err);
    if (st != SPIM_OK) return st;
    if (expires_s < 1 || expires_s > SPIM_PRESIGN_MAX_EXPIRES)
        return spim_error_set(err, SPIM_ERR_INVALID, "s3: presign expiry must be 1..%d seconds",
                              SPIM_PRESIGN_MAX_EXPIRES);
    st = spim_s3_object_url(c, bucket, key, &url, err);
    if (st != SPIM_OK) return st;
    memset(&req, 0, sizeof req);
    memset(&prm, 0, sizeof prm);
    req.method = "GET";
    req.url = (const char *)url.data;
    req.payload_hash = SPIM_UNSIGNED_PAYLOAD;
    prm.credentials = &c->credentials;
    prm.region = c->region;
    prm.service = "s3";
    prm.time = spim_wall_ms() / 1000 + c->clock_offset_s;
    prm.mode = SPIM_SIGV4_S3;
    prm.expires = expires_s;
    st = spim_sigv4_presign(&req, &prm, url_out, NULL, err);
    spim_buf_free(&url);
    return st;
}

#ifdef __cplusplus
}
#endif
