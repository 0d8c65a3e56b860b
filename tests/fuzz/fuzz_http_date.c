/* Date headers (clock-skew repair trusts them): spim__s3_parse_http_date.
   A parsed time, formatted back as an IMF-fixdate, parses to itself. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    char *s = fuzz_strndup(data, size), text[64];
    int64_t t = spim__s3_parse_http_date(s), back;
    time_t tt;
    struct tm tm;
    FUZZ_CHECK(t >= 0, "negative time %lld from \"%s\"", (long long)t, s);
    FUZZ_CHECK(t == spim__s3_parse_http_date(s), "not deterministic");
    if (t > 0) {
        FUZZ_CHECK(strchr(s, ',') != NULL, "a date without a comma: \"%s\"", s);
        /* four-digit years from 1970 (23:59:60 on 9999-12-31 is 10000-01-01) */
        FUZZ_CHECK(t <= INT64_C(253402300800), "time %lld past year 9999", (long long)t);
        if (t == INT64_C(253402300800)) { free(s); return 0; }
        tt = (time_t)t;
        FUZZ_CHECK(gmtime_r(&tt, &tm) != NULL, "gmtime failed");
        snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
                 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        back = spim__s3_parse_http_date(text);
        FUZZ_CHECK(back == t, "\"%s\" -> %lld, formatted \"%s\" -> %lld", s, (long long)t, text, (long long)back);
    }
    free(s);
    return 0;
}
