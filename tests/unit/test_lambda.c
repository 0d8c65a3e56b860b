/* lambda: error bodies and types, header parsing, responses, deadlines,
   the trace variable, and the loop's failures that need no Runtime API.
   The loop against a Runtime API is in tests/it/it_lambda.sh. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "spim_test.h"
#include <unistd.h>

static void quiet_sink(const char *line, void *user)
{
    (void)line;
    (void)user;
}

static void check_error_json(const char *type, const char *message, const char *want)
{
    spim_buf b = SPIM_BUF_INIT;
    CHECK_INT(SPIM_OK, spim__lambda_error_json(&b, type, message));
    CHECK_STR(want, (const char *)b.data);
    spim_buf_free(&b);
}

TEST(error_json_escapes_the_message)
{
    check_error_json("HelloError", "say \"hi\"\\ now\nnext\ttab\x01",
                     "{\"errorMessage\":\"say \\\"hi\\\"\\\\ now\\nnext\\ttab\\u0001\","
                     "\"errorType\":\"HelloError\",\"stackTrace\":[]}");
    check_error_json(NULL, NULL, "{\"errorMessage\":\"\",\"errorType\":\"Error\",\"stackTrace\":[]}");
}

TEST(error_json_keeps_utf8_and_replaces_invalid_bytes)
{
    /* é, check mark, emoji kept; a stray byte, an overlong '/', a surrogate replaced */
    check_error_json("E", "\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80|\xff|\xc0\xaf|\xed\xa0\x80|\xe2\x9c",
                     "{\"errorMessage\":\"\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80|\\ufffd|\\ufffd\\ufffd|"
                     "\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\",\"errorType\":\"E\",\"stackTrace\":[]}");
}

TEST(error_header_is_category_dot_reason)
{
    char h[96];
    spim__lambda_error_header(NULL, h, sizeof h);
    CHECK_STR("Function.Error", h);
    spim__lambda_error_header("HelloError", h, sizeof h);
    CHECK_STR("Function.HelloError", h);
    spim__lambda_error_header("Function.ResponseSizeTooLarge", h, sizeof h);
    CHECK_STR("Function.ResponseSizeTooLarge", h);
    spim__lambda_error_header("Runtime.InitError", h, sizeof h);
    CHECK_STR("Runtime.InitError", h);
    spim__lambda_error_header("bad type!\r\nX-Injected: 1", h, sizeof h);
    CHECK_STR("Function.badtypeXInjected1", h);
    spim__lambda_error_header("!!!", h, sizeof h);
    CHECK_STR("Function.Error", h);
    spim__lambda_error_header("AVeryLongErrorTypeNameThatGoesOnAndOn", h, 24);
    CHECK_STR("Function.AVeryLongError", h);
}

TEST(init_error_types)
{
    CHECK_STR("Runtime.ConfigInvalid", spim__lambda_init_type(SPIM_ERR_CONFIG));
    CHECK_STR("Runtime.InitError", spim__lambda_init_type(SPIM_ERR_NETWORK));
}

TEST(response_ok_copies_and_checks_content_type)
{
    spim_response r;
    char long_type[200];
    memset(&r, 0, sizeof r);
    CHECK_INT(SPIM_OK, spim_response_ok(&r, "abc", 3, "text/plain"));
    CHECK_STR("abc", (const char *)r.payload.data);
    CHECK_STR("text/plain", r.content_type);
    CHECK_INT(SPIM_OK, spim_response_ok(&r, "{}", 2, NULL));
    CHECK_STR("{}", (const char *)r.payload.data);
    CHECK_STR("", r.content_type);
    CHECK_INT(SPIM_ERR_INVALID, spim_response_ok(&r, "x", 1, "text/plain\r\nX-Evil: 1"));
    memset(long_type, 'a', sizeof long_type - 1);
    long_type[sizeof long_type - 1] = 0;
    CHECK_INT(SPIM_ERR_INVALID, spim_response_ok(&r, "x", 1, long_type));
    spim_buf_free(&r.payload);
}

TEST(response_fail_records_type_and_message)
{
    spim_response r;
    memset(&r, 0, sizeof r);
    spim_response_fail(&r, NULL, "no %s", "luck");
    CHECK_INT(1, r.failed);
    CHECK_STR("Error", r.error_type);
    CHECK_STR("no luck", r.error_message);
    spim__response_clear(&r);
    CHECK_INT(0, r.failed);
    CHECK_STR("", r.error_message);
}

TEST(remaining_time_follows_the_deadline)
{
    spim_invocation inv;
    int64_t left;
    memset(&inv, 0, sizeof inv);
    CHECK(spim_invocation_remaining_ms(&inv) == INT64_MAX);
    inv.deadline_ms = spim__wall_ms() - 1;
    CHECK_INT(0, spim_invocation_remaining_ms(&inv));
    inv.deadline_ms = spim__wall_ms() + 10000;
    left = spim_invocation_remaining_ms(&inv);
    CHECKF(left > 0 && left <= 10000, "remaining %lld", (long long)left);
}

TEST(budget_stops_before_the_deadline_by_the_longest_record)
{
    spim_invocation inv;
    spim_budget b;
    memset(&inv, 0, sizeof inv);
    memset(&b, 0, sizeof b);
    CHECK_INT(1, spim_budget_next(&b, &inv));          /* no deadline: always */
    b.started_ms -= 300;                                /* that record took 300 ms */
    inv.deadline_ms = spim__wall_ms() + 700;             /* 700 left < 300 + 500 */
    CHECK_INT(0, spim_budget_next(&b, &inv));
    CHECK_INT(1, b.records);
    CHECKF(b.longest_ms >= 300 && b.longest_ms < 400, "longest %lld", (long long)b.longest_ms);
    CHECK_INT(0, b.started_ms);
    inv.deadline_ms = spim__wall_ms() + 900;             /* 900 > 300 + 500 */
    CHECK_INT(1, spim_budget_next(&b, &inv));
    b.safety_ms = 700;                                  /* 900 < 300 + 700 */
    CHECK_INT(0, spim_budget_next(&b, &inv));
    CHECK_INT(2, b.records);
}

static void feed(spim__lambda *rt, const char *line)
{
    size_t n = strlen(line);
    CHECK_INT(n, spim__lambda_on_header((char *)line, 1, n, rt));
}

TEST(next_headers_are_parsed_case_insensitively_and_capped)
{
    spim__lambda rt;
    spim_buf big = SPIM_BUF_INIT;
    int i;
    memset(&rt, 0, sizeof rt);
    rt.want_headers = 1;
    feed(&rt, "HTTP/1.1 200 OK\r\n");
    feed(&rt, "lambda-runtime-aws-request-id:  8476a536-e9f4 \r\n");
    feed(&rt, "Lambda-Runtime-Deadline-Ms: 1542409706888\r\n");
    feed(&rt, "Lambda-Runtime-Trace-Id:Root=1-5bef4de7\r\n");
    feed(&rt, "X-Other: 1\r\n");
    CHECK_STR("8476a536-e9f4", spim__lambda_hdr(&rt, SPIM__H_REQUEST_ID));
    CHECK_STR("1542409706888", spim__lambda_hdr(&rt, SPIM__H_DEADLINE));
    CHECK_STR("Root=1-5bef4de7", spim__lambda_hdr(&rt, SPIM__H_TRACE));
    CHECK(spim__lambda_hdr(&rt, SPIM__H_TENANT) == NULL);
    CHECK_INT(0, rt.hdr_overflow);
    spim__buf_append_str(&big, "Lambda-Runtime-Client-Context: ");
    for (i = 0; i <= (int)SPIM_LAMBDA_HEADER_MAX; i++) spim_buf_append(&big, "c", 1);
    spim__buf_append_str(&big, "\r\n");
    feed(&rt, (const char *)big.data);
    CHECK_INT(SPIM__H_CLIENT_CONTEXT + 1, rt.hdr_overflow);
    CHECK(spim__lambda_hdr(&rt, SPIM__H_CLIENT_CONTEXT) == NULL);
    feed(&rt, "HTTP/1.1 200 OK\r\n");  /* a new answer forgets the last one */
    CHECK(spim__lambda_hdr(&rt, SPIM__H_REQUEST_ID) == NULL);
    CHECK_INT(0, rt.hdr_overflow);
    rt.want_headers = 0;                /* answers to our POSTs leave them alone */
    feed(&rt, "Lambda-Runtime-Aws-Request-Id: other\r\n");
    CHECK(spim__lambda_hdr(&rt, SPIM__H_REQUEST_ID) == NULL);
    spim_buf_free(&big);
    for (i = 0; i < SPIM__H_COUNT; i++) spim_buf_free(&rt.hdr[i]);
}

TEST(request_ids_and_deadlines_are_validated)
{
    char longest[SPIM_LAMBDA_REQUEST_ID_MAX + 2];
    CHECK_INT(1, spim__lambda_id_ok("8476a536-e9f4-11e8-9739-2dfe598c3fcd"));
    CHECK_INT(0, spim__lambda_id_ok(""));
    CHECK_INT(0, spim__lambda_id_ok("../next"));
    CHECK_INT(0, spim__lambda_id_ok("a b"));
    memset(longest, 'a', sizeof longest - 1);
    longest[sizeof longest - 1] = 0;
    CHECK_INT(0, spim__lambda_id_ok(longest));
    longest[sizeof longest - 2] = 0;
    CHECK_INT(1, spim__lambda_id_ok(longest));
    CHECK(spim__lambda_parse_ms("1542409706888") == INT64_C(1542409706888));
    CHECK_INT(0, spim__lambda_parse_ms("12a"));
    CHECK_INT(0, spim__lambda_parse_ms("-5"));
    CHECK_INT(0, spim__lambda_parse_ms("99999999999999999999"));
    CHECK_INT(0, spim__lambda_parse_ms(NULL));
}

TEST(trace_variable_is_set_replaced_and_unset)
{
    spim__lambda rt;
    memset(&rt, 0, sizeof rt);
    unsetenv("_X_AMZN_TRACE_ID");
    spim__lambda_set_trace(&rt, "Root=1-aaaa");
    CHECK_STR("Root=1-aaaa", getenv("_X_AMZN_TRACE_ID"));
    spim__lambda_set_trace(&rt, "Root=1-a-much-longer-trace-id-that-forces-the-buffer-to-grow-well-past-64");
    CHECK_STR("Root=1-a-much-longer-trace-id-that-forces-the-buffer-to-grow-well-past-64",
              getenv("_X_AMZN_TRACE_ID"));
    spim__lambda_set_trace(&rt, NULL);
    CHECK(getenv("_X_AMZN_TRACE_ID") == NULL);
    spim__lambda_set_trace(&rt, "Root=1-bbbb");
    CHECK_STR("Root=1-bbbb", getenv("_X_AMZN_TRACE_ID"));
    setenv("_X_AMZN_TRACE_ID", "set-by-the-handler", 1);
    spim__lambda_set_trace(&rt, "Root=1-cccc");
    CHECK_STR("Root=1-cccc", getenv("_X_AMZN_TRACE_ID"));
    unsetenv("_X_AMZN_TRACE_ID");
    spim_buf_free(&rt.trace_env);
}

static spim_status never_called(const spim_invocation *inv, spim_response *resp, void *user)
{
    (void)inv;
    (void)resp;
    *(int *)user = 1;
    return SPIM_OK;
}

TEST(run_needs_a_runtime_api)
{
    spim__lambda_opts opts;
    spim_error err;
    int called = 0;
    memset(&opts, 0, sizeof opts);
    unsetenv("AWS_LAMBDA_RUNTIME_API");
    CHECK_INT(SPIM_ERR_CONFIG, spim__lambda_run(never_called, &called, &opts, &err));
    CHECK_STR("AWS_LAMBDA_RUNTIME_API is not set", err.message);
    opts.runtime_api = "127.0.0.1:1/evil?x";
    CHECK_INT(SPIM_ERR_CONFIG, spim__lambda_run(never_called, &called, &opts, &err));
    CHECK_INT(0, called);
}

TEST(run_gives_up_after_bounded_retries)
{
    spim__lambda_opts opts;
    spim_error err;
    int called = 0;
    memset(&opts, 0, sizeof opts);
    opts.runtime_api = "127.0.0.1:1";  /* nothing listens on port 1 */
    opts.tries = 3;
    opts.retry_delay_ms = 1;
    CHECK_INT(SPIM_ERR_NETWORK, spim__lambda_run(never_called, &called, &opts, &err));
    CHECK_INT(1, err.transient);
    CHECKF(strstr(err.message, "unreachable after 3 attempts") != NULL, "message: %s", err.message);
    CHECK_INT(0, called);
}

static spim_status count_bytes(const spim_invocation *inv, spim_response *resp, void *user)
{
    (void)resp;
    *(size_t *)user = inv->payload_len;
    return SPIM_OK;
}

/* Write `n` bytes of JSON (a string) to a temporary file; its path in `path`. */
static int write_event_file(char *path, size_t size, size_t n)
{
    FILE *f;
    size_t i;
    snprintf(path, size, "/tmp/test_lambda_event_%ld.json", (long)getpid());
    if (!(f = fopen(path, "wb"))) return 0;
    fputc('"', f);
    for (i = 2; i < n; i++) fputc('y', f);
    fputc('"', f);
    return fclose(f) == 0;
}

/* Lambda's limit on an event is 6 MiB + 100 B (RIE's interop.MaxPayloadSize):
   `--event FILE` takes a file that size whole, and refuses one byte more
   without calling the handler. */
TEST(local_event_up_to_the_platform_limit)
{
    char path[64];
    size_t got = 0;
    CHECK_INT(6291556, SPIM_LAMBDA_PAYLOAD_MAX);
    REQUIRE(write_event_file(path, sizeof path, 6291556));
    CHECK_INT(0, spim__lambda_local(path, NULL, count_bytes, &got));
    CHECK_INT(6291556, got);
    got = 0;
    REQUIRE(write_event_file(path, sizeof path, 6291557));
    CHECK_INT(1, spim__lambda_local(path, NULL, count_bytes, &got));
    CHECK_INT(0, got);
    remove(path);
}

/* A record as spim_event_parse leaves it, with only what the reply reads. */
static spim_s3_record reply_rec(spim_event_source source, const char *key, const char *message_id, const char *task_id)
{
    spim_s3_record r;
    memset(&r, 0, sizeof r);
    r.source = source;
    r.key = r.key_raw = key;
    r.key_len = strlen(key);
    r.message_id = message_id;
    r.task_id = task_id;
    return r;
}

TEST(reply_direct_is_a_summary_and_fails_on_failed_records)
{
    spim_s3_record recs[3];
    spim_event ev;
    spim_response resp;
    spim_reply reply;
    memset(&ev, 0, sizeof ev);
    memset(&resp, 0, sizeof resp);
    memset(&reply, 0, sizeof reply);
    reply.actions[0] = "stamped", reply.actions[1] = "deleted", reply.actions[2] = "skipped";
    reply.listed_max = 2;
    reply.error_type = "S3Error";
    recs[0] = reply_rec(SPIM_SOURCE_DIRECT, "a.jpg", "", "");
    recs[1] = reply_rec(SPIM_SOURCE_DIRECT, "b.txt", "", "");
    recs[2] = reply_rec(SPIM_SOURCE_DIRECT, "c.jpg", "", "");
    ev.records = recs, ev.record_count = 3, ev.test_events = 1;
    CHECK_INT(SPIM_OK, spim_reply_record(&reply, &recs[0], SPIM_RESULT_SUCCEEDED, "stamped", "x_a.jpg", NULL));
    CHECK_INT(SPIM_OK, spim_reply_record(&reply, &recs[1], SPIM_RESULT_SKIPPED, "skipped", "", "not an image"));
    CHECK_INT(SPIM_OK, spim_reply_record(&reply, &recs[2], SPIM_RESULT_RETRY, "failed", NULL, "GET: 503"));
    CHECK_INT(SPIM_ERR_HTTP, spim_reply_finish(&reply, &ev, &resp));
    CHECK_STR("{\"stamped\":1,\"deleted\":0,\"skipped\":1,\"failed\":1,\"testEvents\":1,\"recordsOmitted\":1,"
              "\"records\":[{\"key\":\"a.jpg\",\"action\":\"stamped\",\"output\":\"x_a.jpg\"},"
              "{\"key\":\"b.txt\",\"action\":\"skipped\",\"reason\":\"not an image\"}]}", (const char *)resp.payload.data);
    CHECK_INT(1, resp.failed);
    CHECK_STR("TransientS3Error", resp.error_type);
    CHECK_STR("1 of 3 records failed; first: c.jpg: GET: 503", resp.error_message);
    CHECK(reply.spim__list == NULL && reply.spim__failures == NULL);
    spim_buf_free(&resp.payload);
}

/* RETRY and FAILED (a person can fix it: AccessDenied) are listed, so the
   queue redelivers or moves the message to its DLQ; SUCCEEDED is not. */
TEST(reply_sqs_lists_each_retried_message_once_and_succeeds)
{
    spim_s3_record recs[4];
    spim_event ev;
    spim_response resp;
    spim_reply reply;
    memset(&ev, 0, sizeof ev);
    memset(&resp, 0, sizeof resp);
    memset(&reply, 0, sizeof reply);
    recs[0] = reply_rec(SPIM_SOURCE_SQS, "a", "m-1", "");
    recs[1] = reply_rec(SPIM_SOURCE_SQS, "b", "m-1", "");
    recs[2] = reply_rec(SPIM_SOURCE_SQS, "c", "m-2", "");
    recs[3] = reply_rec(SPIM_SOURCE_SQS, "d", "m-3", "");
    ev.records = recs, ev.record_count = 4;
    CHECK_INT(SPIM_OK, spim_reply_record(&reply, &recs[0], SPIM_RESULT_RETRY, "failed", NULL, "PUT: 503"));
    CHECK_INT(SPIM_OK, spim_reply_record(&reply, &recs[1], SPIM_RESULT_RETRY, "failed", NULL, "not started"));
    CHECK_INT(SPIM_OK, spim_reply_record(&reply, &recs[2], SPIM_RESULT_SUCCEEDED, "done", NULL, NULL));
    CHECK_INT(SPIM_OK, spim_reply_record(&reply, &recs[3], SPIM_RESULT_FAILED, "failed", NULL, "PUT: 403"));
    CHECK_INT(SPIM_OK, spim_reply_finish(&reply, &ev, &resp));
    CHECK_STR("{\"failed\":3,\"done\":1,\"testEvents\":0,\"recordsOmitted\":0,"
              "\"batchItemFailures\":[{\"itemIdentifier\":\"m-1\"},{\"itemIdentifier\":\"m-3\"}],\"records\":["
              "{\"key\":\"a\",\"action\":\"failed\",\"reason\":\"PUT: 503\"},"
              "{\"key\":\"b\",\"action\":\"failed\",\"reason\":\"not started\"},{\"key\":\"c\",\"action\":\"done\"},"
              "{\"key\":\"d\",\"action\":\"failed\",\"reason\":\"PUT: 403\"}]}", (const char *)resp.payload.data);
    CHECK_INT(0, resp.failed);
    spim_buf_free(&resp.payload);
}

TEST(reply_batch_operations_has_one_result_per_task)
{
    spim_s3_record recs[3];
    spim_event ev;
    spim_response resp;
    spim_reply reply;
    memset(&ev, 0, sizeof ev);
    memset(&resp, 0, sizeof resp);
    memset(&reply, 0, sizeof reply);
    recs[0] = reply_rec(SPIM_SOURCE_BATCH, "a b.jpg", "", "t-1");
    recs[1] = reply_rec(SPIM_SOURCE_BATCH, "gone.jpg", "", "t-2");
    recs[2] = reply_rec(SPIM_SOURCE_BATCH, "c.jpg", "", "t-3");
    ev.records = recs, ev.record_count = 3, ev.invocation_id = "inv-1", ev.invocation_schema_version = "2.0";
    CHECK_INT(SPIM_OK, spim_reply_record(&reply, &recs[0], SPIM_RESULT_SUCCEEDED, "stamped", "x_a b.jpg", ""));
    CHECK_INT(SPIM_OK, spim_reply_record(&reply, &recs[1], SPIM_RESULT_SKIPPED, "deleted", NULL, "key missing"));
    CHECK_INT(SPIM_OK, spim_reply_record(&reply, &recs[2], SPIM_RESULT_RETRY, "failed", NULL, "GET: \"503\""));
    CHECK_INT(SPIM_OK, spim_reply_finish(&reply, &ev, &resp));
    CHECK_STR("{\"invocationSchemaVersion\":\"2.0\",\"treatMissingKeysAs\":\"PermanentFailure\",\"invocationId\":\"inv-1\","
              "\"results\":[{\"taskId\":\"t-1\",\"resultCode\":\"Succeeded\",\"resultString\":\"stamped\"},"
              "{\"taskId\":\"t-2\",\"resultCode\":\"PermanentFailure\",\"resultString\":\"deleted: key missing\"},"
              "{\"taskId\":\"t-3\",\"resultCode\":\"TemporaryFailure\",\"resultString\":\"failed: GET: \\\"503\\\"\"}]}",
              (const char *)resp.payload.data);
    CHECK_INT(0, resp.failed);
    spim_buf_free(&resp.payload);
}

TEST(reply_without_records_is_an_empty_summary)
{
    spim_response resp;
    spim_reply reply;
    memset(&resp, 0, sizeof resp);
    memset(&reply, 0, sizeof reply);
    reply.actions[0] = "stamped";
    CHECK_INT(SPIM_OK, spim_reply_finish(&reply, NULL, &resp));
    CHECK_STR("{\"stamped\":0,\"testEvents\":0,\"recordsOmitted\":0,\"records\":[]}", (const char *)resp.payload.data);
    spim_buf_free(&resp.payload);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    spim__log.sink = quiet_sink;
    spim__log.sink_user = NULL;
    RUN(error_json_escapes_the_message);
    RUN(error_json_keeps_utf8_and_replaces_invalid_bytes);
    RUN(error_header_is_category_dot_reason);
    RUN(init_error_types);
    RUN(response_ok_copies_and_checks_content_type);
    RUN(response_fail_records_type_and_message);
    RUN(remaining_time_follows_the_deadline);
    RUN(budget_stops_before_the_deadline_by_the_longest_record);
    RUN(next_headers_are_parsed_case_insensitively_and_capped);
    RUN(request_ids_and_deadlines_are_validated);
    RUN(trace_variable_is_set_replaced_and_unset);
    RUN(run_needs_a_runtime_api);
    RUN(run_gives_up_after_bounded_retries);
    RUN(local_event_up_to_the_platform_limit);
    RUN(reply_direct_is_a_summary_and_fails_on_failed_records);
    RUN(reply_sqs_lists_each_retried_message_once_and_succeeds);
    RUN(reply_batch_operations_has_one_result_per_task);
    RUN(reply_without_records_is_an_empty_summary);
    curl_global_cleanup();
    return spim_test_finish();
}
