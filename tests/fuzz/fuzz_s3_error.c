/* S3 <Error> documents (and whatever a proxy answers instead):
   spim_s3_parse_error, then the classification the client applies to the
   code it found. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    spim_s3_error_info info, again;
    spim_status st;
    int found = spim_s3_parse_error((const char *)data, size, &info);
    FUZZ_CHECK(found == 0 || found == 1, "returned %d", found);
    FUZZ_CHECK_FIELD(info.code);
    FUZZ_CHECK_FIELD(info.message);
    FUZZ_CHECK_FIELD(info.request_id);
    /* the fields end up in one-line messages */
    FUZZ_CHECK(fuzz_is_clean_line(info.code, sizeof info.code), "code has a control character");
    FUZZ_CHECK(fuzz_is_clean_line(info.message, sizeof info.message), "message has a control character");
    FUZZ_CHECK(fuzz_is_clean_line(info.request_id, sizeof info.request_id), "request id has a control character");
    FUZZ_CHECK(found == (info.code[0] != 0), "found %d but code \"%s\"", found, info.code);
    /* entities only shrink text: each field is at most as long as the input */
    FUZZ_CHECK(strlen(info.code) <= size && strlen(info.message) <= size && strlen(info.request_id) <= size,
               "a field is longer than the input");
    if (found) FUZZ_CHECK(spim__s3_memstr((const char *)data, size, "<Code>") != NULL, "a code without <Code>");

    FUZZ_CHECK(spim_s3_parse_error((const char *)data, size, &again) == found &&
               memcmp(&info, &again, sizeof info) == 0, "second parse differs");

    st = spim_s3_status_for(size ? 100 + data[0] * 2 : 0, info.code);
    FUZZ_CHECK(st == SPIM_ERR_NETWORK || st == SPIM_ERR_NOT_FOUND || st == SPIM_ERR_AUTH || st == SPIM_ERR_HTTP,
               "status_for gave %s", spim_status_str(st));
    FUZZ_CHECK(spim_s3_is_retryable(0, info.code) == 1, "transport failures must be retryable");
    (void)spim_s3_is_retryable(400, info.code);
    (void)spim_s3_is_clock_skew(info.code, 1000000, 0);
    return 0;
}
