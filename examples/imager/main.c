/* imager - the SpartaImager function: keep a stamped copy of every image in a bucket.

   ObjectCreated:* and ObjectRemoved:* both say "this key changed": the
   imager HEADs the original and makes SPARTA_OUTPUT_PREFIX + key match it,
   stamping the current version (same format; formats stb cannot write
   become PNG; marked x-amz-meta-sparta-stamped: 1 and
   x-amz-meta-sparta-source-etag: the original's ETag) or deleting the copy
   when the original is gone. S3 Batch Operations tasks stamp their object
   (its s3VersionId when given). Keys starting with the prefix and objects
   carrying the marker are never stamped.

   Guarantee: once every delivery has been handled, the copy exists exactly
   when the original does and carries its current ETag, whatever the order,
   duplicates and retries. Why: every write (PUT of a copy made from ETag E,
   or DELETE) is followed by a HEAD of the original, and repeated until the
   original still matches what the write assumed; so the last write to a
   copy was checked against the original after it landed, and any later
   change of the original has its own event, handled after that change.
   A copy that already carries the current ETag is left alone (duplicates
   cost three HEADs). When the original keeps changing for MAX_ROUNDS
   writes the record fails transiently and Lambda's retry finishes the job.

   A problem with one object (not an image, too large, stamp outside it,
   refused by S3 with a 4xx) is logged and skipped. An S3 failure that
   survived the client's retries, or a record not started because the
   deadline was near (spim_budget), fails the invocation so that Lambda
   retries it; through SQS the answer lists those messages in
   batchItemFailures instead (FunctionResponseTypes: ReportBatchItemFailures).
   Batch Operations get one result per task.

   Configuration, read at init: SPARTA_OUTPUT_PREFIX (default xformed_),
   SPARTA_OUTPUT_BUCKET (default: the source's), SPARTA_STAMP (FILE or
   s3://BUCKET/KEY), SPARTA_STAMP_GRAVITY, _MARGIN, _SCALE, _OPACITY,
   SPARTA_JPEG_QUALITY, SPARTA_MAX_PIXELS and the AWS_* variables (README).
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
#define MAX_ROUNDS 5
#define LISTED 100                /* the summary lists at most this many records */

typedef struct config {
    const char *prefix, *output_bucket;
    spim_stamp stamp;
    spim_stamp_options opt;
    spim_s3_client *s3;
} config;

typedef enum outcome { STAMPED, CURRENT, DELETED, GUARDED, SKIPPED, FAILED, NOT_STARTED } outcome;
static const char *const ACTION[] = {"stamped", "stamped", "deleted", "skipped", "skipped", "failed", "failed"};

typedef struct result {
    outcome what;
    int transient, wrote;
    char reason[SPIM_ERROR_MESSAGE_MAX];
    const char *path;             /* splice|recode when the library says */
} result;

/* An unset variable keeps *out; else it must parse whole and lie in [lo, hi] (whole when `integer`). */
static int env_number(const char *name, double lo, double hi, int integer, const char *rule, double *out,
                      spim_error *err)
{
    const char *v = getenv(name);
    char *end;
    if (v && *v && !((*out = strtod(v, &end)) >= lo && *out <= hi && end != v && !*end && (!integer || *out == floor(*out))))
        return spim_error_set(err, SPIM_ERR_CONFIG, "%s=\"%.64s\": expected %s", name, v, rule) != SPIM_OK;
    return 0;
}

static spim_status imager_init(void *user, spim_error *err)
{
    config *c = (config *)user;
    const char *g = getenv("SPARTA_STAMP_GRAVITY"), *where = getenv("SPARTA_STAMP"), *key;
    double margin = 0, scale = 0.25, opacity = 1, quality = 90, pixels = 0;
    spim_s3_object obj = {0};
    char bucket[256];
    spim_status st = SPIM_OK;
    c->prefix = getenv("SPARTA_OUTPUT_PREFIX") ? getenv("SPARTA_OUTPUT_PREFIX") : "xformed_";
    c->output_bucket = getenv("SPARTA_OUTPUT_BUCKET") && *getenv("SPARTA_OUTPUT_BUCKET") ? getenv("SPARTA_OUTPUT_BUCKET") : NULL;
    if (!*c->prefix || strlen(c->prefix) >= SPIM_S3_MAX_KEY)
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_OUTPUT_PREFIX %s", *c->prefix ? "is longer than an S3 key"
                              : "is empty: the stamped copies would overwrite the originals");
    if (g && *g && spim_gravity_parse(g) < 0)
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_STAMP_GRAVITY=\"%.32s\": expected one of nw n ne w c e sw s se", g);
    if (env_number("SPARTA_STAMP_MARGIN", 0, 100000, 1, "pixels from 0 to 100000", &margin, err) ||
        env_number("SPARTA_STAMP_SCALE", 0, 1, 0, "a number from 0 (native size) to 1", &scale, err) ||
        env_number("SPARTA_STAMP_OPACITY", 1e-9, 1, 0, "a number above 0, at most 1", &opacity, err) ||
        env_number("SPARTA_JPEG_QUALITY", 1, 100, 1, "an integer from 1 to 100", &quality, err) ||
        env_number("SPARTA_MAX_PIXELS", 1, 1e12, 1, "a pixel count from 1 to 10^12", &pixels, err))
        return SPIM_ERR_CONFIG;
    c->opt.gravity = g && *g ? (spim_gravity)spim_gravity_parse(g) : SPIM_GRAVITY_SE;
    c->opt.margin = (int)margin;
    c->opt.scale = scale;
    c->opt.opacity = opacity;
    c->opt.quality = (int)quality;
    c->opt.max_pixels = pixels > 0 ? (uint64_t)pixels : spim_default_max_pixels();
    if ((st = spim_s3_client_create_from_env(&c->s3, err)) != SPIM_OK) return st;
    if (!where || !*where) return spim_stamp_load(&c->stamp, spim_stamp_png, sizeof spim_stamp_png, err);
    if (strncmp(where, "s3://", 5) != 0) st = spim_read_file(where, 16u << 20, &obj.body, err);
    else if ((st = spim_s3_parse_uri(where, bucket, sizeof bucket, &key, err)) == SPIM_OK)
        st = spim_s3_get(c->s3, bucket, key, 16u << 20, &obj, err);
    if (st == SPIM_OK) st = spim_stamp_load(&c->stamp, obj.body.data, obj.body.len, err);
    spim_s3_object_free(&obj);
    if (st != SPIM_OK) {
        char why[SPIM_ERROR_MESSAGE_MAX];
        snprintf(why, sizeof why, "%s", err->message);
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_STAMP=\"%.200s\": %s", where, why);
    }
    spim_log_fields(SPIM_LOG_INFO, "imager ready", "prefix", c->prefix, "output_bucket",
                    c->output_bucket ? c->output_bucket : "(source)", "stamp", where, (const char *)NULL);
    return SPIM_OK;
}

/* ---- one record: make the copy match the original ------------------------ */

static void settle(result *r, outcome what, const char *op, const spim_error *err, const char *why)
{
    r->what = what;
    r->transient = what == NOT_STARTED || (what == FAILED && (!err || err->transient));
    snprintf(r->reason, sizeof r->reason, "%s%s%.400s", op, *op ? ": " : "", err ? err->message : why);
}

/* HEAD: 1 with the ETag (bare hex; of the original when `meta` is NULL, else
   that metadata entry) in etag, 0 when gone, -1 with *r settled. */
static int head(const config *c, const char *bucket, const char *key, const char *meta, char *etag, result *r)
{
    spim_s3_object o = {0};
    spim_error err = {SPIM_OK, 0, 0, ""};
    spim_status st = spim_s3_head(c->s3, bucket, key, &o, &err);
    const char *v = meta ? spim_s3_object_meta(&o, meta) : o.etag;
    if (st == SPIM_OK && !meta && spim_s3_object_meta(&o, MARKER)) settle(r, GUARDED, "", NULL, "object carries the x-amz-meta-" MARKER " marker");
    else if (st != SPIM_OK && st != SPIM_ERR_NOT_FOUND) settle(r, FAILED, "HEAD", &err, NULL);
    snprintf(etag, 256, "%.200s", st == SPIM_OK && v ? v + (*v == '"') : "");
    if (*etag && etag[strlen(etag) - 1] == '"') etag[strlen(etag) - 1] = 0;
    spim_s3_object_free(&o);
    return st == SPIM_OK && r->what == STAMPED ? 1 : st == SPIM_ERR_NOT_FOUND ? 0 : -1;
}

/* Stamp the original (`version`, "" = current) unless the copy already
   carries ETag `now`; `made` gets the ETag the copy is made from. */
static void stamp_object(const config *c, const spim_s3_record *rec, const char *out_bucket, const char *out_key,
                         const char *version, const char *now, char *made, result *r)
{
    spim_s3_object obj = {0};
    spim_s3_put_options put = {0};
    spim_header meta[2] = {{MARKER, "1"}, {SOURCE_ETAG, ""}};
    spim_buf enc = SPIM_BUF_INIT;
    spim_image_info info;
    spim_error err = {SPIM_OK, 0, 0, ""};
    spim_status st;
    r->wrote = 0;
    if (head(c, out_bucket, out_key, SOURCE_ETAG, made, r) < 0) return;
    if (!*version && strcmp(made, now) == 0) {
        settle(r, CURRENT, "", NULL, "the copy already carries the original's ETag");
        return;
    }
    st = spim_s3_get_version(c->s3, rec->bucket, rec->key, version, SPIM_IMAGE_MAX_INPUT_BYTES(c->opt.max_pixels), &obj, &err);
    if (st == SPIM_ERR_NOT_FOUND && !*version) r->wrote = 1;   /* gone since the HEAD: look again */
    else if (st == SPIM_ERR_NOT_FOUND) settle(r, SKIPPED, "", NULL, "this version of the object does not exist");
    else if (st != SPIM_OK) settle(r, err.transient ? FAILED : SKIPPED, "GET", &err, NULL);
    else if (spim_s3_object_meta(&obj, MARKER)) settle(r, GUARDED, "", NULL, "object carries the x-amz-meta-" MARKER " marker");
    if (r->what != STAMPED || r->wrote) {
        spim_s3_object_free(&obj);
        return;
    }
    snprintf(made, 256, "%.200s", obj.etag + (obj.etag[0] == '"'));
    if (*made && made[strlen(made) - 1] == '"') made[strlen(made) - 1] = 0;
    st = spim_stamp_buf(&obj.body, &c->stamp, &c->opt, &enc, &info, &err);
    spim_s3_object_free(&obj);
    meta[1].value = made;
    put.content_type = info.content_type;
    put.metadata = meta;
    put.metadata_count = 2;
    if (st != SPIM_OK) settle(r, st == SPIM_ERR_NOMEM ? FAILED : SKIPPED, "", &err, NULL);
    else if (spim_s3_put(c->s3, out_bucket, out_key, enc.data, enc.len, &put, NULL, &err) != SPIM_OK) settle(r, FAILED, "PUT", &err, NULL);
    else r->wrote = 1;
    spim_buf_free(&enc);
}

static void delete_stamped(const config *c, const char *out_bucket, const char *out_key, char *made, result *r)
{
    spim_error err = {SPIM_OK, 0, 0, ""};
    *made = 0;
    settle(r, DELETED, "", NULL, "source object is gone");
    r->wrote = 1;
    if (spim_s3_delete(c->s3, out_bucket, out_key, &err) != SPIM_OK) settle(r, FAILED, "DELETE", &err, NULL);
}

/* Act on what the original is now, then look again after every write. */
static void converge(const config *c, const spim_s3_record *rec, const char *out_key, result *r)
{
    const char *out_bucket = c->output_bucket ? c->output_bucket : rec->bucket;
    char now[256], made[256];
    int round, exists;
    for (round = 0; round < MAX_ROUNDS; round++) {
        outcome did = r->what;
        r->what = STAMPED;
        if ((exists = head(c, rec->bucket, rec->key, NULL, now, r)) < 0) return;
        if (round > 0 && strcmp(now, made) == 0) {
            r->what = did;
            return;
        }
        r->reason[0] = 0;
        if (exists) stamp_object(c, rec, out_bucket, out_key, round ? "" : rec->version_id, now, made, r);
        else delete_stamped(c, out_bucket, out_key, made, r);
        if (r->what > DELETED || !r->wrote) return;
    }
    settle(r, FAILED, "", NULL, "the original kept changing: left to a retry");
}

static void handle_record(const config *c, const spim_s3_record *rec, spim_buf *out_key, result *r)
{
    spim_buf_reset(out_key);
    if (rec->status != SPIM_OK) settle(r, SKIPPED, "", NULL, rec->error);
    else if (!spim_utf8_valid(rec->key, rec->key_len)) settle(r, SKIPPED, "", NULL, "key is not UTF-8");
    else if (strncmp(rec->key, c->prefix, strlen(c->prefix)) == 0) settle(r, GUARDED, "key starts with", NULL, c->prefix);
    else if (strlen(c->prefix) + rec->key_len > SPIM_S3_MAX_KEY) settle(r, SKIPPED, c->prefix, NULL, "+ key is longer than an S3 key");
    else if (spim_buf_appendf(out_key, "%s%s", c->prefix, rec->key)) settle(r, FAILED, "", NULL, "out of memory");
    if (r->what != STAMPED) return;
    switch (rec->kind) {
    case SPIM_EVENT_CREATED:
    case SPIM_EVENT_REMOVED: converge(c, rec, (const char *)out_key->data, r); break;
    default: settle(r, SKIPPED, "", NULL, "event not handled"); break;
    }
}

/* ---- the invocation ------------------------------------------------------------ */

typedef struct summary {
    int n[NOT_STARTED + 1], failed, transient, left;
    char first[SPIM_ERROR_MESSAGE_MAX];
    cJSON *doc, *records, *failures;   /* records: the summary's, or Batch Operations' results */
} summary;

static void report(summary *s, const spim_s3_record *rec, const char *out_key, const result *r, int64_t ms)
{
    const char *key = spim_utf8_valid(rec->key, rec->key_len) ? rec->key : rec->key_raw;
    cJSON *item = cJSON_CreateObject(), *f;
    char text[SPIM_ERROR_MESSAGE_MAX + 32];
    spim_log(r->what >= FAILED ? SPIM_LOG_ERROR : SPIM_LOG_INFO, "%s bucket=%s key=%s event=%s output=%s ms=%lld%s%s%s%s",
             ACTION[r->what], rec->bucket, key, rec->name, out_key, (long long)ms, r->path ? " path=" : "",
             r->path ? r->path : "", *r->reason ? " reason=" : "", r->reason);
    s->n[r->what]++;
    if (r->what >= FAILED && !s->failed++) snprintf(s->first, sizeof s->first, "%.200s: %.300s", key, r->reason);
    s->transient += r->transient;
    cJSON_ArrayForEach(f, s->failures) if (strcmp(f->child->valuestring, rec->message_id) == 0) break;
    if (r->transient && rec->source == SPIM_SOURCE_SQS && !f && (f = cJSON_CreateObject()) != NULL) {
        cJSON_AddStringToObject(f, "itemIdentifier", rec->message_id);
        cJSON_AddItemToArray(s->failures, f);
    }
    if (!item) return;
    if (rec->source == SPIM_SOURCE_BATCH) {
        static const char *const CODE[] = {"Succeeded", "Succeeded", "PermanentFailure", "Succeeded", "PermanentFailure",
                                           "PermanentFailure", "TemporaryFailure"};
        snprintf(text, sizeof text, "%s%s%s", r->what == DELETED ? "key missing" : ACTION[r->what], *r->reason ? ": " : "",
                 r->what == DELETED ? "" : r->reason);
        cJSON_AddStringToObject(item, "taskId", rec->task_id);
        cJSON_AddStringToObject(item, "resultCode", r->transient ? "TemporaryFailure" : CODE[r->what]);
        cJSON_AddStringToObject(item, "resultString", text);
    } else if (cJSON_GetArraySize(s->records) < LISTED) {
        cJSON_AddStringToObject(item, "key", key);
        cJSON_AddStringToObject(item, "action", ACTION[r->what]);
        if (*out_key && r->what <= DELETED) cJSON_AddStringToObject(item, "output", out_key);
        if (*r->reason) cJSON_AddStringToObject(item, "reason", r->reason);
    } else {
        cJSON_Delete(item);
        item = NULL;
    }
    if (item) cJSON_AddItemToArray(s->records, item);
}

static spim_status answer(summary *s, const spim_event *ev, size_t total, spim_response *resp)
{
    int batch = total && ev->records[0].source == SPIM_SOURCE_BATCH, sqs = total && ev->records[0].source == SPIM_SOURCE_SQS;
    char *text;
    spim_status st = SPIM_ERR_NOMEM;
    if (batch) {
        cJSON_AddStringToObject(s->doc, "invocationSchemaVersion", ev->invocation_schema_version);
        cJSON_AddStringToObject(s->doc, "treatMissingKeysAs", "PermanentFailure");
        cJSON_AddStringToObject(s->doc, "invocationId", ev->invocation_id);
        cJSON_AddItemReferenceToObject(s->doc, "results", s->records);
    } else {
        cJSON_AddNumberToObject(s->doc, "stamped", s->n[STAMPED] + s->n[CURRENT]);
        cJSON_AddNumberToObject(s->doc, "deleted", s->n[DELETED]);
        cJSON_AddNumberToObject(s->doc, "skipped", s->n[SKIPPED] + s->n[GUARDED]);
        cJSON_AddNumberToObject(s->doc, "failed", s->failed);
        cJSON_AddNumberToObject(s->doc, "testEvents", ev->test_events);
        cJSON_AddNumberToObject(s->doc, "recordsOmitted", (double)total - cJSON_GetArraySize(s->records));
        cJSON_AddItemReferenceToObject(s->doc, "records", s->records);
        if (sqs) cJSON_AddItemReferenceToObject(s->doc, "batchItemFailures", s->failures);
    }
    if ((text = cJSON_PrintUnformatted(s->doc)) != NULL) st = spim_response_ok(resp, text, strlen(text), NULL);
    cJSON_free(text);
    spim_log(SPIM_LOG_INFO, "done stamped=%d deleted=%d skipped=%d failed=%d not_started=%d", s->n[STAMPED] + s->n[CURRENT],
             s->n[DELETED], s->n[SKIPPED] + s->n[GUARDED], s->failed, s->n[NOT_STARTED]);
    if (batch || sqs || !s->failed) return st;
    spim_response_fail(resp, s->transient ? "TransientS3Error" : "S3Error", "%d of %zu records failed; first: %s%s", s->failed,
                       total, s->first, s->n[NOT_STARTED] ? " (some were not started: the deadline was near)" : "");
    return SPIM_ERR_HTTP;
}

static spim_status imager(const spim_invocation *inv, spim_response *resp, void *user)
{
    spim_event *ev = NULL;
    spim_buf out_key = SPIM_BUF_INIT;
    spim_budget budget = {0, 0, 0, 0};
    summary s;
    spim_error err;
    spim_status st;
    size_t i;
    memset(&s, 0, sizeof s);
    if (spim_event_parse(inv->payload, inv->payload_len, NULL, &ev, &err) != SPIM_OK) {
        spim_response_fail(resp, "InvalidEvent", "%s", err.message);
        return err.status;
    }
    s.doc = cJSON_CreateObject();
    s.records = cJSON_CreateArray();
    s.failures = cJSON_CreateArray();
    for (i = 0; s.doc && s.records && s.failures && i < ev->record_count; i++) {
        result r = {STAMPED, 0, 0, "", NULL};
        int64_t t = spim_now_ms();
        spim_buf_reset(&out_key);
        if (!spim_budget_next(&budget, inv)) settle(&r, NOT_STARTED, "", NULL, "not started: the deadline is near");
        else handle_record((const config *)user, &ev->records[i], &out_key, &r);
        report(&s, &ev->records[i], out_key.len ? (const char *)out_key.data : "", &r, spim_now_ms() - t);
    }
    st = s.doc && s.records && s.failures ? answer(&s, ev, ev->record_count, resp) : SPIM_ERR_NOMEM;
    cJSON_Delete(s.doc);
    cJSON_Delete(s.records);
    cJSON_Delete(s.failures);
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
