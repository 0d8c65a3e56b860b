/* ==========================================================================
   events
   cJSON parses each JSON text (the payload, an SQS body, an SNS Message);
   what records need is copied into chunks owned by the spim_event and the
   cJSON tree is freed before the text's parser returns.
   ========================================================================== */

#include <cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Strings live in chunks that never move, so the records array can grow
   while the pointers already stored in records stay valid. */
typedef struct spim__ev_chunk {
    struct spim__ev_chunk *next;
    size_t used, cap;
} spim__ev_chunk;

typedef struct spim__evp {
    spim_event *ev;
    size_t records_cap;
    spim_event_options opt;
    spim_error err;             /* copied to the caller only if the parse fails */
    spim_buf key;               /* scratch for decoding keys */
    char path[256];             /* where in the JSON we are, for messages */
    size_t path_len;
    spim_event_source source;   /* the envelope being unwrapped */
    unsigned via;
    const char *message_id;
} spim__evp;

static const char *spim__ev_copy(spim_event *ev, const char *s, size_t n)
{
    spim__ev_chunk *c = (spim__ev_chunk *)ev->spim__arena;
    char *dst;
    if (n == 0) return "";
    if (n > (size_t)-1 / 2) return NULL;
    if (!c || c->cap - c->used < n + 1) {
        size_t cap = n + 1 > 4096 ? n + 1 : 4096;
        c = (spim__ev_chunk *)SPIM_MALLOC(sizeof *c + cap);
        if (!c) return NULL;
        c->next = (spim__ev_chunk *)ev->spim__arena;
        c->used = 0;
        c->cap = cap;
        ev->spim__arena = c;
    }
    dst = (char *)(c + 1) + c->used;
    memcpy(dst, s, n);
    dst[n] = 0;
    c->used += n + 1;
    return dst;
}

/* ---- where we are, and what went wrong --------------------------------- */

static size_t spim__ev_push_text(spim__evp *p, const char *sep, const char *text, size_t index, int is_index)
{
    size_t mark = p->path_len, room = sizeof p->path - mark;
    int n = is_index ? snprintf(p->path + mark, room, "[%zu]", index)
                     : snprintf(p->path + mark, room, "%s%s", mark ? sep : "", text);
    if (n > 0) p->path_len = (size_t)n < room ? mark + (size_t)n : sizeof p->path - 1;
    return mark;
}

static size_t spim__ev_push(spim__evp *p, const char *field) { return spim__ev_push_text(p, ".", field, 0, 0); }
static size_t spim__ev_push_index(spim__evp *p, size_t i) { return spim__ev_push_text(p, "", NULL, i, 1); }

static void spim__ev_pop(spim__evp *p, size_t mark)
{
    p->path_len = mark;
    p->path[mark] = 0;
}

static spim_status spim__ev_fail(spim__evp *p, spim_status st, const char *field, const char *fmt, ...)
    SPIM__PRINTF(4, 5);
static spim_status spim__ev_fail(spim__evp *p, spim_status st, const char *field, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (!p->path_len && !field) field = "event";
    return spim_error_set(&p->err, st, "%s%s%s: %s", p->path, p->path_len && field ? "." : "",
                          field ? field : "", what);
}

static spim_status spim__ev_nomem(spim__evp *p)
{
    return spim_error_set(&p->err, SPIM_ERR_NOMEM, "out of memory parsing the event");
}

static const char *spim__ev_type(int type)
{
    switch (type & 0xFF) {
    case cJSON_False: case cJSON_True: return "a boolean";
    case cJSON_NULL: return "null";
    case cJSON_Number: return "a number";
    case cJSON_String: return "a string";
    case cJSON_Array: return "an array";
    case cJSON_Object: return "an object";
    default: return "an invalid value";
    }
}

/* ---- typed members ------------------------------------------------------ */

/* obj.name, which must be of type `want` (cJSON_String, ...). *out is NULL
   when it is absent or null: an error only when `required`. */
static spim_status spim__ev_member(spim__evp *p, const cJSON *obj, const char *name, int want,
                                   int required, const cJSON **out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, name);
    *out = NULL;
    if (!j || cJSON_IsNull(j)) {
        if (!required) return SPIM_OK;
        return spim__ev_fail(p, SPIM_ERR_INVALID, name, "missing, expected %s", spim__ev_type(want));
    }
    if ((j->type & 0xFF) != want)
        return spim__ev_fail(p, SPIM_ERR_INVALID, name, "expected %s, got %s", spim__ev_type(want),
                             spim__ev_type(j->type));
    *out = j;
    return SPIM_OK;
}

static spim_status spim__ev_str(spim__evp *p, const cJSON *obj, const char *name, int required,
                                const char **out)
{
    const cJSON *j;
    spim_status st = spim__ev_member(p, obj, name, cJSON_String, required, &j);
    *out = "";
    if (st != SPIM_OK || !j) return st;
    *out = spim__ev_copy(p->ev, j->valuestring, strlen(j->valuestring));
    return *out ? SPIM_OK : spim__ev_nomem(p);
}

/* obj.outer.inner, both optional ("userIdentity.principalId"). */
static spim_status spim__ev_str2(spim__evp *p, const cJSON *obj, const char *outer, const char *inner,
                                 const char **out)
{
    const cJSON *o;
    size_t mark;
    spim_status st = spim__ev_member(p, obj, outer, cJSON_Object, 0, &o);
    *out = "";
    if (st != SPIM_OK || !o) return st;
    mark = spim__ev_push(p, outer);
    st = spim__ev_str(p, o, inner, 0, out);
    spim__ev_pop(p, mark);
    return st;
}

static int spim__ev_is(const cJSON *j, const char *s)
{
    return cJSON_IsString(j) && strcmp(j->valuestring, s) == 0;
}

static spim_status spim__ev_size(spim__evp *p, const cJSON *obj, int64_t *out)
{
    const cJSON *j;
    double d;
    spim_status st = spim__ev_member(p, obj, "size", cJSON_Number, 0, &j);
    *out = -1;
    if (st != SPIM_OK || !j) return st;
    d = j->valuedouble;
    /* 2^53: beyond it a double no longer holds every whole number */
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(int64_t)d)
        return spim__ev_fail(p, SPIM_ERR_INVALID, "size", "expected a whole number of bytes, got %g", d);
    *out = (int64_t)d;
    return SPIM_OK;
}

/* ---- records ------------------------------------------------------------ */

static void spim__ev_record_init(const spim__evp *p, spim_s3_record *r)
{
    memset(r, 0, sizeof *r);
    r->kind = SPIM_EVENT_OTHER;
    r->source = p->source;
    r->via = p->via;
    r->message_id = p->message_id;
    r->status = SPIM_OK;
    r->size = -1;
    r->name = r->error = r->bucket = r->key = r->key_raw = r->etag = r->version_id = "";
    r->sequencer = r->event_version = r->event_source = r->aws_region = r->event_time = "";
    r->event_name = r->principal_id = r->source_ip = r->request_id = r->host_id = "";
    r->schema_version = r->configuration_id = r->bucket_owner = r->bucket_arn = r->reason = "";
}

static spim_status spim__ev_append(spim__evp *p, const spim_s3_record *r)
{
    spim_event *ev = p->ev;
    if (ev->record_count >= p->opt.max_records)
        return spim__ev_fail(p, SPIM_ERR_TOO_LARGE, NULL, "over the limit of %zu records", p->opt.max_records);
    if (ev->record_count == p->records_cap) {
        size_t cap = p->records_cap ? p->records_cap * 2 : 8;
        spim_s3_record *grown;
        if (cap > (size_t)-1 / sizeof *grown) return spim__ev_nomem(p);
        grown = (spim_s3_record *)SPIM_REALLOC(ev->records, cap * sizeof *grown);
        if (!grown) return spim__ev_nomem(p);
        ev->records = grown;
        p->records_cap = cap;
    }
    ev->records[ev->record_count++] = *r;
    return SPIM_OK;
}

/* Mark a record unusable without failing the event: "<path>.<field>: what". */
static spim_status spim__ev_record_error(spim__evp *p, spim_s3_record *r, spim_status st,
                                         const char *field, const char *what)
{
    spim_error line;
    spim_error_set(&line, st, "%s%s%s: %s", p->path, p->path_len ? "." : "", field, what);
    r->status = st;
    r->error = spim__ev_copy(p->ev, line.message, strlen(line.message));
    return r->error ? SPIM_OK : spim__ev_nomem(p);
}

static spim_status spim__ev_key(spim__evp *p, spim_s3_record *r, const char *raw, int encoded)
{
    size_t n = strlen(raw);
    spim_error e;
    spim_status st;
    spim_error_clear(&e);
    if (!(r->key_raw = spim__ev_copy(p->ev, raw, n))) return spim__ev_nomem(p);
    if (encoded) {
        st = spim_url_decode_key(raw, n, &p->key, &e);
    } else {
        spim_buf_reset(&p->key);
        st = spim_buf_append(&p->key, raw, n);
    }
    if (st == SPIM_ERR_NOMEM) return spim__ev_nomem(p);
    if (st == SPIM_OK && p->key.len == 0) st = spim_error_set(&e, SPIM_ERR_INVALID, "empty key");
    if (st == SPIM_OK && p->key.len > p->opt.max_key_bytes)
        st = spim_error_set(&e, SPIM_ERR_TOO_LARGE, "%zu bytes after decoding, more than the %zu allowed",
                            p->key.len, p->opt.max_key_bytes);
    if (st != SPIM_OK) return spim__ev_record_error(p, r, st, "key", e.message);
    if (!(r->key = spim__ev_copy(p->ev, (const char *)p->key.data, p->key.len))) return spim__ev_nomem(p);
    r->key_len = p->key.len;
    return SPIM_OK;
}

static spim_status spim__ev_bucket_name(spim__evp *p, const cJSON *bucket, spim_s3_record *r)
{
    spim_status st = spim__ev_str(p, bucket, "name", 1, &r->bucket);
    if (st == SPIM_OK && !r->bucket[0]) return spim__ev_fail(p, SPIM_ERR_INVALID, "name", "empty bucket name");
    return st;
}

/* s3.object and EventBridge's detail.object differ in spelling and in
   whether the key is URL-encoded. */
static spim_status spim__ev_object(spim__evp *p, const cJSON *obj, spim_s3_record *r,
                                   const char *etag, const char *version, int encoded)
{
    const cJSON *key;
    spim_status st;
    size_t mark = spim__ev_push(p, "object");
    if ((st = spim__ev_member(p, obj, "key", cJSON_String, 1, &key)) == SPIM_OK &&
        (st = spim__ev_size(p, obj, &r->size)) == SPIM_OK &&
        (st = spim__ev_str(p, obj, etag, 0, &r->etag)) == SPIM_OK &&
        (st = spim__ev_str(p, obj, version, 0, &r->version_id)) == SPIM_OK &&
        (st = spim__ev_str(p, obj, "sequencer", 0, &r->sequencer)) == SPIM_OK)
        st = spim__ev_key(p, r, key->valuestring, encoded);
    spim__ev_pop(p, mark);
    return st;
}

static spim_status spim__ev_s3_entity(spim__evp *p, const cJSON *s3, spim_s3_record *r)
{
    const cJSON *bucket, *object;
    spim_status st;
    size_t mark;
    if ((st = spim__ev_str(p, s3, "s3SchemaVersion", 0, &r->schema_version)) != SPIM_OK ||
        (st = spim__ev_str(p, s3, "configurationId", 0, &r->configuration_id)) != SPIM_OK ||
        (st = spim__ev_member(p, s3, "bucket", cJSON_Object, 1, &bucket)) != SPIM_OK ||
        (st = spim__ev_member(p, s3, "object", cJSON_Object, 1, &object)) != SPIM_OK)
        return st;
    mark = spim__ev_push(p, "bucket");
    if ((st = spim__ev_bucket_name(p, bucket, r)) == SPIM_OK &&
        (st = spim__ev_str2(p, bucket, "ownerIdentity", "principalId", &r->bucket_owner)) == SPIM_OK)
        st = spim__ev_str(p, bucket, "arn", 0, &r->bucket_arn);
    spim__ev_pop(p, mark);
    if (st != SPIM_OK) return st;
    return spim__ev_object(p, object, r, "eTag", "versionId", 1);
}

static spim_status spim__ev_s3_record(spim__evp *p, const cJSON *rec)
{
    spim_s3_record r;
    const cJSON *s3;
    spim_status st;
    size_t mark;
    spim__ev_record_init(p, &r);
    if ((st = spim__ev_str(p, rec, "eventName", 1, &r.event_name)) != SPIM_OK ||
        (st = spim__ev_str(p, rec, "eventVersion", 0, &r.event_version)) != SPIM_OK ||
        (st = spim__ev_str(p, rec, "eventSource", 0, &r.event_source)) != SPIM_OK ||
        (st = spim__ev_str(p, rec, "awsRegion", 0, &r.aws_region)) != SPIM_OK ||
        (st = spim__ev_str(p, rec, "eventTime", 0, &r.event_time)) != SPIM_OK ||
        (st = spim__ev_str2(p, rec, "userIdentity", "principalId", &r.principal_id)) != SPIM_OK ||
        (st = spim__ev_str2(p, rec, "requestParameters", "sourceIPAddress", &r.source_ip)) != SPIM_OK ||
        (st = spim__ev_str2(p, rec, "responseElements", "x-amz-request-id", &r.request_id)) != SPIM_OK ||
        (st = spim__ev_str2(p, rec, "responseElements", "x-amz-id-2", &r.host_id)) != SPIM_OK ||
        (st = spim__ev_member(p, rec, "s3", cJSON_Object, 1, &s3)) != SPIM_OK)
        return st;
    r.kind = spim_event_classify(r.event_name, &r.name);
    mark = spim__ev_push(p, "s3");
    st = spim__ev_s3_entity(p, s3, &r);
    spim__ev_pop(p, mark);
    return st == SPIM_OK ? spim__ev_append(p, &r) : st;
}

/* ---- EventBridge ---------------------------------------------------------- */

/* The S3 notification name for an EventBridge detail-type (+ reason), so an
   application matches one set of names whichever way events arrive. */
static const char *spim__ev_eventbridge_name(const char *type, const char *reason, const char *deletion)
{
    static const char *const names[][3] = {
        { "Object Created", "PutObject", "ObjectCreated:Put" },
        { "Object Created", "POST Object", "ObjectCreated:Post" },
        { "Object Created", "CopyObject", "ObjectCreated:Copy" },
        { "Object Created", "CompleteMultipartUpload", "ObjectCreated:CompleteMultipartUpload" },
        { "Object Created", "", "ObjectCreated:*" },
        { "Object Restore Initiated", "", "ObjectRestore:Post" },
        { "Object Restore Completed", "", "ObjectRestore:Completed" },
        { "Object Restore Expired", "", "ObjectRestore:Delete" },
        { "Object Tags Added", "", "ObjectTagging:Put" },
        { "Object Tags Deleted", "", "ObjectTagging:Delete" },
        { "Object ACL Updated", "", "ObjectAcl:Put" },
        { "Object Storage Class Changed", "", "LifecycleTransition" },
        { "Object Access Tier Changed", "", "IntelligentTiering" }
    };
    size_t i;
    int marker = strcmp(deletion, "Delete Marker Created") == 0;
    if (strcmp(type, "Object Deleted") == 0) {
        if (strcmp(reason, "Lifecycle Expiration") == 0)
            return marker ? "LifecycleExpiration:DeleteMarkerCreated" : "LifecycleExpiration:Delete";
        return marker ? "ObjectRemoved:DeleteMarkerCreated" : "ObjectRemoved:Delete";
    }
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(type, names[i][0]) == 0 && (!names[i][1][0] || strcmp(reason, names[i][1]) == 0))
            return names[i][2];
    return type;
}

static spim_status spim__ev_eventbridge_detail(spim__evp *p, const cJSON *d, spim_s3_record *r)
{
    const cJSON *bucket, *object;
    const char *deletion, *schema;
    spim_status st;
    size_t mark;
    /* "version" is EventBridge's constant 0; newer events version their
       schema in "event-version" */
    if ((st = spim__ev_str(p, d, "version", 0, &r->event_version)) != SPIM_OK ||
        (st = spim__ev_str(p, d, "event-version", 0, &schema)) != SPIM_OK ||
        (st = spim__ev_str(p, d, "request-id", 0, &r->request_id)) != SPIM_OK ||
        (st = spim__ev_str(p, d, "requester", 0, &r->principal_id)) != SPIM_OK ||
        (st = spim__ev_str(p, d, "source-ip-address", 0, &r->source_ip)) != SPIM_OK ||
        (st = spim__ev_str(p, d, "reason", 0, &r->reason)) != SPIM_OK ||
        (st = spim__ev_str(p, d, "deletion-type", 0, &deletion)) != SPIM_OK ||
        (st = spim__ev_member(p, d, "bucket", cJSON_Object, 1, &bucket)) != SPIM_OK ||
        (st = spim__ev_member(p, d, "object", cJSON_Object, 1, &object)) != SPIM_OK)
        return st;
    if (schema[0]) r->event_version = schema;
    mark = spim__ev_push(p, "bucket");
    st = spim__ev_bucket_name(p, bucket, r);
    spim__ev_pop(p, mark);
    if (st != SPIM_OK) return st;
    r->name = spim__ev_eventbridge_name(r->event_name, r->reason, deletion);
    r->kind = spim_event_classify(r->name, NULL);
    /* EventBridge's detail.object.key is the key itself: the S3 notification
       docs say their key is URL-encoded, the EventBridge ones say no such thing
       and show keys verbatim. */
    return spim__ev_object(p, object, r, "etag", "version-id", 0);
}

static spim_status spim__ev_first_resource(spim__evp *p, const cJSON *ev, const char **out)
{
    const cJSON *res;
    spim_status st = spim__ev_member(p, ev, "resources", cJSON_Array, 0, &res);
    *out = "";
    if (st != SPIM_OK || !res || !res->child) return st;
    if (!cJSON_IsString(res->child))
        return spim__ev_fail(p, SPIM_ERR_INVALID, "resources[0]", "expected a string, got %s",
                             spim__ev_type(res->child->type));
    *out = spim__ev_copy(p->ev, res->child->valuestring, strlen(res->child->valuestring));
    return *out ? SPIM_OK : spim__ev_nomem(p);
}

static spim_status spim__ev_eventbridge(spim__evp *p, const cJSON *ev)
{
    spim_s3_record r;
    const cJSON *detail;
    const char *id;
    spim_status st;
    size_t mark;
    spim__ev_record_init(p, &r);
    if ((st = spim__ev_str(p, ev, "detail-type", 1, &r.event_name)) != SPIM_OK ||
        (st = spim__ev_str(p, ev, "id", 0, &id)) != SPIM_OK ||
        (st = spim__ev_str(p, ev, "source", 0, &r.event_source)) != SPIM_OK ||
        (st = spim__ev_str(p, ev, "time", 0, &r.event_time)) != SPIM_OK ||
        (st = spim__ev_str(p, ev, "region", 0, &r.aws_region)) != SPIM_OK ||
        (st = spim__ev_str(p, ev, "account", 0, &r.bucket_owner)) != SPIM_OK ||
        (st = spim__ev_first_resource(p, ev, &r.bucket_arn)) != SPIM_OK ||
        (st = spim__ev_member(p, ev, "detail", cJSON_Object, 1, &detail)) != SPIM_OK)
        return st;
    if (!p->via) {
        r.source = SPIM_SOURCE_EVENTBRIDGE;
        r.message_id = id;
    }
    r.via |= SPIM_VIA_EVENTBRIDGE;
    mark = spim__ev_push(p, "detail");
    st = spim__ev_eventbridge_detail(p, detail, &r);
    spim__ev_pop(p, mark);
    return st == SPIM_OK ? spim__ev_append(p, &r) : st;
}

/* ---- envelopes ------------------------------------------------------------ */

static spim_status spim__ev_text(spim__evp *p, const char *text, size_t len);

/* An envelope's payload is a JSON text of its own. One that is not a usable
   S3 event becomes a single failed record carrying the message id, so one
   poison message does not fail (and endlessly retry) the whole batch. */
static spim_status spim__ev_payload(spim__evp *p, const char *field, const char *text,
                                    spim_event_source source, unsigned via, const char *message_id)
{
    spim_event_source saved_source = p->source;
    unsigned saved_via = p->via;
    const char *saved_id = p->message_id;
    size_t before = p->ev->record_count, mark = spim__ev_push(p, field);
    spim_status st;
    if (!p->via) {
        p->source = source;
        p->message_id = message_id;
    }
    p->via |= via;
    st = spim__ev_text(p, text, strlen(text));
    if (st == SPIM_ERR_INVALID) {
        spim_s3_record r;
        p->ev->record_count = before;
        spim__ev_record_init(p, &r);
        r.status = st;
        r.error = spim__ev_copy(p->ev, p->err.message, strlen(p->err.message));
        st = r.error ? spim__ev_append(p, &r) : spim__ev_nomem(p);
    }
    spim__ev_pop(p, mark);
    p->source = saved_source;
    p->via = saved_via;
    p->message_id = saved_id;
    return st;
}

static spim_status spim__ev_sqs_record(spim__evp *p, const cJSON *rec)
{
    const cJSON *body;
    const char *id;
    spim_status st;
    if (p->via) return spim__ev_fail(p, SPIM_ERR_INVALID, NULL, "an SQS message inside another envelope");
    if ((st = spim__ev_str(p, rec, "messageId", 1, &id)) != SPIM_OK ||
        (st = spim__ev_member(p, rec, "body", cJSON_String, 1, &body)) != SPIM_OK)
        return st;
    return spim__ev_payload(p, "body", body->valuestring, SPIM_SOURCE_SQS, SPIM_VIA_SQS, id);
}

/* An SNS notification: Lambda's Records[].Sns, or an SQS body. */
static spim_status spim__ev_sns_message(spim__evp *p, const cJSON *sns)
{
    const cJSON *message;
    const char *id;
    spim_status st;
    if ((st = spim__ev_str(p, sns, "MessageId", 0, &id)) != SPIM_OK ||
        (st = spim__ev_member(p, sns, "Message", cJSON_String, 1, &message)) != SPIM_OK)
        return st;
    return spim__ev_payload(p, "Message", message->valuestring, SPIM_SOURCE_SNS, SPIM_VIA_SNS, id);
}

static spim_status spim__ev_sns_record(spim__evp *p, const cJSON *rec)
{
    const cJSON *sns;
    spim_status st;
    size_t mark;
    if (p->via) return spim__ev_fail(p, SPIM_ERR_INVALID, NULL, "an SNS record inside another envelope");
    if ((st = spim__ev_member(p, rec, "Sns", cJSON_Object, 1, &sns)) != SPIM_OK) return st;
    mark = spim__ev_push(p, "Sns");
    st = spim__ev_sns_message(p, sns);
    spim__ev_pop(p, mark);
    return st;
}

static spim_status spim__ev_record(spim__evp *p, const cJSON *rec)
{
    if (!cJSON_IsObject(rec))
        return spim__ev_fail(p, SPIM_ERR_INVALID, NULL, "expected an object, got %s", spim__ev_type(rec->type));
    if (cJSON_GetObjectItemCaseSensitive(rec, "s3")) return spim__ev_s3_record(p, rec);
    if (spim__ev_is(cJSON_GetObjectItemCaseSensitive(rec, "eventSource"), "aws:sqs"))
        return spim__ev_sqs_record(p, rec);
    if (spim__ev_is(cJSON_GetObjectItemCaseSensitive(rec, "EventSource"), "aws:sns"))
        return spim__ev_sns_record(p, rec);
    return spim__ev_fail(p, SPIM_ERR_INVALID, NULL,
                         "not an S3, SQS or SNS record (no s3 object, no aws:sqs or aws:sns source)");
}

static spim_status spim__ev_records(spim__evp *p, const cJSON *records)
{
    const cJSON *rec;
    size_t i = 0, outer = spim__ev_push(p, "Records"), mark;
    spim_status st = SPIM_OK;
    for (rec = records->child; rec && st == SPIM_OK; rec = rec->next, i++) {
        mark = spim__ev_push_index(p, i);
        st = spim__ev_record(p, rec);
        spim__ev_pop(p, mark);
    }
    spim__ev_pop(p, outer);
    return st;
}

static spim_status spim__ev_root(spim__evp *p, const cJSON *root)
{
    const cJSON *records;
    if (!cJSON_IsObject(root))
        return spim__ev_fail(p, SPIM_ERR_INVALID, NULL, "expected a JSON object, got %s", spim__ev_type(root->type));
    records = cJSON_GetObjectItemCaseSensitive(root, "Records");
    if (records) {
        if (!cJSON_IsArray(records))
            return spim__ev_fail(p, SPIM_ERR_INVALID, "Records", "expected an array, got %s",
                                 spim__ev_type(records->type));
        return spim__ev_records(p, records);
    }
    if (spim__ev_is(cJSON_GetObjectItemCaseSensitive(root, "Event"), "s3:TestEvent")) {
        p->ev->test_events++;
        return SPIM_OK;
    }
    if (spim__ev_is(cJSON_GetObjectItemCaseSensitive(root, "source"), "aws.s3"))
        return spim__ev_eventbridge(p, root);
    if (spim__ev_is(cJSON_GetObjectItemCaseSensitive(root, "Type"), "Notification")) {
        if (p->via != SPIM_VIA_SQS)
            return spim__ev_fail(p, SPIM_ERR_INVALID, NULL, "an SNS notification is only expected in an SQS body");
        return spim__ev_sns_message(p, root);
    }
    return spim__ev_fail(p, SPIM_ERR_INVALID, NULL,
                         "not an S3 event (no Records, no s3:TestEvent, no aws.s3 source)");
}

/* cJSON would silently cut a string at a NUL; refuse rather than let a key
   quietly turn into a shorter one. */
static spim_status spim__ev_check_bytes(spim__evp *p, const char *t, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        if (t[i] == 0) return spim__ev_fail(p, SPIM_ERR_INVALID, NULL, "NUL byte at byte %zu", i);
        if (t[i] == '\\' && i + 1 < len && t[i + 1]) {
            if (len - i >= 6 && memcmp(t + i + 1, "u0000", 5) == 0)
                return spim__ev_fail(p, SPIM_ERR_INVALID, NULL, "escaped NUL (\\u0000) at byte %zu", i);
            i++; /* the escaped character cannot start another escape */
        }
    }
    return SPIM_OK;
}

static spim_status spim__ev_text(spim__evp *p, const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *root;
    spim_status st;
    if (len == 0) return spim__ev_fail(p, SPIM_ERR_INVALID, NULL, "empty, expected JSON");
    if ((st = spim__ev_check_bytes(p, text, len)) != SPIM_OK) return st;
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        if (end && end >= text && end <= text + len)
            return spim__ev_fail(p, SPIM_ERR_INVALID, NULL, "not valid JSON (error at byte %zu)",
                                 (size_t)(end - text));
        return spim__ev_fail(p, SPIM_ERR_INVALID, NULL, "not valid JSON");
    }
    while (end && end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) end++;
    if (end && end < text + len) {
        st = spim__ev_fail(p, SPIM_ERR_INVALID, NULL, "unexpected data after the JSON value at byte %zu",
                           (size_t)(end - text));
    } else {
        st = spim__ev_root(p, root);
    }
    cJSON_Delete(root);
    return st;
}

/* ---- public ------------------------------------------------------------- */

SPIMDEF spim_status spim_event_parse(const char *json, size_t len, const spim_event_options *opt,
                                     spim_event **out, spim_error *err)
{
    spim__evp p;
    spim_status st;
    if (!out) return spim_error_set(err, SPIM_ERR_INVALID, "spim_event_parse: out is NULL");
    *out = NULL;
    memset(&p, 0, sizeof p);
    if (opt) p.opt = *opt;
    if (!p.opt.max_input_bytes) p.opt.max_input_bytes = SPIM_EVENT_MAX_INPUT;
    if (!p.opt.max_records) p.opt.max_records = SPIM_EVENT_MAX_RECORDS;
    if (!p.opt.max_key_bytes) p.opt.max_key_bytes = SPIM_S3_MAX_KEY;
    if (len > p.opt.max_input_bytes)
        return spim_error_set(err, SPIM_ERR_TOO_LARGE, "event: %zu bytes, more than the %zu allowed", len,
                              p.opt.max_input_bytes);
    if (!json) len = 0;
    p.source = SPIM_SOURCE_DIRECT;
    p.message_id = "";
    p.ev = (spim_event *)SPIM_MALLOC(sizeof *p.ev);
    if (!p.ev) return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory parsing the event");
    memset(p.ev, 0, sizeof *p.ev);
    st = spim__ev_text(&p, json, len);
    spim_buf_free(&p.key);
    if (st != SPIM_OK) {
        spim_event_free(p.ev);
        return spim_error_set(err, st, "%s", p.err.message);
    }
    *out = p.ev;
    return SPIM_OK;
}

SPIMDEF void spim_event_free(spim_event *event)
{
    spim__ev_chunk *c, *next;
    if (!event) return;
    for (c = (spim__ev_chunk *)event->spim__arena; c; c = next) {
        next = c->next;
        SPIM_FREE(c);
    }
    SPIM_FREE(event->records);
    SPIM_FREE(event);
}

static int spim__ev_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Up to three input bytes for a message: printable ASCII, else '?'. */
static void spim__ev_show(char out[4], const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n && i < 3; i++) out[i] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[i] = 0;
}

SPIMDEF spim_status spim_url_decode_key(const char *s, size_t len, spim_buf *out, spim_error *err)
{
    size_t i;
    char shown[4];
    int hi, lo;
    spim_buf_reset(out);
    if (spim_buf_reserve(out, len) != SPIM_OK) return spim_error_set(err, SPIM_ERR_NOMEM, "out of memory decoding a key");
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            spim__ev_show(shown, s + i, len - i);
            if (len - i < 3) {
                spim_buf_reset(out);
                return spim_error_set(err, SPIM_ERR_INVALID, "truncated escape \"%s\" at byte %zu", shown, i);
            }
            hi = spim__ev_hex((unsigned char)s[i + 1]);
            lo = spim__ev_hex((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0) {
                spim_buf_reset(out);
                return spim_error_set(err, SPIM_ERR_INVALID, "invalid escape \"%s\" at byte %zu", shown, i);
            }
            c = (unsigned char)(hi << 4 | lo);
            if (!c) {
                spim_buf_reset(out);
                return spim_error_set(err, SPIM_ERR_INVALID, "escape %%00 at byte %zu decodes to a NUL byte", i);
            }
            i += 2;
        } else if (!c) {
            spim_buf_reset(out);
            return spim_error_set(err, SPIM_ERR_INVALID, "NUL byte at byte %zu", i);
        }
        out->data[out->len++] = c;
    }
    out->data[out->len] = 0;
    return SPIM_OK;
}

SPIMDEF spim_event_kind spim_event_classify(const char *name, const char **normalised)
{
    if (!name) name = "";
    if (strncmp(name, "s3:", 3) == 0) name += 3;
    if (normalised) *normalised = name;
    if (strncmp(name, "ObjectCreated:", 14) == 0) return SPIM_EVENT_CREATED;
    if (strncmp(name, "ObjectRemoved:", 14) == 0 || strncmp(name, "LifecycleExpiration:", 20) == 0)
        return SPIM_EVENT_REMOVED;
    if (strcmp(name, "TestEvent") == 0) return SPIM_EVENT_TEST;
    return SPIM_EVENT_OTHER;
}

SPIMDEF const char *spim_event_kind_str(spim_event_kind kind)
{
    static const char *const names[] = { "other", "created", "removed", "test" };
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

SPIMDEF const char *spim_event_source_str(spim_event_source source)
{
    static const char *const names[] = { "direct", "sqs", "sns", "eventbridge" };
    return (unsigned)source < sizeof names / sizeof names[0] ? names[source] : "unknown";
}

#ifdef __cplusplus
}
#endif
