/* S3 notification JSON, direct or in SQS/SNS/EventBridge envelopes, and S3
   Batch Operations invocations: spim_event_parse. The first byte picks small limits some of the time so
   the record and key limits are exercised too; the rest is the payload. */
#include "fuzz_common.h"

static void check_string(const char *s, const char *field, size_t i)
{
    FUZZ_CHECK(s != NULL, "record %zu: %s is NULL", i, field);
}

static void check_record(const spim_s3_record *r, size_t i, const spim_event_options *opt)
{
    const char *const fields[] = {
        r->name, r->message_id, r->error, r->bucket, r->key, r->key_raw, r->etag, r->version_id,
        r->sequencer, r->event_version, r->event_source, r->aws_region, r->event_time, r->event_name,
        r->principal_id, r->source_ip, r->request_id, r->host_id, r->schema_version,
        r->configuration_id, r->bucket_owner, r->bucket_arn, r->reason, r->task_id
    };
    size_t k;
    for (k = 0; k < sizeof fields / sizeof fields[0]; k++) check_string(fields[k], "a string field", i);
    FUZZ_CHECK(r->kind >= SPIM_EVENT_OTHER && r->kind <= SPIM_EVENT_TEST, "record %zu: kind %d", i, (int)r->kind);
    FUZZ_CHECK(r->source >= SPIM_SOURCE_DIRECT && r->source <= SPIM_SOURCE_BATCH,
               "record %zu: source %d", i, (int)r->source);
    FUZZ_CHECK((r->via & ~7u) == 0, "record %zu: via %#x", i, r->via);
    FUZZ_CHECK(r->size >= -1, "record %zu: size %lld", i, (long long)r->size);
    if (r->source == SPIM_SOURCE_BATCH) {
        /* every task is a creation, answered by its task id */
        FUZZ_CHECK(r->kind == SPIM_EVENT_CREATED && r->via == 0 && strcmp(r->name, "BatchOperations:LambdaInvoke") == 0,
                   "record %zu: batch task with kind %s, via %#x, name \"%s\"", i, spim__event_kind_str(r->kind),
                   r->via, r->name);
        FUZZ_CHECK(r->status != SPIM_OK || r->task_id[0], "record %zu: usable batch task without a task id", i);
    } else if (r->source == SPIM_SOURCE_EVENTBRIDGE || (r->via & SPIM_VIA_EVENTBRIDGE)) {
        FUZZ_CHECK(r->kind == spim__event_classify(r->name, NULL), "record %zu: kind %s for name \"%s\"", i,
                   spim__event_kind_str(r->kind), r->name);
    } else if (r->status == SPIM_OK || r->event_name[0]) {
        const char *norm;
        /* the name is eventName without one "s3:" ("s3:s3:X" stays "s3:X", kind other) */
        FUZZ_CHECK(r->kind == spim__event_classify(r->event_name, &norm) && strcmp(r->name, norm) == 0,
                   "record %zu: kind %s, name \"%s\" for eventName \"%s\"", i, spim__event_kind_str(r->kind),
                   r->name, r->event_name);
    }
    if (r->status == SPIM_OK) {
        FUZZ_CHECK(r->error[0] == 0, "record %zu: usable but error \"%s\"", i, r->error);
        FUZZ_CHECK(r->bucket[0] != 0, "record %zu: usable with an empty bucket", i);
        FUZZ_CHECK(r->key_len > 0 && r->key_len <= opt->max_key_bytes, "record %zu: key_len %zu (limit %zu)",
                   i, r->key_len, opt->max_key_bytes);
        FUZZ_CHECK(strlen(r->key) == r->key_len, "record %zu: strlen(key) %zu != key_len %zu", i,
                   strlen(r->key), r->key_len);
        /* decoding never makes a key longer than it was sent */
        FUZZ_CHECK(r->key_len <= strlen(r->key_raw), "record %zu: decoded key %zu bytes > raw %zu", i,
                   r->key_len, strlen(r->key_raw));
    } else {
        FUZZ_CHECK(r->status > SPIM_OK && r->status < SPIM_STATUS_COUNT, "record %zu: status %d", i, (int)r->status);
        FUZZ_CHECK(r->error[0] != 0, "record %zu: unusable (%s) without an error line", i,
                   spim_status_str(r->status));
        FUZZ_CHECK(strchr(r->error, '\n') == NULL, "record %zu: error is not one line", i);
    }
    if (r->source == SPIM_SOURCE_DIRECT)
        FUZZ_CHECK(r->via == 0, "record %zu: direct but via %#x", i, r->via);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    spim_event_options opt;
    spim_event *ev = NULL, *again = NULL;
    spim_error err, err2;
    spim_status st, st2;
    size_t i;
    if (size < 1) return 0;
    memset(&opt, 0, sizeof opt);
    if (data[0] & 1) {  /* small limits */
        opt.max_records = 1 + (data[0] >> 5);
        opt.max_key_bytes = 1 + (data[0] >> 1 & 15);
    }
    data++, size--;
    spim__error_clear(&err);
    st = spim_event_parse((const char *)data, size, &opt, &ev, &err);
    if (!opt.max_records) opt.max_records = SPIM_EVENT_MAX_RECORDS;
    if (!opt.max_key_bytes) opt.max_key_bytes = SPIM_S3_MAX_KEY;
    if (st != SPIM_OK) {
        FUZZ_CHECK_ERROR(st, err);
        FUZZ_CHECK(ev == NULL, "failed (%s) but returned an event", err.message);
        return 0;
    }
    FUZZ_CHECK(ev != NULL, "SPIM_OK without an event");
    FUZZ_CHECK(ev->record_count <= opt.max_records, "%zu records over the limit %zu", ev->record_count,
               opt.max_records);
    FUZZ_CHECK(ev->record_count == 0 || ev->records != NULL, "records NULL with count %zu", ev->record_count);
    FUZZ_CHECK(ev->test_events >= 0, "test_events %d", ev->test_events);
    FUZZ_CHECK(ev->invocation_id && ev->invocation_schema_version && ev->job_id && ev->user_arguments,
               "a batch string field is NULL");
    /* the job id is informational (the reply does not carry it): "" is allowed */
    FUZZ_CHECK(!ev->invocation_schema_version[0] || ev->invocation_id[0],
               "batch invocation without its invocation id");
    FUZZ_CHECK(!ev->invocation_schema_version[0] || !strcmp(ev->invocation_schema_version, "1.0") ||
               !strcmp(ev->invocation_schema_version, "2.0"), "schema \"%s\"", ev->invocation_schema_version);
    for (i = 0; i < ev->record_count; i++)
        FUZZ_CHECK((ev->records[i].source == SPIM_SOURCE_BATCH) == (ev->invocation_schema_version[0] != 0),
                   "record %zu: source %s in a %s invocation", i, spim__event_source_str(ev->records[i].source),
                   ev->invocation_schema_version[0] ? "batch" : "non-batch");
    for (i = 0; i < ev->record_count; i++) check_record(&ev->records[i], i, &opt);

    /* parsing is a pure function of the bytes */
    spim__error_clear(&err2);
    st2 = spim_event_parse((const char *)data, size, &opt, &again, &err2);
    FUZZ_CHECK(st2 == SPIM_OK && again && again->record_count == ev->record_count,
               "second parse differs: %s", err2.message);
    for (i = 0; i < ev->record_count; i++) {
        FUZZ_CHECK(strcmp(ev->records[i].key, again->records[i].key) == 0 &&
                   ev->records[i].status == again->records[i].status, "record %zu differs on a second parse", i);
    }
    spim_event_free(again);
    spim_event_free(ev);
    return 0;
}
