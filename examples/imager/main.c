/* imager - the SpartaImager function: a stamped copy of every image in a bucket.

   The Go walkthrough's steps, and where they are here:
     1. Lambda hands over an S3 event: loop over its records           imager()
     2. ObjectCreated: GET the image, stamp it, PUT it as prefix + key  stamp_copy()
     3. ObjectRemoved: DELETE that copy                                 delete_copy()
   plus one it leaves out: S3 delivers events late, twice and out of order, so after each write
   converge() HEADs the original and, while it is no longer what the write assumed, matches it
   again. Once every delivery is handled, the copy exists exactly when the original does, made
   from its current version (x-amz-meta-sparta-source-etag: its ETag). Prefixed keys and marked
   objects (x-amz-meta-sparta-stamped) are skipped: the loop guard. Batch Operations tasks are
   ObjectCreated (with their s3VersionId). Image problems are logged and skipped; S3 failures
   (AccessDenied, KMS too: a DLQ) and records left at the deadline are retried (spim_reply_finish).
   Configuration: config.h and the README.      build/imager/bootstrap --event event.json */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "build/assets/stamp_png.h"
#include "config.h"   /* config, imager_init: the SPARTA_* variables */

#define MARKER "sparta-stamped"
#define SOURCE_ETAG "sparta-source-etag"
#define MAX_ROUNDS 5
#define ETAG_MAX 256
#define MARKED "object carries the x-amz-meta-" MARKER " marker"
#define CURRENT_ETAG "the copy already carries the original's ETag"

/* What happened to a record; in this order, its `action` and the reply's result. */
typedef enum outcome { STAMPED, CURRENT, DELETED, GUARDED, SKIPPED, FAILED, NOT_STARTED } outcome;
static const char *const ACTION[] = {
    "stamped", "stamped", "deleted", "skipped", "skipped", "failed", "failed"};
static const spim_result RESULT[] = {
    SPIM_RESULT_SUCCEEDED, SPIM_RESULT_SUCCEEDED, SPIM_RESULT_SKIPPED, SPIM_RESULT_SUCCEEDED,
    SPIM_RESULT_SKIPPED, SPIM_RESULT_FAILED, SPIM_RESULT_RETRY};

/* One record's copy: where it goes, what it is made from, and what happened. */
typedef struct job {
    const config *c;
    const spim_s3_record *rec;
    const char *bucket, *key;     /* of the copy */
    char made[ETAG_MAX];          /* the original's ETag the copy is made from; "" once deleted */
    outcome what;
    int transient, wrote;
    const char *path, *huffman;   /* once stamped: "splice" or "recode"; "file" or "optimal" */
    char reason[SPIM_ERROR_MESSAGE_MAX];
} job;

/* Record what happened: `err` of the call `op` ("GET: ..."), or `why`. */
static void settle(job *j, outcome what, const char *op, const spim_error *err, const char *why)
{
    j->what = what;
    j->transient = what == NOT_STARTED || (what == FAILED && (!err || err->transient));
    why = err ? err->message : why;
    snprintf(j->reason, sizeof j->reason, "%s%s%.400s", op, *op ? ": " : "", why);
}

static void note(job *j, outcome what, const char *why) { settle(j, what, "", NULL, why); }

static void bare_etag(char *out, const char *etag)   /* S3 quotes ETags; metadata holds bare hex */
{
    snprintf(out, ETAG_MAX, "%.200s", etag + (*etag == '"'));
    if (*out && out[strlen(out) - 1] == '"') out[strlen(out) - 1] = 0;
}

/* HEAD: 1 with the ETag (the object's, or its metadata entry `meta`), 0 when gone, -1 with the
   job settled (a failure, or an original that carries the marker). */
static int head(job *j, const char *bucket, const char *key, const char *meta, char *etag)
{
    spim_s3_object o = {0};
    spim_error err = {0};
    spim_status st = spim_s3_head(j->c->s3, bucket, key, &o, &err);
    const char *v = meta ? spim_s3_object_meta(&o, meta) : o.etag;
    if (st == SPIM_OK && !meta && spim_s3_object_meta(&o, MARKER)) note(j, GUARDED, MARKED);
    else if (st != SPIM_OK && st != SPIM_ERR_NOT_FOUND) settle(j, FAILED, "HEAD", &err, NULL);
    bare_etag(etag, st == SPIM_OK && v ? v : "");
    spim_s3_object_free(&o);
    if (st == SPIM_OK) return j->what == STAMPED ? 1 : -1;
    return st == SPIM_ERR_NOT_FOUND ? 0 : -1;
}

static void drop(job *j)   /* DELETE the copy */
{
    spim_error err = {0};
    j->made[0] = 0;
    j->wrote = 1;
    if (spim_s3_delete(j->c->s3, j->bucket, j->key, &err)) settle(j, FAILED, "DELETE", &err, NULL);
}

/* ObjectRemoved (and a Batch task whose key is gone): the copy goes too. */
static void delete_copy(job *j)
{
    note(j, DELETED, j->rec->source == SPIM_SOURCE_BATCH ? "key missing" : "source object is gone");
    drop(j);
}

/* Stamp the original's bytes; PUT them as the copy, marked, with the ETag they come from. */
static void put_stamped(job *j, spim_buf *original)
{
    spim_header meta[] = {{MARKER, "1"}, {SOURCE_ETAG, j->made}};
    spim_s3_put_options put = {.metadata = meta, .metadata_count = 2};
    spim_image_info info = {0};
    spim_buf out = SPIM_BUF_INIT;
    spim_error err = {0};
    spim_status st = spim_stamp_buf(original, &j->c->stamp, &j->c->opt, &out, &info, &err);
    put.content_type = info.content_type;
    j->path = info.path;
    j->huffman = info.huffman;
    if (st != SPIM_OK) settle(j, st == SPIM_ERR_NOMEM ? FAILED : SKIPPED, "", &err, NULL);
    else if (spim_s3_put(j->c->s3, j->bucket, j->key, out.data, out.len, &put, NULL, &err))
        settle(j, FAILED, "PUT", &err, NULL);
    else j->wrote = 1;
    spim_buf_free(&out);
}

/* ObjectCreated (and Batch tasks): GET the original (`version`; "" = the current one), stamp it,
   PUT the copy, unless the copy already carries its ETag. An original gone by now: delete_copy. */
static void stamp_copy(job *j, const char *version)
{
    uint64_t max = SPIM_IMAGE_MAX_INPUT_BYTES(j->c->opt.max_pixels);
    spim_s3_object obj = {0};
    spim_error err = {0};
    char has[ETAG_MAX];
    int had = head(j, j->bucket, j->key, SOURCE_ETAG, has);
    spim_status st;
    if (had < 0) return;
    st = spim_s3_get_version(j->c->s3, j->rec->bucket, j->rec->key, version, max, &obj, &err);
    bare_etag(j->made, obj.etag);
    j->path = j->huffman = NULL;
    if (st == SPIM_ERR_NOT_FOUND && !*version) delete_copy(j);
    else if (st == SPIM_ERR_NOT_FOUND)
        note(j, SKIPPED, "this version of the object does not exist");
    else if (st != SPIM_OK)   /* too large: an image problem; 403, KMS: a person must act */
        settle(j, st == SPIM_ERR_TOO_LARGE ? SKIPPED : FAILED, "GET", &err, NULL);
    else if (spim_s3_object_meta(&obj, MARKER)) note(j, GUARDED, MARKED);
    else if (had && !*version && !strcmp(has, j->made)) note(j, CURRENT, CURRENT_ETAG);
    else put_stamped(j, &obj.body);
    spim_s3_object_free(&obj);
    if (j->what == SKIPPED && had && !*version)
        drop(j);   /* what cannot be stamped keeps no copy of an older version */
}

/* The one convergence check, after a write: HEAD the original; while it is no longer what the
   write assumed (it changed meanwhile, and its event is on the way), match it again. */
static void converge(job *j)
{
    char now[ETAG_MAX];
    int round, there;
    for (round = 1; round < MAX_ROUNDS && j->wrote && j->what < FAILED; round++) {
        job last = *j;
        j->what = STAMPED;
        if ((there = head(j, j->rec->bucket, j->rec->key, NULL, now)) < 0) return;
        if (strcmp(now, j->made) == 0) {
            *j = last;
            return;
        }
        j->wrote = 0;
        j->reason[0] = 0;
        if (there) stamp_copy(j, "");
        else delete_copy(j);
    }
    if (j->wrote && j->what < FAILED)
        note(j, FAILED, "the original kept changing: left to a retry");
}

/* The copy's key, or 0 with the job settled: what must not be stamped is skipped first
   (`guard`: the output prefix the key starts with; `rule`: the key's SPARTA_RULES entry). */
static int copy_key(job *j, const char *guard, const spim_rule *rule, spim_buf *key)
{
    const spim_s3_record *rec = j->rec;
    const char *prefix = j->c->prefix;
    if (rec->status != SPIM_OK) note(j, SKIPPED, rec->error);
    else if (!spim_utf8_valid(rec->key, rec->key_len)) note(j, SKIPPED, "key is not UTF-8");
    else if (guard) settle(j, GUARDED, "key starts with", NULL, guard);
    else if (rule && rule->skip)
        settle(j, SKIPPED, "SPARTA_RULES skips prefix", NULL, rule->prefix);
    else if (strlen(prefix) + rec->key_len > SPIM_S3_MAX_KEY)
        settle(j, SKIPPED, prefix, NULL, "+ key is longer than an S3 key");
    else if (spim_buf_appendf(key, "%s%s", prefix, rec->key)) note(j, FAILED, "out of memory");
    else return 1;
    return 0;
}

/* One log line and one reply entry a record (out of memory: spim_reply_finish says so). */
static void report(spim_reply *reply, const job *j, const char *out, int64_t started)
{
    const spim_s3_record *rec = j->rec;
    const char *key = spim_utf8_valid(rec->key, rec->key_len) ? rec->key : rec->key_raw;
    spim_log_fields(j->what >= FAILED ? SPIM_LOG_ERROR : SPIM_LOG_INFO, ACTION[j->what],
                    SPIM_LOG_STR("bucket", rec->bucket), SPIM_LOG_STR("key", key),
                    SPIM_LOG_STR("event", rec->name), SPIM_LOG_STR("output", out),
                    SPIM_LOG_STR("path", j->path), SPIM_LOG_STR("huffman", j->huffman),
                    SPIM_LOG_INT("ms", spim_now_ms() - started),
                    SPIM_LOG_STR("reason", *j->reason ? j->reason : NULL), SPIM_LOG_END);
    spim_reply_record(reply, rec, j->transient ? SPIM_RESULT_RETRY : RESULT[j->what],
                      ACTION[j->what], j->what <= DELETED ? out : NULL, j->reason);
}

static spim_status imager(const spim_invocation *inv, spim_response *resp, void *user)
{
    config *c = (config *)user;
    spim_event *ev = NULL;
    spim_buf key = SPIM_BUF_INIT;
    spim_budget budget = {0};
    spim_reply reply = {.actions = {"stamped", "deleted", "skipped", "failed"},
                        .error_type = "S3Error"};
    spim_error err = {0};
    spim_status st = SPIM_OK;
    size_t i;
    if (spim_event_parse(inv->payload, inv->payload_len, NULL, &ev, &err) != SPIM_OK) {
        spim_response_fail(resp, "InvalidEvent", "%s", err.message);
        return err.status;
    }
    if (ev->record_count && !c->stamp.rgba)   /* only out of memory fails: the stamp is good */
        st = spim_stamp_load(&c->stamp, spim_stamp_png, sizeof spim_stamp_png, &err);
    if (st != SPIM_OK) spim_response_fail(resp, "StampError", "%s", err.message);
    for (i = 0; st == SPIM_OK && i < ev->record_count; i++) {
        const spim_s3_record *rec = &ev->records[i];
        config k;   /* this key's configuration: created or removed, the same rule finds the copy */
        const spim_rule *rule = route(c, rec, &k);
        const char *guard = rec->status == SPIM_OK ? guarded(c, rec->key) : NULL;
        job j = {.c = &k, .rec = rec, .bucket = k.output_bucket ? k.output_bucket : rec->bucket};
        int64_t started = spim_now_ms();
        spim_buf_reset(&key);
        if (!spim_budget_next(&budget, inv)) {
            settle(&j, NOT_STARTED, "", NULL, "not started: the deadline is near");
        } else if (copy_key(&j, guard, rule, &key)) {
            j.key = (const char *)key.data;
            switch (rec->kind) {
            case SPIM_EVENT_CREATED: stamp_copy(&j, rec->version_id); break;
            case SPIM_EVENT_REMOVED: delete_copy(&j); break;
            default: settle(&j, SKIPPED, "", NULL, "event not handled"); break;
            }
            converge(&j);
        }
        report(&reply, &j, (const char *)key.data, started);
    }
    if (st == SPIM_OK) st = spim_reply_finish(&reply, ev, resp);
    spim_buf_free(&key);
    spim_event_free(ev);
    return st;
}

int main(int argc, char **argv)
{
    static config cfg;
    int rc = spim_lambda_main(argc, argv, imager_init, imager, &cfg);
    spim_stamp_free(&cfg.stamp);
    spim_rules_free(cfg.rules);
    spim_s3_client_free(cfg.s3);
    return rc;
}
