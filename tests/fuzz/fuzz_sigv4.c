/* SigV4 over arbitrary URLs, headers, regions and times: spim_sigv4_sign and
   spim_sigv4_presign never crash, and signing is a pure function (the same
   request signed twice gives the same canonical request, signature and
   URL); spim__sigv4_canonical_query is idempotent.
   Input: flags byte, 8-byte time, 4-byte expires, then '\n'-separated
   fields: method, url, region, service, payload hash, session token, then
   one header per line as "name:value"; NUL bytes become '?'. */
#include "fuzz_common.h"

#define MAX_HEADERS 12

static int is_lower_hex(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return s[n] == 0;
}

static void check_signed(const spim_sigv4_result *a, const spim_sigv4_result *b)
{
    size_t i;
    const char *sh = (const char *)a->signed_headers.data;
    FUZZ_CHECK(a->canonical_request.len == b->canonical_request.len &&
               memcmp(a->canonical_request.data, b->canonical_request.data, a->canonical_request.len) == 0,
               "canonical request differs between two signings");
    FUZZ_CHECK(strcmp(a->signature, b->signature) == 0, "signature differs between two signings");
    FUZZ_CHECK(is_lower_hex(a->signature, 64), "signature \"%s\" is not 64 hex digits", a->signature);
    FUZZ_CHECK(strlen(a->amz_date) == 16 && a->amz_date[8] == 'T' && a->amz_date[15] == 'Z',
               "amz_date \"%s\"", a->amz_date);
    FUZZ_CHECK(a->string_to_sign.len > 17 && memcmp(a->string_to_sign.data, "AWS4-HMAC-SHA256\n", 17) == 0,
               "string to sign starts badly");
    /* signed header names: lower case, sorted, unique, host among them */
    FUZZ_CHECK(sh && sh[0], "no signed headers");
    for (i = 0; sh[i]; i++)
        FUZZ_CHECK(!(sh[i] >= 'A' && sh[i] <= 'Z') && (unsigned char)sh[i] > 0x20,
                   "signed headers \"%s\" not lower-case tokens", sh);
    {
        const char *prev = NULL, *p = sh;
        size_t prev_len = 0;
        int host = 0;
        while (*p) {
            size_t n = strcspn(p, ";");
            if (prev) {
                size_t m = n < prev_len ? n : prev_len;
                int c = memcmp(prev, p, m);
                FUZZ_CHECK(c < 0 || (c == 0 && prev_len < n), "signed headers \"%s\" not sorted/unique", sh);
            }
            if (n == 4 && memcmp(p, "host", 4) == 0) host = 1;
            prev = p;
            prev_len = n;
            p += n;
            if (*p) p++;
        }
        FUZZ_CHECK(host, "host not signed: \"%s\"", sh);
    }
}

static void check_query(const char *q, size_t n)
{
    spim_buf a = SPIM_BUF_INIT, b = SPIM_BUF_INIT;
    spim_status st = spim__sigv4_canonical_query(&a, q, n);
    if (st == SPIM_OK) {
        FUZZ_CHECK(spim__sigv4_canonical_query(&b, a.len ? (const char *)a.data : "", a.len) == SPIM_OK,
                   "canonical query of a canonical query failed");
        FUZZ_CHECK(a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0),
                   "canonical query not idempotent:\n    %s\n    %s", a.data ? (char *)a.data : "",
                   b.data ? (char *)b.data : "");
    }
    spim_buf_free(&a);
    spim_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader r = { data, size };
    spim_credentials creds;
    spim_sigv4_request req;
    spim_sigv4_params params;
    spim_sigv4_result s1, s2;
    spim_header headers[MAX_HEADERS];
    char *fields[6], *lines[MAX_HEADERS];
    spim_buf u1 = SPIM_BUF_INIT, u2 = SPIM_BUF_INIT;
    spim_error e1, e2;
    spim_status st1, st2;
    unsigned flags = fuzz_byte(&r);
    uint64_t t = (uint64_t)fuzz_u32(&r) << 32 | fuzz_u32(&r);
    uint32_t expires = fuzz_u32(&r);
    size_t i, nh = 0;
    const char *q;

    for (i = 0; i < 6; i++) fields[i] = fuzz_field(&r, '\n', '?', NULL);
    while (r.left && nh < MAX_HEADERS) {
        char *colon;
        lines[nh] = fuzz_field(&r, '\n', '?', NULL);
        colon = strchr(lines[nh], ':');
        headers[nh].name = lines[nh];
        headers[nh].value = "";
        if (colon) { *colon = 0; headers[nh].value = colon + 1; }
        nh++;
    }
    memset(&creds, 0, sizeof creds);
    strcpy(creds.access_key_id, "AKIDEXAMPLE");
    strcpy(creds.secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    if (flags & 4) snprintf(creds.session_token, sizeof creds.session_token, "%s", fields[5]);

    memset(&req, 0, sizeof req);
    req.method = fields[0];
    req.url = fields[1];
    req.headers = nh ? headers : NULL;
    req.header_count = nh;
    req.body = fields[1];
    req.body_len = strlen(fields[1]);
    req.payload_hash = (flags & 8) ? fields[4] : (flags & 16) ? SPIM_UNSIGNED_PAYLOAD : NULL;
    memset(&params, 0, sizeof params);
    params.credentials = &creds;
    params.region = fields[2];
    params.service = fields[3];
    /* mostly plausible times, sometimes any 64-bit value */
    params.time = (flags & 32) ? (int64_t)t : (int64_t)(t % INT64_C(253402300800));
    params.mode = (flags & 1) ? SPIM_SIGV4_S3 : SPIM_SIGV4_GENERIC;
    params.flags = (flags >> 6) & 3;
    params.expires = (flags & 2) ? (long)expires : (long)(expires % SPIM_PRESIGN_MAX_EXPIRES) + 1;

    spim__error_clear(&e1);
    spim__error_clear(&e2);
    st1 = spim_sigv4_sign(&req, &params, &s1, &e1);
    st2 = spim_sigv4_sign(&req, &params, &s2, &e2);
    FUZZ_CHECK(st1 == st2, "signing twice: %s then %s", spim_status_str(st1), spim_status_str(st2));
    if (st1 == SPIM_OK) {
        check_signed(&s1, &s2);
        FUZZ_CHECK(s1.add_header_count >= 1 && s1.add_header_count <= 4, "%zu added headers", s1.add_header_count);
        FUZZ_CHECK(strcmp(s1.add_headers[s1.add_header_count - 1].name, "Authorization") == 0,
                   "Authorization is not the last added header");
        FUZZ_CHECK(strstr((const char *)s1.authorization.data, s1.signature) != NULL,
                   "Authorization lacks the signature");
    } else {
        FUZZ_CHECK_ERROR(st1, e1);
        FUZZ_CHECK(strcmp(e1.message, e2.message) == 0, "different messages");
    }
    spim_sigv4_result_free(&s1);
    spim_sigv4_result_free(&s2);

    st1 = spim_sigv4_presign(&req, &params, &u1, &s1, &e1);
    st2 = spim_sigv4_presign(&req, &params, &u2, NULL, &e2);
    FUZZ_CHECK(st1 == st2, "presigning twice: %s then %s", spim_status_str(st1), spim_status_str(st2));
    if (st1 == SPIM_OK) {
        const char *sig;
        FUZZ_CHECK(u1.len == u2.len && memcmp(u1.data, u2.data, u1.len) == 0, "presigned URL differs");
        /* the last parameter (the request may carry its own X-Amz-Signature) */
        for (sig = strstr((const char *)u1.data, "&X-Amz-Signature="); sig && strstr(sig + 1, "&X-Amz-Signature=");
             sig = strstr(sig + 1, "&X-Amz-Signature=")) {}
        FUZZ_CHECK(sig && strlen(sig) == 17 + 64 && strcmp(sig + 17, s1.signature) == 0,
                   "presigned URL does not end with the signature: %s", (const char *)u1.data);
        FUZZ_CHECK(strncmp((const char *)u1.data, fields[1], strcspn(fields[1], "?#")) == 0,
                   "presigned URL does not start with the request's base URL");
        FUZZ_CHECK(params.expires >= 1 && params.expires <= SPIM_PRESIGN_MAX_EXPIRES, "expires %ld accepted",
                   params.expires);
    } else {
        FUZZ_CHECK_ERROR(st1, e1);
    }
    spim_sigv4_result_free(&s1);

    q = strchr(fields[1], '?');
    if (q) check_query(q + 1, strlen(q + 1));
    check_query(fields[4], strlen(fields[4]));

    spim_buf_free(&u1);
    spim_buf_free(&u2);
    for (i = 0; i < 6; i++) free(fields[i]);
    for (i = 0; i < nh; i++) free(lines[i]);
    return 0;
}
