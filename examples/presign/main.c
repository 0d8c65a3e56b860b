/* presign - "give me a link": an expiring URL for a stamped image.

   Behind an API Gateway HTTP API (payload 2.0 or 1.0) or a Lambda Function URL:

      GET /link?key=photos/cat.jpg[&expires=SECONDS][&bucket=NAME]

   answers 200 {"url","expires_in","expires_at","key"} for the stamped copy
   (SPARTA_OUTPUT_PREFIX + key, unless the key already starts with the
   prefix) once a HEAD has shown that it exists; 404 when it does not; 400
   for a missing or too long key, an `expires` that is not a positive
   integer (a longer one is cut to SPARTA_PRESIGN_EXPIRES) or a refused `bucket`;
   502/503 when S3 fails (503: worth retrying), with a generic reason and
   the Lambda request id only: S3's message, the bucket and the key go to
   the log, never to a public caller. Every answer is JSON with CORS
   headers. expires_at is in seconds since 1970.

   Configuration (read once, at init; a malformed value fails the init):
     SPARTA_BUCKET              the bucket holding the stamped images
     SPARTA_ALLOW_BUCKET_PARAM  1: a `bucket=` parameter may name another one
     SPARTA_OUTPUT_PREFIX       default xformed_
     SPARTA_PRESIGN_EXPIRES     default and maximum lifetime, 1..604800 (default 300)
     SPARTA_CORS_ORIGIN         Access-Control-Allow-Origin (default *)
   plus the AWS_* variables of the S3 client. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct config {
    const char *bucket;           /* NULL: every request names one */
    int allow_bucket_param;
    const char *prefix;
    long max_expires;
    const char *cors_origin;
    spim_s3_client *s3;
} config;

static spim_status presign_init(void *user, spim_error *err)
{
    config *c = (config *)user;
    const char *allow = getenv("SPARTA_ALLOW_BUCKET_PARAM");
    const char *exp = getenv("SPARTA_PRESIGN_EXPIRES");
    char *end = NULL;
    c->bucket = getenv("SPARTA_BUCKET");
    if (c->bucket && !*c->bucket) c->bucket = NULL;
    if (allow && *allow && strcmp(allow, "0") != 0 && strcmp(allow, "1") != 0)
        return spim_error_set(err, SPIM_ERR_CONFIG,
                              "SPARTA_ALLOW_BUCKET_PARAM=\"%.32s\": expected 0 or 1", allow);
    c->allow_bucket_param = allow && strcmp(allow, "1") == 0;
    if (!c->bucket && !c->allow_bucket_param)
        return spim_error_set(err, SPIM_ERR_CONFIG,
                              "SPARTA_BUCKET is not set (nor SPARTA_ALLOW_BUCKET_PARAM=1)");
    c->prefix = getenv("SPARTA_OUTPUT_PREFIX");
    if (!c->prefix) c->prefix = "xformed_";
    if (!*c->prefix) return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_OUTPUT_PREFIX is empty");
    c->max_expires = 300;
    if (exp && *exp) c->max_expires = strtol(exp, &end, 10);
    if (exp && *exp && (*end || c->max_expires < 1 || c->max_expires > SPIM_PRESIGN_MAX_EXPIRES))
        return spim_error_set(err, SPIM_ERR_CONFIG,
                              "SPARTA_PRESIGN_EXPIRES=\"%.32s\": expected 1 to %d seconds", exp,
                              SPIM_PRESIGN_MAX_EXPIRES);
    c->cors_origin = getenv("SPARTA_CORS_ORIGIN");
    if (!c->cors_origin || !*c->cors_origin) c->cors_origin = "*";
    return spim_s3_client_create(NULL, &c->s3, err);
}

/* The API Gateway proxy answer: {"statusCode", "headers", "body"} with
   `body` (consumed) serialised into the string. */
static spim_status reply(const config *c, spim_response *resp, int status, cJSON *body)
{
    cJSON *doc = cJSON_CreateObject(), *headers = cJSON_CreateObject();
    char *text = body ? cJSON_PrintUnformatted(body) : NULL, *out = NULL;
    spim_status st = SPIM_ERR_NOMEM;
    cJSON_Delete(body);
    if (doc && headers && text && cJSON_AddNumberToObject(doc, "statusCode", status) &&
        cJSON_AddStringToObject(headers, "Content-Type", "application/json") &&
        cJSON_AddStringToObject(headers, "Cache-Control", "no-store") &&
        cJSON_AddStringToObject(headers, "Access-Control-Allow-Origin", c->cors_origin)) {
        cJSON_AddItemToObject(doc, "headers", headers);
        headers = NULL;
        if (cJSON_AddStringToObject(doc, "body", text) &&
            cJSON_AddFalseToObject(doc, "isBase64Encoded") &&
            (out = cJSON_PrintUnformatted(doc)) != NULL)
            st = spim_response_ok(resp, out, strlen(out), NULL);
    }
    cJSON_Delete(headers);
    cJSON_Delete(doc);
    cJSON_free(text);
    cJSON_free(out);
    return st;
}

/* request_id: for a 5xx, the Lambda request id that finds the details in the log */
static spim_status reply_error(const config *c, spim_response *resp, int status,
                               const char *message, const char *request_id)
{
    cJSON *body = cJSON_CreateObject();
    if (body) cJSON_AddStringToObject(body, "error", message);
    if (body && request_id) cJSON_AddStringToObject(body, "requestId", request_id);
    return reply(c, resp, status, body);
}

static const char *query_param(const cJSON *event, const char *name)
{
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(event, "queryStringParameters");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(q, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The request's bucket, key and lifetime, or an HTTP 400 message. */
static const char *read_request(const config *c, const cJSON *event, const char **bucket,
                                spim_buf *key, long *expires)
{
    const char *k = query_param(event, "key"), *b = query_param(event, "bucket");
    const char *e = query_param(event, "expires");
    char *end = NULL;
    *bucket = c->bucket;
    if (b && !c->allow_bucket_param) return "the bucket parameter is not allowed";
    if (b && *b) *bucket = b;
    if (!*bucket) return "missing bucket";
    if (!k || !*k) return "missing key";
    if (strncmp(k, c->prefix, strlen(c->prefix)) != 0 && spim_buf_appendf(key, "%s", c->prefix))
        return "out of memory";
    if (spim_buf_appendf(key, "%s", k)) return "out of memory";
    if (key->len > SPIM_S3_MAX_KEY) return "key too long";
    *expires = c->max_expires;
    if (e && *e) *expires = strtol(e, &end, 10);
    if (e && *e && (*end || *expires < 1)) return "bad expires";
    if (*expires > c->max_expires) *expires = c->max_expires;
    return NULL;
}

static spim_status presign(const spim_invocation *inv, spim_response *resp, void *user)
{
    const config *c = (const config *)user;
    cJSON *event = cJSON_ParseWithLength(inv->payload, inv->payload_len), *body;
    spim_buf key = SPIM_BUF_INIT, url = SPIM_BUF_INIT;
    spim_s3_object head;
    spim_error err;
    const char *bucket, *bad;
    long expires = 0;
    spim_status st;
    memset(&head, 0, sizeof head);
    memset(&err, 0, sizeof err);
    bad = "the event is not a JSON object";
    if (cJSON_IsObject(event)) bad = read_request(c, event, &bucket, &key, &expires);
    if (bad) {
        spim_log_fields(SPIM_LOG_INFO, "bad request", SPIM_LOG_STR("reason", bad), SPIM_LOG_END);
        st = reply_error(c, resp, 400, bad, NULL);
    } else if ((st = spim_s3_head(c->s3, bucket, (const char *)key.data, &head, &err)) != SPIM_OK ||
               (st = spim_s3_presign_get(c->s3, bucket, (const char *)key.data, expires, &url,
                                         &err)) != SPIM_OK) {
        int status = st == SPIM_ERR_NOT_FOUND ? 404 : err.transient ? 503 : 502;
        spim_log_fields(status == 404 ? SPIM_LOG_INFO : SPIM_LOG_ERROR, "no link",
                        SPIM_LOG_STR("bucket", bucket), SPIM_LOG_STR("key", (const char *)key.data),
                        SPIM_LOG_STR("reason", err.message), SPIM_LOG_END);
        if (status == 404)
            st = reply_error(c, resp, 404, "no stamped image for this key", NULL);
        else
            st = reply_error(c, resp, status, status == 503 ? "storage unavailable, try again"
                                                            : "storage error", inv->request_id);
    } else if ((body = cJSON_CreateObject()) == NULL) {
        st = SPIM_ERR_NOMEM;
    } else {
        cJSON_AddStringToObject(body, "url", (const char *)url.data);
        cJSON_AddNumberToObject(body, "expires_in", (double)expires);
        cJSON_AddNumberToObject(body, "expires_at", (double)((int64_t)time(NULL) + expires));
        cJSON_AddStringToObject(body, "key", (const char *)key.data);
        spim_log_fields(SPIM_LOG_INFO, "link", SPIM_LOG_STR("bucket", bucket),
                        SPIM_LOG_STR("key", (const char *)key.data), SPIM_LOG_END);
        st = reply(c, resp, 200, body);
    }
    spim_s3_object_free(&head);
    spim_buf_free(&key);
    spim_buf_free(&url);
    cJSON_Delete(event);
    return st;
}

int main(int argc, char **argv)
{
    static config cfg;
    int rc = spim_lambda_main(argc, argv, presign_init, presign, &cfg);
    spim_s3_client_free(cfg.s3);
    return rc;
}
