/* fuzz_common.h - what every libFuzzer target in tests/fuzz/ shares.

   Each target is one translation unit that compiles the whole header
   (implementation included), so private helpers such as the Runtime API
   header callback are reachable too. Invariants are checked with
   FUZZ_CHECK: a violation prints what was expected and aborts, which
   libFuzzer reports as a crash and saves the input. */
#ifndef SPIM_FUZZ_COMMON_H
#define SPIM_FUZZ_COMMON_H

/* the implementation needs POSIX before the first system header */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Fresh allocations are filled with a byte that changes on every call, so
   code that reads memory it never wrote (stb leaving pixels uninitialised,
   say) gives different results on two runs over the same input, which the
   targets check for. realloc's new tail is left to ASan. */
static inline void *fuzz_malloc(size_t n)
{
    static unsigned char junk = 0x5a;
    void *p = malloc(n ? n : 1);
    if (p) memset(p, junk += 0x3b, n);
    return p;
}
#define SPIM_MALLOC(n) fuzz_malloc(n)
#define SPIM_REALLOC(p, n) realloc(p, n)
#define SPIM_FREE(p) free(p)

#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* UBSan reads this before UBSAN_OPTIONS: the suppressions (stb's own
   undefined behaviour, see tests/fuzz/ubsan.supp; the targets run from the
   repository root) and stop at the first report. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
    return "suppressions=tests/fuzz/ubsan.supp:halt_on_error=1:print_stacktrace=1";
}

#define FUZZ_CHECK(cond, ...) do { if (!(cond)) { \
        fprintf(stderr, "%s:%d: invariant failed: %s\n    ", __FILE__, __LINE__, #cond); \
        fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); abort(); } } while (0)

/* A failure must say why: a status in range and a non-empty message. */
#define FUZZ_CHECK_ERROR(st, err) do { \
        FUZZ_CHECK((st) > SPIM_OK && (st) < SPIM_STATUS_COUNT, "status %d out of range", (int)(st)); \
        FUZZ_CHECK((err).message[0] != 0, "status %s with an empty message", spim_status_str(st)); \
        FUZZ_CHECK(memchr((err).message, 0, sizeof (err).message) != NULL, "message not terminated"); \
    } while (0)

/* A fixed-size field must be NUL-terminated inside its array. */
#define FUZZ_CHECK_FIELD(arr) \
    FUZZ_CHECK(memchr((arr), 0, sizeof (arr)) != NULL, "%s is not NUL-terminated", #arr)

/* A heap copy with a NUL after the bytes (the input itself has none). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = (char *)malloc(size + 1);
    if (!s) abort();
    if (size) memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* Reads an input as a sequence of fields, like LLVM's FuzzedDataProvider
   in miniature: bytes, small integers and separator-delimited strings. */
typedef struct fuzz_reader {
    const uint8_t *p;
    size_t left;
} fuzz_reader;

static inline unsigned fuzz_byte(fuzz_reader *r)
{
    if (!r->left) return 0;
    r->left--;
    return *r->p++;
}

static inline uint32_t fuzz_u32(fuzz_reader *r)
{
    uint32_t v = 0;
    int i;
    for (i = 0; i < 4; i++) v = v << 8 | fuzz_byte(r);
    return v;
}

/* The bytes up to the next `sep` (or the end), as a new NUL-terminated
   string with any NUL inside replaced by `nul_as`. Free with free(). */
static inline char *fuzz_field(fuzz_reader *r, uint8_t sep, char nul_as, size_t *len_out)
{
    const uint8_t *end = (const uint8_t *)memchr(r->p, sep, r->left);
    size_t n = end ? (size_t)(end - r->p) : r->left, i;
    char *s = fuzz_strndup(r->p, n);
    for (i = 0; i < n; i++)
        if (!s[i]) s[i] = nul_as;
    r->p += n;
    r->left -= n;
    if (end) { r->p++; r->left--; }
    if (len_out) *len_out = n;
    return s;
}

/* The remaining bytes, not copied. */
static inline const uint8_t *fuzz_rest(fuzz_reader *r, size_t *len)
{
    const uint8_t *p = r->p;
    *len = r->left;
    r->p += r->left;
    r->left = 0;
    return p;
}

/* 1 when the text is NUL-terminated within `cap` and has no control bytes. */
static inline int fuzz_is_clean_line(const char *s, size_t cap)
{
    size_t i;
    for (i = 0; i < cap && s[i]; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    return i < cap;
}

#endif
