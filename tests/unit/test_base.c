/* base: status strings, error records, the byte buffer, files, the logger. */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
#include "spim_test.h"

TEST(status_strings_cover_every_code)
{
    int i;
    CHECK_STR("ok", spim_status_str(SPIM_OK));
    CHECK_STR("unknown status", spim_status_str(SPIM_STATUS_COUNT));
    for (i = 0; i < SPIM_STATUS_COUNT; i++) CHECK(spim_status_str((spim_status)i) != NULL);
}

TEST(error_set_formats_and_returns_status)
{
    spim_error e;
    spim__error_clear(&e);
    CHECK_INT(SPIM_ERR_INVALID, spim_error_set(&e, SPIM_ERR_INVALID, "bad %s at %d", "key", 7));
    CHECK_INT(SPIM_ERR_INVALID, e.status);
    CHECK_STR("bad key at 7", e.message);
    CHECK_INT(SPIM_ERR_IO, spim_error_set(NULL, SPIM_ERR_IO, "ignored"));
    /* every failure sets transient and http_status: nothing stale survives */
    e.transient = 1;
    e.http_status = 503;
    spim_error_set(&e, SPIM_ERR_INVALID, "permanent");
    CHECK_INT(0, e.transient);
    CHECK_INT(0, e.http_status);
    spim_error_set(&e, SPIM_ERR_NETWORK, "connection refused");
    CHECK_INT(1, e.transient);
    /* context added in front of the message itself, and a message that fills
       the buffer, cut short rather than overrun */
    spim_error_set(&e, SPIM_ERR_CONFIG, "SPARTA_STAMP: %s (%s)", e.message, e.message);
    CHECK_STR("SPARTA_STAMP: connection refused (connection refused)", e.message);
    memset(e.message, 'x', sizeof e.message - 1);
    e.message[sizeof e.message - 1] = 0;
    spim_error_set(&e, SPIM_ERR_CONFIG, "ab%s", e.message);
    CHECK_INT((int)sizeof e.message - 1, (int)strlen(e.message));
    CHECK(e.message[0] == 'a' && e.message[1] == 'b' && e.message[2] == 'x');
}

TEST(buffer_grows_and_stays_terminated)
{
    spim_buf b = { 0 };
    int i;
    for (i = 0; i < 1000; i++) REQUIRE(spim_buf_appendf(&b, "%03d,", i) == SPIM_OK);
    CHECK_INT(4000, b.len);
    CHECK_INT(0, b.data[b.len]);
    CHECK(memcmp(b.data + 3996, "999,", 4) == 0);
    spim_buf_reset(&b);
    CHECK_INT(0, b.len);
    CHECK_STR("", (const char *)b.data);
    /* a formatted string longer than the on-stack scratch space */
    REQUIRE(spim_buf_appendf(&b, "%0600d", 5) == SPIM_OK);
    CHECK_INT(600, b.len);
    CHECK_INT('5', b.data[599]);
    spim_buf_free(&b);
    CHECK(b.data == NULL);
    REQUIRE(spim_buf_reserve(&b, 10) == SPIM_OK);
    CHECK_STR("", (const char *)b.data);
    spim_buf_free(&b);
}

TEST(read_file_reports_missing_and_too_large)
{
    spim_buf b = { 0 };
    spim_error e = { SPIM_OK, 0, 0, "" };
    const char *path = "build/test/base_read.tmp";
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    fputs("hello world", f);
    fclose(f);
    CHECK_INT(SPIM_OK, spim_read_file(path, 0, &b, &e));
    CHECK_STR("hello world", (const char *)b.data);
    CHECK_INT(SPIM_ERR_TOO_LARGE, spim_read_file(path, 5, &b, &e));
    CHECK(strstr(e.message, "larger than 5 bytes") != NULL);
    CHECK_INT(SPIM_ERR_NOT_FOUND, spim_read_file("build/test/no-such-file", 0, &b, &e));
    f = fopen(path, "wb");
    REQUIRE(f != NULL);
    fclose(f);
    CHECK_INT(SPIM_OK, spim_read_file(path, 0, &b, &e));
    CHECK_INT(0, b.len);
    CHECK_STR("", (const char *)b.data);
    remove(path);
    spim_buf_free(&b);
}

TEST(utf8_validation_matches_the_standard)
{
    CHECK_INT(1, spim_utf8_valid("", 0));
    CHECK_INT(1, spim_utf8_valid("photos/caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xb7.jpg", 24));
    CHECK_INT(0, spim_utf8_valid("\xc3", 1));              /* truncated at the end of the buffer */
    CHECK_INT(0, spim_utf8_valid("\xc3\xa9", 1));          /* length cuts the sequence */
    CHECK_INT(0, spim_utf8_valid("\xc0\xaf", 2));          /* overlong '/' */
    CHECK_INT(0, spim_utf8_valid("\xed\xa0\x80", 3));      /* surrogate */
    CHECK_INT(0, spim_utf8_valid("\xf4\x90\x80\x80", 4));  /* past U+10FFFF */
    CHECK_INT(0, spim_utf8_valid("\xff", 1));
    CHECK_INT(0, spim_utf8_valid("a\0b", 3));              /* NUL cannot be in a key */
}

static char last_line[4096];
static void capture(const char *line, void *user)
{
    (void)user;
    snprintf(last_line, sizeof last_line, "%s", line);
}

TEST(log_json_lines_carry_request_id_and_typed_fields)
{
    spim__log.sink = capture;
    spim__log.sink_user = NULL;
    spim__log_set_format(SPIM__LOG_JSON);
    spim__log_set_level(SPIM_LOG_INFO);
    spim__log_set_request_id("req-1");
    spim_log_fields(SPIM_LOG_INFO, "stamped \"a\"\n", SPIM_LOG_STR("key", "photos/a b.jpg"), SPIM_LOG_INT("ms", 12),
                    SPIM_LOG_STR("etag", "0x1f"), SPIM_LOG_INT("big", -9007199254740993LL), SPIM_LOG_END);
    CHECK(strstr(last_line, "\"level\":\"INFO\"") != NULL);
    CHECK(strstr(last_line, "\"requestId\":\"req-1\"") != NULL);
    CHECK(strstr(last_line, "\"message\":\"stamped \\\"a\\\"\\n\"") != NULL);
    CHECK(strstr(last_line, "\"key\":\"photos/a b.jpg\"") != NULL);
    CHECK(strstr(last_line, "\"ms\":12,") != NULL);
    CHECK(strstr(last_line, "\"etag\":\"0x1f\"") != NULL);
    CHECK(strstr(last_line, "\"big\":-9007199254740993}") != NULL);
    last_line[0] = 0;
    spim_log(SPIM_LOG_DEBUG, "filtered out");
    CHECK_STR("", last_line);
    /* invalid UTF-8 in a field still gives a valid JSON line */
    spim_log_fields(SPIM_LOG_INFO, "skipped", SPIM_LOG_STR("key", "bad\xff\xc3"), SPIM_LOG_END);
    CHECK(strstr(last_line, "\"key\":\"bad\\ufffd\\ufffd\"") != NULL);
    spim__log_set_request_id(NULL);
    spim__log.sink = NULL;
    spim__log.sink_user = NULL;
}

TEST(log_text_lines_are_single_lines)
{
    spim__log.sink = capture;
    spim__log.sink_user = NULL;
    spim__log_set_format(SPIM__LOG_TEXT);
    spim_log(SPIM_LOG_WARN, "two\nlines");
    CHECK(strstr(last_line, " WARN two lines") != NULL);
    CHECK(strchr(last_line, '\n') == NULL);
    spim_log_fields(SPIM_LOG_ERROR, "failed", SPIM_LOG_STR("key", "a b"), SPIM_LOG_INT("ms", 7), SPIM_LOG_END);
    CHECK(strstr(last_line, "failed key=\"a b\" ms=7") != NULL);
    spim__log.sink = NULL;
    spim__log.sink_user = NULL;
}

/* The logger never guesses a type from a value: a key "2024" or a bucket
   "1e5" stays a JSON string, an int is a number. */
TEST(log_field_types_come_from_the_caller_not_the_value)
{
    spim__log.sink = capture;
    spim__log.sink_user = NULL;
    spim__log_set_format(SPIM__LOG_JSON);
    spim__log_set_level(SPIM_LOG_INFO);
    spim_log_fields(SPIM_LOG_INFO, "stamped", SPIM_LOG_STR("key", "2024"), SPIM_LOG_STR("bucket", "1e5"),
                    SPIM_LOG_STR("neg", "-1"), SPIM_LOG_INT("bytes", 2024), SPIM_LOG_END);
    CHECKF(strstr(last_line, "\"key\":\"2024\"") != NULL, "got %s", last_line);
    CHECKF(strstr(last_line, "\"bucket\":\"1e5\"") != NULL, "got %s", last_line);
    CHECKF(strstr(last_line, "\"neg\":\"-1\"") != NULL, "got %s", last_line);
    CHECKF(strstr(last_line, "\"bytes\":2024}") != NULL, "got %s", last_line);
    /* a NULL string leaves its field out; a bare "key", value pair ends the list */
    spim_log_fields(SPIM_LOG_INFO, "skipped", SPIM_LOG_STR("reason", NULL), SPIM_LOG_INT("n", 1), SPIM_LOG_END);
    CHECKF(strstr(last_line, "reason") == NULL && strstr(last_line, "\"n\":1}") != NULL, "got %s", last_line);
    spim_log_fields(SPIM_LOG_INFO, "bare", "key", "2024", SPIM_LOG_END);
    CHECKF(strstr(last_line, "\"message\":\"bare\"}") != NULL, "got %s", last_line);
    spim__log.sink = NULL;
    spim__log.sink_user = NULL;
}

int main(void)
{
    RUN(status_strings_cover_every_code);
    RUN(error_set_formats_and_returns_status);
    RUN(buffer_grows_and_stays_terminated);
    RUN(read_file_reports_missing_and_too_large);
    RUN(utf8_validation_matches_the_standard);
    RUN(log_json_lines_carry_request_id_and_typed_fields);
    RUN(log_text_lines_are_single_lines);
    RUN(log_field_types_come_from_the_caller_not_the_value);
    return spim_test_finish();
}
