/* events: S3 notifications direct and in SQS/SNS/EventBridge envelopes, key
   decoding, event names, and the errors malformed payloads get. Fixtures are
   in tests/fixtures/events/ (the suite runs from the repository root). */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "spim_test.h"

/* Parse from an exact-size heap copy with no NUL after it, so the sanitizer
   build catches any read past `len`. */
static spim_status parse_opt(const char *json, size_t len, const spim_event_options *opt, spim_event **ev,
                             spim_error *err)
{
    char *copy = (char *)malloc(len ? len : 1);
    spim_status st;
    if (!copy) return SPIM_ERR_NOMEM;
    if (len) memcpy(copy, json, len);
    spim__error_clear(err);
    st = spim_event_parse(copy, len, opt, ev, err);
    free(copy);
    return st;
}

static spim_status parse_str(const char *json, spim_event **ev, spim_error *err)
{
    return parse_opt(json, strlen(json), NULL, ev, err);
}

static spim_status parse_fixture(const char *name, spim_event **ev, spim_error *err)
{
    char path[256];
    spim_buf b = SPIM_BUF_INIT;
    spim_status st;
    snprintf(path, sizeof path, "tests/fixtures/events/%s", name);
    *ev = NULL;
    if (spim_read_file(path, 0, &b, err) != SPIM_OK) {
        printf("    cannot read %s: %s\n", path, err->message);
        return SPIM_ERR_IO;
    }
    st = parse_opt((const char *)b.data, b.len, NULL, ev, err);
    spim_buf_free(&b);
    return st;
}

/* A one-record event whose object key is `key` (JSON-escaped already). */
static spim_status parse_key(const char *key, const spim_event_options *opt, spim_event **ev, spim_error *err)
{
    spim_buf b = SPIM_BUF_INIT;
    spim_status st;
    spim_buf_appendf(&b, "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
                         "\"object\":{\"key\":\"%s\"}}}]}", key);
    st = parse_opt((const char *)b.data, b.len, opt, ev, err);
    spim_buf_free(&b);
    return st;
}

/* Parse a single-record fixture and check what every application looks at. */
static const spim_s3_record *one_record(const char *fixture, spim_event **ev, spim_error *err)
{
    spim_status st = parse_fixture(fixture, ev, err);
    CHECKF(st == SPIM_OK, "%s: %s", fixture, err->message);
    if (st != SPIM_OK) return NULL;
    CHECK_INT(1, (*ev)->record_count);
    if ((*ev)->record_count != 1) return NULL;
    CHECK_INT(SPIM_OK, (*ev)->records[0].status);
    CHECK_STR("", (*ev)->records[0].error);
    return &(*ev)->records[0];
}

/* ---- S3 notifications ----------------------------------------------------- */

TEST(put_record_has_every_field)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("s3_put.json", &ev, &err);
    REQUIRE(r);
    CHECK_INT(SPIM_EVENT_CREATED, r->kind);
    CHECK_STR("ObjectCreated:Put", r->name);
    CHECK_INT(SPIM_SOURCE_DIRECT, r->source);
    CHECK_INT(0, r->via);
    CHECK_STR("", r->message_id);
    CHECK_STR("2.1", r->event_version);
    CHECK_STR("aws:s3", r->event_source);
    CHECK_STR("eu-west-3", r->aws_region);
    CHECK_STR("2026-03-14T09:26:53.589Z", r->event_time);
    CHECK_STR("ObjectCreated:Put", r->event_name);
    CHECK_STR("AWS:AIDAEXAMPLEUPLOADER", r->principal_id);
    CHECK_STR("198.51.100.23", r->source_ip);
    CHECK_STR("7D2C1F0A9B8E3A41", r->request_id);
    CHECK_STR("q1w2E3r4T5y6U7i8O9p0aSdFgHjKlZxCvBnM1234/abcdEFGHijklMNOP=", r->host_id);
    CHECK_STR("1.0", r->schema_version);
    CHECK_STR("stamp-new-images", r->configuration_id);
    CHECK_STR("sparta-gallery", r->bucket);
    CHECK_STR("A1B2C3D4E5F6G7", r->bucket_owner);
    CHECK_STR("arn:aws:s3:::sparta-gallery", r->bucket_arn);
    CHECK_STR("uploads/cat.jpg", r->key);
    CHECK_INT(15, r->key_len);
    CHECK_STR("uploads/cat.jpg", r->key_raw);
    CHECK_INT(48213, r->size);
    CHECK_STR("5f363e0e58a95f06cbe9bbc662c5dfb6", r->etag);
    CHECK_STR("3HL4kqtJlcpXroDTDmjVBH40Nrjfkd", r->version_id);
    CHECK_STR("0066F2A1B3C4D5E6F7", r->sequencer);
    CHECK_STR("", r->reason);
    CHECK_INT(0, ev->test_events);
    spim_event_free(ev);
}

TEST(post_is_created)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("s3_post.json", &ev, &err);
    REQUIRE(r);
    CHECK_INT(SPIM_EVENT_CREATED, r->kind);
    CHECK_STR("ObjectCreated:Post", r->name);
    CHECK_STR("forms/dog.png", r->key);
    CHECK_STR("", r->version_id); /* absent: unversioned bucket */
    spim_event_free(ev);
}

TEST(copy_is_created_and_keeps_size_zero)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("s3_copy.json", &ev, &err);
    REQUIRE(r);
    CHECK_INT(SPIM_EVENT_CREATED, r->kind);
    CHECK_STR("ObjectCreated:Copy", r->name);
    CHECK_INT(0, r->size);
    spim_event_free(ev);
}

TEST(multipart_with_s3_prefix_is_created)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("s3_multipart.json", &ev, &err);
    REQUIRE(r);
    CHECK_INT(SPIM_EVENT_CREATED, r->kind);
    CHECK_STR("ObjectCreated:CompleteMultipartUpload", r->name);
    CHECK_STR("s3:ObjectCreated:CompleteMultipartUpload", r->event_name);
    CHECK_INT(5497558138880LL, r->size); /* 5 TiB, beyond 32 bits */
    CHECK_STR("9b2cf535f27731c974343645a3985328-1024", r->etag);
    spim_event_free(ev);
}

TEST(delete_is_removed_without_size)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("s3_delete.json", &ev, &err);
    REQUIRE(r);
    CHECK_INT(SPIM_EVENT_REMOVED, r->kind);
    CHECK_STR("ObjectRemoved:Delete", r->name);
    CHECK_INT(-1, r->size);
    CHECK_STR("", r->etag);
    CHECK_STR("3HL4kqtJlcpXroDTDmjVBH40Nrjfkd", r->version_id);
    spim_event_free(ev);
}

TEST(delete_marker_is_removed)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("s3_delete_marker.json", &ev, &err);
    REQUIRE(r);
    CHECK_INT(SPIM_EVENT_REMOVED, r->kind);
    CHECK_STR("ObjectRemoved:DeleteMarkerCreated", r->name);
    spim_event_free(ev);
}

TEST(lifecycle_expiration_is_removed)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("s3_lifecycle_expiration.json", &ev, &err);
    REQUIRE(r);
    CHECK_INT(SPIM_EVENT_REMOVED, r->kind);
    CHECK_STR("LifecycleExpiration:Delete", r->name);
    CHECK_STR("s3.amazonaws.com", r->principal_id);
    spim_event_free(ev);
}

TEST(restore_is_other_and_glacier_data_ignored)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("s3_restore.json", &ev, &err);
    REQUIRE(r);
    CHECK_INT(SPIM_EVENT_OTHER, r->kind);
    CHECK_STR("ObjectRestore:Completed", r->name);
    CHECK_STR("frozen/x.jpg", r->key);
    spim_event_free(ev);
}

TEST(test_event_has_no_records)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_fixture("s3_test_event.json", &ev, &err);
    REQUIRE(st == SPIM_OK);
    CHECK_INT(0, ev->record_count);
    CHECK_INT(1, ev->test_events);
    spim_event_free(ev);
}

TEST(key_with_spaces_utf8_and_plus_is_decoded)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("s3_key_encoding.json", &ev, &err);
    const char *want = "summer 2024/caf\xc3\xa9 + friends \xe2\x9c\x93.jpg";
    REQUIRE(r);
    CHECK_STR(want, r->key);
    CHECK_INT(strlen(want), r->key_len);
    CHECK_STR("summer+2024/caf%C3%A9+%2B+friends+%E2%9C%93.jpg", r->key_raw);
    spim_event_free(ev);
}

TEST(ceph_radosgw_event_parses)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("ceph_put.json", &ev, &err);
    REQUIRE(r);
    CHECK_INT(SPIM_EVENT_CREATED, r->kind);
    CHECK_STR("ceph:s3", r->event_source);
    CHECK_STR("photos", r->bucket);
    CHECK_STR("in/sea.png", r->key);
    CHECK_INT(3141, r->size);
    spim_event_free(ev);
}

TEST(null_optional_fields_count_as_absent)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_str("{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"eventTime\":null,"
                               "\"userIdentity\":null,\"s3\":{\"bucket\":{\"name\":\"b\",\"arn\":null},"
                               "\"object\":{\"key\":\"k\",\"size\":null,\"versionId\":null}}}]}", &ev, &err);
    REQUIRE(st == SPIM_OK);
    REQUIRE(ev->record_count == 1);
    CHECK_STR("", ev->records[0].event_time);
    CHECK_STR("", ev->records[0].principal_id);
    CHECK_STR("", ev->records[0].version_id);
    CHECK_INT(-1, ev->records[0].size);
    spim_event_free(ev);
}

TEST(empty_records_array_is_an_empty_event)
{
    spim_event *ev;
    spim_error err;
    REQUIRE(parse_str(" {\"Records\":[]}\n", &ev, &err) == SPIM_OK);
    CHECK_INT(0, ev->record_count);
    CHECK_INT(0, ev->test_events);
    spim_event_free(ev);
}

/* ---- envelopes ------------------------------------------------------------ */

TEST(sqs_batch_unwraps_each_message)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_fixture("sqs_batch.json", &ev, &err);
    REQUIRE(st == SPIM_OK);
    REQUIRE(ev->record_count == 2);
    CHECK_INT(1, ev->test_events);
    CHECK_INT(SPIM_SOURCE_SQS, ev->records[0].source);
    CHECK_INT(SPIM_VIA_SQS, ev->records[0].via);
    CHECK_STR("0c1f9a52-7d1e-4b1a-9f00-000000000001", ev->records[0].message_id);
    CHECK_INT(SPIM_EVENT_CREATED, ev->records[0].kind);
    CHECK_STR("uploads/cat.jpg", ev->records[0].key);
    CHECK_STR("0c1f9a52-7d1e-4b1a-9f00-000000000003", ev->records[1].message_id);
    CHECK_INT(SPIM_EVENT_REMOVED, ev->records[1].kind);
    CHECK_STR("sparta-gallery", ev->records[1].bucket);
    spim_event_free(ev);
}

TEST(sqs_poison_message_becomes_a_failed_record)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_fixture("sqs_poison.json", &ev, &err);
    REQUIRE(st == SPIM_OK);
    REQUIRE(ev->record_count == 3);
    CHECK_INT(SPIM_OK, ev->records[0].status);
    CHECK_STR("uploads/cat.jpg", ev->records[0].key);
    CHECK_INT(SPIM_ERR_INVALID, ev->records[1].status);
    CHECK_STR("5e0b1c2d-0000-4000-8000-00000000000b", ev->records[1].message_id);
    CHECK_STR("Records[1].body: not valid JSON (error at byte 0)", ev->records[1].error);
    CHECK_STR("", ev->records[1].key);
    CHECK_INT(SPIM_ERR_INVALID, ev->records[2].status);
    CHECK_STR("5e0b1c2d-0000-4000-8000-00000000000c", ev->records[2].message_id);
    CHECK_STR("Records[2].body.Records[0].s3.object.key: missing, expected a string", ev->records[2].error);
    spim_event_free(ev);
}

TEST(sns_unwraps_message)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_fixture("sns.json", &ev, &err);
    REQUIRE(st == SPIM_OK);
    REQUIRE(ev->record_count == 1);
    CHECK_INT(SPIM_SOURCE_SNS, ev->records[0].source);
    CHECK_INT(SPIM_VIA_SNS, ev->records[0].via);
    CHECK_STR("95df01b4-ee98-5cb9-9903-4c221d41eb5e", ev->records[0].message_id);
    CHECK_STR("ObjectCreated:Put", ev->records[0].name);
    CHECK_STR("uploads/cat.jpg", ev->records[0].key);
    spim_event_free(ev);
}

TEST(sqs_carrying_sns_unwraps_both)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_fixture("sqs_sns.json", &ev, &err);
    REQUIRE(st == SPIM_OK);
    REQUIRE(ev->record_count == 1);
    CHECK_INT(SPIM_SOURCE_SQS, ev->records[0].source);
    CHECK_INT(SPIM_VIA_SQS | SPIM_VIA_SNS, ev->records[0].via);
    CHECK_STR("7b3e1f00-aaaa-4bbb-8ccc-000000000042", ev->records[0].message_id);
    CHECK_INT(SPIM_EVENT_REMOVED, ev->records[0].kind);
    CHECK_STR("uploads/cat.jpg", ev->records[0].key);
    spim_event_free(ev);
}

TEST(eventbridge_created_keeps_key_verbatim)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("eventbridge_created.json", &ev, &err);
    REQUIRE(r);
    CHECK_INT(SPIM_EVENT_CREATED, r->kind);
    CHECK_STR("ObjectCreated:Put", r->name);
    CHECK_STR("Object Created", r->event_name);
    CHECK_INT(SPIM_SOURCE_EVENTBRIDGE, r->source);
    CHECK_INT(SPIM_VIA_EVENTBRIDGE, r->via);
    CHECK_STR("3b1e5f4a-0c2d-4e6f-8a9b-1c2d3e4f5a6b", r->message_id);
    CHECK_STR("sparta-gallery", r->bucket);
    CHECK_STR("uploads/two words+plus.jpg", r->key);
    CHECK_INT(48213, r->size);
    CHECK_STR("5f363e0e58a95f06cbe9bbc662c5dfb6", r->etag);
    CHECK_STR("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", r->version_id);
    CHECK_STR("617f08299329d189", r->sequencer);
    CHECK_STR("PutObject", r->reason);
    CHECK_STR("eu-west-3", r->aws_region);
    CHECK_STR("2026-03-14T09:26:53Z", r->event_time);
    CHECK_STR("aws.s3", r->event_source);
    CHECK_STR("111122223333", r->bucket_owner);
    CHECK_STR("arn:aws:s3:::sparta-gallery", r->bucket_arn);
    CHECK_STR("N4N7GDK58NMKJ12R", r->request_id);
    CHECK_STR("111122223333", r->principal_id);
    CHECK_STR("198.51.100.23", r->source_ip);
    CHECK_STR("0", r->event_version);
    spim_event_free(ev);
}

TEST(eventbridge_deleted_marker_is_removed)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("eventbridge_deleted.json", &ev, &err);
    REQUIRE(r);
    CHECK_INT(SPIM_EVENT_REMOVED, r->kind);
    CHECK_STR("ObjectRemoved:DeleteMarkerCreated", r->name);
    CHECK_STR("uploads/cat.jpg", r->key);
    CHECK_INT(-1, r->size);
    spim_event_free(ev);
}

/* EventBridge detail-type + reason + deletion-type -> S3 notification name. */
TEST(eventbridge_names_map_to_notification_names)
{
    static const char *const cases[][5] = {
        /* detail-type, reason, deletion-type, name, kind */
        { "Object Created", "POST Object", "", "ObjectCreated:Post", "created" },
        { "Object Created", "CopyObject", "", "ObjectCreated:Copy", "created" },
        { "Object Created", "CompleteMultipartUpload", "", "ObjectCreated:CompleteMultipartUpload", "created" },
        { "Object Created", "SomethingNew", "", "ObjectCreated:*", "created" },
        { "Object Deleted", "DeleteObject", "Permanently Deleted", "ObjectRemoved:Delete", "removed" },
        { "Object Deleted", "Lifecycle Expiration", "Permanently Deleted", "LifecycleExpiration:Delete", "removed" },
        { "Object Deleted", "Lifecycle Expiration", "Delete Marker Created",
          "LifecycleExpiration:DeleteMarkerCreated", "removed" },
        { "Object Restore Completed", "", "", "ObjectRestore:Completed", "other" },
        { "Object Tags Added", "", "", "ObjectTagging:Put", "other" },
        { "Object Storage Class Changed", "", "", "LifecycleTransition", "other" },
        { "Something Else", "", "", "Something Else", "other" }
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spim_event *ev;
        spim_error err;
        spim_buf b = SPIM_BUF_INIT;
        spim_buf_appendf(&b, "{\"detail-type\":\"%s\",\"source\":\"aws.s3\",\"detail\":{\"bucket\":{\"name\":\"b\"},"
                             "\"object\":{\"key\":\"k\"},\"reason\":\"%s\",\"deletion-type\":\"%s\"}}",
                         cases[i][0], cases[i][1], cases[i][2]);
        if (parse_opt((const char *)b.data, b.len, NULL, &ev, &err) != SPIM_OK) {
            CHECKF(0, "%s: %s", cases[i][0], err.message);
        } else {
            CHECK_STR(cases[i][3], ev->records[0].name);
            CHECK_STR(cases[i][4], spim__event_kind_str(ev->records[0].kind));
            spim_event_free(ev);
        }
        spim_buf_free(&b);
    }
}

TEST(eventbridge_event_version_is_preferred_to_envelope_version)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_str("{\"detail-type\":\"Object Created\",\"source\":\"aws.s3\",\"detail\":{"
                               "\"version\":\"0\",\"event-version\":\"1.1\",\"bucket\":{\"name\":\"b\","
                               "\"aws-generated-tags\":{\"aws:cloudformation:logical-id\":\"X\"}},"
                               "\"object\":{\"key\":\"k\"},\"reason\":\"PutObject\"}}", &ev, &err);
    REQUIRE(st == SPIM_OK);
    CHECK_STR("1.1", ev->records[0].event_version);
    CHECK_STR("", ev->records[0].message_id); /* no id in this event */
    spim_event_free(ev);
}

TEST(eventbridge_inside_sqs_keeps_the_sqs_message_id)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_str("{\"Records\":[{\"messageId\":\"m-1\",\"eventSource\":\"aws:sqs\",\"body\":"
                               "\"{\\\"id\\\":\\\"eb-1\\\",\\\"detail-type\\\":\\\"Object Created\\\","
                               "\\\"source\\\":\\\"aws.s3\\\",\\\"detail\\\":{\\\"bucket\\\":{\\\"name\\\":\\\"b\\\"},"
                               "\\\"object\\\":{\\\"key\\\":\\\"a b\\\",\\\"size\\\":7},"
                               "\\\"reason\\\":\\\"PutObject\\\"}}\"}]}", &ev, &err);
    REQUIRE(st == SPIM_OK);
    REQUIRE(ev->record_count == 1);
    CHECK_INT(SPIM_SOURCE_SQS, ev->records[0].source);
    CHECK_INT(SPIM_VIA_SQS | SPIM_VIA_EVENTBRIDGE, ev->records[0].via);
    CHECK_STR("m-1", ev->records[0].message_id);
    CHECK_STR("a b", ev->records[0].key);
    CHECK_INT(SPIM_EVENT_CREATED, ev->records[0].kind);
    spim_event_free(ev);
}

TEST(test_event_inside_sns_inside_sqs_is_counted)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_str("{\"Records\":[{\"messageId\":\"m-2\",\"eventSource\":\"aws:sqs\",\"body\":"
                               "\"{\\\"Type\\\":\\\"Notification\\\",\\\"MessageId\\\":\\\"n-1\\\",\\\"Message\\\":"
                               "\\\"{\\\\\\\"Service\\\\\\\":\\\\\\\"Amazon S3\\\\\\\",\\\\\\\"Event\\\\\\\":"
                               "\\\\\\\"s3:TestEvent\\\\\\\"}\\\"}\"}]}", &ev, &err);
    CHECKF(st == SPIM_OK, "%s", err.message);
    REQUIRE(st == SPIM_OK);
    CHECK_INT(0, ev->record_count);
    CHECK_INT(1, ev->test_events);
    spim_event_free(ev);
}

TEST(sqs_inside_sqs_is_refused_per_message)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_str("{\"Records\":[{\"messageId\":\"outer\",\"eventSource\":\"aws:sqs\",\"body\":"
                               "\"{\\\"Records\\\":[{\\\"messageId\\\":\\\"inner\\\",\\\"eventSource\\\":"
                               "\\\"aws:sqs\\\",\\\"body\\\":\\\"{}\\\"}]}\"}]}", &ev, &err);
    REQUIRE(st == SPIM_OK);
    REQUIRE(ev->record_count == 1);
    CHECK_INT(SPIM_ERR_INVALID, ev->records[0].status);
    CHECK_STR("outer", ev->records[0].message_id);
    CHECK_STR("Records[0].body.Records[0]: an SQS message inside another envelope", ev->records[0].error);
    spim_event_free(ev);
}

TEST(sns_notification_outside_sqs_is_refused)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_str("{\"Type\":\"Notification\",\"Message\":\"{}\"}", &ev, &err);
    CHECK_INT(SPIM_ERR_INVALID, st);
    CHECK_STR("event: an SNS notification is only expected in an SQS body", err.message);
    CHECK(ev == NULL);
}

TEST(sqs_record_without_body_fails_the_event)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_str("{\"Records\":[{\"messageId\":\"m\",\"eventSource\":\"aws:sqs\",\"body\":42}]}",
                               &ev, &err);
    CHECK_INT(SPIM_ERR_INVALID, st);
    CHECK_STR("Records[0].body: expected a string, got a number", err.message);
}

/* ---- malformed payloads --------------------------------------------------- */

/* Parse `json` expecting failure with `status` and exactly `message`. */
static void expect_failure(const char *json, size_t len, spim_status status, const char *message, int line)
{
    static spim_event sentinel;
    spim_event *ev = &sentinel; /* the parser must reset it to NULL */
    spim_error err;
    spim_status st = parse_opt(json, len, NULL, &ev, &err);
    if (st != status || strcmp(err.message, message) != 0 || ev != NULL) {
        spim_t_fail_at(__FILE__, line);
        printf("    expected: %d \"%s\"\n    got:      %d \"%s\" (event %s)\n", status, message, st, err.message,
               ev ? "returned" : "NULL");
        if (st == SPIM_OK) spim_event_free(ev);
    }
}
#define EXPECT_FAILURE(json, status, message) expect_failure(json, strlen(json), status, message, __LINE__)

static void expect_fixture_failure(const char *fixture, spim_status status, const char *message, int line)
{
    char path[256];
    spim_buf b = SPIM_BUF_INIT;
    spim_error err;
    snprintf(path, sizeof path, "tests/fixtures/events/%s", fixture);
    if (spim_read_file(path, 0, &b, &err) != SPIM_OK) {
        spim_t_fail_at(__FILE__, line);
        printf("    cannot read %s: %s\n", path, err.message);
        return;
    }
    expect_failure((const char *)b.data, b.len, status, message, line);
    spim_buf_free(&b);
}

TEST(not_json_fails_with_the_offset)
{
    expect_fixture_failure("bad_not_json.json", SPIM_ERR_INVALID, "event: not valid JSON (error at byte 79)",
                           __LINE__);
}

TEST(records_not_an_array_fails)
{
    expect_fixture_failure("bad_records_not_array.json", SPIM_ERR_INVALID,
                           "Records: expected an array, got an object", __LINE__);
}

TEST(missing_key_names_the_record)
{
    expect_fixture_failure("bad_missing_key.json", SPIM_ERR_INVALID,
                           "Records[2].s3.object.key: missing, expected a string", __LINE__);
}

/* Fields a handler acts on are checked exactly, and the error names them. */
TEST(wrong_type_names_field_and_types)
{
    EXPECT_FAILURE("{\"Records\":[{\"eventName\":[],\"s3\":{}}]}", SPIM_ERR_INVALID,
                   "Records[0].eventName: expected a string, got an array");
    EXPECT_FAILURE("{\"Records\":[{\"eventName\":\"x\",\"s3\":true}]}", SPIM_ERR_INVALID,
                   "Records[0].s3: expected an object, got a boolean");
    EXPECT_FAILURE("{\"Records\":[{\"eventName\":\"x\",\"s3\":{\"bucket\":{\"name\":\"b\"}}}]}", SPIM_ERR_INVALID,
                   "Records[0].s3.object: missing, expected an object");
    EXPECT_FAILURE("{\"Records\":[{\"eventName\":\"x\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
                   "\"object\":{\"key\":7}}}]}", SPIM_ERR_INVALID,
                   "Records[0].s3.object.key: expected a string, got a number");
    EXPECT_FAILURE("{\"Records\":[{\"eventName\":\"x\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
                   "\"object\":{\"key\":\"k\",\"versionId\":3}}}]}", SPIM_ERR_INVALID,
                   "Records[0].s3.object.versionId: expected a string, got a number");
}

/* Fields no handler acts on never reject an event, whatever their type:
   AWS's own example writes the size as a string, a copy may have no eTag. */
TEST(unused_fields_never_reject_an_event)
{
    static const char *const events[] = {
        "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"eventTime\":5,\"userIdentity\":\"me\","
        "\"responseElements\":{\"x-amz-id-2\":1},\"s3\":{\"bucket\":{\"name\":\"b\",\"arn\":[]},"
        "\"object\":{\"key\":\"k\",\"size\":\"1024\",\"eTag\":{},\"sequencer\":0}}}]}",
        "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
        "\"object\":{\"key\":\"k\",\"size\":-1}}}]}",
        "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
        "\"object\":{\"key\":\"k\",\"size\":1.5}}}]}",
        "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
        "\"object\":{\"key\":\"k\",\"size\":\"12 bytes\"}}}]}",
    };
    static const int64_t sizes[] = {1024, -1, -1, -1};
    size_t i;
    for (i = 0; i < sizeof events / sizeof events[0]; i++) {
        spim_event *ev = NULL;
        spim_error err;
        CHECKF(parse_str(events[i], &ev, &err) == SPIM_OK, "event %zu: %s", i, err.message);
        if (!ev) continue;
        CHECK_INT(1, ev->record_count);
        CHECK_STR("k", ev->records[0].key);
        CHECK_INT(sizes[i], ev->records[0].size);
        CHECK_STR("", ev->records[0].etag);
        spim_event_free(ev);
    }
}

TEST(size_as_a_string_fixture_parses)
{
    spim_event *ev = NULL;
    spim_error err;
    CHECKF(parse_fixture("size_as_string.json", &ev, &err) == SPIM_OK, "%s", err.message);
    if (ev) CHECK_INT(1024, ev->records[0].size);
    spim_event_free(ev);
}

TEST(nested_garbage_names_the_field)
{
    expect_fixture_failure("bad_nested_garbage.json", SPIM_ERR_INVALID,
                           "Records[0].s3.bucket.name: expected a string, got an object", __LINE__);
}

TEST(empty_bucket_name_fails)
{
    EXPECT_FAILURE("{\"Records\":[{\"eventName\":\"x\",\"s3\":{\"bucket\":{\"name\":\"\"},\"object\":{\"key\":\"k\"}}}]}",
                   SPIM_ERR_INVALID, "Records[0].s3.bucket.name: empty bucket name");
}

TEST(roots_that_are_not_events_fail)
{
    EXPECT_FAILURE("{}", SPIM_ERR_INVALID, "event: not an S3 event (no Records, no s3:TestEvent, no aws.s3 source, no invocationSchemaVersion)");
    EXPECT_FAILURE("null", SPIM_ERR_INVALID, "event: expected a JSON object, got null");
    EXPECT_FAILURE("[{\"s3\":{}}]", SPIM_ERR_INVALID, "event: expected a JSON object, got an array");
    EXPECT_FAILURE("\"Records\"", SPIM_ERR_INVALID, "event: expected a JSON object, got a string");
    EXPECT_FAILURE("", SPIM_ERR_INVALID, "event: empty, expected JSON");
    EXPECT_FAILURE("  \n", SPIM_ERR_INVALID, "event: not valid JSON (error at byte 2)");
    EXPECT_FAILURE("{\"Records\":[]} {}", SPIM_ERR_INVALID, "event: unexpected data after the JSON value at byte 15");
}

TEST(records_that_are_not_records_fail)
{
    EXPECT_FAILURE("{\"Records\":[1]}", SPIM_ERR_INVALID, "Records[0]: expected an object, got a number");
    EXPECT_FAILURE("{\"Records\":[{\"eventSource\":\"aws:dynamodb\"}]}", SPIM_ERR_INVALID,
                   "Records[0]: not an S3, SQS or SNS record (no s3 object, no aws:sqs or aws:sns source)");
}

TEST(nul_bytes_are_refused)
{
    static const char raw[] = "{\"Records\":[{\"eventName\":\"x\0y\"}]}";
    expect_failure(raw, sizeof raw - 1, SPIM_ERR_INVALID, "event: NUL byte at byte 27", __LINE__);
    EXPECT_FAILURE("{\"Records\":[{\"eventName\":\"x\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
                   "\"object\":{\"key\":\"cat.jpg\\u0000.exe\"}}}]}",
                   SPIM_ERR_INVALID, "event: escaped NUL (\\u0000) at byte 81");
}

TEST(escaped_backslash_before_u0000_text_is_fine)
{
    spim_event *ev;
    spim_error err;
    REQUIRE(parse_key("a\\\\u0000b", NULL, &ev, &err) == SPIM_OK);
    CHECK_STR("a\\u0000b", ev->records[0].key);
    spim_event_free(ev);
}

TEST(deep_nesting_fails_cleanly)
{
    size_t depth = 5000, i;
    char *json = (char *)malloc(2 * depth + 16);
    REQUIRE(json);
    memcpy(json, "{\"Records\":", 11);
    for (i = 0; i < depth; i++) json[11 + i] = '[';
    for (i = 0; i < depth; i++) json[11 + depth + i] = ']';
    json[11 + 2 * depth] = '}';
    json[12 + 2 * depth] = 0;
    expect_failure(json, 12 + 2 * depth, SPIM_ERR_INVALID, "event: not valid JSON (error at byte 1010)", __LINE__);
    free(json);
}

TEST(huge_input_is_refused_before_parsing)
{
    size_t n = SPIM_EVENT_MAX_INPUT + 1;
    char *json = (char *)malloc(n);
    spim_event *ev;
    spim_error err;
    spim_event_options opt;
    char want[128];
    REQUIRE(json);
    memset(json, ' ', n);
    snprintf(want, sizeof want, "event: %zu bytes, more than the %zu allowed", n, SPIM_EVENT_MAX_INPUT);
    CHECK_INT(SPIM_ERR_TOO_LARGE, spim_event_parse(json, n, NULL, &ev, &err));
    CHECK_STR(want, err.message);
    CHECK(ev == NULL);
    memset(&opt, 0, sizeof opt);
    opt.max_input_bytes = 10;
    CHECK_INT(SPIM_ERR_TOO_LARGE, spim_event_parse("{\"Records\":[]}", 14, &opt, &ev, &err));
    CHECK_STR("event: 14 bytes, more than the 10 allowed", err.message);
    free(json);
}

/* Lambda delivers events up to 6 MiB + 100 B (RIE's interop.MaxPayloadSize):
   one that size parses with the default options, one byte more is refused. */
TEST(platform_limit_event_parses_and_one_byte_more_is_refused)
{
    const char *rec = "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":"
                      "{\"name\":\"b\"},\"object\":{\"key\":\"k\"}}}]}";
    size_t limit = 6291556, n = strlen(rec);
    char *json = (char *)malloc(limit + 1);
    spim_event *ev = NULL;
    spim_error err;
    REQUIRE(json);
    CHECK_INT(limit, SPIM_EVENT_MAX_INPUT);
    memcpy(json, rec, n);
    memset(json + n, ' ', limit + 1 - n);   /* trailing whitespace is valid JSON */
    CHECKF(spim_event_parse(json, limit, NULL, &ev, &err) == SPIM_OK, "%s", err.message);
    if (ev) CHECK_INT(1, ev->record_count);
    spim_event_free(ev);
    CHECK_INT(SPIM_ERR_TOO_LARGE, spim_event_parse(json, limit + 1, NULL, &ev, &err));
    CHECK_STR("event: 6291557 bytes, more than the 6291556 allowed", err.message);
    free(json);
}

static char *many_records(size_t n, size_t *len)
{
    spim_buf b = SPIM_BUF_INIT;
    size_t i;
    spim__buf_append_str(&b, "{\"Records\":[");
    for (i = 0; i < n; i++)
        spim_buf_appendf(&b, "%s{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
                             "\"object\":{\"key\":\"k%zu\"}}}", i ? "," : "", i);
    spim__buf_append_str(&b, "]}");
    *len = b.len;
    return (char *)b.data;
}

TEST(too_many_records_is_refused)
{
    spim_event *ev;
    spim_error err;
    spim_event_options opt;
    size_t len;
    char *json = many_records(4, &len);
    memset(&opt, 0, sizeof opt);
    opt.max_records = 3;
    CHECK_INT(SPIM_ERR_TOO_LARGE, parse_opt(json, len, &opt, &ev, &err));
    CHECK_STR("Records[3]: over the limit of 3 records", err.message);
    opt.max_records = 4;
    REQUIRE(parse_opt(json, len, &opt, &ev, &err) == SPIM_OK);
    CHECK_INT(4, ev->record_count);
    CHECK_STR("k3", ev->records[3].key);
    spim_event_free(ev);
    free(json);

    json = many_records(SPIM_EVENT_MAX_RECORDS + 1, &len);
    CHECK_INT(SPIM_ERR_TOO_LARGE, parse_opt(json, len, NULL, &ev, &err));
    CHECK_STR("Records[10000]: over the limit of 10000 records", err.message);
    free(json);
}

TEST(record_limit_counts_records_across_sqs_messages)
{
    spim_event *ev;
    spim_error err;
    spim_event_options opt;
    const char *body = "\"{\\\"Records\\\":[{\\\"eventName\\\":\\\"ObjectCreated:Put\\\",\\\"s3\\\":{\\\"bucket\\\":"
                       "{\\\"name\\\":\\\"b\\\"},\\\"object\\\":{\\\"key\\\":\\\"k\\\"}}}]}\"";
    spim_buf b = SPIM_BUF_INIT;
    spim_buf_appendf(&b, "{\"Records\":[{\"messageId\":\"1\",\"eventSource\":\"aws:sqs\",\"body\":%s},"
                         "{\"messageId\":\"2\",\"eventSource\":\"aws:sqs\",\"body\":%s}]}", body, body);
    memset(&opt, 0, sizeof opt);
    opt.max_records = 1;
    CHECK_INT(SPIM_ERR_TOO_LARGE, parse_opt((const char *)b.data, b.len, &opt, &ev, &err));
    CHECK_STR("Records[1].body.Records[0]: over the limit of 1 records", err.message);
    opt.max_records = 2;
    CHECK_INT(SPIM_OK, parse_opt((const char *)b.data, b.len, &opt, &ev, &err));
    if (ev) CHECK_INT(2, ev->record_count);
    spim_event_free(ev);
    spim_buf_free(&b);
}

/* ---- keys ----------------------------------------------------------------- */

TEST(bad_key_escapes_are_per_record_errors)
{
    spim_event *ev;
    spim_error err;
    spim_status st = parse_fixture("bad_key_escape.json", &ev, &err);
    REQUIRE(st == SPIM_OK);
    REQUIRE(ev->record_count == 4);
    CHECK_INT(SPIM_OK, ev->records[0].status);
    CHECK_STR("ok key.jpg", ev->records[0].key);
    CHECK_INT(SPIM_ERR_INVALID, ev->records[1].status);
    CHECK_STR("Records[1].s3.object.key: invalid escape \"%G1\" at byte 3", ev->records[1].error);
    CHECK_STR("", ev->records[1].key);
    CHECK_STR("bad%G1key.jpg", ev->records[1].key_raw);
    CHECK_INT(2, ev->records[1].size);
    CHECK_STR("Records[2].s3.object.key: truncated escape \"%4\" at byte 3", ev->records[2].error);
    CHECK_STR("Records[3].s3.object.key: escape %00 at byte 3 decodes to a NUL byte", ev->records[3].error);
    spim_event_free(ev);
}

TEST(key_length_limit_applies_after_decoding)
{
    spim_event *ev;
    spim_error err;
    spim_buf key = SPIM_BUF_INIT;
    size_t i;
    /* 1024 bytes decoded, 3072 as sent: allowed */
    for (i = 0; i < 1024; i++) spim__buf_append_str(&key, "%41");
    REQUIRE(parse_key((const char *)key.data, NULL, &ev, &err) == SPIM_OK);
    CHECK_INT(SPIM_OK, ev->records[0].status);
    CHECK_INT(1024, ev->records[0].key_len);
    spim_event_free(ev);
    spim__buf_append_str(&key, "A");
    REQUIRE(parse_key((const char *)key.data, NULL, &ev, &err) == SPIM_OK);
    CHECK_INT(SPIM_ERR_TOO_LARGE, ev->records[0].status);
    CHECK_STR("Records[0].s3.object.key: 1025 bytes after decoding, more than the 1024 allowed",
              ev->records[0].error);
    spim_event_free(ev);
    spim_buf_free(&key);
}

TEST(empty_key_is_a_per_record_error)
{
    spim_event *ev;
    spim_error err;
    REQUIRE(parse_key("", NULL, &ev, &err) == SPIM_OK);
    CHECK_INT(SPIM_ERR_INVALID, ev->records[0].status);
    CHECK_STR("Records[0].s3.object.key: empty key", ev->records[0].error);
    spim_event_free(ev);
}

static void expect_decoded(const char *in, size_t in_len, const char *want, size_t want_len, int line)
{
    spim_buf out = SPIM_BUF_INIT;
    spim_error err;
    spim_status st;
    spim__error_clear(&err);
    st = spim__url_decode_key(in, in_len, &out, &err);
    if (st != SPIM_OK || out.len != want_len || memcmp(out.data, want, want_len) != 0 || out.data[out.len]) {
        spim_t_fail_at(__FILE__, line);
        printf("    decoding \"%s\": status %d (%s)\n", in, st, err.message);
        spim_t_print_escaped("expected", want, want_len);
        if (out.data) spim_t_print_escaped("got     ", (const char *)out.data, out.len);
    }
    spim_buf_free(&out);
}
#define EXPECT_DECODED(in, want) expect_decoded(in, strlen(in), want, strlen(want), __LINE__)

static void expect_undecodable(const char *in, size_t in_len, const char *message, int line)
{
    spim_buf out = SPIM_BUF_INIT;
    spim_error err;
    spim_status st;
    spim__error_clear(&err);
    st = spim__url_decode_key(in, in_len, &out, &err);
    if (st != SPIM_ERR_INVALID || strcmp(err.message, message) != 0 || out.len != 0) {
        spim_t_fail_at(__FILE__, line);
        printf("    decoding \"%s\"\n    expected: %d \"%s\"\n    got:      %d \"%s\" (%zu bytes out)\n", in,
               SPIM_ERR_INVALID, message, st, err.message, out.len);
    }
    spim_buf_free(&out);
}
#define EXPECT_UNDECODABLE(in, message) expect_undecodable(in, strlen(in), message, __LINE__)

TEST(url_decode_handles_form_encoding)
{
    EXPECT_DECODED("plain/key.jpg", "plain/key.jpg");
    EXPECT_DECODED("a+b++c", "a b  c");
    EXPECT_DECODED("%2B%2b%20%25", "++ %");
    EXPECT_DECODED("dir%2Ffile", "dir/file");
    EXPECT_DECODED("%e2%9C%93", "\xe2\x9c\x93");
    EXPECT_DECODED("%FF%80", "\xff\x80");
    EXPECT_DECODED("caf\xc3\xa9", "caf\xc3\xa9"); /* raw UTF-8 passes through */
    EXPECT_DECODED("", "");
    expect_decoded("ab%41cd", 5, "abA", 3, __LINE__); /* stops at len */
}

TEST(url_decode_refuses_bad_escapes)
{
    EXPECT_UNDECODABLE("%G1", "invalid escape \"%G1\" at byte 0");
    EXPECT_UNDECODABLE("ab%1G", "invalid escape \"%1G\" at byte 2");
    EXPECT_UNDECODABLE("x%%41", "invalid escape \"%%4\" at byte 1");
    EXPECT_UNDECODABLE("tail%4", "truncated escape \"%4\" at byte 4");
    EXPECT_UNDECODABLE("tail%", "truncated escape \"%\" at byte 4");
    EXPECT_UNDECODABLE("%\n1", "invalid escape \"%?1\" at byte 0");
    EXPECT_UNDECODABLE("a%00b", "escape %00 at byte 1 decodes to a NUL byte");
    expect_undecodable("a\0b", 3, "NUL byte at byte 1", __LINE__);
    expect_undecodable("ab%4142", 4, "truncated escape \"%4\" at byte 2", __LINE__); /* len cuts the escape */
}

TEST(url_decode_replaces_previous_contents)
{
    spim_buf out = SPIM_BUF_INIT;
    spim_error err;
    REQUIRE(spim__url_decode_key("first", 5, &out, &err) == SPIM_OK);
    REQUIRE(spim__url_decode_key("2nd", 3, &out, &err) == SPIM_OK);
    CHECK_STR("2nd", (const char *)out.data);
    CHECK_INT(3, out.len);
    spim_buf_free(&out);
}

/* ---- names ---------------------------------------------------------------- */

TEST(classify_with_and_without_prefix)
{
    static const struct { const char *name, *normalised; spim_event_kind kind; } cases[] = {
        { "ObjectCreated:Put", "ObjectCreated:Put", SPIM_EVENT_CREATED },
        { "s3:ObjectCreated:Post", "ObjectCreated:Post", SPIM_EVENT_CREATED },
        { "ObjectCreated:Copy", "ObjectCreated:Copy", SPIM_EVENT_CREATED },
        { "s3:ObjectCreated:CompleteMultipartUpload", "ObjectCreated:CompleteMultipartUpload", SPIM_EVENT_CREATED },
        { "ObjectRemoved:Delete", "ObjectRemoved:Delete", SPIM_EVENT_REMOVED },
        { "s3:ObjectRemoved:DeleteMarkerCreated", "ObjectRemoved:DeleteMarkerCreated", SPIM_EVENT_REMOVED },
        { "LifecycleExpiration:Delete", "LifecycleExpiration:Delete", SPIM_EVENT_REMOVED },
        { "s3:LifecycleExpiration:DeleteMarkerCreated", "LifecycleExpiration:DeleteMarkerCreated", SPIM_EVENT_REMOVED },
        { "s3:TestEvent", "TestEvent", SPIM_EVENT_TEST },
        { "ObjectRestore:Post", "ObjectRestore:Post", SPIM_EVENT_OTHER },
        { "ObjectRestore:Delete", "ObjectRestore:Delete", SPIM_EVENT_OTHER },
        { "Replication:OperationFailedReplication", "Replication:OperationFailedReplication", SPIM_EVENT_OTHER },
        { "s3:ReducedRedundancyLostObject", "ReducedRedundancyLostObject", SPIM_EVENT_OTHER },
        { "LifecycleTransition", "LifecycleTransition", SPIM_EVENT_OTHER },
        { "ObjectTagging:Put", "ObjectTagging:Put", SPIM_EVENT_OTHER },
        { "ObjectCreated", "ObjectCreated", SPIM_EVENT_OTHER },
        { "S3:ObjectCreated:Put", "S3:ObjectCreated:Put", SPIM_EVENT_OTHER },
        { "", "", SPIM_EVENT_OTHER }
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *norm = NULL;
        CHECK_STR(spim__event_kind_str(cases[i].kind), spim__event_kind_str(spim__event_classify(cases[i].name, &norm)));
        CHECK_STR(cases[i].normalised, norm);
    }
    CHECK_INT(SPIM_EVENT_OTHER, spim__event_classify(NULL, NULL));
}

TEST(kind_and_source_names)
{
    CHECK_STR("other", spim__event_kind_str(SPIM_EVENT_OTHER));
    CHECK_STR("created", spim__event_kind_str(SPIM_EVENT_CREATED));
    CHECK_STR("removed", spim__event_kind_str(SPIM_EVENT_REMOVED));
    CHECK_STR("test", spim__event_kind_str(SPIM_EVENT_TEST));
    CHECK_STR("unknown", spim__event_kind_str((spim_event_kind)99));
    CHECK_STR("direct", spim__event_source_str(SPIM_SOURCE_DIRECT));
    CHECK_STR("sqs", spim__event_source_str(SPIM_SOURCE_SQS));
    CHECK_STR("sns", spim__event_source_str(SPIM_SOURCE_SNS));
    CHECK_STR("eventbridge", spim__event_source_str(SPIM_SOURCE_EVENTBRIDGE));
    CHECK_STR("batch", spim__event_source_str(SPIM_SOURCE_BATCH));
    CHECK_STR("unknown", spim__event_source_str((spim_event_source)-1));
}

/* ---- robustness ----------------------------------------------------------- */

TEST(bad_arguments_are_errors)
{
    spim_event *ev = NULL;
    spim_error err;
    spim__error_clear(&err);
    CHECK_INT(SPIM_ERR_INVALID, spim_event_parse("{}", 2, NULL, NULL, &err));
    CHECK_STR("spim_event_parse: out is NULL", err.message);
    CHECK_INT(SPIM_ERR_INVALID, spim_event_parse(NULL, 0, NULL, &ev, &err));
    CHECK(ev == NULL);
    spim_event_free(NULL);
}

/* ---- S3 Batch Operations -------------------------------------------------- */

#define BATCH_KEY "summer 2024/caf\xc3\xa9 + friends \xe2\x9c\x93 100%.jpg"
#define BATCH_KEY_RAW "summer+2024/caf%C3%A9+%2B+friends%20%E2%9C%93+100%25.jpg"

TEST(batch_v1_task_is_a_created_record)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("batch_v1.json", &ev, &err);
    REQUIRE(r);
    CHECK_STR("1.0", ev->invocation_schema_version);
    CHECK_STR("YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo", ev->invocation_id);
    CHECK_STR("f3cc4f60-61f6-4a2b-8a21-d07600c373ce", ev->job_id);
    CHECK_STR("", ev->user_arguments);
    CHECK_INT(SPIM_EVENT_CREATED, r->kind);
    CHECK_STR("BatchOperations:LambdaInvoke", r->name);
    CHECK_INT(SPIM_EVENT_CREATED, spim__event_classify(r->name, NULL));
    CHECK_INT(SPIM_SOURCE_BATCH, r->source);
    CHECK_INT(0, r->via);
    CHECK_STR("", r->message_id);
    CHECK_STR("dGFza2lkZ29lc2hlcmUK", r->task_id);
    CHECK_STR("sparta-gallery", r->bucket);
    CHECK_STR("arn:aws:s3:::sparta-gallery", r->bucket_arn);
    CHECK_STR("", r->aws_region);
    CHECK_STR(BATCH_KEY, r->key);
    CHECK_INT(strlen(BATCH_KEY), r->key_len);
    CHECK_STR(BATCH_KEY_RAW, r->key_raw);
    CHECK_STR("3HL4kqtJlcpXroDTDmjVBH40Nrjfkd", r->version_id);
    CHECK_STR("1.0", r->event_version);
    CHECK_INT(-1, r->size);
    spim_event_free(ev);
}

TEST(batch_v2_task_names_the_bucket_and_keeps_user_arguments)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("batch_v2.json", &ev, &err);
    REQUIRE(r);
    CHECK_STR("2.0", ev->invocation_schema_version);
    CHECK_STR("Zm9vYmFyYmF6cXV4IGludm9jYXRpb24gMi4wCg", ev->invocation_id);
    CHECK_STR("0c5d7e61-2b1f-4a8e-9d0c-3f1e2a4b5c6d", ev->job_id);
    CHECK_STR("{\"stamp\":\"s3://sparta-assets/stamp.png\",\"gravity\":\"se\"}", ev->user_arguments);
    CHECK_INT(SPIM_EVENT_CREATED, r->kind);
    CHECK_INT(SPIM_SOURCE_BATCH, r->source);
    CHECK_STR("dGFzay0yLjAtb25lCg", r->task_id);
    CHECK_STR("sparta-gallery", r->bucket);
    CHECK_STR("", r->bucket_arn);
    /* same encoding as 1.0: '+' and %20 are spaces, %2B a plus */
    CHECK_STR(BATCH_KEY, r->key);
    CHECK_STR(BATCH_KEY_RAW, r->key_raw);
    CHECK_STR("", r->version_id); /* null: unversioned bucket */
    spim_event_free(ev);
}

TEST(batch_fields_are_empty_for_other_events)
{
    spim_event *ev;
    spim_error err;
    const spim_s3_record *r = one_record("s3_put.json", &ev, &err);
    REQUIRE(r);
    CHECK_STR("", ev->invocation_id);
    CHECK_STR("", ev->invocation_schema_version);
    CHECK_STR("", ev->job_id);
    CHECK_STR("", ev->user_arguments);
    CHECK_STR("", r->task_id);
    spim_event_free(ev);
}

TEST(batch_task_problems_are_per_record_errors)
{
    static const struct {
        const char *task_id, *bucket, *region, *error;
    } want[] = {
        { "good", "photos", "cn-north-1", "" },
        { "bad-escape", "photos", "", "tasks[1].s3Key: truncated escape \"%2\" at byte 4" },
        { "no-key", "photos", "", "tasks[2].s3Key: missing, expected a string" },
        { "bad-arn", "", "", "tasks[3].s3BucketArn: expected \"arn:aws:s3:::BUCKET\", got \"photos\"" },
        { "", "", "", "tasks[4].taskId: missing, expected a string" },
        { "", "", "", "tasks[5]: expected an object, got a string" }
    };
    spim_event *ev;
    spim_error err;
    size_t i;
    spim_status st = parse_fixture("batch_bad_tasks.json", &ev, &err);
    REQUIRE(st == SPIM_OK);
    CHECK_INT(6, ev->record_count);
    for (i = 0; i < ev->record_count && i < 6; i++) {
        const spim_s3_record *r = &ev->records[i];
        CHECK_STR(want[i].task_id, r->task_id);
        CHECK_STR(want[i].bucket, r->bucket);
        CHECK_STR(want[i].region, r->aws_region);
        CHECK_STR(want[i].error, r->error);
        CHECK_INT(want[i].error[0] ? SPIM_ERR_INVALID : SPIM_OK, r->status);
        CHECK_INT(SPIM_EVENT_CREATED, r->kind);
        CHECK_INT(SPIM_SOURCE_BATCH, r->source);
        if (want[i].error[0]) CHECK_STR("", r->key);
    }
    CHECK_STR("ok.jpg", ev->records[0].key);
    spim_event_free(ev);
}

TEST(batch_v2_needs_s3_bucket_and_v1_needs_the_arn)
{
    spim_event *ev;
    spim_error err;
    REQUIRE(parse_str("{\"invocationSchemaVersion\":\"2.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\"},"
                      "\"tasks\":[{\"taskId\":\"t\",\"s3Key\":\"k\",\"s3BucketArn\":\"arn:aws:s3:::b\"},"
                      "{\"taskId\":\"u\",\"s3Key\":\"k\",\"s3Bucket\":\"\"}]}", &ev, &err) == SPIM_OK);
    REQUIRE(ev->record_count == 2);
    CHECK_STR("tasks[0].s3Bucket: missing, expected a string", ev->records[0].error);
    CHECK_STR("tasks[1].s3Bucket: empty bucket name", ev->records[1].error);
    spim_event_free(ev);
    REQUIRE(parse_str("{\"invocationSchemaVersion\":\"1.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\"},"
                      "\"tasks\":[{\"taskId\":\"t\",\"s3Key\":\"k\",\"s3Bucket\":\"b\"},"
                      "{\"taskId\":\"u\",\"s3Key\":\"k\",\"s3BucketArn\":\"arn:aws:sqs:::b\"},"
                      "{\"taskId\":\"v\",\"s3Key\":\"k\",\"s3BucketArn\":\"arn:aws:s3:::b/k\"},"
                      "{\"taskId\":\"w\",\"s3Key\":\"k\",\"s3BucketArn\":\"arn::s3:::b\"},"
                      "{\"taskId\":\"x\",\"s3Key\":\"k\",\"s3BucketArn\":\"arn:aws:s3::b\"}]}", &ev, &err) == SPIM_OK);
    REQUIRE(ev->record_count == 5);
    CHECK_STR("tasks[0].s3BucketArn: missing, expected a string", ev->records[0].error);
    CHECK_STR("tasks[1].s3BucketArn: expected \"arn:aws:s3:::BUCKET\", got \"arn:aws:sqs:::b\"", ev->records[1].error);
    CHECK_STR("tasks[2].s3BucketArn: expected \"arn:aws:s3:::BUCKET\", got \"arn:aws:s3:::b/k\"", ev->records[2].error);
    CHECK_STR("tasks[3].s3BucketArn: expected \"arn:aws:s3:::BUCKET\", got \"arn::s3:::b\"", ev->records[3].error);
    CHECK_STR("tasks[4].s3BucketArn: expected \"arn:aws:s3:::BUCKET\", got \"arn:aws:s3::b\"", ev->records[4].error);
    spim_event_free(ev);
}

TEST(batch_empty_tasks_is_an_empty_event)
{
    spim_event *ev;
    spim_error err;
    REQUIRE(parse_str("{\"invocationSchemaVersion\":\"1.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\"},\"tasks\":[]}",
                      &ev, &err) == SPIM_OK);
    CHECK_INT(0, ev->record_count);
    CHECK_STR("i", ev->invocation_id);
    spim_event_free(ev);
}

TEST(batch_malformed_invocations_fail_naming_the_field)
{
    EXPECT_FAILURE("{\"invocationSchemaVersion\":\"3.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\"},\"tasks\":[]}",
                   SPIM_ERR_INVALID, "invocationSchemaVersion: expected \"1.0\" or \"2.0\", got \"3.0\"");
    EXPECT_FAILURE("{\"invocationSchemaVersion\":1,\"invocationId\":\"i\",\"job\":{\"id\":\"j\"},\"tasks\":[]}",
                   SPIM_ERR_INVALID, "invocationSchemaVersion: expected a string, got a number");
    EXPECT_FAILURE("{\"invocationSchemaVersion\":\"1.0\",\"job\":{\"id\":\"j\"},\"tasks\":[]}", SPIM_ERR_INVALID,
                   "invocationId: missing, expected a string");
    EXPECT_FAILURE("{\"invocationSchemaVersion\":\"1.0\",\"invocationId\":\"\",\"job\":{\"id\":\"j\"},\"tasks\":[]}",
                   SPIM_ERR_INVALID, "invocationId: empty");
    EXPECT_FAILURE("{\"invocationSchemaVersion\":\"1.0\",\"invocationId\":\"i\",\"tasks\":[]}", SPIM_ERR_INVALID,
                   "job: missing, expected an object");
    EXPECT_FAILURE("{\"invocationSchemaVersion\":\"1.0\",\"invocationId\":\"i\",\"job\":{},\"tasks\":[]}",
                   SPIM_ERR_INVALID, "job.id: missing, expected a string");
    EXPECT_FAILURE("{\"invocationSchemaVersion\":\"2.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\","
                   "\"userArguments\":[1]},\"tasks\":[]}",
                   SPIM_ERR_INVALID, "job.userArguments: expected an object, got an array");
    EXPECT_FAILURE("{\"invocationSchemaVersion\":\"1.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\"}}",
                   SPIM_ERR_INVALID, "tasks: missing, expected an array");
    EXPECT_FAILURE("{\"invocationSchemaVersion\":\"1.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\"},\"tasks\":{}}",
                   SPIM_ERR_INVALID, "tasks: expected an array, got an object");
}

TEST(batch_inside_an_envelope_is_refused_per_message)
{
    spim_event *ev;
    spim_error err;
    REQUIRE(parse_str("{\"Records\":[{\"eventSource\":\"aws:sqs\",\"messageId\":\"m1\",\"body\":"
                      "\"{\\\"invocationSchemaVersion\\\":\\\"1.0\\\"}\"}]}", &ev, &err) == SPIM_OK);
    REQUIRE(ev->record_count == 1);
    CHECK_INT(SPIM_ERR_INVALID, ev->records[0].status);
    CHECK_STR("Records[0].body: a Batch Operations invocation inside another envelope (S3 invokes the "
              "function directly)", ev->records[0].error);
    CHECK_STR("", ev->invocation_id);
    spim_event_free(ev);
}

TEST(batch_task_limit_is_the_record_limit)
{
    spim_event_options opt;
    spim_event *ev = NULL;
    spim_error err;
    const char *json = "{\"invocationSchemaVersion\":\"1.0\",\"invocationId\":\"i\",\"job\":{\"id\":\"j\"},\"tasks\":["
                       "{\"taskId\":\"a\",\"s3Key\":\"k\",\"s3BucketArn\":\"arn:aws:s3:::b\"},"
                       "{\"taskId\":\"b\",\"s3Key\":\"k\",\"s3BucketArn\":\"arn:aws:s3:::b\"}]}";
    memset(&opt, 0, sizeof opt);
    opt.max_records = 1;
    CHECK_INT(SPIM_ERR_TOO_LARGE, parse_opt(json, strlen(json), &opt, &ev, &err));
    CHECK_STR("tasks[1]: over the limit of 1 records", err.message);
    CHECK(ev == NULL);
}

/* Like the nested-event walk: every prefix of a batch invocation parses or
   fails cleanly. */
TEST(every_prefix_of_a_batch_invocation_is_handled)
{
    spim_buf b = SPIM_BUF_INIT;
    spim_error err;
    size_t n, ok = 0;
    REQUIRE(spim_read_file("tests/fixtures/events/batch_v2.json", 0, &b, &err) == SPIM_OK);
    for (n = 0; n <= b.len; n++) {
        spim_event *ev;
        spim_status st = parse_opt((const char *)b.data, n, NULL, &ev, &err);
        if (st == SPIM_OK) {
            ok++;
            spim_event_free(ev);
        } else {
            CHECKF(err.message[0] && ev == NULL, "prefix %zu: status %d, message \"%s\"", n, st, err.message);
        }
    }
    CHECK(ok >= 1);
    spim_buf_free(&b);
}

/* Every prefix of a doubly wrapped event is a valid call: it either parses or
   fails with a message, and the sanitizer build checks nothing reads past the
   prefix or leaks. */
TEST(every_prefix_of_a_nested_event_is_handled)
{
    spim_buf b = SPIM_BUF_INIT;
    spim_error err;
    size_t n, ok = 0;
    REQUIRE(spim_read_file("tests/fixtures/events/sqs_sns.json", 0, &b, &err) == SPIM_OK);
    for (n = 0; n <= b.len; n++) {
        spim_event *ev;
        spim_status st = parse_opt((const char *)b.data, n, NULL, &ev, &err);
        if (st == SPIM_OK) {
            ok++;
            spim_event_free(ev);
        } else {
            CHECKF(err.message[0] && ev == NULL, "prefix %zu: status %d, message \"%s\"", n, st, err.message);
        }
    }
    CHECK(ok >= 1); /* at least the whole text */
    spim_buf_free(&b);
}

int main(void)
{
    RUN(put_record_has_every_field);
    RUN(post_is_created);
    RUN(copy_is_created_and_keeps_size_zero);
    RUN(multipart_with_s3_prefix_is_created);
    RUN(delete_is_removed_without_size);
    RUN(delete_marker_is_removed);
    RUN(lifecycle_expiration_is_removed);
    RUN(restore_is_other_and_glacier_data_ignored);
    RUN(test_event_has_no_records);
    RUN(key_with_spaces_utf8_and_plus_is_decoded);
    RUN(ceph_radosgw_event_parses);
    RUN(null_optional_fields_count_as_absent);
    RUN(empty_records_array_is_an_empty_event);
    RUN(sqs_batch_unwraps_each_message);
    RUN(sqs_poison_message_becomes_a_failed_record);
    RUN(sns_unwraps_message);
    RUN(sqs_carrying_sns_unwraps_both);
    RUN(eventbridge_created_keeps_key_verbatim);
    RUN(eventbridge_deleted_marker_is_removed);
    RUN(eventbridge_names_map_to_notification_names);
    RUN(eventbridge_event_version_is_preferred_to_envelope_version);
    RUN(eventbridge_inside_sqs_keeps_the_sqs_message_id);
    RUN(test_event_inside_sns_inside_sqs_is_counted);
    RUN(sqs_inside_sqs_is_refused_per_message);
    RUN(sns_notification_outside_sqs_is_refused);
    RUN(sqs_record_without_body_fails_the_event);
    RUN(not_json_fails_with_the_offset);
    RUN(records_not_an_array_fails);
    RUN(missing_key_names_the_record);
    RUN(wrong_type_names_field_and_types);
    RUN(unused_fields_never_reject_an_event);
    RUN(size_as_a_string_fixture_parses);
    RUN(nested_garbage_names_the_field);
    RUN(empty_bucket_name_fails);
    RUN(roots_that_are_not_events_fail);
    RUN(records_that_are_not_records_fail);
    RUN(nul_bytes_are_refused);
    RUN(escaped_backslash_before_u0000_text_is_fine);
    RUN(deep_nesting_fails_cleanly);
    RUN(huge_input_is_refused_before_parsing);
    RUN(platform_limit_event_parses_and_one_byte_more_is_refused);
    RUN(too_many_records_is_refused);
    RUN(record_limit_counts_records_across_sqs_messages);
    RUN(bad_key_escapes_are_per_record_errors);
    RUN(key_length_limit_applies_after_decoding);
    RUN(empty_key_is_a_per_record_error);
    RUN(url_decode_handles_form_encoding);
    RUN(url_decode_refuses_bad_escapes);
    RUN(url_decode_replaces_previous_contents);
    RUN(classify_with_and_without_prefix);
    RUN(kind_and_source_names);
    RUN(bad_arguments_are_errors);
    RUN(batch_v1_task_is_a_created_record);
    RUN(batch_v2_task_names_the_bucket_and_keeps_user_arguments);
    RUN(batch_fields_are_empty_for_other_events);
    RUN(batch_task_problems_are_per_record_errors);
    RUN(batch_v2_needs_s3_bucket_and_v1_needs_the_arn);
    RUN(batch_empty_tasks_is_an_empty_event);
    RUN(batch_malformed_invocations_fail_naming_the_field);
    RUN(batch_inside_an_envelope_is_refused_per_message);
    RUN(batch_task_limit_is_the_record_limit);
    RUN(every_prefix_of_a_batch_invocation_is_handled);
    RUN(every_prefix_of_a_nested_event_is_handled);
    return spim_test_finish();
}
