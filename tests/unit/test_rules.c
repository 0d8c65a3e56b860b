/* Rules per prefix (issue 25): parsing, first-match order, the defaults
   each rule starts from, and errors that name the rule and the field. */
#define SPARTA_IMAGER_IMPLEMENTATION
#define SPIM_NO_S3
#define SPIM_NO_LAMBDA
#include "sparta_imager.h"
#include "spim_test.h"

static spim_rules *parse(const char *json, const spim_stamp_options *defaults, spim_error *err)
{
    spim_rules *r = NULL;
    memset(err, 0, sizeof *err);
    if (spim_rules_parse(json, strlen(json), defaults, &r, err) != SPIM_OK) return NULL;
    return r;
}

static const char DOC[] =
    "[ {\"prefix\": \"press/\", \"stamp\": \"s3://assets/press.png\", \"gravity\": \"nw\", "
    "\"margin\": 12},\n"
    "  {\"prefix\": \"raw/\", \"skip\": true},\n"
    "  {\"prefix\": \"shop/\", \"output_prefix\": \"public/\", \"output_bucket\": \"cdn-bucket\",\n"
    "   \"scale\": 0.1, \"opacity\": \"0.5\", \"metadata\": \"strip\", \"jpeg-mode\": "
    "\"recode\",\n"
    "   \"font\": \"fonts/serif.ttf\", \"text\": \"(c) {year}\", \"tile\": 40},\n"
    "  {\"prefix\": \"press/old/\", \"skip\": true},\n"
    "  {\"prefix\": \"\", \"quality\": 70} ]";

TEST(parses_every_field)
{
    spim_stamp_options d;
    spim_error err;
    spim_rules *r;
    memset(&d, 0, sizeof d);
    d.scale = 0.25;
    d.metadata = SPIM_METADATA_KEEP;
    r = parse(DOC, &d, &err);
    if (!r) printf("    %s\n", err.message);
    REQUIRE(r != NULL);
    REQUIRE(r->count == 5);
    CHECK_STR("press/", r->rule[0].prefix);
    CHECK_STR("s3://assets/press.png", r->rule[0].stamp_source);
    CHECK_INT(SPIM_GRAVITY_NW, r->rule[0].opt.gravity);
    CHECK_INT(12, r->rule[0].opt.margin);
    CHECK(r->rule[0].opt.scale == 0.25); /* from the defaults */
    CHECK_INT(SPIM_METADATA_KEEP, r->rule[0].opt.metadata);
    CHECK(r->rule[0].output_prefix == NULL && r->rule[0].output_bucket == NULL && !r->rule[0].skip);
    CHECK_INT(1, r->rule[1].skip);
    CHECK_STR("public/", r->rule[2].output_prefix);
    CHECK_STR("cdn-bucket", r->rule[2].output_bucket);
    CHECK(r->rule[2].opt.scale == 0.1);
    CHECK(r->rule[2].opt.opacity == 0.5); /* a number given as a string */
    CHECK_INT(SPIM_METADATA_STRIP, r->rule[2].opt.metadata);
    CHECK_INT(SPIM_JPEG_RECODE, r->rule[2].opt.jpeg_mode);
    CHECK(r->rule[2].stamp_source == NULL);
    CHECK_STR("fonts/serif.ttf", r->rule[2].font_source);
    CHECK_STR("(c) {year}", r->rule[2].opt.text);   /* points into the document, kept alive */
    CHECK_INT(1, r->rule[2].opt.tile);
    CHECK_INT(70, r->rule[4].opt.quality);
    spim_rules_free(r);
}

TEST(first_matching_prefix_wins)
{
    spim_error err;
    spim_rules *r = parse(DOC, NULL, &err);
    REQUIRE(r != NULL);
    CHECK(spim_rules_match(r, "press/a.jpg") == &r->rule[0]);
    CHECK(spim_rules_match(r, "press/old/a.jpg") == &r->rule[0]); /* the earlier, wider rule */
    CHECK(spim_rules_match(r, "raw/x.png") == &r->rule[1]);
    CHECK(spim_rules_match(r, "shop/y.jpg") == &r->rule[2]);
    CHECK(spim_rules_match(r, "other.jpg") == &r->rule[4]); /* "" takes every key */
    CHECK(spim_rules_match(r, "Press/a.jpg") == &r->rule[4]); /* prefixes are case-sensitive */
    spim_rules_free(r);
    r = parse("[{\"prefix\": \"a/\"}]", NULL, &err);
    REQUIRE(r != NULL);
    CHECK(spim_rules_match(r, "b/a/x") == NULL); /* no rule: the defaults */
    CHECK(spim_rules_match(r, "a/") == &r->rule[0]);
    CHECK(spim_rules_match(NULL, "a/x") == NULL);
    spim_rules_free(r);
    r = parse("[]", NULL, &err);
    REQUIRE(r != NULL);
    CHECK_INT(0, r->count);
    CHECK(spim_rules_match(r, "a") == NULL);
    spim_rules_free(r);
    spim_rules_free(NULL);
}

static void bad(const char *json, const char *want)
{
    spim_error err;
    spim_rules *r = parse(json, NULL, &err);
    CHECK(r == NULL);
    spim_rules_free(r);
    CHECK_INT(SPIM_ERR_CONFIG, err.status);
    CHECK_STR(want, err.message);
}

TEST(errors_name_the_rule_and_the_field)
{
    bad("[{\"prefix\": \"a/\"}, {\"prefix\": \"b/\", \"gravty\": \"n\"}]",
        "rules[1] (prefix \"b/\"): unknown field \"gravty\"");
    bad("[{\"prefix\": \"b/\", \"gravity\": \"up\"}]",
        "rules[0] (prefix \"b/\"): field \"gravity\": must be one of nw n ne w c e sw s se, got "
        "'up'");
    bad("[{\"prefix\": \"b/\", \"margin\": -1}]", "rules[0] (prefix \"b/\"): field \"margin\": "
                                                  "must be an integer from 0 to 1000000, got '-1'");
    bad("[{\"prefix\": \"b/\", \"metadata\": \"none\"}]",
        "rules[0] (prefix \"b/\"): field \"metadata\": must be keep, strip-gps or strip, got "
        "'none'");
    bad("[{\"prefix\": \"b/\", \"scale\": true}]",
        "rules[0] (prefix \"b/\"): field \"scale\": must be a string or a number");
    bad("[{\"prefix\": \"b/\", \"skip\": \"yes\"}]",
        "rules[0] (prefix \"b/\"): field \"skip\": must be true or false");
    bad("[{\"prefix\": \"b/\", \"output_prefix\": \"\"}]",
        "rules[0] (prefix \"b/\"): field \"output_prefix\": must be UTF-8 of 1 to 1023 bytes, got "
        "''");
    bad("[{\"prefix\": \"b/\", \"stamp\": 3}]",
        "rules[0] (prefix \"b/\"): field \"stamp\": must be a string");
    bad("[{\"gravity\": \"n\"}]", "rules[0]: field \"prefix\": required (\"\" matches every key)");
    bad("[{\"prefix\": 7}]", "rules[0]: field \"prefix\": must be a string");
    bad("[{\"prefix\": \"a\"}, \"b/\"]", "rules[1]: must be an object");
    bad("{\"prefix\": \"a\"}", "must be a JSON array of at most 1000 rules");
    bad("[{\"prefix\": \"a\"},]", "not valid JSON (error at byte 17)");
    bad("[] x", "not valid JSON (error at byte 3)");
    bad("", "empty, expected a JSON array of rules");
}

TEST(too_many_rules)
{
    spim_buf b = SPIM_BUF_INIT;
    spim_rules *r = NULL;
    spim_error err;
    int i;
    spim_buf_append(&b, "[", 1);
    for (i = 0; i <= SPIM_RULES_MAX; i++)
        spim_buf_appendf(&b, "%s{\"prefix\": \"p%d/\"}", i ? "," : "", i);
    spim_buf_append(&b, "]", 1);
    CHECK_INT(SPIM_ERR_CONFIG, spim_rules_parse((const char *)b.data, b.len, NULL, &r, &err));
    CHECK(r == NULL);
    b.len -= strlen(",{\"prefix\": \"p1000/\"}]");
    spim_buf_append(&b, "]", 1);
    CHECK_INT(SPIM_OK, spim_rules_parse((const char *)b.data, b.len, NULL, &r, &err));
    CHECK(r && r->count == SPIM_RULES_MAX);
    CHECK(r && spim_rules_match(r, "p999/x") == &r->rule[999]);
    spim_rules_free(r);
    spim_buf_free(&b);
}

TEST(each_rule_holds_its_own_stamp)
{
    static const unsigned char png[] = {
        /* a 1x1 RGBA PNG */
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0,    0,    0,    0x0D, 0x49, 0x48,
        0x44, 0x52, 0,    0,    0,    1,    0,    0,    0,    1,    8,    6,    0,    0,
        0,    0x1F, 0x15, 0xC4, 0x89, 0,    0,    0,    0x0D, 0x49, 0x44, 0x41, 0x54, 0x78,
        0x9C, 0x63, 0xF8, 0xCF, 0xC0, 0xF0, 0x1F, 0,    0x05, 0x00, 0x01, 0xFF, 0x89, 0x99,
        0x3D, 0x1D, 0,    0,    0,    0,    0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82
    };
    spim_error err;
    spim_rules *r = parse(DOC, NULL, &err);
    REQUIRE(r != NULL);
    CHECK_INT(SPIM_OK, spim_stamp_load(&r->rule[0].stamp, png, sizeof png, &err));
    CHECK_INT(1, r->rule[0].stamp.width);
    spim_rules_free(r); /* frees the stamp: ASan's leak check says so */
}

int main(void)
{
    RUN(parses_every_field);
    RUN(first_matching_prefix_wins);
    RUN(errors_name_the_rule_and_the_field);
    RUN(too_many_rules);
    RUN(each_rule_holds_its_own_stamp);
    return spim_test_finish();
}
