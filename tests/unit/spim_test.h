/* spim_test.h - the project's small test framework.

   A test file defines cases with TEST(name), runs them from main() with
   RUN(name), and returns spim_test_finish(). Every check that fails prints
   the case, the line, what it expected and what it got; the last line is
   "N passed, N failed, N skipped", which tests/run.sh adds up.

      TEST(adds_numbers) { CHECK_INT(4, 2 + 2); }
      int main(void) { RUN(adds_numbers); return spim_test_finish(); }

   SKIP("reason") inside a case marks it skipped and returns from it. */
#ifndef SPIM_TEST_H
#define SPIM_TEST_H

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

static int spim_t_passed, spim_t_failed, spim_t_skipped;
static int spim_t_case_failed, spim_t_case_skipped;
static const char *spim_t_case_name = "";

#define TEST(name) static void name(void)

#define RUN(name) spim_t_run(#name, name)

static void spim_t_run(const char *name, void (*fn)(void))
{
    spim_t_case_name = name;
    spim_t_case_failed = spim_t_case_skipped = 0;
    fn();
    if (spim_t_case_failed) {
        spim_t_failed++;
        printf("FAIL %s\n", name);
    } else if (spim_t_case_skipped) {
        spim_t_skipped++;
    } else {
        spim_t_passed++;
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}

static void spim_t_print_escaped(const char *label, const char *s, size_t n);

static int spim_test_finish(void)
{
    (void)spim_t_print_escaped; /* used by CHECK_STR only: not every file calls it */
    printf("%d passed, %d failed, %d skipped\n", spim_t_passed, spim_t_failed, spim_t_skipped);
    return spim_t_failed ? 1 : 0;
}

static void spim_t_fail_at(const char *file, int line)
{
    spim_t_case_failed = 1;
    printf("  %s:%d: in %s\n", file, line, spim_t_case_name);
}

/* Print a string with non-printable bytes escaped, so a mismatch is visible. */
static void spim_t_print_escaped(const char *label, const char *s, size_t n)
{
    size_t i;
    printf("    %s: \"", label);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') printf("\\n");
        else if (c < 0x20 || c >= 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    printf("\"\n");
}

#define SKIP(reason) do { \
        printf("skip %s: %s\n", spim_t_case_name, (reason)); \
        spim_t_case_skipped = 1; return; } while (0)

#define CHECK(cond) do { if (!(cond)) { \
        spim_t_fail_at(__FILE__, __LINE__); \
        printf("    expected true: %s\n", #cond); } } while (0)

/* Like CHECK, with a printf-style explanation of what went wrong. */
#define CHECKF(cond, ...) do { if (!(cond)) { \
        spim_t_fail_at(__FILE__, __LINE__); \
        printf("    expected true: %s\n    ", #cond); printf(__VA_ARGS__); printf("\n"); } } while (0)

#define CHECK_INT(expected, got) do { \
        long long spim_t_e = (long long)(expected), spim_t_g = (long long)(got); \
        if (spim_t_e != spim_t_g) { spim_t_fail_at(__FILE__, __LINE__); \
            printf("    %s\n    expected: %lld\n    got:      %lld\n", #got, spim_t_e, spim_t_g); } } while (0)

#define CHECK_STR(expected, got) do { \
        const char *spim_t_e = (expected), *spim_t_g = (got); \
        if (!spim_t_g || strcmp(spim_t_e, spim_t_g) != 0) { spim_t_fail_at(__FILE__, __LINE__); \
            printf("    %s\n", #got); \
            spim_t_print_escaped("expected", spim_t_e, strlen(spim_t_e)); \
            if (spim_t_g) spim_t_print_escaped("got     ", spim_t_g, strlen(spim_t_g)); \
            else printf("    got:      (null)\n"); } } while (0)

#define CHECK_MEM(expected, expected_len, got, got_len) do { \
        size_t spim_t_el = (expected_len), spim_t_gl = (got_len); \
        if (spim_t_el != spim_t_gl || memcmp((expected), (got), spim_t_el) != 0) { \
            spim_t_fail_at(__FILE__, __LINE__); \
            printf("    %s (%zu bytes expected, %zu got)\n", #got, spim_t_el, spim_t_gl); } } while (0)

/* Stop the case when a precondition fails (later checks would crash). */
#define REQUIRE(cond) do { if (!(cond)) { \
        spim_t_fail_at(__FILE__, __LINE__); \
        printf("    required: %s\n", #cond); return; } } while (0)

#endif
