/* ==========================================================================
   lambda
   The Runtime API client (one keep-alive libcurl handle to the local API),
   the invocation loop with bounded retries, error bodies, local invoke.
   ========================================================================== */

#include <curl/curl.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPIM__LAMBDA_API_MAX 200           /* host:port from the environment */
#define SPIM__LAMBDA_REPLY_MAX 65536u      /* what we keep of the API's own answers */
#define SPIM__LAMBDA_TRIES 5
#define SPIM__LAMBDA_RETRY_MS 50
#define SPIM__TRACE_ENV "_X_AMZN_TRACE_ID"

extern char **environ;   /* POSIX: declared by the application */

enum {
    SPIM__H_REQUEST_ID, SPIM__H_DEADLINE, SPIM__H_ARN, SPIM__H_TRACE,
    SPIM__H_CLIENT_CONTEXT, SPIM__H_COGNITO, SPIM__H_TENANT, SPIM__H_COUNT
};

static const char *const spim__lambda_headers[SPIM__H_COUNT] = {
    "Lambda-Runtime-Aws-Request-Id", "Lambda-Runtime-Deadline-Ms",
    "Lambda-Runtime-Invoked-Function-Arn", "Lambda-Runtime-Trace-Id",
    "Lambda-Runtime-Client-Context", "Lambda-Runtime-Cognito-Identity",
    "Lambda-Runtime-Aws-Tenant-Id"
};

typedef struct spim__lambda {
    CURL *curl;
    struct curl_slist *no_expect;  /* "Expect:" - no 100-continue round trip */
    char base[SPIM__LAMBDA_API_MAX + 64];
    spim_buf body;                 /* the body of the last answer */
    size_t body_max;               /* what we keep of a body */
    int body_overflow;             /* the body went over body_max */
    spim_buf hdr[SPIM__H_COUNT];
    int hdr_overflow;              /* index + 1 of an oversized header, else 0 */
    int want_headers;              /* only `next` answers describe an invocation: */
                                   /* capture their headers, abort oversized events */
    int tries, retry_ms;
    spim_buf trace_env;            /* "_X_AMZN_TRACE_ID=..." that environ points at */
    spim_response resp;
} spim__lambda;

SPIMDEF int64_t spim_invocation_remaining_ms(const spim_invocation *inv)
{
    int64_t left;
    if (!inv->deadline_ms) return INT64_MAX;
    left = inv->deadline_ms - spim_wall_ms();
    return left > 0 ? left : 0;
}

static int spim__lambda_header_value_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
    return 1;
}

SPIMDEF spim_status spim_response_ok(spim_response *resp, const void *payload, size_t len,
                                     const char *content_type)
{
    if (content_type && (strlen(content_type) >= sizeof resp->content_type ||
                         !spim__lambda_header_value_ok(content_type)))
        return SPIM_ERR_INVALID;
    snprintf(resp->content_type, sizeof resp->content_type, "%s", content_type ? content_type : "");
    spim_buf_reset(&resp->payload);
    return spim_buf_append(&resp->payload, payload, len);
}

SPIMDEF void spim_response_fail(spim_response *resp, const char *error_type, const char *fmt, ...)
{
    va_list ap;
    resp->failed = 1;
    snprintf(resp->error_type, sizeof resp->error_type, "%s", error_type ? error_type : "Error");
    va_start(ap, fmt);
    vsnprintf(resp->error_message, sizeof resp->error_message, fmt, ap);
    va_end(ap);
}

static void spim__response_clear(spim_response *resp)
{
    spim_buf_reset(&resp->payload);
    resp->content_type[0] = 0;
    resp->failed = 0;
    resp->error_type[0] = 0;
    resp->error_message[0] = 0;
}

/* Length of the valid UTF-8 sequence at s (0 if invalid), so that a message
   with stray bytes still gives a JSON body Lambda accepts. */
static size_t spim__utf8_len(const unsigned char *s)
{
    size_t n, i;
    uint32_t cp;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) { n = 2; cp = s[0] & 0x1fu; }
    else if (s[0] >= 0xe0 && s[0] <= 0xef) { n = 3; cp = s[0] & 0x0fu; }
    else if (s[0] >= 0xf0 && s[0] <= 0xf4) { n = 4; cp = s[0] & 0x07u; }
    else return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static spim_status spim__lambda_json_string(spim_buf *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    spim_status st = spim_buf_append(out, "\"", 1);
    while (st == SPIM_OK && *p) {
        size_t n = spim__utf8_len(p);
        if (*p == '"' || *p == '\\') st = spim_buf_appendf(out, "\\%c", *p);
        else if (*p == '\n') st = spim_buf_append(out, "\\n", 2);
        else if (*p == '\r') st = spim_buf_append(out, "\\r", 2);
        else if (*p == '\t') st = spim_buf_append(out, "\\t", 2);
        else if (*p < 0x20) st = spim_buf_appendf(out, "\\u%04x", *p);
        else if (n == 0) st = spim_buf_append(out, "\\ufffd", 6);
        else st = spim_buf_append(out, p, n);
        p += n ? n : 1;
    }
    return st == SPIM_OK ? spim_buf_append(out, "\"", 1) : st;
}

SPIMDEF spim_status spim_lambda_error_json(spim_buf *out, const char *error_type, const char *message)
{
    spim_status st = spim_buf_append_str(out, "{\"errorMessage\":");
    if (st == SPIM_OK) st = spim__lambda_json_string(out, message ? message : "");
    if (st == SPIM_OK) st = spim_buf_append_str(out, ",\"errorType\":");
    if (st == SPIM_OK) st = spim__lambda_json_string(out, error_type && *error_type ? error_type : "Error");
    if (st == SPIM_OK) st = spim_buf_append_str(out, ",\"stackTrace\":[]}");
    return st;
}

/* Lambda-Runtime-Function-Error-Type wants Category.Reason: keep a type
   that already has that form, else file it under Function. `cap` >= 16. */
static void spim__lambda_error_header(const char *error_type, char *out, size_t cap)
{
    const char *t = error_type && *error_type ? error_type : "Error";
    size_t n = 0;
    int keep = (strncmp(t, "Function.", 9) == 0 && t[9]) || (strncmp(t, "Runtime.", 8) == 0 && t[8]);
    if (!keep) n = (size_t)snprintf(out, cap, "Function.");
    for (; *t && n + 1 < cap; t++)
        if (isalnum((unsigned char)*t) || (keep && *t == '.')) out[n++] = *t;
    if (out[n - 1] == '.' && n + 6 > cap) n = cap - 6; /* cut: leave room for "Error" */
    out[n] = 0;
    if (out[n - 1] == '.') snprintf(out + n, cap - n, "Error");
}

/* ---- HTTP to the Runtime API ------------------------------------------- */

static size_t spim__lambda_on_body(char *p, size_t size, size_t n, void *user)
{
    spim__lambda *rt = (spim__lambda *)user;
    size_t len = size * n;
    if (rt->body.len + len > rt->body_max) {
        rt->body_overflow = 1;
        return rt->want_headers ? 0 : len;   /* an event must be whole; a reply is only logged */
    }
    return spim_buf_append(&rt->body, p, len) == SPIM_OK ? len : 0;
}

static size_t spim__lambda_on_header(char *p, size_t size, size_t n, void *user)
{
    spim__lambda *rt = (spim__lambda *)user;
    size_t len = size * n, name_len, i;
    const char *colon = (const char *)memchr(p, ':', len), *v, *end = p + len;
    if (!rt->want_headers) return len;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {  /* a new answer (e.g. after 100) */
        for (i = 0; i < SPIM__H_COUNT; i++) spim_buf_reset(&rt->hdr[i]);
        rt->hdr_overflow = 0;
        return len;
    }
    if (!colon) return len;
    name_len = (size_t)(colon - p);
    for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++) {}
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) end--;
    for (i = 0; i < SPIM__H_COUNT; i++) {
        const char *want = spim__lambda_headers[i];
        size_t k;
        if (strlen(want) != name_len) continue;
        for (k = 0; k < name_len && tolower((unsigned char)p[k]) == tolower((unsigned char)want[k]); k++) {}
        if (k != name_len) continue;
        spim_buf_reset(&rt->hdr[i]);
        if ((size_t)(end - v) > SPIM_LAMBDA_HEADER_MAX) rt->hdr_overflow = (int)i + 1;
        else if (spim_buf_append(&rt->hdr[i], v, (size_t)(end - v)) != SPIM_OK) return 0;
    }
    return len;
}

static int spim__lambda_transient(CURLcode rc)
{
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR ||
           rc == CURLE_RECV_ERROR || rc == CURLE_PARTIAL_FILE || rc == CURLE_OPERATION_TIMEDOUT;
}

static void spim__sleep_ms(int ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* One request to `path` (under .../runtime), retried on connection errors.
   A GET when body is NULL. SPIM_OK means an HTTP status arrived in *status. */
static spim_status spim__lambda_request(spim__lambda *rt, const char *path, const char *content_type,
                                        const char *error_type, const void *body, size_t len,
                                        size_t body_max, long *status, spim_error *err)
{
    char url[sizeof rt->base + 256], ct[160], et[96];
    struct curl_slist *hs = NULL, *h;
    CURLcode rc = CURLE_OK;
    int attempt, delay = rt->retry_ms;
    snprintf(url, sizeof url, "%s%s", rt->base, path);
    curl_easy_setopt(rt->curl, CURLOPT_URL, url);
    rt->want_headers = body == NULL;
    if (body) {
        snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
        hs = curl_slist_append(NULL, ct);
        if (hs && error_type) {
            snprintf(et, sizeof et, "Lambda-Runtime-Function-Error-Type: %s", error_type);
            h = curl_slist_append(hs, et);
            if (!h) { curl_slist_free_all(hs); hs = NULL; }
        }
        if (hs && !curl_slist_append(hs, "Expect:")) { curl_slist_free_all(hs); hs = NULL; }
        if (!hs) return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory building a runtime API request");
        curl_easy_setopt(rt->curl, CURLOPT_POSTFIELDS, (const char *)body);
        curl_easy_setopt(rt->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else {
        curl_easy_setopt(rt->curl, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(rt->curl, CURLOPT_HTTPHEADER, hs ? hs : rt->no_expect);
    for (attempt = 1; attempt <= rt->tries; attempt++) {
        spim_buf_reset(&rt->body);
        rt->body_max = body_max;
        rt->body_overflow = 0;
        rc = curl_easy_perform(rt->curl);
        if (rc == CURLE_OK || !spim__lambda_transient(rc) || attempt == rt->tries) break;
        spim_log(SPIM_LOG_WARN, "runtime API %s failed (%s), retry %d/%d in %d ms", path,
                 curl_easy_strerror(rc), attempt, rt->tries - 1, delay);
        spim__sleep_ms(delay);
        delay *= 2;
    }
    curl_easy_setopt(rt->curl, CURLOPT_HTTPHEADER, rt->no_expect);
    curl_slist_free_all(hs);
    if (rc == CURLE_WRITE_ERROR && rt->body_overflow)
        return spim_error_set(err, SPIM_ERR_TOO_LARGE, "event payload over %zu bytes", body_max);
    if (rc != CURLE_OK) {
        spim_error_set(err, SPIM_ERR_NETWORK, "runtime API at %s unreachable after %d attempts: %s",
                       rt->base, attempt, curl_easy_strerror(rc));
        if (err) err->transient = 1;
        return SPIM_ERR_NETWORK;
    }
    curl_easy_getinfo(rt->curl, CURLINFO_RESPONSE_CODE, status);
    if (err) err->http_status = (int)*status;
    return SPIM_OK;
}

static spim_status spim__lambda_open(spim__lambda *rt, const spim_lambda_opts *opts, spim_error *err)
{
    const char *api = opts && opts->runtime_api ? opts->runtime_api : getenv("AWS_LAMBDA_RUNTIME_API");
    memset(rt, 0, sizeof *rt);
    if (!api || !*api)
        return spim_error_set(err, SPIM_ERR_CONFIG, "AWS_LAMBDA_RUNTIME_API is not set");
    if (strlen(api) > SPIM__LAMBDA_API_MAX || strpbrk(api, "/?#@ \t\r\n"))
        return spim_error_set(err, SPIM_ERR_CONFIG, "AWS_LAMBDA_RUNTIME_API is not a host:port");
    snprintf(rt->base, sizeof rt->base, "http://%s/2018-06-01/runtime", api);
    rt->tries = opts && opts->tries > 0 ? opts->tries : SPIM__LAMBDA_TRIES;
    rt->retry_ms = opts && opts->retry_delay_ms > 0 ? opts->retry_delay_ms : SPIM__LAMBDA_RETRY_MS;
    rt->curl = curl_easy_init();
    rt->no_expect = curl_slist_append(NULL, "Expect:");
    if (!rt->curl || !rt->no_expect) {
        curl_easy_cleanup(rt->curl);
        curl_slist_free_all(rt->no_expect);
        return spim_error_set(err, SPIM_ERR_NOMEM, "cannot create a libcurl handle");
    }
    curl_easy_setopt(rt->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(rt->curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(rt->curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(rt->curl, CURLOPT_WRITEFUNCTION, spim__lambda_on_body);
    curl_easy_setopt(rt->curl, CURLOPT_WRITEDATA, rt);
    curl_easy_setopt(rt->curl, CURLOPT_HEADERFUNCTION, spim__lambda_on_header);
    curl_easy_setopt(rt->curl, CURLOPT_HEADERDATA, rt);
    return SPIM_OK;
}

static void spim__lambda_close(spim__lambda *rt)
{
    int i;
    unsetenv(SPIM__TRACE_ENV);   /* environ may point into trace_env */
    spim_buf_free(&rt->trace_env);
    curl_easy_cleanup(rt->curl);
    curl_slist_free_all(rt->no_expect);
    spim_buf_free(&rt->body);
    for (i = 0; i < SPIM__H_COUNT; i++) spim_buf_free(&rt->hdr[i]);
    spim_buf_free(&rt->resp.payload);
}

/* ---- the invocation loop --------------------------------------------- */

static const char *spim__lambda_hdr(const spim__lambda *rt, int i)
{
    return rt->hdr[i].len ? (const char *)rt->hdr[i].data : NULL;
}

/* The id goes into a URL path: accept what Lambda uses (UUIDs) and little else. */
static int spim__lambda_id_ok(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++)
        if (!isalnum((unsigned char)id[n]) && !strchr("-_.:", id[n])) return 0;
    return n > 0 && n <= SPIM_LAMBDA_REQUEST_ID_MAX;
}

static int64_t spim__lambda_parse_ms(const char *s)
{
    int64_t v = 0;
    if (!s) return 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s) || v > (INT64_MAX - 9) / 10) return 0;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* Wait for the next event. SPIM_ERR_TOO_LARGE leaves a usable request id in
   *inv so that the invocation can be failed; other errors are fatal. */
static spim_status spim__lambda_next(spim__lambda *rt, spim_invocation *inv, spim_error *err)
{
    long status = 0;
    const char *id;
    spim_status st = spim__lambda_request(rt, "/invocation/next", NULL, NULL, NULL, 0,
                                          SPIM_LAMBDA_PAYLOAD_MAX, &status, err);
    if (st != SPIM_OK && st != SPIM_ERR_TOO_LARGE) return st;
    if (st == SPIM_OK && status != 200)
        return spim_error_set(err, SPIM_ERR_RUNTIME, "runtime API answered %ld to next%s", status,
                              status == 500 ? " (container error), exiting" : ", exiting");
    id = spim__lambda_hdr(rt, SPIM__H_REQUEST_ID);
    if (!id || !spim__lambda_id_ok(id))
        return spim_error_set(err, SPIM_ERR_RUNTIME, "next answered without a valid Lambda-Runtime-Aws-Request-Id");
    memset(inv, 0, sizeof *inv);
    inv->request_id = id;
    inv->payload = rt->body.data ? (const char *)rt->body.data : "";
    inv->payload_len = rt->body.len;
    inv->deadline_ms = spim__lambda_parse_ms(spim__lambda_hdr(rt, SPIM__H_DEADLINE));
    inv->function_arn = spim__lambda_hdr(rt, SPIM__H_ARN);
    inv->trace_id = spim__lambda_hdr(rt, SPIM__H_TRACE);
    inv->client_context = spim__lambda_hdr(rt, SPIM__H_CLIENT_CONTEXT);
    inv->cognito_identity = spim__lambda_hdr(rt, SPIM__H_COGNITO);
    inv->tenant_id = spim__lambda_hdr(rt, SPIM__H_TENANT);
    if (st == SPIM_OK && rt->hdr_overflow)
        st = spim_error_set(err, SPIM_ERR_TOO_LARGE, "header %s over %u bytes",
                            spim__lambda_headers[rt->hdr_overflow - 1], SPIM_LAMBDA_HEADER_MAX);
    return st;
}

/* 202 is the only success; 500 means the environment is going away. Other
   refusals concern one invocation only, so the loop goes on. */
static spim_status spim__lambda_check(const spim__lambda *rt, const char *what, long status, spim_error *err)
{
    if (status == 202) return SPIM_OK;
    if (status == 500)
        return spim_error_set(err, SPIM_ERR_RUNTIME, "runtime API answered 500 to %s (container error), exiting", what);
    spim_log(SPIM_LOG_ERROR, "runtime API answered %ld to %s: %.200s", status, what,
             rt->body.data ? (const char *)rt->body.data : "");
    return SPIM_OK;
}

static spim_status spim__lambda_post_error(spim__lambda *rt, const char *path, const char *error_type,
                                           const char *message, spim_error *err)
{
    spim_buf json = SPIM_BUF_INIT;
    char header[96];
    long status = 0;
    spim_status st;
    spim__lambda_error_header(error_type, header, sizeof header);
    if (spim_lambda_error_json(&json, error_type, message) != SPIM_OK) {
        spim_buf_free(&json);
        return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory formatting an error");
    }
    st = spim__lambda_request(rt, path, "application/json", header, json.data, json.len,
                              SPIM__LAMBDA_REPLY_MAX, &status, err);
    spim_buf_free(&json);
    return st == SPIM_OK ? spim__lambda_check(rt, path, status, err) : st;
}

static spim_status spim__lambda_post_response(spim__lambda *rt, const char *id, spim_error *err)
{
    char path[SPIM_LAMBDA_REQUEST_ID_MAX + 32];
    const spim_response *resp = &rt->resp;
    long status = 0;
    spim_status st;
    snprintf(path, sizeof path, "/invocation/%s/response", id);
    st = spim__lambda_request(rt, path, resp->content_type[0] ? resp->content_type : "application/json",
                              NULL, resp->payload.data ? (const void *)resp->payload.data : "",
                              resp->payload.len, SPIM__LAMBDA_REPLY_MAX, &status, err);
    if (st != SPIM_OK || status != 413) return st == SPIM_OK ? spim__lambda_check(rt, path, status, err) : st;
    spim_log(SPIM_LOG_ERROR, "response of %zu bytes refused as too large", resp->payload.len);
    snprintf(path, sizeof path, "/invocation/%s/error", id);
    snprintf(rt->resp.error_message, sizeof rt->resp.error_message,
             "Response payload size (%zu bytes) exceeded maximum allowed payload size (6291456 bytes).",
             resp->payload.len);
    return spim__lambda_post_error(rt, path, "Function.ResponseSizeTooLarge", rt->resp.error_message, err);
}

static char **spim__lambda_trace_slot(void)
{
    char **e;
    for (e = environ; e && *e; e++)
        if (strncmp(*e, SPIM__TRACE_ENV "=", sizeof SPIM__TRACE_ENV) == 0) return e;
    return NULL;
}

/* glibc's setenv never frees the string it replaces, so a new trace id per
   invocation would leak ~100 bytes each time. setenv makes the slot (with a
   constant value glibc reuses), then the slot points at our own buffer; no
   environ read happens between the buffer's realloc and the swap. */
static void spim__lambda_set_trace(spim__lambda *rt, const char *trace)
{
    char **slot;
    if (!trace) {
        unsetenv(SPIM__TRACE_ENV);
        return;
    }
    if (!(slot = spim__lambda_trace_slot()) &&
        (setenv(SPIM__TRACE_ENV, "", 1) != 0 || !(slot = spim__lambda_trace_slot())))
        return;
    spim_buf_reset(&rt->trace_env);
    if (spim_buf_appendf(&rt->trace_env, "%s=%s", SPIM__TRACE_ENV, trace) != SPIM_OK) {
        *slot = (char *)SPIM__TRACE_ENV "=";   /* never written through */
        return;
    }
    *slot = (char *)rt->trace_env.data;
}

/* Call the handler for one event and post what it answered. */
static spim_status spim__lambda_handle(spim__lambda *rt, spim_handler handler, void *user,
                                       const spim_invocation *inv, spim_error *err)
{
    char path[SPIM_LAMBDA_REQUEST_ID_MAX + 32];
    spim_response *resp = &rt->resp;
    spim_status st;
    int64_t t0 = spim_now_ms();
    spim__response_clear(resp);
    spim__lambda_set_trace(rt, inv->trace_id);
    spim_log_set_request_id(inv->request_id);
    if (spim_log_enabled(SPIM_LOG_DEBUG))
        spim_log(SPIM_LOG_DEBUG, "event of %zu bytes: %.256s", inv->payload_len, inv->payload);
    st = handler(inv, resp, user);
    if (st != SPIM_OK && !resp->failed) spim_response_fail(resp, NULL, "handler failed: %s", spim_status_str(st));
    if (!resp->failed && !spim__lambda_header_value_ok(resp->content_type))
        spim_response_fail(resp, "Runtime.InvalidResponse", "content type has control characters");
    if (resp->failed) {
        spim_log_fields(SPIM_LOG_ERROR, "invocation failed", "errorType", resp->error_type,
                        "errorMessage", resp->error_message, (const char *)NULL);
        snprintf(path, sizeof path, "/invocation/%s/error", inv->request_id);
        st = spim__lambda_post_error(rt, path, resp->error_type, resp->error_message, err);
    } else {
        st = spim__lambda_post_response(rt, inv->request_id, err);
    }
    spim_log(SPIM_LOG_DEBUG, "invocation done in %lld ms", (long long)(spim_now_ms() - t0));
    spim_log_set_request_id(NULL);
    return st;
}

SPIMDEF spim_status spim_lambda_run(spim_handler handler, void *user, const spim_lambda_opts *opts,
                                    spim_error *err)
{
    spim__lambda rt;
    spim_invocation inv;
    spim_error e;
    spim_status st;
    long done = 0;
    char path[SPIM_LAMBDA_REQUEST_ID_MAX + 32];
    spim_error_clear(&e);
    if ((st = spim__lambda_open(&rt, opts, &e)) != SPIM_OK) {
        spim_log(SPIM_LOG_ERROR, "%s", e.message);
        if (err) *err = e;
        return st;
    }
    while (!(opts && opts->max_invocations > 0 && done >= opts->max_invocations)) {
        st = spim__lambda_next(&rt, &inv, &e);
        if (st == SPIM_ERR_TOO_LARGE) {
            spim_log_set_request_id(inv.request_id);
            spim_log(SPIM_LOG_ERROR, "%s", e.message);
            snprintf(path, sizeof path, "/invocation/%s/error", inv.request_id);
            st = spim__lambda_post_error(&rt, path, "Runtime.InvalidInvocation", e.message, &e);
            spim_log_set_request_id(NULL);
        } else if (st == SPIM_OK) {
            st = spim__lambda_handle(&rt, handler, user, &inv, &e);
        }
        if (st != SPIM_OK) break;
        done++;
    }
    if (st != SPIM_OK) spim_log(SPIM_LOG_ERROR, "%s", e.message);
    spim__lambda_close(&rt);
    if (err) *err = e;
    return st;
}

/* ---- init, local invoke, main ------------------------------------------ */

static const char *spim__lambda_init_type(spim_status st)
{
    return st == SPIM_ERR_CONFIG ? "Runtime.ConfigInvalid" : "Runtime.InitError";
}

/* Tell Lambda that initialisation failed; it reports the error on the
   first invoke, so the process only has to exit afterwards. */
static spim_status spim__lambda_init_error(const char *error_type, const char *message, spim_error *err)
{
    spim__lambda rt;
    spim_status st = spim__lambda_open(&rt, NULL, err);
    if (st != SPIM_OK) return st;
    st = spim__lambda_post_error(&rt, "/init/error", error_type, message, err);
    spim__lambda_close(&rt);
    return st;
}

static void spim__lambda_local_invocation(spim_invocation *inv, const spim_buf *event, char *id, char *arn)
{
    const char *timeout = getenv("AWS_LAMBDA_FUNCTION_TIMEOUT");
    const char *name = getenv("AWS_LAMBDA_FUNCTION_NAME");
    const char *region = getenv("AWS_REGION");
    long secs = timeout ? strtol(timeout, NULL, 10) : 0;
    int64_t now = spim_wall_ms();
    /* ids only need to be unique enough to tell local runs apart in logs */
    snprintf(id, 64, "%08lx-0000-4000-8000-%012llx", (unsigned long)getpid() & 0xffffffffUL,
             (unsigned long long)now & 0xffffffffffffULL);
    snprintf(arn, 256, "arn:aws:lambda:%.32s:000000000000:function:%.64s", region ? region : "us-east-1",
             name ? name : "local");
    memset(inv, 0, sizeof *inv);
    inv->payload = (const char *)event->data;
    inv->payload_len = event->len;
    inv->request_id = id;
    inv->deadline_ms = now + (secs > 0 && secs <= 900 ? secs : 900) * 1000;
    inv->function_arn = arn;
    inv->trace_id = getenv("_X_AMZN_TRACE_ID");
}

static void spim__lambda_print_error(const char *error_type, const char *message)
{
    spim_buf json = SPIM_BUF_INIT;
    if (spim_lambda_error_json(&json, error_type, message) == SPIM_OK)
        fwrite(json.data, 1, json.len, stdout);
    fflush(stdout);
    spim_buf_free(&json);
}

/* `--event FILE`: what `sam local invoke` shows, payload or error JSON on stdout. */
static int spim__lambda_local(const char *file, spim_lambda_init_fn init, spim_handler handler, void *user)
{
    spim_buf event = SPIM_BUF_INIT;
    spim_response resp;
    spim_invocation inv;
    spim_error e;
    spim_status st;
    char id[64], arn[256];
    memset(&resp, 0, sizeof resp);
    spim_error_clear(&e);
    if (spim_read_file(file, SPIM_LAMBDA_PAYLOAD_MAX, &event, &e) != SPIM_OK) {
        spim_log(SPIM_LOG_ERROR, "%s", e.message);
        return 1;
    }
    if (init && (st = init(user, &e)) != SPIM_OK) {
        spim_log_fields(SPIM_LOG_ERROR, "init failed", "errorType", spim__lambda_init_type(st),
                        "errorMessage", e.message, (const char *)NULL);
        spim__lambda_print_error(spim__lambda_init_type(st), e.message);
        spim_buf_free(&event);
        return 1;
    }
    spim__lambda_local_invocation(&inv, &event, id, arn);
    spim_log_set_request_id(id);
    st = handler(&inv, &resp, user);
    if (st != SPIM_OK && !resp.failed) spim_response_fail(&resp, NULL, "handler failed: %s", spim_status_str(st));
    if (resp.failed) {
        spim_log_fields(SPIM_LOG_ERROR, "invocation failed", "errorType", resp.error_type,
                        "errorMessage", resp.error_message, (const char *)NULL);
        spim__lambda_print_error(resp.error_type, resp.error_message);
    } else {
        if (resp.payload.len) fwrite(resp.payload.data, 1, resp.payload.len, stdout);
        fflush(stdout);
    }
    spim_log_set_request_id(NULL);
    spim_buf_free(&resp.payload);
    spim_buf_free(&event);
    return resp.failed ? 1 : 0;
}

static int spim__lambda_loop(spim_lambda_init_fn init, spim_handler handler, void *user)
{
    spim_error e, post;
    spim_status st;
    spim_error_clear(&e);
    spim_error_clear(&post);
    if (init && (st = init(user, &e)) != SPIM_OK) {
        spim_log_fields(SPIM_LOG_ERROR, "init failed", "errorType", spim__lambda_init_type(st),
                        "errorMessage", e.message, (const char *)NULL);
        if (spim__lambda_init_error(spim__lambda_init_type(st), e.message, &post) != SPIM_OK)
            spim_log(SPIM_LOG_ERROR, "could not report the init error: %s", post.message);
        return 1;
    }
    return spim_lambda_run(handler, user, NULL, &e) == SPIM_OK ? 0 : 1;
}

static void spim__lambda_usage(FILE *f, const char *prog)
{
    fprintf(f, "usage: %s [--event FILE]\n"
               "  --event FILE  invoke the function once with the event in FILE and print the result\n"
               "  without --event, serve invocations from the Lambda Runtime API at $AWS_LAMBDA_RUNTIME_API\n",
            prog);
}

SPIMDEF int spim_lambda_main(int argc, char **argv, spim_lambda_init_fn init, spim_handler handler, void *user)
{
    const char *prog = argc > 0 && argv[0] ? argv[0] : "bootstrap", *event = NULL;
    int i, rc;
    spim_log_init_from_env();
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--event") == 0 && i + 1 < argc) {
            event = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            spim__lambda_usage(stdout, prog);
            return 0;
        } else {
            spim__lambda_usage(stderr, prog);
            return 2;
        }
    }
    if (!event && !getenv("AWS_LAMBDA_RUNTIME_API")) {
        spim__lambda_usage(stderr, prog);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        spim_log(SPIM_LOG_FATAL, "curl_global_init failed");
        return 1;
    }
    rc = event ? spim__lambda_local(event, init, handler, user) : spim__lambda_loop(init, handler, user);
    curl_global_cleanup();
    return rc;
}

#ifdef __cplusplus
}
#endif
