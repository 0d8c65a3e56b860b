/* imager - the SpartaImager function: stamp every image uploaded to a bucket.

   ObjectCreated:*  GET the object, draw the stamp, PUT it back as
                    SPARTA_OUTPUT_PREFIX + key (same format; GIF and the other
                    formats stb cannot write become PNG), marked with
                    x-amz-meta-sparta-stamped: 1 and the source's ETag.
   ObjectRemoved:*  DELETE the stamped counterpart.
   s3:TestEvent     nothing to do.

   Events arrive from S3 directly or wrapped by SQS, SNS or EventBridge.
   A key starting with the prefix, or an object carrying the marker, is never
   stamped again. A problem with one object (not an image, too many pixels,
   corrupt, gone, key too long or not UTF-8, refused by S3 with a 4xx) is
   logged and skipped; an S3 failure that survived the client's retries
   fails the invocation (errorType TransientS3Error, or S3Error for access
   denied and the like) once the rest of the batch is done, so that Lambda
   retries it. The answer is a JSON summary: counts and, for the first 100
   records, key, action, output key and reason.

   Configuration (read once, at init; a malformed value fails the init):
     SPARTA_OUTPUT_PREFIX   default xformed_ (must not be empty)
     SPARTA_OUTPUT_BUCKET   default: the source bucket
     SPARTA_STAMP           default: the embedded stamp; else FILE or s3://BUCKET/KEY
     SPARTA_STAMP_GRAVITY   nw n ne w c e sw s se (default se)
     SPARTA_STAMP_MARGIN    pixels, 0..100000 (default 0)
     SPARTA_STAMP_SCALE     stamp's longer side / photo's shorter side, 0..1;
                            0 = native size (default 0.25)
     SPARTA_STAMP_OPACITY   greater than 0, at most 1 (default 1)
     SPARTA_JPEG_QUALITY    1..100 (default 90; only when a JPEG is re-encoded)
     SPARTA_JPEG_MODE       auto (default: baseline JPEGs stamped in the compressed
                            domain) or recode (always decode -> stamp -> encode)
     SPARTA_MAX_PIXELS      pixel budget (default from AWS_LAMBDA_FUNCTION_MEMORY_SIZE)
   plus the AWS_* variables of the S3 client (AWS_ENDPOINT_URL_S3 included).

      make build/imager/bootstrap
      build/imager/bootstrap --event event.json     # invoke once, locally */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "build/assets/stamp_png.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARKER "sparta-stamped"
#define SOURCE_ETAG "sparta-source-etag"
#define STAMP_MAX_BYTES (16u << 20)
#define SUMMARY_MAX_RECORDS 100   /* the answer lists at most this many records */

typedef struct config {
    const char *prefix;
    const char *output_bucket;    /* NULL: the source bucket */
    spim_stamp stamp;
    spim_stamp_options opt;
    size_t max_object_bytes;
    spim_s3_client *s3;
} config;

/* What happened to one record. */
typedef struct result {
    const char *action;           /* "stamped", "deleted", "skipped", "failed" */
    char reason[SPIM_ERROR_MESSAGE_MAX];
    int transient;
    size_t bytes_in, bytes_out;
    long get_ms, image_ms, put_ms;
    const char *path;             /* "splice" or "recode" once the image is done */
} result;

/* ---- configuration --------------------------------------------------------- */

/* An unset or empty variable keeps *out; anything else must parse whole, lie
   in [lo, hi] (and be whole when `integer`); `expected` words the rule. */
static spim_status env_number(const char *name, double lo, double hi, int integer, const char *expected,
                              double *out, spim_error *err)
{
    const char *v = getenv(name);
    char *end;
    double d;
    if (!v || !*v) return SPIM_OK;
    d = strtod(v, &end);
    if (end == v || *end || !(d >= lo && d <= hi) || (integer && d != floor(d)))
        return spim_error_set(err, SPIM_ERR_CONFIG, "%s=\"%.64s\": expected %s", name, v, expected);
    *out = d;
    return SPIM_OK;
}

static spim_status read_options(config *c, spim_error *err)
{
    const char *g = getenv("SPARTA_STAMP_GRAVITY"), *mode = getenv("SPARTA_JPEG_MODE");
    double margin = 0, scale = 0.25, opacity = 1, quality = 90, pixels = 0;
    if (g && *g && spim_gravity_parse(g) < 0)
        return spim_error_set(err, SPIM_ERR_CONFIG,
                              "SPARTA_STAMP_GRAVITY=\"%.32s\": expected one of nw n ne w c e sw s se", g);
    if (env_number("SPARTA_STAMP_MARGIN", 0, 100000, 1, "pixels from 0 to 100000", &margin, err) ||
        env_number("SPARTA_STAMP_SCALE", 0, 1, 0, "a number from 0 (native size) to 1", &scale, err) ||
        env_number("SPARTA_STAMP_OPACITY", 1e-9, 1, 0, "a number above 0, at most 1", &opacity, err) ||
        env_number("SPARTA_JPEG_QUALITY", 1, 100, 1, "an integer from 1 to 100", &quality, err) ||
        env_number("SPARTA_MAX_PIXELS", 1, 1e12, 1, "a pixel count from 1 to 10^12", &pixels, err))
        return SPIM_ERR_CONFIG;
    if (mode && *mode && strcmp(mode, "auto") != 0 && strcmp(mode, "recode") != 0)
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_JPEG_MODE=\"%.32s\": expected auto or recode", mode);
    c->opt.jpeg_mode = mode && strcmp(mode, "recode") == 0 ? SPIM_JPEG_RECODE : SPIM_JPEG_AUTO;
    c->opt.gravity = g && *g ? (spim_gravity)spim_gravity_parse(g) : SPIM_GRAVITY_SE;
    c->opt.margin = (int)margin;
    c->opt.scale = scale;
    c->opt.opacity = opacity;
    c->opt.quality = (int)quality;
    c->opt.max_pixels = pixels > 0 ? (uint64_t)pixels : spim_default_max_pixels();
    /* 2 bytes per pixel of the budget holds any photo worth decoding (a PNG
       photo runs at about 1.5-2.5) and keeps input + pixels within the
       budget's 5 bytes per pixel; bigger objects are refused unread */
    c->max_object_bytes = c->opt.max_pixels > (SIZE_MAX - (1u << 20)) / 2
                        ? SIZE_MAX : (size_t)c->opt.max_pixels * 2 + (1u << 20);
    return SPIM_OK;
}

static spim_status load_stamp(config *c, const char *where, spim_error *err)
{
    spim_buf file = SPIM_BUF_INIT;
    spim_s3_object obj;
    spim_status st;
    memset(&obj, 0, sizeof obj);
    if (!where || !*where) return spim_stamp_load(&c->stamp, spim_stamp_png, sizeof spim_stamp_png, err);
    if (strncmp(where, "s3://", 5) == 0) {
        char bucket[256];
        const char *slash = strchr(where + 5, '/');
        size_t n = slash ? (size_t)(slash - where - 5) : 0;
        if (!n || n >= sizeof bucket || !slash[1])
            return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_STAMP=\"%.200s\": expected s3://BUCKET/KEY", where);
        memcpy(bucket, where + 5, n);
        bucket[n] = 0;
        st = spim_s3_get(c->s3, bucket, slash + 1, STAMP_MAX_BYTES, &obj, err);
        if (st == SPIM_OK) st = spim_stamp_load(&c->stamp, obj.body.data, obj.body.len, err);
        spim_s3_object_free(&obj);
    } else {
        st = spim_read_file(where, STAMP_MAX_BYTES, &file, err);
        if (st == SPIM_OK) st = spim_stamp_load(&c->stamp, file.data, file.len, err);
        spim_buf_free(&file);
    }
    if (st != SPIM_OK) {
        char why[SPIM_ERROR_MESSAGE_MAX];
        snprintf(why, sizeof why, "%s", err ? err->message : "");
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_STAMP=\"%.200s\": %s", where, why);
    }
    return SPIM_OK;
}

static spim_status imager_init(void *user, spim_error *err)
{
    config *c = (config *)user;
    const char *bucket = getenv("SPARTA_OUTPUT_BUCKET");
    spim_status st;
    c->prefix = getenv("SPARTA_OUTPUT_PREFIX");
    if (!c->prefix) c->prefix = "xformed_";
    if (!*c->prefix)
        return spim_error_set(err, SPIM_ERR_CONFIG,
                              "SPARTA_OUTPUT_PREFIX is empty: the stamped copies would overwrite the originals");
    if (strlen(c->prefix) >= SPIM_S3_MAX_KEY)
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_OUTPUT_PREFIX is longer than an S3 key");
    c->output_bucket = bucket && *bucket ? bucket : NULL;
    if ((st = read_options(c, err)) != SPIM_OK) return st;
    if ((st = spim_s3_client_create_from_env(&c->s3, err)) != SPIM_OK) return st;
    if ((st = load_stamp(c, getenv("SPARTA_STAMP"), err)) != SPIM_OK) return st;
    spim_log_fields(SPIM_LOG_INFO, "imager ready", "prefix", c->prefix,
                    "output_bucket", c->output_bucket ? c->output_bucket : "(source)",
                    "stamp", getenv("SPARTA_STAMP") ? getenv("SPARTA_STAMP") : "(embedded)", (const char *)NULL);
    return SPIM_OK;
}

/* ---- one record ------------------------------------------------------------- */

static void settle(result *r, const char *action, const char *fmt, const char *detail)
{
    r->action = action;
    snprintf(r->reason, sizeof r->reason, fmt, detail);
}

/* An S3 failure: the invocation fails, retryable or not. */
static void s3_failed(result *r, const char *op, const spim_error *err)
{
    char what[SPIM_ERROR_MESSAGE_MAX];
    r->transient = err->transient || err->status == SPIM_ERR_NETWORK || err->http_status >= 500;
    snprintf(what, sizeof what, "%s: %.400s", op, err->message);
    settle(r, "failed", "%s", what);
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* GET the source into *obj; 0 (with *r settled) when it must not be stamped. */
static int fetch(const config *c, const spim_s3_record *rec, spim_s3_object *obj, result *r)
{
    spim_error err;
    int64_t t = spim_now_ms();
    spim_status st;
    spim_error_clear(&err);
    st = spim_s3_get(c->s3, rec->bucket, rec->key, c->max_object_bytes, obj, &err);
    r->get_ms = (long)(spim_now_ms() - t);
    r->bytes_in = obj->body.len;
    if (st == SPIM_ERR_NOT_FOUND) settle(r, "skipped", "%s", "source object is gone");
    else if (st == SPIM_ERR_TOO_LARGE) settle(r, "skipped", "%s", err.message);
    else if (st == SPIM_ERR_HTTP && err.http_status >= 400 && err.http_status < 500 && !err.transient)
        settle(r, "skipped", "%s", err.message);  /* S3 refuses this object for good */
    else if (st != SPIM_OK) s3_failed(r, "GET", &err);
    else if (spim_s3_object_meta(obj, MARKER)) settle(r, "skipped", "%s", "object carries the x-amz-meta-" MARKER " marker");
    return r->action == NULL;
}

/* A JPEG goes through spim_stamp_image (compressed domain when it can:
   input + output + a few MCU rows); anything else is decoded, the
   compressed bytes let go, stamped and encoded. */
static void render(const config *c, spim_s3_object *obj, spim_buf *enc, const char **content_type, result *r)
{
    spim_image img;
    spim_image_info info;
    spim_error err;
    int64_t t = spim_now_ms();
    spim_status st;
    spim_error_clear(&err);
    if (c->opt.jpeg_mode == SPIM_JPEG_AUTO && spim_format_detect(obj->body.data, obj->body.len) == SPIM_FORMAT_JPEG) {
        memset(&info, 0, sizeof info);
        st = spim_stamp_image(obj->body.data, obj->body.len, &c->stamp, &c->opt, enc, &info, &err);
        spim_s3_object_free(obj);
        *content_type = spim_format_content_type(SPIM_FORMAT_JPEG);
        r->path = info.path;
    } else if ((st = spim_image_decode(obj->body.data, obj->body.len, c->opt.max_pixels, &img, &err)) == SPIM_OK) {
        spim_s3_object_free(obj);
        r->path = "recode";
        st = spim_image_stamp(&img, &c->stamp, &c->opt, &err);
        if (st == SPIM_OK) st = spim_image_encode(&img, SPIM_FORMAT_UNKNOWN, c->opt.quality, enc, &err);
        *content_type = spim_format_content_type(img.meta.format);
        spim_image_free(&img);
    } else {
        spim_s3_object_free(obj);
    }
    r->image_ms = (long)(spim_now_ms() - t);
    r->bytes_out = enc->len;
    if (st == SPIM_ERR_IMAGE || st == SPIM_ERR_TOO_LARGE || st == SPIM_ERR_INVALID) {
        settle(r, "skipped", "%s", err.message);
    } else if (st != SPIM_OK) {
        r->transient = 1; /* out of memory: another attempt may get a fresh sandbox */
        settle(r, "failed", "%s", err.message);
    }
}

static void stamp_object(const config *c, const spim_s3_record *rec, const char *out_key, result *r)
{
    spim_s3_object obj;
    spim_buf enc = SPIM_BUF_INIT;
    spim_s3_put_options put;
    spim_header meta[2];
    spim_error err;
    char etag[256];
    int64_t t;
    memset(&obj, 0, sizeof obj);
    memset(&put, 0, sizeof put);
    spim_error_clear(&err);
    if (fetch(c, rec, &obj, r)) {
        /* S3 quotes ETags; metadata gets the bare hex */
        snprintf(etag, sizeof etag, "%.200s", obj.etag[0] == '"' ? obj.etag + 1 : obj.etag);
        if (*etag && etag[strlen(etag) - 1] == '"') etag[strlen(etag) - 1] = 0;
        render(c, &obj, &enc, &put.content_type, r);
    }
    spim_s3_object_free(&obj);
    if (!r->action) {
        meta[0].name = MARKER;
        meta[0].value = "1";
        meta[1].name = SOURCE_ETAG;
        meta[1].value = etag;
        put.metadata = meta;
        put.metadata_count = 2;
        t = spim_now_ms();
        if (spim_s3_put(c->s3, c->output_bucket ? c->output_bucket : rec->bucket, out_key, enc.data, enc.len,
                        &put, NULL, &err) != SPIM_OK)
            s3_failed(r, "PUT", &err);
        else
            r->action = "stamped";
        r->put_ms = (long)(spim_now_ms() - t);
    }
    spim_buf_free(&enc);
}

static void handle_record(const config *c, const spim_s3_record *rec, spim_buf *out_key, result *r)
{
    spim_error err;
    spim_buf_reset(out_key);
    if (rec->status != SPIM_OK) settle(r, "skipped", "%s", rec->error);
    else if (!spim_utf8_valid(rec->key, rec->key_len)) settle(r, "skipped", "%s", "key is not UTF-8");
    else if (rec->kind != SPIM_EVENT_CREATED && rec->kind != SPIM_EVENT_REMOVED)
        settle(r, "skipped", "event %s is not handled", rec->name);
    else if (starts_with(rec->key, c->prefix)) settle(r, "skipped", "key starts with %s", c->prefix);
    else if (strlen(c->prefix) + rec->key_len > SPIM_S3_MAX_KEY)
        settle(r, "skipped", "%s + key is longer than an S3 key", c->prefix);
    else if (spim_buf_append_str(out_key, c->prefix) || spim_buf_append_str(out_key, rec->key))
        settle(r, "failed", "%s", "out of memory");
    if (r->action) return;
    if (rec->kind == SPIM_EVENT_CREATED) {
        stamp_object(c, rec, (const char *)out_key->data, r);
        return;
    }
    spim_error_clear(&err);
    if (spim_s3_delete(c->s3, c->output_bucket ? c->output_bucket : rec->bucket,
                       (const char *)out_key->data, &err) != SPIM_OK)
        s3_failed(r, "DELETE", &err);
    else
        r->action = "deleted";
}

/* ---- the invocation ------------------------------------------------------- */

typedef struct summary {
    int stamped, deleted, skipped, failed, transient;
    cJSON *records;
    char first_failure[SPIM_ERROR_MESSAGE_MAX];
} summary;

static void report(summary *s, const spim_s3_record *rec, const char *out_key, const result *r)
{
    char in[24], out[24], get[24], img[24], put[24];
    const char *key = spim_utf8_valid(rec->key, rec->key_len) ? rec->key : rec->key_raw;
    cJSON *item;
    snprintf(in, sizeof in, "%zu", r->bytes_in);
    snprintf(out, sizeof out, "%zu", r->bytes_out);
    snprintf(get, sizeof get, "%ld", r->get_ms);
    snprintf(img, sizeof img, "%ld", r->image_ms);
    snprintf(put, sizeof put, "%ld", r->put_ms);
    /* an empty reason ends the field list early, leaving it out of the line */
    spim_log_fields(strcmp(r->action, "failed") ? SPIM_LOG_INFO : SPIM_LOG_ERROR, r->action,
                    "bucket", rec->bucket, "key", key, "event", rec->name, "output", out_key,
                    "bytes_in", in, "bytes_out", out, "get_ms", get, "image_ms", img, "put_ms", put,
                    "path", r->path ? r->path : "none",
                    r->reason[0] ? "reason" : (const char *)NULL, r->reason, (const char *)NULL);
    s->stamped += strcmp(r->action, "stamped") == 0;
    s->deleted += strcmp(r->action, "deleted") == 0;
    s->skipped += strcmp(r->action, "skipped") == 0;
    if (strcmp(r->action, "failed") == 0) {
        s->transient += r->transient;
        if (!s->failed++) snprintf(s->first_failure, sizeof s->first_failure, "%.200s: %.300s", key, r->reason);
    }
    if (cJSON_GetArraySize(s->records) >= SUMMARY_MAX_RECORDS || !(item = cJSON_CreateObject())) return;
    cJSON_AddStringToObject(item, "key", key);
    cJSON_AddStringToObject(item, "action", r->action);
    if (*out_key && strcmp(r->action, "skipped") != 0) cJSON_AddStringToObject(item, "output", out_key);
    if (r->reason[0]) cJSON_AddStringToObject(item, "reason", r->reason);
    cJSON_AddItemToArray(s->records, item);
}

static spim_status answer(const summary *s, int tests, spim_response *resp)
{
    int listed = cJSON_GetArraySize(s->records);
    cJSON *doc = cJSON_CreateObject();
    char *text = NULL;
    spim_status st = SPIM_ERR_NOMEM;
    cJSON_AddNumberToObject(doc, "stamped", s->stamped);
    cJSON_AddNumberToObject(doc, "deleted", s->deleted);
    cJSON_AddNumberToObject(doc, "skipped", s->skipped);
    cJSON_AddNumberToObject(doc, "failed", s->failed);
    cJSON_AddNumberToObject(doc, "testEvents", tests);
    cJSON_AddNumberToObject(doc, "recordsOmitted", s->stamped + s->deleted + s->skipped + s->failed - listed);
    if (cJSON_AddItemReferenceToObject(doc, "records", s->records) && (text = cJSON_PrintUnformatted(doc)) != NULL)
        st = spim_response_ok(resp, text, strlen(text), NULL);
    cJSON_free(text);
    cJSON_Delete(doc);
    return st;
}

static void log_totals(const summary *s)
{
    char n[4][16];
    snprintf(n[0], sizeof n[0], "%d", s->stamped);
    snprintf(n[1], sizeof n[1], "%d", s->deleted);
    snprintf(n[2], sizeof n[2], "%d", s->skipped);
    snprintf(n[3], sizeof n[3], "%d", s->failed);
    spim_log_fields(SPIM_LOG_INFO, "done", "stamped", n[0], "deleted", n[1], "skipped", n[2], "failed", n[3],
                    (const char *)NULL);
}

static spim_status imager(const spim_invocation *inv, spim_response *resp, void *user)
{
    const config *c = (const config *)user;
    spim_event *ev = NULL;
    spim_buf out_key = SPIM_BUF_INIT;
    spim_error err;
    summary s;
    size_t i;
    spim_status st;
    spim_error_clear(&err);
    memset(&s, 0, sizeof s);
    if (spim_event_parse(inv->payload, inv->payload_len, NULL, &ev, &err) != SPIM_OK) {
        spim_response_fail(resp, "InvalidEvent", "%s", err.message);
        return err.status;
    }
    if (!(s.records = cJSON_CreateArray())) {
        spim_event_free(ev);
        return SPIM_ERR_NOMEM;
    }
    for (i = 0; i < ev->record_count; i++) {
        result r;
        memset(&r, 0, sizeof r);
        handle_record(c, &ev->records[i], &out_key, &r);
        report(&s, &ev->records[i], out_key.data ? (const char *)out_key.data : "", &r);
    }
    st = answer(&s, ev->test_events, resp);
    log_totals(&s);
    if (s.failed) {
        spim_response_fail(resp, s.transient ? "TransientS3Error" : "S3Error", "%d of %zu records failed; first: %s",
                           s.failed, ev->record_count, s.first_failure);
        st = SPIM_ERR_HTTP;
    }
    cJSON_Delete(s.records);
    spim_buf_free(&out_key);
    spim_event_free(ev);
    return st;
}

int main(int argc, char **argv)
{
    static config cfg;
    int rc = spim_lambda_main(argc, argv, imager_init, imager, &cfg);
    spim_stamp_free(&cfg.stamp);
    spim_s3_client_free(cfg.s3);
    return rc;
}
