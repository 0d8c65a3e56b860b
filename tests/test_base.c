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
    spim_error_clear(&e);
    CHECK_INT(SPIM_ERR_INVALID, spim_error_set(&e, SPIM_ERR_INVALID, "bad %s at %d", "key", 7));
    CHECK_INT(SPIM_ERR_INVALID, e.status);
    CHECK_STR("bad key at 7", e.message);
    CHECK_INT(SPIM_ERR_IO, spim_error_set(NULL, SPIM_ERR_IO, "ignored"));
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
    spim_log_set_sink(capture, NULL);
    spim_log_set_format(SPIM_LOG_JSON);
    spim_log_set_level(SPIM_LOG_INFO);
    spim_log_set_request_id("req-1");
    spim_log_fields(SPIM_LOG_INFO, "stamped \"a\"\n", "key", "photos/a b.jpg", "ms", "12.5", "etag", "0x1f", NULL);
    CHECK(strstr(last_line, "\"level\":\"INFO\"") != NULL);
    CHECK(strstr(last_line, "\"requestId\":\"req-1\"") != NULL);
    CHECK(strstr(last_line, "\"message\":\"stamped \\\"a\\\"\\n\"") != NULL);
    CHECK(strstr(last_line, "\"key\":\"photos/a b.jpg\"") != NULL);
    CHECK(strstr(last_line, "\"ms\":12.5") != NULL);
    CHECK(strstr(last_line, "\"etag\":\"0x1f\"") != NULL);
    last_line[0] = 0;
    spim_log(SPIM_LOG_DEBUG, "filtered out");
    CHECK_STR("", last_line);
    /* invalid UTF-8 in a field still gives a valid JSON line */
    spim_log_fields(SPIM_LOG_INFO, "skipped", "key", "bad\xff\xc3", NULL);
    CHECK(strstr(last_line, "\"key\":\"bad\\ufffd\\ufffd\"") != NULL);
    spim_log_set_request_id(NULL);
    spim_log_set_sink(NULL, NULL);
}

TEST(log_text_lines_are_single_lines)
{
    spim_log_set_sink(capture, NULL);
    spim_log_set_format(SPIM_LOG_TEXT);
    spim_log(SPIM_LOG_WARN, "two\nlines");
    CHECK(strstr(last_line, " WARN two lines") != NULL);
    CHECK(strchr(last_line, '\n') == NULL);
    spim_log_fields(SPIM_LOG_ERROR, "failed", "key", "a b", NULL);
    CHECK(strstr(last_line, "failed key=\"a b\"") != NULL);
    spim_log_set_sink(NULL, NULL);
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
    return spim_test_finish();
}
