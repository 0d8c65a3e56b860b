/* seed.c - writes the seed corpus of one fuzz target: valid inputs and
   near-valid ones (truncated, one field wrong), made by the project itself.
      build/fuzz/seed NAME DIR
   NAME is a target (events, url_decode, s3_error, credentials, http_date,
   lambda, sigv4, meta, image, splice, png, formats). Images come from the library's own
   encoder (WebP and GIF from libwebp and giflib)
   with EXIF/ICC added; events from tests/fixtures/events/ (when run from the
   repository root) plus generated envelopes. Prints the number of files. */
#define SPARTA_IMAGER_IMPLEMENTATION
#define SPIM_WEBP
#define SPIM_GIF
#include "sparta_imager.h"

#include <dirent.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *out_dir;
static int written;

static void put(const char *name, const void *data, size_t len)
{
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/seed_%s", out_dir, name);
    f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        fprintf(stderr, "seed: cannot write %s\n", path);
        exit(1);
    }
    written++;
}

static void put_str(const char *name, const char *s) { put(name, s, strlen(s)); }

/* The whole input and a few near misses: cut in half, cut one byte short. */
static void put_variants(const char *name, const void *data, size_t len)
{
    char n[256];
    put(name, data, len);
    if (len > 4) {
        snprintf(n, sizeof n, "%s.half", name);
        put(n, data, len / 2);
        snprintf(n, sizeof n, "%s.short", name);
        put(n, data, len - 1);
    }
}

/* ---- events ------------------------------------------------------------- */

static char *s3_record(const char *event, const char *key, long size)
{
    spim_buf b = SPIM_BUF_INIT;
    spim_buf_appendf(&b,
        "{\"eventVersion\":\"2.1\",\"eventSource\":\"aws:s3\",\"awsRegion\":\"us-east-1\","
        "\"eventTime\":\"2026-03-14T09:26:53.123Z\",\"eventName\":\"%s\","
        "\"userIdentity\":{\"principalId\":\"AWS:AIDAEXAMPLE\"},"
        "\"requestParameters\":{\"sourceIPAddress\":\"198.51.100.7\"},"
        "\"responseElements\":{\"x-amz-request-id\":\"C3D13FE58DE4C810\",\"x-amz-id-2\":\"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD\"},"
        "\"s3\":{\"s3SchemaVersion\":\"1.0\",\"configurationId\":\"stamp\","
        "\"bucket\":{\"name\":\"sparta-gallery\",\"ownerIdentity\":{\"principalId\":\"A3NL1KOZZKExample\"},\"arn\":\"arn:aws:s3:::sparta-gallery\"},"
        "\"object\":{\"key\":\"%s\"", event, key);
    if (size >= 0) spim_buf_appendf(&b, ",\"size\":%ld,\"eTag\":\"d41d8cd98f00b204e9800998ecf8427e\"", size);
    spim_buf_appendf(&b, ",\"versionId\":\"096fKKXTRTtl3on89fVO.nfljtsv6qko\",\"sequencer\":\"0055AED6DCD90281E5\"}}}");
    return (char *)b.data;
}

static char *wrap_records(const char *const *records, int n)
{
    spim_buf b = SPIM_BUF_INIT;
    int i;
    spim__buf_append_str(&b, "{\"Records\":[");
    for (i = 0; i < n; i++) spim_buf_appendf(&b, "%s%s", i ? "," : "", records[i]);
    spim__buf_append_str(&b, "]}");
    return (char *)b.data;
}

static char *sns_envelope(const char *message)
{
    cJSON *sns = cJSON_CreateObject(), *rec = cJSON_CreateObject(), *root = cJSON_CreateObject(),
          *arr = cJSON_CreateArray();
    char *out;
    cJSON_AddStringToObject(sns, "Type", "Notification");
    cJSON_AddStringToObject(sns, "MessageId", "c0ffee00-1111-5222-9333-444455556666");
    cJSON_AddStringToObject(sns, "TopicArn", "arn:aws:sns:us-east-1:111122223333:gallery");
    cJSON_AddStringToObject(sns, "Subject", "Amazon S3 Notification");
    cJSON_AddStringToObject(sns, "Message", message);
    cJSON_AddStringToObject(sns, "Timestamp", "2026-03-14T09:26:54.012Z");
    cJSON_AddStringToObject(rec, "EventSource", "aws:sns");
    cJSON_AddStringToObject(rec, "EventVersion", "1.0");
    cJSON_AddStringToObject(rec, "EventSubscriptionArn", "arn:aws:sns:us-east-1:111122223333:gallery:1");
    cJSON_AddItemToObject(rec, "Sns", sns);
    cJSON_AddItemToArray(arr, rec);
    cJSON_AddItemToObject(root, "Records", arr);
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

/* The SNS notification body as SQS carries it (raw delivery off). */
static char *sns_body(const char *message)
{
    cJSON *sns = cJSON_CreateObject();
    char *out;
    cJSON_AddStringToObject(sns, "Type", "Notification");
    cJSON_AddStringToObject(sns, "MessageId", "c0ffee00-1111-5222-9333-444455556666");
    cJSON_AddStringToObject(sns, "Message", message);
    out = cJSON_PrintUnformatted(sns);
    cJSON_Delete(sns);
    return out;
}

static char *sqs_envelope(const char *const *bodies, int n)
{
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    char id[64], *out;
    int i;
    for (i = 0; i < n; i++) {
        cJSON *rec = cJSON_CreateObject();
        snprintf(id, sizeof id, "7b3e1f00-aaaa-4bbb-8ccc-%012d", i);
        cJSON_AddStringToObject(rec, "messageId", id);
        cJSON_AddStringToObject(rec, "receiptHandle", "AQEBexampleReceiptHandle==");
        cJSON_AddStringToObject(rec, "body", bodies[i]);
        cJSON_AddStringToObject(rec, "eventSource", "aws:sqs");
        cJSON_AddStringToObject(rec, "eventSourceARN", "arn:aws:sqs:us-east-1:111122223333:stamp-queue");
        cJSON_AddStringToObject(rec, "awsRegion", "us-east-1");
        cJSON_AddItemToArray(arr, rec);
    }
    cJSON_AddItemToObject(root, "Records", arr);
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

/* An S3 Batch Operations invocation with one task per key; schema "1.0"
   names the bucket by ARN, "2.0" by name and may carry userArguments. */
static char *batch_invocation(const char *schema, const char *const *keys, size_t n)
{
    spim_buf b = SPIM_BUF_INIT;
    size_t i;
    int v2 = strcmp(schema, "2.0") == 0;
    spim_buf_appendf(&b, "{\"invocationSchemaVersion\":\"%s\",\"invocationId\":\"YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo\","
                         "\"job\":{\"id\":\"f3cc4f60-61f6-4a2b-8a21-d07600c373ce\"%s},\"tasks\":[", schema,
                     v2 ? ",\"userArguments\":{\"k1\":\"v1\",\"k2\":\"v2\"}" : "");
    for (i = 0; i < n; i++)
        spim_buf_appendf(&b, "%s{\"taskId\":\"dGFza2lkZ29lc2hlcmUK%zu\",\"s3Key\":\"%s\",\"s3VersionId\":%s,%s}",
                         i ? "," : "", i, keys[i], i % 2 ? "null" : "\"1\"",
                         v2 ? "\"s3Bucket\":\"sparta-gallery\"" : "\"s3BucketArn\":\"arn:aws:s3:::sparta-gallery\"");
    spim__buf_append_str(&b, "]}");
    return (char *)b.data;
}

static char *eventbridge(const char *type, const char *key, const char *reason)
{
    spim_buf b = SPIM_BUF_INIT;
    spim_buf_appendf(&b,
        "{\"version\":\"0\",\"id\":\"3b1e5f4a-0c2d-4e6f-8a9b-1c2d3e4f5a6b\",\"detail-type\":\"%s\","
        "\"source\":\"aws.s3\",\"account\":\"111122223333\",\"time\":\"2026-03-14T09:26:53Z\","
        "\"region\":\"us-east-1\",\"resources\":[\"arn:aws:s3:::sparta-gallery\"],"
        "\"detail\":{\"version\":\"0\",\"bucket\":{\"name\":\"sparta-gallery\"},"
        "\"object\":{\"key\":\"%s\",\"size\":48213,\"etag\":\"5f363e0e58a95f06cbe9bbc662c5dfb6\","
        "\"version-id\":\"IYV3p45BT0ac8hjHg1houSdS1a.Mro8e\",\"sequencer\":\"617f08299329d189\"},"
        "\"request-id\":\"N4N7GDK58NMKJ12R\",\"requester\":\"111122223333\","
        "\"source-ip-address\":\"198.51.100.23\",\"reason\":\"%s\"}}", type, key, reason);
    return (char *)b.data;
}

/* The events target reads one option byte first. */
static void put_event(const char *name, const char *json)
{
    spim_buf b = SPIM_BUF_INIT;
    char n[256];
    spim_buf_append(&b, "\0", 1);
    spim__buf_append_str(&b, json);
    put_variants(name, b.data, b.len);
    b.data[0] = 0x2b;  /* small limits: 2 records, 6-byte keys */
    snprintf(n, sizeof n, "%s.limits", name);
    put(n, b.data, b.len);
    spim_buf_free(&b);
}

static void seed_events(void)
{
    static const char *const keys[] = {
        "uploads/cat.jpg", "two+words%2Bplus.png", "caf%C3%A9/%E6%97%A5%E6%9C%AC.gif", "a%2Fb%3Fc%23d",
        "bad%2", "bad%zz.jpg", "nul%00byte", "xformed_uploads/cat.jpg", "%", "+"
    };
    static const char *const names[] = {
        "ObjectCreated:Put", "s3:ObjectCreated:Post", "ObjectCreated:Copy",
        "ObjectCreated:CompleteMultipartUpload", "ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated",
        "LifecycleExpiration:Delete", "ObjectRestore:Completed", "s3:TestEvent"
    };
    const char *recs[4];
    char name[64], *rec, *doc, *env, *body, *bodies[3];
    size_t i;
    DIR *d = opendir("tests/fixtures/events");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char path[512];
            spim_buf b = SPIM_BUF_INIT;
            if (!strstr(e->d_name, ".json")) continue;
            snprintf(path, sizeof path, "tests/fixtures/events/%s", e->d_name);
            if (spim_read_file(path, 1 << 20, &b, NULL) == SPIM_OK) {
                snprintf(name, sizeof name, "fixture_%.48s", e->d_name);
                put_event(name, (const char *)b.data);
            }
            spim_buf_free(&b);
        }
        closedir(d);
    }
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        rec = s3_record(names[i % 5], keys[i], (long)(i * 1000) - 1);
        doc = wrap_records((const char *const *)&rec, 1);
        snprintf(name, sizeof name, "s3_key%zu", i);
        put_event(name, doc);
        free(rec);
        free(doc);
    }
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        rec = s3_record(names[i], "photos/summer+2026/IMG_0001.JPG", 4096);
        doc = wrap_records((const char *const *)&rec, 1);
        snprintf(name, sizeof name, "s3_%zu", i);
        put_event(name, doc);
        env = sns_envelope(doc);
        snprintf(name, sizeof name, "sns_%zu", i);
        put_event(name, env);
        free(env);
        body = sns_body(doc);
        bodies[0] = doc; bodies[1] = body; bodies[2] = (char *)"not json at all";
        env = sqs_envelope((const char *const *)bodies, 3);
        snprintf(name, sizeof name, "sqs_sns_%zu", i);
        put_event(name, env);
        free(env);
        free(body);
        free(rec);
        free(doc);
    }
    for (i = 0; i < 4; i++) recs[i] = s3_record(names[i], keys[i], 10);
    doc = wrap_records(recs, 4);
    put_event("s3_batch", doc);
    free(doc);
    for (i = 0; i < 4; i++) free((char *)recs[i]);
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        doc = batch_invocation(i % 2 ? "2.0" : "1.0", keys + i, 1);
        snprintf(name, sizeof name, "batch_key%zu", i);
        put_event(name, doc);
        free(doc);
    }
    doc = batch_invocation("1.0", keys, 4);
    put_event("batch_v1_tasks", doc);
    free(doc);
    doc = batch_invocation("2.0", keys, 4);
    put_event("batch_v2_tasks", doc);
    free(doc);
    doc = eventbridge("Object Created", "uploads/two words+plus.jpg", "PutObject");
    put_event("eventbridge_created", doc);
    free(doc);
    doc = eventbridge("Object Deleted", "uploads/cat.jpg", "DeleteObject");
    put_event("eventbridge_deleted", doc);
    free(doc);
    doc = eventbridge("Object Restore Completed", "a", "");
    put_event("eventbridge_restore", doc);
    free(doc);
    put_event("empty_records", "{\"Records\":[]}");
    put_event("records_null", "{\"Records\":null}");
    put_event("deep", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    put_event("escaped_nul", "{\"Records\":[{\"s3\":{\"object\":{\"key\":\"a\\u0000b\"}}}]}");
    put_event("number_size", "{\"Records\":[{\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
                              "\"object\":{\"key\":\"k\",\"size\":1e300}}}]}");
}

/* ---- the small text formats --------------------------------------------- */

static void seed_url_decode(void)
{
    static const char *const keys[] = {
        "uploads/cat.jpg", "two+words", "%2B%2b", "caf%C3%A9", "%E6%97%A5%E6%9C%AC.png", "100%25", "%",
        "%4", "%zz", "%00", "a%2Fb", "++++", "%C3%28", "%FF%FE", "x%20y%3Fz%23", ""
    };
    size_t i;
    char name[32];
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        snprintf(name, sizeof name, "key%zu", i);
        put_str(name, keys[i]);
    }
}

static void seed_s3_error(void)
{
    static const char *const docs[] = {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>"
        "<Key>uploads/cat.jpg</Key><RequestId>4442587FB7D0A2F9</RequestId><HostId>abc=</HostId></Error>",
        "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message>"
        "<StringToSign>AWS4-HMAC-SHA256\n20260314T000000Z</StringToSign><RequestId>tx0000</RequestId></Error>",
        "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        "<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the current time is too large.</Message>"
        "<RequestTime>20260314T000000Z</RequestTime><ServerTime>2026-03-14T00:20:00Z</ServerTime></Error>",
        "<Error><Code>AccessDenied</Code><Message>Access &amp; &lt;denied&gt; &quot;x&quot; &apos;y&apos;</Message></Error>",
        "<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message>",
        "<Error><Code></Code></Error>",
        "<Error><Code>Trunc",
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        "<Error><Message>no code</Message><Code>X</Code><Code>Y</Code></Error>",
        "<Error><Code>&amp</Code><Message>&#65;&#x42;\x01\x7f</Message></Error>",
        "",
        /* header blocks, for the client's header callback */
        "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nETag: \"d41d8cd98f00b204e9800998ecf8427e\"\r\n"
        "x-amz-request-id: tx000000000000000000001-0066f2a1b3\r\nContent-Length: 12\r\n"
        "Date: Sat, 14 Mar 2026 09:26:53 GMT\r\nx-amz-meta-sparta-stamped: 1\r\nX-Amz-Meta-Source-Key: a b\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 403 Forbidden\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        "Content-Length: 99999999999999999999999\r\n\r\n<Error><Code>RequestTimeTooSkewed</Code></Error>",
        "HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n",
        "HTTP/1.1 200\r\ncontent-type:\ttext/plain\x01\r\nx-amz-meta-:empty\r\nx-amz-meta-a:\r\nno colon here\r\n\r\n",
        /* ListObjectsV2 answers, for the listing parser */
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<EncodingType>url</EncodingType><Name>probe</Name><Prefix>probe%2F</Prefix><MaxKeys>2</MaxKeys>"
        "<IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
        "<Contents><Key>probe%2F100%25.txt</Key><LastModified>2026-12-03T14:22:50.446Z</LastModified>"
        "<ETag>&quot;9dd4e461268c8034f5c8564e155c67a6&quot;</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass>"
        "<Type>Normal</Type></Contents><Contents><Key>probe%2Fa+b%2Bc%C3%A9</Key><Size>12</Size></Contents>"
        "<KeyCount>2</KeyCount></ListBucketResult>",
        "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a&amp;b&#233;&#x1F600;&lt;</Key>"
        "<Size>0</Size></Contents></ListBucketResult>",
        "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>bad%zz</Key><Size>-1</Size></Contents>"
        "<Contents><Key>x</Key>"
    };
    size_t i;
    char name[32];
    for (i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        snprintf(name, sizeof name, "doc%zu", i);
        put_str(name, docs[i]);
    }
}

static void seed_credentials(void)
{
    static const char *const files[] = {
        "default\n[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n",
        "dev\n# comment\n[default]\naws_access_key_id=A\naws_secret_access_key=B\n\n[dev]\r\n"
        "aws_access_key_id = AKIDDEV ; inline\r\naws_secret_access_key : SECRETDEV # c\r\naws_session_token = TOKEN\r\n",
        "\n[ default ]\n  AWS_ACCESS_KEY_ID =  K  \n\tAWS_SECRET_ACCESS_KEY\t=\tS\t\n",
        "default\n[default]\naws_access_key_id = has space\naws_secret_access_key = S\n",
        "default\n[default]\naws_access_key_id =\naws_secret_access_key = S\n",
        "default\n[default]\naws_access_key_id = K\n",
        "missing\n[default]\naws_access_key_id = K\naws_secret_access_key = S\n",
        "default\n[default\naws_access_key_id = K\naws_secret_access_key = S\n",
        "default\n[default]\nregion = us-east-1\n[default]\naws_access_key_id = K\naws_secret_access_key = S\nno assignment here\n",
        "profile with spaces\n[profile with spaces]\naws_access_key_id=K\naws_secret_access_key=S",
        ""
    };
    size_t i;
    char name[32];
    for (i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(name, sizeof name, "file%zu", i);
        put_str(name, files[i]);
    }
}

static void seed_http_date(void)
{
    static const char *const dates[] = {
        "Sun, 06 Nov 1994 08:49:37 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "Sat, 14 Mar 2026 09:26:53 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 29 Feb 2016 12:00:60 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nox 1994 08:49:37 GMT", "Sun, 06 Nov 1969 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
        ",", ""
    };
    size_t i;
    char name[32];
    for (i = 0; i < sizeof dates / sizeof dates[0]; i++) {
        snprintf(name, sizeof name, "date%zu", i);
        put_str(name, dates[i]);
    }
}

static void seed_lambda(void)
{
    static const char *const blocks[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Lambda-Runtime-Aws-Request-Id: 8476a536-e9f4-11e8-9739-2dfe598c3fcd\r\n"
        "Lambda-Runtime-Deadline-Ms: 1542409706888\r\n"
        "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-2:123456789012:function:imager\r\n"
        "Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n"
        "Lambda-Runtime-Client-Context: {\"client\":{}}\r\nLambda-Runtime-Cognito-Identity: {}\r\n"
        "Lambda-Runtime-Aws-Tenant-Id: tenant-1\r\nDate: Sat, 14 Mar 2026 09:26:53 GMT\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nlambda-runtime-aws-request-id:abc\r\n"
        "LAMBDA-RUNTIME-DEADLINE-MS:   99999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: ../../x?y\r\nLambda-Runtime-Trace-Id:\r\n\r\n",
        "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: \t id \t\r\nLambda-Runtime-Deadline-Ms: -5\r\n"
        "Lambda-Runtime-Trace-Id: a\rb\r\n\r\n",
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\r\n",
        "Lambda-Runtime-Aws-Request-Id 42\r\n:\r\n\r\n",
        "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: 1\r\n\r\n\0\0Function.Custom\nsomething failed: caf\xc3\xa9 \xff\xfe\n\"quoted\"\\",
        "\0\0Runtime.\nmessage",
        "\0\0\nunicode \xf0\x9f\x98\x80 and broken \xed\xa0\x80 \xc0\xaf",
        "\0\0Function.....\n",
        "\0\0!!!\n\x01\x02\x1f"
    };
    static const size_t lens[] = { 0, 0, 0, 0, 0, 0, 110, 17, 44, 16, 8 };
    size_t i;
    char name[32];
    for (i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        snprintf(name, sizeof name, "block%zu", i);
        put(name, blocks[i], lens[i] ? lens[i] : strlen(blocks[i]));
    }
}

static void put_sigv4(const char *name, unsigned flags, uint64_t t, uint32_t expires, const char *text)
{
    spim_buf b = SPIM_BUF_INIT;
    unsigned char head[13];
    int i;
    head[0] = (unsigned char)flags;
    for (i = 0; i < 8; i++) head[1 + i] = (unsigned char)(t >> (56 - 8 * i));
    for (i = 0; i < 4; i++) head[9 + i] = (unsigned char)(expires >> (24 - 8 * i));
    spim_buf_append(&b, head, sizeof head);
    spim__buf_append_str(&b, text);
    put(name, b.data, b.len);
    spim_buf_free(&b);
}

static void seed_sigv4(void)
{
    /* method, url, region, service, payload hash, session token, headers */
    static const char *const reqs[] = {
        "GET\nhttps://examplebucket.s3.amazonaws.com/test.txt\nus-east-1\ns3\n\n\nRange:bytes=0-9",
        "PUT\nhttps://examplebucket.s3.amazonaws.com/test%24file.text\nus-east-1\ns3\n"
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n\n"
        "Date:Fri, 24 May 2013 00:00:00 GMT\nx-amz-storage-class:REDUCED_REDUNDANCY",
        "GET\nhttps://examplebucket.s3.amazonaws.com/?lifecycle\nus-east-1\ns3\n\n\n",
        "GET\nhttps://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J\nus-east-1\ns3\n\n\n",
        "GET\nhttp://127.0.0.1:7480/bucket/a%20b/c~d.jpg?versionId=x%2By&b=&a\nus-east-1\ns3\n\nTOKEN/+=\n",
        "GET\nhttps://example.amazonaws.com/./a/../b//c/%2E/?Param2=value2&Param1=value1\nus-east-1\nservice\n\n\n"
        "My-Header1:value4\nMy-Header1:value1\nMy-Header1:    value2   \nX-Amz-Date:20150830T123600Z",
        "POST\nhttps://example.amazonaws.com:443/\nus-east-1\nservice\n\n\nContent-Type:application/x-www-form-urlencoded\n"
        "My-Header1:value1\n  value2",
        "GET\nhttps://[::1]:8443/x\nus-east-1\ns3\n\n\nHost:override.example",
        "GET\nhttp://h:99999/\nus-east-1\ns3\n\n\n",
        "GET\nnot a url\nus-east-1\ns3\n\n\n",
        "G3T\nhttps://h/\nus east\ns3/x\n\n\nBad Name:v\nx:a\rb",
        "GET\nhttps://h/?a=%zz&=&&&%\nus-east-1\ns3\n\n\n"
    };
    size_t i;
    char name[32];
    for (i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        snprintf(name, sizeof name, "req%zu_s3", i);
        put_sigv4(name, 1 | (i & 1 ? 4 : 0) | (i == 1 ? 8 : 0), 1369353600u, 86400, reqs[i]);
        snprintf(name, sizeof name, "req%zu_generic", i);
        put_sigv4(name, (i & 2 ? 16 : 0) | (i & 1 ? 64 : 0), 1440938160u + i, 604800, reqs[i]);
    }
    put_sigv4("extreme_time", 1 | 32, (uint64_t)INT64_MAX, 0, reqs[0]);
    put_sigv4("expires_out_of_range", 1 | 2, 1369353600u, 604801, reqs[0]);
}

/* ---- images --------------------------------------------------------------- */

/* A TIFF structure with one IFD0 entry: Orientation (SHORT). */
static size_t make_exif(unsigned char *t, int orientation, int little)
{
    static const unsigned char le[] = { 'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0 };
    static const unsigned char be[] = { 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1 };
    memcpy(t, little ? le : be, 18);
    t[18] = little ? (unsigned char)orientation : 0;
    t[19] = little ? 0 : (unsigned char)orientation;
    memset(t + 20, 0, 6);  /* value padding + next IFD offset 0 */
    return 26;
}

static unsigned char *make_icc(size_t n)
{
    unsigned char *p = (unsigned char *)malloc(n);
    size_t i;
    for (i = 0; i < n; i++) p[i] = (unsigned char)(i * 7 + (i >> 8));
    p[0] = (unsigned char)(n >> 24); p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8); p[3] = (unsigned char)n;
    memcpy(p + 36, "acsp", 4);
    return p;
}

/* w x h pixels with `ch` channels, a gradient; EXIF orientation and an ICC
   profile of icc_len bytes when asked; encoded as `f`. */
static void make_image(spim_buf *out, spim_format f, int w, int h, int ch, int orientation, size_t icc_len)
{
    spim_image img;
    unsigned char exif[32];
    int i;
    memset(&img, 0, sizeof img);
    img.width = w; img.height = h; img.channels = ch;
    img.pixels = (unsigned char *)malloc((size_t)w * h * ch);
    for (i = 0; i < w * h * ch; i++) img.pixels[i] = (unsigned char)(i * 13 + i / (w * ch) * 31);
    img.meta.format = f;
    img.meta.orientation = orientation ? orientation : 1;
    if (orientation) {
        img.meta.exif_len = make_exif(exif, orientation, orientation & 1);
        img.meta.exif = exif;
    }
    if (icc_len) {
        img.meta.icc = make_icc(icc_len);
        img.meta.icc_len = icc_len;
    }
    spim_buf_reset(out);
    if (spim_image_encode(&img, f, 75, out, NULL) != SPIM_OK) {
        fprintf(stderr, "seed: cannot encode a %s\n", spim__format_name(f));
        exit(1);
    }
    free(img.pixels);
    free(img.meta.icc);
}

/* A hand-made GIF: 2x2, 2 colours, LZW with a clear code before each pixel
   so that no code grows past 3 bits. */
static const unsigned char gif_2x2[] = {
    'G', 'I', 'F', '8', '9', 'a', 2, 0, 2, 0, 0x80, 0, 0,
    0xff, 0x00, 0x00, 0x00, 0x00, 0xff,
    0x21, 0xf9, 4, 1, 0, 0, 1, 0,
    0x2c, 0, 0, 0, 0, 2, 0, 2, 0, 0,
    2, 3, 0x44, 0x34, 0x05, 0, 0x3b
};

static void image_set(void (*emit)(const char *, const spim_buf *))
{
    static const struct { spim_format f; const char *ext; } fmts[] = {
        { SPIM_FORMAT_JPEG, "jpg" }, { SPIM_FORMAT_PNG, "png" }, { SPIM_FORMAT_BMP, "bmp" }, { SPIM_FORMAT_TGA, "tga" }
    };
    static const int shapes[][3] = { { 8, 8, 3 }, { 1, 1, 4 }, { 5, 3, 1 }, { 4, 6, 2 }, { 16, 9, 4 } };
    spim_buf b = SPIM_BUF_INIT;
    char name[64];
    size_t i, s;
    int o;
    for (i = 0; i < 4; i++)
        for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            make_image(&b, fmts[i].f, shapes[s][0], shapes[s][1], shapes[s][2], 0, 0);
            snprintf(name, sizeof name, "%dx%dx%d.%s", shapes[s][0], shapes[s][1], shapes[s][2], fmts[i].ext);
            emit(name, &b);
        }
    for (o = 1; o <= 8; o++) {
        make_image(&b, SPIM_FORMAT_JPEG, 12, 7, 3, o, o == 6 ? 300 : 0);
        snprintf(name, sizeof name, "exif_o%d.jpg", o);
        emit(name, &b);
        make_image(&b, SPIM_FORMAT_PNG, 7, 12, 4, o, o == 3 ? 200 : 0);
        snprintf(name, sizeof name, "exif_o%d.png", o);
        emit(name, &b);
    }
    make_image(&b, SPIM_FORMAT_JPEG, 4, 4, 3, 6, 70000);  /* ICC in two APP2 chunks */
    emit("icc_two_chunks.jpg", &b);
    spim_buf_reset(&b);
    spim_buf_append(&b, gif_2x2, sizeof gif_2x2);
    emit("2x2.gif", &b);
    spim_buf_reset(&b);
    spim__buf_append_str(&b, "P6\n3 2\n255\n");
    for (i = 0; i < 18; i++) spim_buf_append(&b, "\x10\x80\xf0" + i % 3, 1);
    emit("3x2.ppm", &b);
    spim_buf_reset(&b);
    spim__buf_append_str(&b, "P5 2 2 255 ");
    spim_buf_append(&b, "\x00\x40\x80\xff", 4);
    emit("2x2.pgm", &b);
    spim_buf_reset(&b);
    spim__buf_append_str(&b, "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 2\n");
    spim_buf_append(&b, "\x80\x40\x20\x81\x10\x20\x30\x80\xff\x00\x00\x7f\x00\xff\x00\x80", 16);
    emit("2x2.hdr", &b);
    spim_buf_free(&b);
}


/* cjpeg (libjpeg-turbo-progs) with each of opts on a w x h picture: busy,
   or smooth (optimised tables for it lack most codes a stamp needs, which
   sends the splice to new tables); each with and without option bytes. */
static void seed_cjpeg(const char *const *opts, size_t nopts, int w, int h, int smooth)
{
    const char *tmp = getenv("TMPDIR");
    char ppm[400], cmd[1100], jpg[512], name[80];
    spim_buf b = SPIM_BUF_INIT, x = SPIM_BUF_INIT;
    size_t i;
    int o, k;
    FILE *f;
    snprintf(ppm, sizeof ppm, "%s/spim_seed_%d.ppm", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    snprintf(jpg, sizeof jpg, "%s.jpg", ppm);
    f = fopen(ppm, "wb");
    if (!f) return;
    fprintf(f, "P6\n%d %d\n255\n", w, h);
    for (k = 0; k < w * h * 3; k++)
        fputc(smooth ? 60 + 50 * (k % 3) + (k / 3 % w) * 20 / w + k / (3 * w) * 12 / h
                     : (k * 13 + (k / (w * 3)) * 31 + ((k / 3) % 5 == 0 ? 128 : 0)) & 255, f);
    fclose(f);
    for (i = 0; i < nopts; i++) {
        snprintf(cmd, sizeof cmd, "cjpeg %s '%s' > '%s' 2>/dev/null", opts[i], ppm, jpg);
        if (system(cmd) != 0) continue;
        spim_buf_reset(&b);
        if (spim_read_file(jpg, 0, &b, NULL) != SPIM_OK) continue;
        for (o = 0; o < 2; o++) {
            spim_buf_reset(&x);
            spim_buf_append(&x, o ? "\x15\x46" : "\x00\x00", 2);
            spim_buf_append(&x, b.data, b.len);
            snprintf(name, sizeof name, "cjpeg_%s%dx%d_%zu%s.jpg", smooth ? "smooth_" : "", w, h, i, o ? "_opts" : "");
            put(name, x.data, x.len);
        }
    }
    remove(ppm);
    remove(jpg);
    spim_buf_free(&b);
    spim_buf_free(&x);
}

/* Progressive JPEGs for the coefficient-domain path: libjpeg's script
   (successive approximation, EOB runs) in every layout, with restart
   intervals, and a -scans script that refines a band in two steps. Sizes
   differ from seed_splice's, so the names do too. */
static void seed_progressive(void)
{
    static const char scans[] = "0: 0 0 0 1;\n1 2: 0 0 0 0;\n0: 1 5 0 2;\n2: 1 63 0 1;\n"
                                "1: 1 63 0 0;\n0: 6 63 0 2;\n0: 1 63 2 1;\n0: 0 0 1 0;\n"
                                "2: 1 63 1 0;\n0: 1 63 1 0;\n";
    const char *tmp = getenv("TMPDIR");
    char path[400], opt[480];
    const char *opts[7] = {
        "-sample 1x1 -progressive", "-grayscale -progressive -restart 1B",
        "-sample 2x1 -progressive -restart 2", "-sample 1x2 -progressive",
        "-sample 2x2 -progressive -restart 1", "-sample 2x2 -progressive -optimize", opt,
    };
    FILE *f;
    snprintf(path, sizeof path, "%s/spim_seed_%d.scans", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    snprintf(opt, sizeof opt, "-sample 2x2 -scans '%s'", path);
    if (!(f = fopen(path, "w"))) return;
    fputs(scans, f);
    fclose(f);
    seed_cjpeg(opts, 7, 35, 23, 0);
    seed_cjpeg(opts, 7, 67, 45, 0);
    seed_cjpeg(opts, 7, 43, 29, 1);
    remove(path);
}

/* JPEGs of every layout the splice takes (grey, 4:4:4, 4:2:2, 4:2:0,
   4:4:0; restart intervals; optimised tables, on busy pictures (nearest
   codes) and smooth ones (new tables); progressive, see seed_progressive),
   plus the library's own encoder's. */
static void seed_splice(void)
{
    static const char *const opts[] = {
        "-grayscale", "-sample 1x1", "-sample 2x1", "-sample 2x2", "-sample 1x2",
        "-grayscale -restart 1B", "-sample 1x1 -restart 2B -optimize", "-sample 2x1 -optimize",
        "-sample 2x2 -restart 1B", "-sample 2x2 -restart 3B -optimize", "-sample 1x2 -restart 1",
        "-sample 2x2 -progressive", "-sample 2x2 -quality 30", "-sample 2x2 -quality 100 -optimize",
    };
    static const char *const smooth[] = {
        "-grayscale -optimize", "-sample 1x1 -optimize", "-sample 2x2 -optimize", "-sample 2x2 -restart 1B -optimize",
        "-sample 2x1 -restart 2B -optimize",
    };
    static const char *const near[] = {
        /* busy and large enough that stamped blocks take the nearest codes */
        "-sample 2x2 -optimize",
        "-sample 1x1 -optimize -restart 1",
        "-grayscale -optimize -quality 95",
    };
    static const int sizes[][2] = { { 33, 21 }, { 16, 16 }, { 7, 40 } };
    spim_buf b = SPIM_BUF_INIT, x = SPIM_BUF_INIT;
    char name[64];
    size_t s;
    int o;
    for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        seed_cjpeg(opts, sizeof opts / sizeof opts[0], sizes[s][0], sizes[s][1], 0);
    seed_cjpeg(smooth, sizeof smooth / sizeof smooth[0], 41, 27, 1);
    seed_cjpeg(near, sizeof near / sizeof near[0], 72, 56, 0);
    seed_progressive();
    for (o = 1; o <= 8; o++) {
        make_image(&b, SPIM_FORMAT_JPEG, 19, 11, o & 1 ? 3 : 1, o, 0);
        spim_buf_reset(&x);
        spim_buf_append(&x, "\x03\x00", 2);
        spim_buf_append(&x, b.data, b.len);
        snprintf(name, sizeof name, "stb_o%d.jpg", o);
        put(name, x.data, x.len);
    }
    spim_buf_free(&b);
    spim_buf_free(&x);
}

/* ---- png ---------------------------------------------------------------- */

static void png_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static void png_chunk(spim_buf *b, const char *type, const void *d, size_t n)
{
    unsigned char h[8], c[4];
    uLong crc;
    png_u32(h, (uint32_t)n);
    memcpy(h + 4, type, 4);
    crc = crc32(crc32(0L, Z_NULL, 0), h + 4, 4);
    if (n) crc = crc32(crc, (const unsigned char *)d, (uInt)n);
    png_u32(c, (uint32_t)crc);
    spim_buf_append(b, h, 8);
    if (n) spim_buf_append(b, d, n);
    spim_buf_append(b, c, 4);
}

/* A w x h PNG of type ct/depth (Adam7 when `adam7`: the passes' rows are
   just more rows of the stream), rows filtered 0..4 in turn over a zero
   row, a deflate block ending (Z_BLOCK) every 2 rows, IDAT in `piece`-byte
   chunks, with gAMA, tEXt and eXIf around it. */
static void png_make(spim_buf *b, int w, int h, int ct, int depth, int adam7, size_t piece)
{
    static const int chans[7] = { 1, 0, 3, 1, 2, 0, 4 };
    size_t stride = ((size_t)w * (size_t)chans[ct] * (size_t)depth + 7) / 8, pos, i;
    int rows = adam7 ? 2 * h : h, y;
    unsigned char ihdr[13], row[1 + 64 * 8], buf[4096], plte[48], trns[8] = { 200, 0, 100, 3, 9, 2, 1, 0 };
    spim_buf z = SPIM_BUF_INIT;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    deflateInit(&zs, 6);
    for (i = 0; i < sizeof plte; i++) plte[i] = (unsigned char)(i * 53);
    spim_buf_reset(b);
    spim_buf_append(b, "\x89PNG\r\n\x1a\n", 8);
    png_u32(ihdr, (uint32_t)w); png_u32(ihdr + 4, (uint32_t)h);
    ihdr[8] = (unsigned char)depth; ihdr[9] = (unsigned char)ct; ihdr[10] = ihdr[11] = 0;
    ihdr[12] = (unsigned char)adam7;
    png_chunk(b, "IHDR", ihdr, 13);
    png_chunk(b, "gAMA", "\0\0\xb1\x8f", 4);
    if (ct == 3) png_chunk(b, "PLTE", plte, sizeof plte);
    if (ct == 3 || ct == 0) png_chunk(b, "tRNS", trns, ct == 3 ? sizeof trns : 2);
    png_chunk(b, "eXIf", "MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0", 26);
    for (y = 0; y < rows; y++) {
        row[0] = (unsigned char)(y % 5);
        for (i = 0; i < stride && i < sizeof row - 1; i++) row[1 + i] = (unsigned char)(i * 31 + (size_t)y * 7);
        if (ct == 3 && depth == 8) for (i = 1; i <= stride; i++) row[i] &= 15;
        zs.next_in = row;
        zs.avail_in = (uInt)(adam7 ? 1 + stride / 2 : 1 + stride);
        do {
            zs.next_out = buf;
            zs.avail_out = sizeof buf;
            deflate(&zs, y == rows - 1 ? Z_FINISH : y % 2 ? Z_BLOCK : Z_NO_FLUSH);
            spim_buf_append(&z, buf, sizeof buf - zs.avail_out);
        } while (zs.avail_out == 0);
    }
    deflateEnd(&zs);
    for (pos = 0; pos < z.len; pos += piece) png_chunk(b, "IDAT", z.data + pos, z.len - pos < piece ? z.len - pos : piece);
    png_chunk(b, "tEXt", "Title\0seed", 10);
    png_chunk(b, "IEND", NULL, 0);
    spim_buf_free(&z);
}

/* PNGs of every colour type and depth the compressed-domain path takes,
   whole and cut short, with option bytes in front. */
static void seed_png(void)
{
    static const int types[][3] = {
        { 2, 8, 0 }, { 6, 8, 0 }, { 2, 16, 0 }, { 6, 16, 0 }, { 0, 8, 0 }, { 0, 16, 0 }, { 4, 8, 0 },
        { 0, 1, 0 }, { 0, 4, 0 }, { 3, 8, 0 }, { 3, 2, 0 }, { 2, 8, 1 }, { 4, 16, 0 },
    };
    static const unsigned char opts[][2] = { { 0, 0 }, { 0x15, 0x01 }, { 0x24, 0x0d }, { 0x04, 0x12 } };
    spim_buf b = SPIM_BUF_INIT, x = SPIM_BUF_INIT;
    char name[96];
    size_t t, k;
    for (t = 0; t < sizeof types / sizeof types[0]; t++)
        for (k = 0; k < sizeof opts / sizeof opts[0]; k++) {
            png_make(&b, 23 + (int)k * 9, 17 + (int)t, types[t][0], types[t][1], types[t][2], k == 2 ? 7 : 512);
            spim_buf_reset(&x);
            spim_buf_append(&x, opts[k], 2);
            spim_buf_append(&x, b.data, b.len);
            snprintf(name, sizeof name, "ct%d_d%d%s_%zu.png", types[t][0], types[t][1], types[t][2] ? "_adam7" : "", k);
            put_variants(name, x.data, x.len);
        }
    spim_buf_free(&b);
    spim_buf_free(&x);
}

static void emit_meta(const char *name, const spim_buf *b) { put_variants(name, b->data, b->len); }

/* ---- WebP and GIF (fuzz_formats: one option byte, then the file) ----------- */

static void put_format(const char *name, const void *data, size_t len)
{
    spim_buf x = SPIM_BUF_INIT;
    spim_buf_append(&x, "\x00", 1);
    spim_buf_append(&x, data, len);
    put_variants(name, x.data, x.len);
    x.data[0] = 0x84;   /* nw, scaled */
    put(name, x.data, x.len);
    spim_buf_free(&x);
}

static void pixels(unsigned char *px, int w, int h, int k)
{
    int x, y;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            unsigned char *p = px + (y * w + x) * 4;
            p[0] = (unsigned char)(x * 13 + k * 40); p[1] = (unsigned char)(y * 17);
            p[2] = (unsigned char)(x ^ y); p[3] = (unsigned char)(x < 3 ? 0 : 255 - y * 4);
        }
}

/* Still WebPs (lossy, lossless, with alpha) and a three-frame animation. */
static void seed_webp(void)
{
    unsigned char px[24 * 16 * 4];
    uint8_t *w = NULL;
    size_t n;
    WebPAnimEncoder *enc;
    WebPConfig cfg;
    WebPPicture pic;
    WebPData anim = { NULL, 0 };
    int k;
    pixels(px, 24, 16, 0);
    n = WebPEncodeLosslessRGBA(px, 24, 16, 24 * 4, &w);
    put_format("lossless.webp", w, n);
    WebPFree(w);
    n = WebPEncodeRGBA(px, 24, 16, 24 * 4, 60, &w);
    put_format("lossy_alpha.webp", w, n);
    WebPFree(w);
    n = WebPEncodeRGB(px, 32, 12, 32 * 3, 80, &w);
    put_format("lossy.webp", w, n);
    WebPFree(w);
    enc = WebPAnimEncoderNew(24, 16, NULL);
    WebPConfigInit(&cfg);
    for (k = 0; enc && k < 3; k++) {
        pixels(px, 24, 16, k);
        WebPPictureInit(&pic);
        pic.width = 24; pic.height = 16; pic.use_argb = 1;
        WebPPictureImportRGBA(&pic, px, 24 * 4);
        WebPAnimEncoderAdd(enc, &pic, k * 100, &cfg);
        WebPPictureFree(&pic);
    }
    if (enc && WebPAnimEncoderAdd(enc, NULL, 300, NULL) && WebPAnimEncoderAssemble(enc, &anim))
        put_format("anim.webp", anim.bytes, anim.size);
    WebPDataClear(&anim);
    WebPAnimEncoderDelete(enc);
}

static int gif_sink(GifFileType *g, const GifByteType *b, int n)
{
    spim_buf_append((spim_buf *)g->UserData, b, (size_t)n);
    return n;
}

/* A GIF of `frames` 12x8 frames (the later ones a 5x4 patch with
   transparency), a 16-colour palette, a loop count. */
static void seed_gif(const char *name, int frames, int interlace)
{
    spim_buf b = SPIM_BUF_INIT;
    GifColorType pal[16];
    ColorMapObject *cm;
    GifFileType *g;
    GraphicsControlBlock gcb;
    GifByteType ext[4], row[12], loop[3] = { 1, 3, 0 };
    int e = 0, k, y, x;
    for (k = 0; k < 16; k++) {
        pal[k].Red = (GifByteType)(k * 16);
        pal[k].Green = (GifByteType)(255 - k * 9);
        pal[k].Blue = (GifByteType)(k * 5);
    }
    cm = GifMakeMapObject(16, pal);
    g = EGifOpen(&b, gif_sink, &e);
    if (!g || !cm) exit(1);
    EGifSetGifVersion(g, true);
    EGifPutScreenDesc(g, 12, 8, 8, 0, cm);
    EGifPutExtensionLeader(g, APPLICATION_EXT_FUNC_CODE);
    EGifPutExtensionBlock(g, 11, "NETSCAPE2.0");
    EGifPutExtensionBlock(g, 3, loop);
    EGifPutExtensionTrailer(g);
    for (k = 0; k < frames; k++) {
        int w = k ? 5 : 12, h = k ? 4 : 8;
        memset(&gcb, 0, sizeof gcb);
        gcb.DisposalMode = k % 4;
        gcb.DelayTime = 5 + k;
        gcb.TransparentColor = k ? 15 : NO_TRANSPARENT_COLOR;
        EGifGCBToExtension(&gcb, ext);
        EGifPutExtension(g, GRAPHICS_EXT_FUNC_CODE, 4, ext);
        EGifPutImageDesc(g, k ? k % 7 : 0, k ? k % 4 : 0, w, h, interlace && !k, NULL);
        for (y = 0; y < h; y++) {
            for (x = 0; x < w; x++) row[x] = (GifByteType)((x + y + k) % 16);
            EGifPutLine(g, row, w);
        }
    }
    EGifCloseFile(g, &e);
    GifFreeMapObject(cm);
    put_format(name, b.data, b.len);
    spim_buf_free(&b);
}

static void seed_formats(void)
{
    seed_webp();
    seed_gif("one.gif", 1, 0);
    seed_gif("interlaced.gif", 1, 1);
    seed_gif("anim.gif", 5, 0);
}

static void emit_image(const char *name, const spim_buf *b)
{
    spim_buf x = SPIM_BUF_INIT;
    char n[96];
    /* two option bytes: gravity/margin, then scale/opacity/format */
    spim_buf_append(&x, "\x00\x00", 2);
    spim_buf_append(&x, b->data, b->len);
    put(name, x.data, x.len);
    x.data[0] = 0x15; x.data[1] = 0x46;   /* nw-ish, margin 1, 0.25 scale, PNG out */
    snprintf(n, sizeof n, "%s.opts", name);
    put(n, x.data, x.len);
    snprintf(n, sizeof n, "%s.short", name);
    put(n, x.data, x.len - (x.len > 12 ? x.len / 3 : 1));
    spim_buf_free(&x);
}

int main(int argc, char **argv)
{
    const char *name;
    if (argc != 3) {
        fprintf(stderr, "usage: %s NAME DIR\n", argv[0]);
        return 2;
    }
    name = argv[1];
    out_dir = argv[2];
    if (!strcmp(name, "events")) seed_events();
    else if (!strcmp(name, "url_decode")) seed_url_decode();
    else if (!strcmp(name, "s3_error")) seed_s3_error();
    else if (!strcmp(name, "credentials")) seed_credentials();
    else if (!strcmp(name, "http_date")) seed_http_date();
    else if (!strcmp(name, "lambda")) seed_lambda();
    else if (!strcmp(name, "sigv4")) seed_sigv4();
    else if (!strcmp(name, "meta")) image_set(emit_meta);
    else if (!strcmp(name, "image")) image_set(emit_image);
    else if (!strcmp(name, "splice")) seed_splice();
    else if (!strcmp(name, "png")) seed_png();
    else if (!strcmp(name, "formats")) seed_formats();
    else {
        fprintf(stderr, "seed: unknown target %s\n", name);
        return 2;
    }
    printf("%d\n", written);
    return 0;
}
