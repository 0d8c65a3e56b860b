/* What S3 (or a proxy in its place) answers: the <Error> document
   (spim__s3_parse_error, then the classification the client applies to the
   code found) and, the same bytes taken as a header block, the libcurl
   header callback of the client (spim__s3_on_header: status line, type,
   ETag, request id, length, Date, x-amz-meta-*); and, as a ListObjectsV2
   answer, the listing parser (spim__s3_list_from_xml). */
#include "fuzz_common.h"

static void headers(const uint8_t *data, size_t size)
{
    spim__s3_call call;
    spim_s3_object obj;
    const uint8_t *p = data, *end = data + size;
    size_t i, k;
    memset(&call, 0, sizeof call);
    memset(&obj, 0, sizeof obj);
    obj.content_length = -1;
    call.out = &obj;
    call.want_body = 1;
    call.max_bytes = 1000;
    while (p < end) {  /* one whole line per call, as libcurl does */
        const uint8_t *nl = (const uint8_t *)memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        size_t r = spim__s3_on_header((char *)p, 1, n, &call);
        FUZZ_CHECK(r == n || (r == 0 && (call.too_large || call.nomem)), "callback answered %zu for %zu bytes", r, n);
        if (r != n) break;
        p += n;
    }
    FUZZ_CHECK(fuzz_is_clean_line(obj.content_type, sizeof obj.content_type), "content type not a clean line");
    FUZZ_CHECK(fuzz_is_clean_line(obj.etag, sizeof obj.etag), "etag not a clean line");
    FUZZ_CHECK(fuzz_is_clean_line(obj.request_id, sizeof obj.request_id), "request id not a clean line");
    FUZZ_CHECK(obj.content_length >= -1, "content length %lld", (long long)obj.content_length);
    FUZZ_CHECK(call.server_date >= 0, "server date %lld", (long long)call.server_date);
    FUZZ_CHECK(obj.metadata_count <= SPIM_S3_MAX_METADATA, "%zu metadata entries", obj.metadata_count);
    for (i = 0; i < obj.metadata_count; i++) {
        const char *name = obj.metadata[i].name;
        FUZZ_CHECK(name && name[0] && obj.metadata[i].value, "metadata %zu without a name or value", i);
        for (k = 0; name[k]; k++)
            FUZZ_CHECK(!(name[k] >= 'A' && name[k] <= 'Z'), "metadata name \"%s\" not lower-cased", name);
        FUZZ_CHECK(spim_s3_object_meta(&obj, name) != NULL, "metadata \"%s\" cannot be looked up", name);
    }
    if (call.too_large) FUZZ_CHECK(obj.content_length > 1000, "too large with length %lld", (long long)obj.content_length);
    spim_s3_object_free(&obj);
}

static void listing(const uint8_t *data, size_t size)
{
    spim_s3_list *l = NULL;
    spim_error err;
    size_t i, total = 0;
    spim_status st;
    spim__error_clear(&err);
    st = spim__s3_list_from_xml((const char *)data, size, &l, &err);
    if (st != SPIM_OK) {
        FUZZ_CHECK_ERROR(st, err);
        FUZZ_CHECK(l == NULL, "failed (%s) but returned a list", err.message);
        return;
    }
    FUZZ_CHECK(l != NULL && l->next_token != NULL, "SPIM_OK without a list or token");
    FUZZ_CHECK(l->is_truncated == (l->next_token[0] != 0), "truncated %d with token \"%s\"", l->is_truncated,
               l->next_token);
    for (i = 0; i < l->count; i++) {
        const spim_s3_list_entry *e = &l->entries[i];
        FUZZ_CHECK(e->key && e->etag && e->last_modified && e->storage_class, "entry %zu: a NULL string", i);
        FUZZ_CHECK(e->key_len > 0 && strlen(e->key) == e->key_len, "entry %zu: key_len %zu, strlen %zu", i,
                   e->key_len, strlen(e->key));
        FUZZ_CHECK(e->size >= 0, "entry %zu: size %lld", i, (long long)e->size);
        total += e->key_len + strlen(e->etag) + strlen(e->last_modified) + strlen(e->storage_class);
    }
    /* decoding only shrinks text */
    FUZZ_CHECK(total + strlen(l->next_token) <= size, "%zu bytes of strings from %zu bytes of XML", total, size);
    spim_s3_list_free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    spim__s3_error_info info, again;
    spim_status st;
    int found = spim__s3_parse_error((const char *)data, size, &info);
    FUZZ_CHECK(found == 0 || found == 1, "returned %d", found);
    FUZZ_CHECK_FIELD(info.code);
    FUZZ_CHECK_FIELD(info.message);
    FUZZ_CHECK_FIELD(info.request_id);
    /* the fields end up in one-line messages */
    FUZZ_CHECK(fuzz_is_clean_line(info.code, sizeof info.code), "code has a control character");
    FUZZ_CHECK(fuzz_is_clean_line(info.message, sizeof info.message), "message has a control character");
    FUZZ_CHECK(fuzz_is_clean_line(info.request_id, sizeof info.request_id), "request id has a control character");
    FUZZ_CHECK(found == (info.code[0] != 0), "found %d but code \"%s\"", found, info.code);
    /* entities only shrink text: each field is at most as long as the input */
    FUZZ_CHECK(strlen(info.code) <= size && strlen(info.message) <= size && strlen(info.request_id) <= size,
               "a field is longer than the input");
    if (found) FUZZ_CHECK(spim__s3_memstr((const char *)data, size, "<Code>") != NULL, "a code without <Code>");

    FUZZ_CHECK(spim__s3_parse_error((const char *)data, size, &again) == found &&
               memcmp(&info, &again, sizeof info) == 0, "second parse differs");

    st = spim__s3_status_for(size ? 100 + data[0] * 2 : 0, info.code);
    FUZZ_CHECK(st == SPIM_ERR_NETWORK || st == SPIM_ERR_NOT_FOUND || st == SPIM_ERR_AUTH || st == SPIM_ERR_HTTP,
               "status_for gave %s", spim_status_str(st));
    FUZZ_CHECK(spim__s3_is_retryable(0, info.code) == 1, "transport failures must be retryable");
    (void)spim__s3_is_retryable(400, info.code);
    (void)spim__s3_is_clock_skew(info.code, 1000000, 0);
    headers(data, size);
    listing(data, size);
    return 0;
}
