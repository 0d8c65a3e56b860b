/* The shared credentials file (INI): spim__s3_parse_credentials. The input
   is "PROFILE\n" followed by the file, so profiles with odd names are
   exercised as well as odd files. */
#include "fuzz_common.h"

static void check_value(const char *v, size_t cap, const char *what)
{
    size_t i;
    FUZZ_CHECK(memchr(v, 0, cap) != NULL, "%s not NUL-terminated", what);
    for (i = 0; v[i]; i++)
        FUZZ_CHECK((unsigned char)v[i] > 0x20 && v[i] != 0x7f, "%s has byte %#x at %zu", what,
                   (unsigned char)v[i], i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_reader r = { data, size };
    spim_credentials c, again;
    spim_error err, err2;
    spim_status st;
    size_t flen;
    const uint8_t *file;
    char *profile = fuzz_field(&r, '\n', '?', NULL);
    file = fuzz_rest(&r, &flen);
    spim__error_clear(&err);
    st = spim__s3_parse_credentials((const char *)file, flen, profile, &c, &err);
    check_value(c.access_key_id, sizeof c.access_key_id, "access_key_id");
    check_value(c.secret_access_key, sizeof c.secret_access_key, "secret_access_key");
    check_value(c.session_token, sizeof c.session_token, "session_token");
    if (st == SPIM_OK) {
        FUZZ_CHECK(c.access_key_id[0] && c.secret_access_key[0], "OK without a key id or secret");
        FUZZ_CHECK(strlen(c.access_key_id) < flen && strlen(c.secret_access_key) < flen, "value longer than the file");
        FUZZ_CHECK(flen && memchr(file, '[', flen) != NULL, "OK without any [profile]");
    } else {
        FUZZ_CHECK_ERROR(st, err);
        FUZZ_CHECK(st == SPIM_ERR_NOT_FOUND || st == SPIM_ERR_CONFIG || st == SPIM_ERR_TOO_LARGE,
                   "unexpected status %s", spim_status_str(st));
        FUZZ_CHECK(!c.access_key_id[0] && !c.secret_access_key[0] && !c.session_token[0],
                   "failure (%s) left credentials behind", err.message);
        /* a secret never appears in a message: values are not echoed */
        FUZZ_CHECK(strchr(err.message, '\n') == NULL, "message is not one line");
    }
    spim__error_clear(&err2);
    FUZZ_CHECK(spim__s3_parse_credentials((const char *)file, flen, profile, &again, &err2) == st &&
               memcmp(&c, &again, sizeof c) == 0, "second parse differs");
    free(profile);
    return 0;
}
