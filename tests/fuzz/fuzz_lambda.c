/* What the Runtime API sends and what we send back.
   - The `next` answer's header block, fed line by line to the libcurl
     header callback (spim__lambda_on_header: no public parser exists), then
     the checks spim__lambda_next applies (request id, deadline) and the
     trace id put in the environment.
   - The error body (spim__lambda_error_json) and the error-type header for
     any message and type: always valid JSON, always a valid header value.
   Input: a header block, then a line "\0\0" (if present), then the error
   type up to a newline, then the message. */
#include "fuzz_common.h"

static const uint8_t *find_split(const uint8_t *data, size_t size)
{
    size_t i;
    for (i = 0; i + 1 < size; i++)
        if (data[i] == 0 && data[i + 1] == 0) return data + i;
    return NULL;
}

static void headers(const uint8_t *data, size_t size)
{
    spim__lambda rt;
    const uint8_t *p = data, *end = data + size;
    const char *id, *trace, *env;
    char path[SPIM_LAMBDA_REQUEST_ID_MAX + 32];
    int i;
    memset(&rt, 0, sizeof rt);
    rt.want_headers = 1;
    while (p < end) {  /* libcurl hands over one whole line, CRLF included */
        const uint8_t *nl = (const uint8_t *)memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        FUZZ_CHECK(spim__lambda_on_header((char *)p, 1, n, &rt) == n, "callback refused a %zu-byte line", n);
        p += n;
    }
    for (i = 0; i < SPIM__H_COUNT; i++) {
        const spim_buf *h = &rt.hdr[i];
        if (!h->len) continue;
        FUZZ_CHECK(h->len <= SPIM_LAMBDA_HEADER_MAX, "%s: %zu bytes kept", spim__lambda_headers[i], h->len);
        FUZZ_CHECK(h->data[h->len] == 0 && strlen((const char *)h->data) <= h->len, "%s not terminated",
                   spim__lambda_headers[i]);
        FUZZ_CHECK(!memchr(h->data, '\n', h->len), "%s keeps a newline", spim__lambda_headers[i]);
        FUZZ_CHECK(h->data[0] != ' ' && h->data[0] != '\t' && h->data[h->len - 1] != '\r' &&
                   h->data[h->len - 1] != ' ', "%s not trimmed", spim__lambda_headers[i]);
    }
    FUZZ_CHECK(rt.hdr_overflow >= 0 && rt.hdr_overflow <= SPIM__H_COUNT, "hdr_overflow %d", rt.hdr_overflow);

    id = spim__lambda_hdr(&rt, SPIM__H_REQUEST_ID);
    if (id && spim__lambda_id_ok(id)) {
        size_t k, n = strlen(id);
        FUZZ_CHECK(n <= SPIM_LAMBDA_REQUEST_ID_MAX, "accepted a %zu-byte request id", n);
        for (k = 0; k < n; k++)
            FUZZ_CHECK(id[k] != '/' && id[k] != '?' && id[k] != '%' && (unsigned char)id[k] > 0x20,
                       "request id byte %#x goes into a URL path", (unsigned char)id[k]);
        FUZZ_CHECK((size_t)snprintf(path, sizeof path, "/invocation/%s/error", id) < sizeof path,
                   "error path truncated");
        spim__log_set_request_id(id);
        spim__log_set_request_id(NULL);
    }
    FUZZ_CHECK(spim__lambda_parse_ms(spim__lambda_hdr(&rt, SPIM__H_DEADLINE)) >= 0, "negative deadline");

    trace = spim__lambda_hdr(&rt, SPIM__H_TRACE);
    spim__lambda_set_trace(&rt, trace);
    env = getenv(SPIM__TRACE_ENV);
    if (trace) FUZZ_CHECK(env && strcmp(env, trace) == 0, "trace id not in the environment");
    else FUZZ_CHECK(env == NULL, "stale trace id in the environment");
    unsetenv(SPIM__TRACE_ENV);
    spim_buf_free(&rt.trace_env);
    spim_buf_free(&rt.body);
    for (i = 0; i < SPIM__H_COUNT; i++) spim_buf_free(&rt.hdr[i]);
}

static void errors(const uint8_t *data, size_t size)
{
    fuzz_reader r = { data, size };
    char *type = fuzz_field(&r, '\n', ' ', NULL), *msg, hdr[96];
    size_t mlen, k;
    const uint8_t *m = fuzz_rest(&r, &mlen);
    spim_buf out = SPIM_BUF_INIT;
    cJSON *root;
    const cJSON *em, *et, *stack;
    msg = fuzz_strndup(m, mlen);
    FUZZ_CHECK(spim__lambda_error_json(&out, type, msg) == SPIM_OK, "error_json failed");
    root = cJSON_ParseWithLength((const char *)out.data, out.len);
    FUZZ_CHECK(root != NULL, "error body is not JSON: %s", (const char *)out.data);
    em = cJSON_GetObjectItemCaseSensitive(root, "errorMessage");
    et = cJSON_GetObjectItemCaseSensitive(root, "errorType");
    stack = cJSON_GetObjectItemCaseSensitive(root, "stackTrace");
    FUZZ_CHECK(cJSON_IsString(em) && cJSON_IsString(et) && cJSON_IsArray(stack), "error body lacks a field");
    FUZZ_CHECK(et->valuestring[0] != 0, "empty errorType");
    /* plain ASCII without NUL survives exactly */
    for (k = 0; msg[k] && (unsigned char)msg[k] < 0x80; k++) {}
    if (!msg[k]) FUZZ_CHECK(strcmp(em->valuestring, msg) == 0, "ASCII message changed in the body");
    cJSON_Delete(root);

    spim__lambda_error_header(type, hdr, sizeof hdr);
    FUZZ_CHECK(strncmp(hdr, "Function.", 9) == 0 || strncmp(hdr, "Runtime.", 8) == 0,
               "error type header \"%s\" has no category", hdr);
    for (k = 0; hdr[k]; k++)
        FUZZ_CHECK(isalnum((unsigned char)hdr[k]) || hdr[k] == '.', "error type header byte %#x",
                   (unsigned char)hdr[k]);
    FUZZ_CHECK(hdr[k - 1] != '.', "error type header \"%s\" ends with a dot", hdr);
    spim_buf_free(&out);
    free(type);
    free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *split = find_split(data, size);
    if (!split) {
        headers(data, size);
        return 0;
    }
    headers(data, (size_t)(split - data));
    errors(split + 2, size - (size_t)(split - data) - 2);
    return 0;
}
