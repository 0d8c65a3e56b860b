/* imager - the SpartaImager function: a stamped copy of every image in a bucket.

   ObjectCreated:* and ObjectRemoved:* both mean "this key changed": the copy SPARTA_OUTPUT_PREFIX + key
   is made to match the original (stamped from its current version, with x-amz-meta-sparta-stamped: 1
   and -sparta-source-etag: its ETag) or deleted when it is gone. Batch Operations tasks stamp their
   object (s3VersionId when given). Keys with the prefix and marked objects are skipped.

   Guarantee: once every delivery is handled, the copy exists exactly when the original does and
   carries its current ETag, whatever the order, duplicates and retries: each write is followed by a
   HEAD of the original and redone until the original is still what the write assumed (a later change
   has its own event). An original still changing after MAX_ROUNDS writes is retried. Permanent
   problems (not an image, too large, a 4xx) are logged and skipped; S3 failures and records left for
   the deadline are retried (spim_reply_finish). Configuration: README.
      build/imager/bootstrap --event event.json     # invoke once */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "build/assets/stamp_png.h"
#include "build/assets/font_ttf.h"

#define MARKER "sparta-stamped"
#define SOURCE_ETAG "sparta-source-etag"
#define MAX_ROUNDS 5

typedef struct config {   /* stamp: the embedded one is decoded at the first record; SPARTA_STAMP=none: none */
    const char *prefix, *output_bucket; spim_stamp stamp; spim_stamp_options opt; spim_s3_client *s3;
    spim_buf font; int text_only;
} config;

/* What happened to a record; in this order, `action` and the reply's result. */
typedef enum outcome { STAMPED, CURRENT, DELETED, GUARDED, SKIPPED, FAILED, NOT_STARTED } outcome;
static const char *const ACTION[] = {"stamped", "stamped", "deleted", "skipped", "skipped", "failed", "failed"};
static const spim_result RESULT[] = {SPIM_RESULT_SUCCEEDED, SPIM_RESULT_SUCCEEDED, SPIM_RESULT_SKIPPED,
                                     SPIM_RESULT_SUCCEEDED, SPIM_RESULT_SKIPPED, SPIM_RESULT_FAILED, SPIM_RESULT_RETRY};
typedef struct result {   /* path: "splice" or "recode" once stamped; huffman: "file" or "optimal" (splice) */
    outcome what; int transient, wrote; const char *path, *huffman; char reason[SPIM_ERROR_MESSAGE_MAX];
} result;

/* Variable -> stamp option, with spim_stamp_option_set's rules. */
static const char *const OPTIONS[][2] = {
    {"SPARTA_STAMP_GRAVITY", "gravity"}, {"SPARTA_STAMP_MARGIN", "margin"}, {"SPARTA_STAMP_SCALE", "scale"},
    {"SPARTA_STAMP_OPACITY", "opacity"}, {"SPARTA_JPEG_QUALITY", "quality"}, {"SPARTA_JPEG_MODE", "jpeg-mode"},
    {"SPARTA_MAX_PIXELS", "max-pixels"}, {"SPARTA_STAMP_TILE", "tile"}, {"SPARTA_STAMP_TEXT", "text"},
    {"SPARTA_STAMP_TEXT_GRAVITY", "text-gravity"}, {"SPARTA_STAMP_TEXT_SIZE", "text-size"},
    {"SPARTA_STAMP_TEXT_COLOR", "text-color"}, {"SPARTA_STAMP_TEXT_EFFECT", "text-effect"},
    {"SPARTA_STAMP_FONT", "font"}};

/* A file or s3://bucket/key (SPARTA_STAMP, SPARTA_STAMP_FONT) into `body`. */
static spim_status load_file(config *c, const char *where, spim_buf *body, spim_error *err)
{
    spim_s3_object obj = {0};
    char bucket[256];
    const char *key;
    spim_status st;
    if (strncmp(where, "s3://", 5) != 0) return spim_read_file(where, 16u << 20, body, err);
    if ((st = spim_s3_parse_uri(where, bucket, sizeof bucket, &key, err)) == SPIM_OK &&
        (st = spim_s3_get(c->s3, bucket, key, 16u << 20, &obj, err)) == SPIM_OK) {
        *body = obj.body;
        obj.body = (spim_buf)SPIM_BUF_INIT;
    }
    spim_s3_object_free(&obj);
    return st;
}

static spim_status load_stamp(config *c, const char *where, spim_error *err)
{
    spim_buf png = SPIM_BUF_INIT;
    spim_status st = load_file(c, where, &png, err);
    if (st == SPIM_OK) st = spim_stamp_load(&c->stamp, png.data, png.len, err);
    spim_buf_free(&png);
    return st;
}

/* The text's font (SPARTA_STAMP_FONT or the embedded DejaVu Sans) and every option checked together;
   an error names the variable of the option it is about. */
static spim_status check_options(config *c, spim_error *err)
{
    const char *font = getenv("SPARTA_STAMP_FONT");
    size_t i, n;
    c->opt.font = spim_font_ttf, c->opt.font_len = sizeof spim_font_ttf;
    if (font && *font) {
        if (load_file(c, font, &c->font, err) != SPIM_OK)
            return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_STAMP_FONT=\"%.200s\": %s", font, err->message);
        c->opt.font = c->font.data, c->opt.font_len = c->font.len;
    }
    c->text_only = (font = getenv("SPARTA_STAMP")) != NULL && strcmp(font, "none") == 0;   /* the text alone */
    if (spim_stamp_check(&c->opt, err) == SPIM_OK) return SPIM_OK;
    for (i = 0; i < sizeof OPTIONS / sizeof OPTIONS[0]; i++)   /* the message starts with "OPTION: " */
        if (strncmp(err->message, OPTIONS[i][1], n = strlen(OPTIONS[i][1])) == 0 && err->message[n] == ':')
            return spim_error_set(err, SPIM_ERR_CONFIG, "%s%s", OPTIONS[i][0], err->message + n);
    return SPIM_ERR_CONFIG;
}

static spim_status imager_init(void *user, spim_error *err)
{
    config *c = (config *)user;
    const char *v, *stamp = getenv("SPARTA_STAMP");
    spim_status st;
    size_t i;
    c->prefix = (v = getenv("SPARTA_OUTPUT_PREFIX")) != NULL ? v : "xformed_";
    c->output_bucket = (v = getenv("SPARTA_OUTPUT_BUCKET")) != NULL && *v ? v : NULL;
    if (!*c->prefix || strlen(c->prefix) >= SPIM_S3_MAX_KEY)
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_OUTPUT_PREFIX %s", *c->prefix ? "is longer than an S3 key"
                              : "is empty: the stamped copies would overwrite the originals");
    c->opt.scale = 0.25;   /* the other defaults are the library's: se, margin 0, opaque, q90, auto */
    for (i = 0; i + 1 < sizeof OPTIONS / sizeof OPTIONS[0]; i++)   /* the last, the font, is a file */
        if ((v = getenv(OPTIONS[i][0])) != NULL && *v && spim_stamp_option_set(&c->opt, OPTIONS[i][1], v, err))
            return spim_error_set(err, SPIM_ERR_CONFIG, "%s: %s", OPTIONS[i][0], err->message);
    if (!c->opt.max_pixels) c->opt.max_pixels = spim_default_max_pixels();   /* it also sets the GET limit */
    if ((st = spim_s3_client_create(NULL, &c->s3, err)) != SPIM_OK) return st;
    if (stamp && *stamp && strcmp(stamp, "none") != 0 && load_stamp(c, stamp, err) != SPIM_OK)
        return spim_error_set(err, SPIM_ERR_CONFIG, "SPARTA_STAMP=\"%.200s\": %s", stamp, err->message);
    if ((st = check_options(c, err)) != SPIM_OK) return st;
    spim_log_fields(SPIM_LOG_INFO, "imager ready", SPIM_LOG_STR("prefix", c->prefix),
                    SPIM_LOG_STR("output_bucket", c->output_bucket ? c->output_bucket : "(source)"),
                    SPIM_LOG_STR("stamp", stamp && *stamp ? stamp : "(embedded)"), SPIM_LOG_END);
    return SPIM_OK;
}

static void settle(result *r, outcome what, const char *op, const spim_error *err, const char *why)
{
    r->what = what;
    r->transient = what == NOT_STARTED || (what == FAILED && (!err || err->transient));
    snprintf(r->reason, sizeof r->reason, "%s%s%.400s", op, *op ? ": " : "", err ? err->message : why);
}

static void bare_etag(char *out, const char *etag)   /* S3 quotes ETags; metadata holds the bare hex */
{
    snprintf(out, 256, "%.200s", etag + (*etag == '"'));
    if (*out && out[strlen(out) - 1] == '"') out[strlen(out) - 1] = 0;
}

/* HEAD: 1 with the ETag (the original's, or metadata entry `meta`), 0 when gone, -1 with *r settled. */
static int head(const config *c, const char *bucket, const char *key, const char *meta, char *etag, result *r)
{
    spim_s3_object o = {0};
    spim_error err = {SPIM_OK, 0, 0, ""};
    spim_status st = spim_s3_head(c->s3, bucket, key, &o, &err);
    const char *v = meta ? spim_s3_object_meta(&o, meta) : o.etag;
    if (st == SPIM_OK && !meta && spim_s3_object_meta(&o, MARKER)) settle(r, GUARDED, "", NULL, "object carries the x-amz-meta-" MARKER " marker");
    else if (st != SPIM_OK && st != SPIM_ERR_NOT_FOUND) settle(r, FAILED, "HEAD", &err, NULL);
    bare_etag(etag, st == SPIM_OK && v ? v : "");
    spim_s3_object_free(&o);
    return st == SPIM_OK && r->what == STAMPED ? 1 : st == SPIM_ERR_NOT_FOUND ? 0 : -1;
}

/* Stamp `version` ("" = current) unless the copy carries ETag `now`; `made`: the ETag it is made from. */
static void stamp_object(const config *c, const spim_s3_record *rec, const char *out_bucket, const char *out_key,
                         const char *version, const char *now, char *made, result *r)
{
    spim_s3_object obj = {0};
    spim_header meta[2] = {{MARKER, "1"}, {SOURCE_ETAG, ""}};
    spim_s3_put_options put = {NULL, meta, 2};
    spim_buf enc = SPIM_BUF_INIT;
    spim_image_info info = {SPIM_FORMAT_UNKNOWN, SPIM_FORMAT_UNKNOWN, NULL, NULL, 0, 0, 0, NULL, NULL};
    spim_error err = {SPIM_OK, 0, 0, ""};
    spim_status st;
    int had = head(c, out_bucket, out_key, SOURCE_ETAG, made, r);
    if (had >= 0 && !*version && strcmp(made, now) == 0) settle(r, CURRENT, "", NULL, "the copy already carries the original's ETag");
    if (had < 0 || r->what != STAMPED) return;
    st = spim_s3_get_version(c->s3, rec->bucket, rec->key, version, SPIM_IMAGE_MAX_INPUT_BYTES(c->opt.max_pixels), &obj, &err);
    if (st == SPIM_ERR_NOT_FOUND && !*version) r->wrote = 1;   /* gone since the HEAD: look again */
    else if (st == SPIM_ERR_NOT_FOUND) settle(r, SKIPPED, "", NULL, "this version of the object does not exist");
    else if (st != SPIM_OK) settle(r, err.transient ? FAILED : SKIPPED, "GET", &err, NULL);
    else if (spim_s3_object_meta(&obj, MARKER)) settle(r, GUARDED, "", NULL, "object carries the x-amz-meta-" MARKER " marker");
    bare_etag(made, obj.etag);
    if (r->what == STAMPED && !r->wrote) {   /* the text's placeholders from this record */
        spim_text_vars vars = {rec->key, rec->bucket, rec->event_time};
        spim_stamp_options opt = c->opt;
        opt.vars = &vars;
        st = spim_stamp_buf(&obj.body, c->text_only ? NULL : &c->stamp, &opt, &enc, &info, &err);
    }
    spim_s3_object_free(&obj);
    meta[1].value = made, put.content_type = info.content_type, r->path = info.path, r->huffman = info.huffman;
    if (r->what != STAMPED || r->wrote) ;
    else if (st != SPIM_OK) settle(r, st == SPIM_ERR_NOMEM ? FAILED : SKIPPED, "", &err, NULL);
    else if (spim_s3_put(c->s3, out_bucket, out_key, enc.data, enc.len, &put, NULL, &err) != SPIM_OK) settle(r, FAILED, "PUT", &err, NULL);
    else r->wrote = 1;
    spim_buf_free(&enc);
    if (r->what == SKIPPED && had && !*version) {   /* what cannot be stamped keeps no copy of an older version */
        *made = 0, r->wrote = 1;
        if (spim_s3_delete(c->s3, out_bucket, out_key, &err) != SPIM_OK) settle(r, FAILED, "DELETE", &err, NULL);
    }
}

static void delete_stamped(const config *c, const spim_s3_record *rec, const char *out_bucket, const char *out_key, char *made, result *r)
{
    spim_error err = {SPIM_OK, 0, 0, ""};
    settle(r, DELETED, "", NULL, rec->source == SPIM_SOURCE_BATCH ? "key missing" : "source object is gone");
    *made = 0, r->wrote = 1;
    if (spim_s3_delete(c->s3, out_bucket, out_key, &err) != SPIM_OK) settle(r, FAILED, "DELETE", &err, NULL);
}

/* Act on what the original is now; after a write, look again. */
static void converge(const config *c, const spim_s3_record *rec, const char *out_key, result *r)
{
    const char *out_bucket = c->output_bucket ? c->output_bucket : rec->bucket;
    char now[256], made[256] = "";
    int round, exists;
    for (round = 0; round < MAX_ROUNDS; round++) {
        result last = *r;   /* what the last write did */
        r->what = STAMPED;
        if ((exists = head(c, rec->bucket, rec->key, NULL, now, r)) < 0) return;
        if (round > 0 && strcmp(now, made) == 0) { *r = last; return; }   /* still what the write assumed */
        r->wrote = 0, r->reason[0] = 0;
        if (exists) stamp_object(c, rec, out_bucket, out_key, round ? "" : rec->version_id, now, made, r);
        else delete_stamped(c, rec, out_bucket, out_key, made, r);
        if (!r->wrote || r->what >= FAILED) return;
    }
    settle(r, FAILED, "", NULL, "the original kept changing: left to a retry");
}

static spim_status imager(const spim_invocation *inv, spim_response *resp, void *user)
{
    config *c = (config *)user;
    spim_event *ev = NULL;
    spim_buf out_key = SPIM_BUF_INIT;
    spim_budget budget = {0, 0, 0, 0};
    spim_reply reply = {.actions = {"stamped", "deleted", "skipped", "failed"}, .error_type = "S3Error"};
    spim_error err;
    spim_status st = SPIM_OK;
    size_t i;
    if (spim_event_parse(inv->payload, inv->payload_len, NULL, &ev, &err) != SPIM_OK)
        return spim_response_fail(resp, "InvalidEvent", "%s", err.message), err.status;
    if (ev->record_count && !c->stamp.rgba && !c->text_only && (st = spim_stamp_load(&c->stamp, spim_stamp_png, sizeof spim_stamp_png, &err)))
        spim_response_fail(resp, "StampError", "%s", err.message);   /* out of memory: the embedded stamp is good */
    for (i = 0; st == SPIM_OK && i < ev->record_count; i++) {
        const spim_s3_record *rec = &ev->records[i];
        result r = {STAMPED, 0, 0, NULL, NULL, ""};
        int64_t t = spim_now_ms();
        spim_buf_reset(&out_key);
        if (!spim_budget_next(&budget, inv)) settle(&r, NOT_STARTED, "", NULL, "not started: the deadline is near");
        else if (rec->status != SPIM_OK) settle(&r, SKIPPED, "", NULL, rec->error);
        else if (!spim_utf8_valid(rec->key, rec->key_len)) settle(&r, SKIPPED, "", NULL, "key is not UTF-8");
        else if (strncmp(rec->key, c->prefix, strlen(c->prefix)) == 0) settle(&r, GUARDED, "key starts with", NULL, c->prefix);
        else if (strlen(c->prefix) + rec->key_len > SPIM_S3_MAX_KEY) settle(&r, SKIPPED, c->prefix, NULL, "+ key is longer than an S3 key");
        else if (spim_buf_appendf(&out_key, "%s%s", c->prefix, rec->key)) settle(&r, FAILED, "", NULL, "out of memory");
        else switch (rec->kind) {
        case SPIM_EVENT_CREATED:
        case SPIM_EVENT_REMOVED: converge(c, rec, (const char *)out_key.data, &r); break;
        default: settle(&r, SKIPPED, "", NULL, "event not handled"); break;
        }
        spim_log_fields(r.what >= FAILED ? SPIM_LOG_ERROR : SPIM_LOG_INFO, ACTION[r.what], SPIM_LOG_STR("bucket", rec->bucket),
                        SPIM_LOG_STR("key", spim_utf8_valid(rec->key, rec->key_len) ? rec->key : rec->key_raw),
                        SPIM_LOG_STR("event", rec->name), SPIM_LOG_STR("output", (const char *)out_key.data), SPIM_LOG_STR("path", r.path),
                        SPIM_LOG_STR("huffman", r.huffman), SPIM_LOG_INT("ms", spim_now_ms() - t), SPIM_LOG_STR("reason", *r.reason ? r.reason : NULL), SPIM_LOG_END);
        spim_reply_record(&reply, rec, r.transient ? SPIM_RESULT_RETRY : RESULT[r.what], ACTION[r.what],
                          r.what <= DELETED ? (const char *)out_key.data : NULL, r.reason);   /* out of memory: spim_reply_finish says so */
    }
    if (st == SPIM_OK) st = spim_reply_finish(&reply, ev, resp);
    spim_buf_free(&out_key);
    spim_event_free(ev);
    return st;
}

int main(int argc, char **argv)
{
    static config cfg;
    int rc = spim_lambda_main(argc, argv, imager_init, imager, &cfg);
    spim_stamp_free(&cfg.stamp);
    spim_buf_free(&cfg.font);
    spim_s3_client_free(cfg.s3);
    return rc;
}
