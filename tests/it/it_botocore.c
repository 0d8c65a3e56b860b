/* it_botocore: drives the signer from JSON lines, for differential tests
   against other SigV4 implementations (tests/it/it_botocore.py).

   stdin, one request per line:
     {"id":"r1","op":"sign"|"presign","mode":"s3"|"generic","method":"PUT",
      "url":"https://b.s3.amazonaws.com/k","headers":[["Range","bytes=0-9"]],
      "body_hex":"68656c6c6f","payload_hash":"UNSIGNED-PAYLOAD",
      "access_key":"AK","secret_key":"SK","session_token":"T",
      "region":"us-east-1","service":"s3","time":1369353600,"expires":3600}
   stdout, one line per request, same order:
     {"id":"r1","status":"ok"|"<error message>","canonical_request":"...",
      "string_to_sign":"...","signature":"...","authorization":"...",
      "url":"...","add_headers":[["X-Amz-Date","..."],...]}             */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include <cjson/cJSON.h>

#define MAX_HEADERS 64

static const char *str_field(const cJSON *o, const char *name, const char *def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : def;
}

static double num_field(const cJSON *o, const char *name, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static int hex_decode(const char *hex, spim_buf *out)
{
    size_t i, n = strlen(hex);
    if (n % 2) return 0;
    for (i = 0; i < n; i += 2) {
        unsigned int byte;
        unsigned char c;
        if (sscanf(hex + i, "%2x", &byte) != 1) return 0;
        c = (unsigned char)byte;
        if (spim_buf_append(out, &c, 1) != SPIM_OK) return 0;
    }
    return 1;
}

static void add_results(cJSON *reply, const spim_sigv4_result *res, const spim_buf *url)
{
    cJSON *added = cJSON_AddArrayToObject(reply, "add_headers");
    size_t i;
    cJSON_AddStringToObject(reply, "canonical_request", res->canonical_request.data ? (const char *)res->canonical_request.data : "");
    cJSON_AddStringToObject(reply, "string_to_sign", res->string_to_sign.data ? (const char *)res->string_to_sign.data : "");
    cJSON_AddStringToObject(reply, "signature", res->signature);
    cJSON_AddStringToObject(reply, "authorization", res->authorization.data ? (const char *)res->authorization.data : "");
    cJSON_AddStringToObject(reply, "url", url->data ? (const char *)url->data : "");
    for (i = 0; i < res->add_header_count; i++) {
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(res->add_headers[i].name));
        cJSON_AddItemToArray(pair, cJSON_CreateString(res->add_headers[i].value));
        cJSON_AddItemToArray(added, pair);
    }
}

/* Sign one request described by `in`; the answer goes into `reply`. */
static void handle(const cJSON *in, cJSON *reply)
{
    spim_credentials c;
    spim_sigv4_params p;
    spim_sigv4_request r;
    spim_sigv4_result res;
    spim_header headers[MAX_HEADERS];
    spim_buf body = SPIM_BUF_INIT, url = SPIM_BUF_INIT;
    spim_error err;
    const cJSON *h;
    size_t n = 0;
    spim_status st;
    memset(&c, 0, sizeof c);
    memset(&p, 0, sizeof p);
    memset(&r, 0, sizeof r);
    memset(&res, 0, sizeof res);
    spim__error_clear(&err);
    snprintf(c.access_key_id, sizeof c.access_key_id, "%s", str_field(in, "access_key", ""));
    snprintf(c.secret_access_key, sizeof c.secret_access_key, "%s", str_field(in, "secret_key", ""));
    snprintf(c.session_token, sizeof c.session_token, "%s", str_field(in, "session_token", ""));
    p.credentials = &c;
    p.region = str_field(in, "region", "us-east-1");
    p.service = str_field(in, "service", "s3");
    p.time = (int64_t)num_field(in, "time", 0);
    p.expires = (long)num_field(in, "expires", 0);
    p.mode = strcmp(str_field(in, "mode", "s3"), "generic") == 0 ? SPIM_SIGV4_GENERIC : SPIM_SIGV4_S3;
    r.method = str_field(in, "method", "GET");
    r.url = str_field(in, "url", "");
    r.payload_hash = str_field(in, "payload_hash", NULL);
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(in, "headers")) {
        const char *name = cJSON_GetStringValue(cJSON_GetArrayItem(h, 0));
        const char *value = cJSON_GetStringValue(cJSON_GetArrayItem(h, 1));
        if (!name || !value || n == MAX_HEADERS) {
            cJSON_AddStringToObject(reply, "status", "bad headers in input");
            return;
        }
        headers[n].name = name;
        headers[n++].value = value;
    }
    r.headers = headers;
    r.header_count = n;
    if (!hex_decode(str_field(in, "body_hex", ""), &body)) {
        cJSON_AddStringToObject(reply, "status", "bad body_hex in input");
        spim_buf_free(&body);
        return;
    }
    r.body = body.data;
    r.body_len = body.len;
    if (strcmp(str_field(in, "op", "sign"), "presign") == 0) st = spim_sigv4_presign(&r, &p, &url, &res, &err);
    else st = spim_sigv4_sign(&r, &p, &res, &err);
    cJSON_AddStringToObject(reply, "status", st == SPIM_OK ? "ok" : err.message);
    if (st == SPIM_OK) add_results(reply, &res, &url);
    spim_sigv4_result_free(&res);
    spim_buf_free(&url);
    spim_buf_free(&body);
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int bad = 0;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        cJSON *in = cJSON_Parse(line), *reply = cJSON_CreateObject();
        char *text;
        if (!in) {
            cJSON_AddStringToObject(reply, "status", "input line is not JSON");
            bad = 1;
        } else {
            cJSON_AddStringToObject(reply, "id", str_field(in, "id", ""));
            handle(in, reply);
        }
        text = cJSON_PrintUnformatted(reply);
        if (text) printf("%s\n", text);
        free(text);
        cJSON_Delete(reply);
        cJSON_Delete(in);
    }
    free(line);
    return bad;
}
